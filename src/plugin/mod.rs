//! WebAssembly plugins: resolvers and translators as sandboxed components.
//!
//! Architecture invariant: this is the only module that knows wasmtime. What leaves it are
//! [`WasmResolver`] and [`WasmTranslator`], which implement the engine's [`Resolver`] and
//! [`Translator`] traits, and plain-data reports ([`PluginInfo`], [`LoadError`]).
//!
//! A plugin never takes the host down: a trap, a timeout, a memory-cap hit, an oversized or
//! malformed answer becomes an error value (the engine then falls back to `default_profile`),
//! a trapped instance is discarded, and a plugin that keeps crashing is quarantined for a
//! cooldown, then probed again.

mod bindings;
mod breaker;
mod cache;
mod calls;
pub mod cases;
mod compile;
mod error;
mod files;
mod hot;
mod instances;
mod live;
mod load;
mod log;
mod sandbox;
mod set;
pub mod shelf;
pub mod stats;
mod store;
mod wasi;
mod wasm;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::Config;
pub use crate::config::SandboxLimits;

pub use self::cache::{CacheOutcome, CompiledCache};
pub use self::compile::{
    COMPILE_WORKER_ENV, Compiler, abandoned_compiles, run_compile_worker_if_requested,
};
pub use self::error::LoadError;
pub(crate) use self::error::{MAX_REASON, clip, clip_display, root_cause};
pub use self::hot::{HotResolver, HotTranslator};
pub use self::live::{LivePlugins, ReloadEvent, ReloadKind, RolledBack, WatchHandle, WatchOptions};
pub use self::load::PluginHost;
pub use self::sandbox::FIXED_WALL_CLOCK_SECS;
pub use self::set::{FileRead, PluginSet, Rejected};
pub use self::wasm::{WasmResolver, WasmTranslator};

/// Per-plugin settings from the config's `[plugins.<name>]` tables, by plugin name.
pub type PluginSettings = BTreeMap<String, BTreeMap<String, String>>;

/// Which interface a plugin implements, told by its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Resolver,
    Translator,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Resolver => "resolver",
            World::Translator => "translator",
        })
    }
}

/// What a plugin says about itself, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub world: World,
    /// Resolvers: the profiles it may return.
    pub profiles: Vec<String>,
    /// Translators: the locales it has texts for.
    pub locales: Vec<String>,
    /// The interface version it was built against (`0.2`, `0.1`).
    pub interface: &'static str,
    /// The file name it was loaded from.
    pub file: String,
    /// Hex sha256 of the component's bytes: its identity.
    pub sha256: String,
    /// Whether its native code came from the compiled cache.
    pub compiled: CacheOutcome,
}

/// The limits one plugin's calls run within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    pub memory_bytes: usize,
    pub timeout: std::time::Duration,
}

/// A loaded plugin of either world.
#[derive(Clone)]
pub enum Plugin {
    Resolver(Arc<WasmResolver>),
    Translator(Arc<WasmTranslator>),
}

impl Plugin {
    pub fn info(&self) -> &PluginInfo {
        match self {
            Plugin::Resolver(r) => &r.info,
            Plugin::Translator(t) => &t.info,
        }
    }

    /// What one call may use: `[sandbox]`'s defaults or the plugin's own `[plugins.<name>]`.
    pub fn limits(&self) -> PluginLimits {
        let limits = match self {
            Plugin::Resolver(r) => r.calls.limits(),
            Plugin::Translator(t) => t.calls.limits(),
        };
        PluginLimits {
            memory_bytes: limits.memory_bytes,
            timeout: limits.timeout,
        }
    }

    /// This version's calls: outcomes and latency (see [`stats`]).
    pub fn call_summary(&self) -> stats::CallSummary {
        match self {
            Plugin::Resolver(r) => r.call_summary(),
            Plugin::Translator(t) => t.call_summary(),
        }
    }

    /// Linear memory an idle instance of the plugin holds, all its memories together (`None`
    /// while every instance is busy).
    pub fn instance_memory(&self) -> Option<usize> {
        match self {
            Plugin::Resolver(r) => r.calls.instance_memory(),
            Plugin::Translator(t) => t.calls.instance_memory(),
        }
    }

    /// A resolver must only be able to return profiles the config defines.
    pub fn check_profiles(&self, config: &Config) -> Result<(), LoadError> {
        let Plugin::Resolver(r) = self else {
            return Ok(());
        };
        let missing: Vec<String> = r
            .info
            .profiles
            .iter()
            .filter(|p| !config.profiles.contains_key(*p))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(LoadError::UnknownProfiles(missing))
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Plugin").field(self.info()).finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
