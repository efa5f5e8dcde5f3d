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
mod files;
mod instances;
mod live;
mod log;
mod sandbox;
mod store;
mod wasi;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use self::bindings::{RESOLVER_EXPORTS, TRANSLATOR_EXPORTS};
use self::breaker::Breaker;
use self::calls::{RawInfo, ResolverCalls, TranslatorCalls, Version};
use self::instances::CallFailure;
use self::sandbox::{CallLimits, Sandbox};
use crate::config::Config;
pub use crate::config::SandboxLimits;
use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

pub use self::cache::{CacheOutcome, CompiledCache};
pub use self::compile::{
    COMPILE_WORKER_ENV, Compiler, abandoned_compiles, run_compile_worker_if_requested,
};
pub use self::live::{
    HotResolver, HotTranslator, LivePlugins, ReloadEvent, ReloadKind, WatchHandle, WatchOptions,
};
pub use self::sandbox::FIXED_WALL_CLOCK_SECS;

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

/// Why a file was not loaded as a plugin. Every message is bounded (a hostile plugin may
/// declare a 10 MB name or 200,000 profiles): lists name a few items and count the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("is {0}, not a regular file: only regular files (or symlinks to them) are loaded")]
    NotAFile(String),
    #[error(
        "is {len} bytes, over the {max}-byte limit (raise `[sandbox] max_file_mib` if it is really a plugin)"
    )]
    TooLarge { len: u64, max: u64 },
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("took longer than {} s to compile and was rejected (raise `[sandbox] compile_timeout_s` if it is a large but honest plugin)", .0.as_secs_f64())]
    CompileBudget(std::time::Duration),
    #[error("used more than {} s of CPU time to compile and was rejected (raise `[sandbox] compile_timeout_s` if it is a large but honest plugin)", .0.as_secs_f64())]
    CompileCpuBudget(std::time::Duration),
    #[error(
        "targets the plugin interface version {found} (`{interface}`), and this host speaks {speaks}: build the plugin against `wit/` of this cmdscope, or upgrade cmdscope"
    )]
    InterfaceVersion {
        interface: String,
        found: String,
        speaks: String,
    },
    #[error("imports {} which the sandbox never grants (plugins get no HTTP or other host access): remove what needs it (a JavaScript `fetch`, a Rust HTTP client), or build with the toolchain's option that drops unused WASI imports", some_of(.0))]
    ForbiddenImport(Vec<String>),
    #[error("exports neither a resolver (`{}`) nor a translator (`{}`); it exports: {}. Build it for the `resolver-plugin` or `translator-plugin` world of cmdscope's wit/plugin.wit (`cmdscope new-plugin` writes a project that does)", RESOLVER_EXPORTS[0], TRANSLATOR_EXPORTS[0], if .0.is_empty() { "nothing".to_string() } else { some_of(.0) })]
    NotAPlugin(Vec<String>),
    #[error("cannot be linked: {0}")]
    Link(String),
    #[error("its `info` call failed: {0}")]
    Info(String),
    /// `info` ran out of memory or time before the plugin said its name, so its own limits
    /// could not be looked up.
    #[error(
        "its `info` call {0} before the plugin said its name (a plugin that needs more: `[plugins.<its name>] memory_mib = ...` or `timeout_ms = ...`, up to `[sandbox] max_memory_mib` / `max_timeout_ms`)"
    )]
    InfoOverLimits(String),
    /// The plugin answered `info` but cannot start within its own limits (`[sandbox]`
    /// defaults, or its `[plugins.<name>]` ones).
    #[error(
        "cannot start within its limits: {reason} (give it more: `[plugins.{name}] memory_mib = ...` or `timeout_ms = ...`, up to `[sandbox] max_memory_mib` / `max_timeout_ms`)"
    )]
    Limits { name: String, reason: String },
    #[error("may return profiles the config does not define: {} (define them, or fix the plugin)", some_of(.0))]
    UnknownProfiles(Vec<String>),
    #[error("a plugin named `{0}` is already loaded from {1}")]
    DuplicateName(String, String),
    #[error("`{0}` is already loaded as a {1}; a name keeps its world for the host's lifetime")]
    OtherWorld(String, World),
}

impl LoadError {
    /// Whether the reason lies outside the file (another file, the config): such a file is
    /// looked at again when that changes.
    pub fn is_external(&self) -> bool {
        matches!(
            self,
            LoadError::UnknownProfiles(_) | LoadError::DuplicateName(..)
        )
    }

    /// Whether the file was refused for the memory or time its limits give it, which the
    /// config's `[plugins.<name>]` settings may raise: looked at again when they change.
    pub fn is_over_limits(&self) -> bool {
        matches!(
            self,
            LoadError::Limits { .. } | LoadError::InfoOverLimits(_)
        )
    }
}

/// At most five items, each clipped, then how many more: `a`, `b` and 199998 more.
fn some_of(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|i| format!("`{}`", clip_display(i, 100)))
        .collect();
    let mut text = shown.join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// `text` escaped for one line and cut at `max` characters (with an ellipsis).
pub(crate) fn clip_display(text: &str, max: usize) -> String {
    let mut out: String = text.escape_debug().take(max).collect();
    if text.escape_debug().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// The engine and linker shared by every plugin. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    sandbox: Arc<Sandbox>,
    cache: Option<CompiledCache>,
    compiler: Compiler,
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

impl PluginHost {
    pub fn new(limits: SandboxLimits) -> anyhow::Result<PluginHost> {
        Ok(PluginHost {
            sandbox: Arc::new(Sandbox::new(limits)?),
            cache: None,
            compiler: Compiler::default(),
        })
    }

    /// Keeps compiled plugins in `cache`, so a restart does not compile them again.
    pub fn with_compiled_cache(mut self, cache: CompiledCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Compiles plugins with `compiler` (default: in process; see [`Compiler`]).
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.sandbox.limits
    }

    /// The plugin files of `dir` (`*.wasm`, not hidden), by file name in order, each read as
    /// the folder's watcher reads it (a regular file within `[sandbox] max_file_mib`).
    pub fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<(String, FileRead)>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| files::plugin_key(p).is_some())
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|path| {
                let read = files::read(&path, self.sandbox.limits.max_file_bytes).map(|(b, _)| b);
                (files::display_name(&path), read)
            })
            .collect())
    }

    /// Loads plugin bytes that came from elsewhere (a release in the shared store) after the
    /// checks a file gets: `[sandbox] max_file_mib`, then as [`PluginHost::load_bytes`].
    pub fn load_untrusted(
        &self,
        bytes: &[u8],
        file: &str,
        settings: &PluginSettings,
    ) -> Result<Plugin, LoadError> {
        let max = self.sandbox.limits.max_file_bytes;
        if bytes.len() as u64 > max {
            return Err(LoadError::TooLarge {
                len: bytes.len() as u64,
                max,
            });
        }
        self.load_bytes(bytes, file, settings)
    }

    /// Loads one `.wasm` file (a regular file within `[sandbox] max_file_mib`).
    pub fn load_file(&self, path: &Path, settings: &PluginSettings) -> Result<Plugin, LoadError> {
        let (bytes, _) = files::read(path, self.sandbox.limits.max_file_bytes)?;
        self.load_bytes(&bytes, &files::display_name(path), settings)
    }

    /// Compiles (within the compile budget, or from the compiled cache), checks imports,
    /// detects the world, links once (`InstancePre`), and asks the plugin for its info in a
    /// first instance, which then serves calls.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        file: &str,
        settings: &PluginSettings,
    ) -> Result<Plugin, LoadError> {
        let sha256 = hex(&Sha256::digest(bytes));
        let engine = &self.sandbox.engine;
        let (component, compiled) = self.compile(bytes, &sha256)?;
        bindings::check_interface_versions(engine, &component)?;
        sandbox::check_imports(engine, &component)?;
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let exported = |names: &[&str; 2]| {
            names
                .iter()
                .zip([Version::V0_2, Version::V0_1])
                .find(|(name, _)| exports.iter().any(|e| e == *name))
                .map(|(_, v)| v)
        };
        let (world, version) = match (exported(&RESOLVER_EXPORTS), exported(&TRANSLATOR_EXPORTS)) {
            (Some(v), _) => (World::Resolver, v),
            (None, Some(v)) => (World::Translator, v),
            (None, None) => return Err(LoadError::NotAPlugin(exports)),
        };
        let pre = self.sandbox.instantiate_pre(&component)?;
        let info_of = |raw: RawInfo| {
            let (profiles, locales) = match world {
                World::Resolver => (raw.items, Vec::new()),
                World::Translator => (Vec::new(), raw.items),
            };
            PluginInfo {
                name: raw.name,
                version: raw.version,
                world,
                profiles,
                locales,
                interface: version.as_str(),
                file: file.to_string(),
                sha256: sha256.clone(),
                compiled,
            }
        };
        let first = CallLimits::before_info(&self.sandbox.limits, settings);
        let failed_info = |f: CallFailure| match f {
            CallFailure::MemoryLimit(_) | CallFailure::Timeout(_) => {
                LoadError::InfoOverLimits(f.to_string())
            }
            f => LoadError::Info(clip(&f.to_string(), MAX_REASON)),
        };
        let breaker = Breaker::new(
            self.sandbox.limits.failure_threshold,
            self.sandbox.limits.cooldown,
        );
        match world {
            World::Resolver => {
                let calls = ResolverCalls::new(self.sandbox.clone(), pre, file, version, first)?;
                let info = info_of(calls.info().map_err(failed_info)?);
                check_info(&info)?;
                calls
                    .configure(&info.name, settings)
                    .map_err(|f| limits_error(&info, f))?;
                if calls.limits() != first {
                    same_info_within_own_limits(&info, calls.info())?;
                }
                Ok(Plugin::Resolver(Arc::new(WasmResolver {
                    identity: identity(&info, settings),
                    calls_series: crate::metrics::plugin_calls(&info.name),
                    breaker,
                    calls,
                    info,
                })))
            }
            World::Translator => {
                let calls = TranslatorCalls::new(self.sandbox.clone(), pre, file, version, first)?;
                let info = info_of(calls.info().map_err(failed_info)?);
                check_info(&info)?;
                calls
                    .configure(&info.name, settings)
                    .map_err(|f| limits_error(&info, f))?;
                if calls.limits() != first {
                    same_info_within_own_limits(&info, calls.info())?;
                }
                Ok(Plugin::Translator(Arc::new(WasmTranslator {
                    identity: identity(&info, settings),
                    calls_series: crate::metrics::plugin_calls(&info.name),
                    breaker,
                    calls,
                    info,
                })))
            }
        }
    }

    /// Native code for `bytes`: from the compiled cache, else compiled within the budget (and
    /// stored in the cache).
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, CacheOutcome), LoadError> {
        let engine = &self.sandbox.engine;
        if let Some(component) = self.cache.as_ref().and_then(|c| c.get(engine, sha256)) {
            return Ok((component, CacheOutcome::Hit));
        }
        let (component, code) =
            self.compiler
                .compile(engine, bytes, self.sandbox.limits.compile_timeout)?;
        Ok(match &self.cache {
            Some(cache) => {
                cache.put(engine, sha256, &component, code);
                (component, CacheOutcome::Miss)
            }
            None => (component, CacheOutcome::Off),
        })
    }

    /// Loads every plugin file in `dir` (`*.wasm`, not hidden), in file-name order; each file
    /// succeeds or fails alone.
    pub fn load_dir(
        &self,
        dir: &Path,
        settings: &PluginSettings,
    ) -> std::io::Result<Vec<(PathBuf, Result<Plugin, LoadError>)>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| files::plugin_key(p).is_some())
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|path| {
                let result = self.load_file(&path, settings);
                (path, result)
            })
            .collect())
    }
}

/// A plugin file's bytes, or why they could not be read.
pub type FileRead = Result<Vec<u8>, LoadError>;

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub file: String,
    pub error: LoadError,
}

/// Every plugin of a folder, checked against a config: a resolver that may return a profile
/// the config lacks is rejected, as is a second plugin of the same name.
#[derive(Clone, Default)]
pub struct PluginSet {
    pub loaded: Vec<Plugin>,
    pub rejected: Vec<Rejected>,
}

impl PluginSet {
    pub fn load(host: &PluginHost, dir: &Path, config: &Config) -> std::io::Result<PluginSet> {
        let loads = host
            .load_dir(dir, &config.plugin_settings)?
            .into_iter()
            .map(|(path, result)| {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (file, result)
            });
        Ok(PluginSet::admit_all(loads, config))
    }

    /// The set of plugins loaded elsewhere (a release's files), each admitted against
    /// `config` as a folder's would be, in the order given.
    pub fn admit_all(
        loads: impl IntoIterator<Item = (String, Result<Plugin, LoadError>)>,
        config: &Config,
    ) -> PluginSet {
        let mut set = PluginSet::default();
        for (file, result) in loads {
            match result.and_then(|plugin| set.admit(plugin, config)) {
                Ok(plugin) => {
                    let info = plugin.info();
                    tracing::info!(plugin = %info.name, file, sha256 = %info.sha256, "loaded {} {}", info.world, info.version);
                    set.loaded.push(plugin);
                }
                Err(error) => {
                    tracing::warn!(file, "plugin rejected: {error}");
                    set.rejected.push(Rejected { file, error });
                }
            }
        }
        set
    }

    fn admit(&self, plugin: Plugin, config: &Config) -> Result<Plugin, LoadError> {
        let info = plugin.info();
        if let Some(other) = self.loaded.iter().find(|p| p.info().name == info.name) {
            return Err(LoadError::DuplicateName(
                info.name.clone(),
                other.info().file.clone(),
            ));
        }
        plugin.check_profiles(config)?;
        Ok(plugin)
    }

    pub fn resolver(&self, name: &str) -> Option<Arc<WasmResolver>> {
        self.loaded.iter().find_map(|p| match p {
            Plugin::Resolver(r) if r.info.name == name => Some(r.clone()),
            _ => None,
        })
    }

    pub fn translator(&self, name: &str) -> Option<Arc<WasmTranslator>> {
        self.loaded.iter().find_map(|p| match p {
            Plugin::Translator(t) if t.info.name == name => Some(t.clone()),
            _ => None,
        })
    }

    /// One line saying what loaded and what was rejected, for error messages.
    pub fn summary(&self) -> String {
        let loaded: Vec<String> = self
            .loaded
            .iter()
            .map(|p| format!("{} ({})", p.info().name, p.info().world))
            .collect();
        let mut text = format!(
            "loaded: {}",
            if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            }
        );
        if !self.rejected.is_empty() {
            let rejected: Vec<String> = self
                .rejected
                .iter()
                .map(|r| format!("{}: {}", r.file, r.error))
                .collect();
            text.push_str(&format!("; rejected: {}", rejected.join("; ")));
        }
        text
    }
}

/// Bounds on what a plugin says about itself: it is echoed in reports, events and pages.
const MAX_NAME: usize = 64;
const MAX_VERSION: usize = 64;
const MAX_LIST: usize = 256;
const MAX_LIST_ITEM: usize = 64;

fn check_info(info: &PluginInfo) -> Result<(), LoadError> {
    let name_ok = !info.name.is_empty()
        && info.name.len() <= MAX_NAME
        && info
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(LoadError::Info(format!(
            "plugin name `{}` ({} bytes) must be 1-{MAX_NAME} of a-z, A-Z, 0-9, `-`, `_`",
            clip_display(&info.name, MAX_NAME),
            info.name.len()
        )));
    }
    if info.version.len() > MAX_VERSION || info.version.chars().any(char::is_control) {
        return Err(LoadError::Info(format!(
            "version `{}` ({} bytes) must be at most {MAX_VERSION} printable bytes",
            clip_display(&info.version, MAX_VERSION),
            info.version.len()
        )));
    }
    let (what, list) = match info.world {
        World::Resolver => ("profiles", &info.profiles),
        World::Translator => ("locales", &info.locales),
    };
    if list.len() > MAX_LIST {
        return Err(LoadError::Info(format!(
            "declares {} {what}; at most {MAX_LIST} are allowed",
            list.len()
        )));
    }
    if let Some(long) = list
        .iter()
        .find(|i| i.is_empty() || i.len() > MAX_LIST_ITEM || i.chars().any(char::is_control))
    {
        return Err(LoadError::Info(format!(
            "declares {what} entry `{}` ({} bytes); each must be 1-{MAX_LIST_ITEM} printable bytes",
            clip_display(long, MAX_LIST_ITEM),
            long.len()
        )));
    }
    Ok(())
}

/// A resolver plugin: `Resolver` over a sandboxed component.
pub struct WasmResolver {
    info: PluginInfo,
    /// sha256 of the bytes and of the plugin's settings: what its answers depend on.
    identity: Arc<str>,
    calls: ResolverCalls,
    breaker: Breaker,
    calls_series: crate::metrics::Series<crate::metrics::PluginCalls>,
}

impl WasmResolver {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// True while the plugin is quarantined after repeated crashes.
    pub fn is_quarantined(&self) -> bool {
        self.breaker.is_open()
    }
}

/// Users per `resolve-batch` crossing: the whole batch runs under one call deadline.
const BATCH: usize = 128;

impl WasmResolver {
    fn admit(&self) -> Result<(), ResolveError> {
        self.breaker.admit().map_err(|left| {
            self.calls_series.with(|c| c.record("quarantined"));
            ResolveError::Failed(format!(
                "plugin is quarantined after repeated failures ({} s left)",
                left.as_secs()
            ))
        })
    }

    /// One answer as the engine takes it: an oversized profile is a failure, a refusal's
    /// message is clipped.
    fn answer(
        &self,
        answer: Result<String, String>,
    ) -> Result<Result<String, String>, CallFailure> {
        let max = self.calls.max_output();
        match answer {
            Ok(profile) if profile.len() > max => Err(CallFailure::Oversized(profile.len(), max)),
            Ok(profile) => Ok(Ok(profile)),
            Err(message) => Ok(Err(clip(&message, max))),
        }
    }

    fn record(&self, result: &Result<Result<String, String>, CallFailure>) {
        self.breaker.record(result.is_ok());
        self.count(result);
    }

    fn count(&self, result: &Result<Result<String, String>, CallFailure>) {
        let outcome = match result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "rejected",
            Err(failure) => failure.kind(),
        };
        self.calls_series.with(|c| c.record(outcome));
    }

    fn resolution(
        result: Result<Result<String, String>, CallFailure>,
    ) -> Result<String, ResolveError> {
        match result {
            Ok(Ok(profile)) => Ok(profile),
            Ok(Err(message)) => Err(ResolveError::Rejected(message)),
            Err(failure) => Err(ResolveError::Failed(failure.to_string())),
        }
    }
}

impl Resolver for WasmResolver {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        self.admit()?;
        let _span =
            tracing::trace_span!("plugin_call", plugin = %self.info.name, function = "resolve")
                .entered();
        let result = self.calls.resolve(ctx).and_then(|a| self.answer(a));
        self.record(&result);
        Self::resolution(result)
    }

    /// Pages of [`BATCH`] users, one crossing each (interface 0.2). A page that fails as a
    /// whole (a trap, the deadline) is asked again user by user, so one context that makes
    /// the plugin fail costs only that user their answer.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        let mut out = Vec::with_capacity(ctxs.len());
        for page in ctxs.chunks(BATCH) {
            if let Err(e) = self.admit() {
                out.extend(page.iter().map(|_| Err(e.clone())));
                continue;
            }
            let _span = tracing::trace_span!(
                "plugin_call",
                plugin = %self.info.name,
                function = "resolve-batch",
                users = page.len()
            )
            .entered();
            match self.calls.resolve_batch(page) {
                Ok(answers) => {
                    self.breaker.record(true);
                    for answer in answers {
                        let result = self.answer(answer);
                        self.count(&result);
                        out.push(Self::resolution(result));
                    }
                }
                Err(failure) => {
                    tracing::debug!(plugin = %self.info.name, "a batch failed ({failure}); asking user by user");
                    out.extend(page.iter().map(|ctx| self.resolve(ctx)));
                }
            }
        }
        out
    }

    fn may_block(&self) -> bool {
        true
    }

    /// The sandbox makes a plugin's answer a pure function of its bytes, context and settings.
    fn identity(&self) -> Option<Arc<str>> {
        Some(self.identity.clone())
    }
}

/// A translator plugin: `Translator` over a sandboxed component. A failing call answers "no
/// translation" (the description chain then falls back) and is logged.
pub struct WasmTranslator {
    info: PluginInfo,
    /// sha256 of the bytes and of the plugin's settings: what its answers depend on.
    identity: Arc<str>,
    calls: TranslatorCalls,
    breaker: Breaker,
    calls_series: crate::metrics::Series<crate::metrics::PluginCalls>,
}

impl WasmTranslator {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn guarded<R>(&self, what: &str, call: impl FnOnce() -> Result<R, CallFailure>) -> Option<R> {
        let _span = tracing::trace_span!("plugin_call", plugin = %self.info.name, function = what)
            .entered();
        if self.breaker.admit().is_err() {
            self.calls_series.with(|c| c.record("quarantined"));
            return None;
        }
        let result = call();
        self.breaker.record(result.is_ok());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.kind(),
        };
        self.calls_series.with(|c| c.record(outcome));
        match result {
            Ok(r) => Some(r),
            Err(failure) => {
                tracing::warn!(plugin = %self.info.name, "{what} failed: {failure}");
                None
            }
        }
    }
}

impl Translator for WasmTranslator {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        let max = self.calls.max_output();
        self.guarded("translate", || {
            let text = self.calls.translate(key, language.as_str())?;
            match text {
                Some(t) if t.len() > max => Err(CallFailure::Oversized(t.len(), max)),
                other => Ok(other),
            }
        })
        .flatten()
    }

    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        self.try_translate_batch(keys, language)
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        let max = self.calls.max_output();
        let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.guarded("translate-batch", || {
            let texts = self.calls.translate_batch(&owned, language.as_str())?;
            if texts.len() != keys.len() {
                return Err(CallFailure::Malformed(format!(
                    "{} answers for {} keys",
                    texts.len(),
                    keys.len()
                )));
            }
            if let Some(long) = texts.iter().flatten().find(|t| t.len() > max) {
                return Err(CallFailure::Oversized(long.len(), max));
            }
            Ok(texts)
        })
    }

    fn identity(&self) -> Option<Arc<str>> {
        Some(self.identity.clone())
    }
}

/// `message` cut at `max` bytes (at most 1 KiB below [`MAX_REASON`]), on a char boundary.
pub(crate) fn clip(message: &str, max: usize) -> String {
    let mut end = message.len().min(max.min(MAX_REASON));
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

/// A plugin's answers depend on its bytes and its settings (and nothing else: the sandbox
/// grants no other input).
fn limits_error(info: &PluginInfo, failure: CallFailure) -> LoadError {
    LoadError::Limits {
        name: info.name.clone(),
        reason: clip(&failure.to_string(), MAX_REASON),
    }
}

/// `info` ran under the most any configured plugin may have (its own were not known yet); asked
/// again under its own, it must answer the same, or a plugin could do in `info` what its
/// limits forbid.
fn same_info_within_own_limits(
    info: &PluginInfo,
    again: Result<RawInfo, CallFailure>,
) -> Result<(), LoadError> {
    let again = again.map_err(|f| limits_error(info, f))?;
    let items = match info.world {
        World::Resolver => &info.profiles,
        World::Translator => &info.locales,
    };
    if again.name != info.name || again.version != info.version || &again.items != items {
        return Err(LoadError::Info(
            "`info` answered differently when asked twice; it must be a constant".to_string(),
        ));
    }
    Ok(())
}

fn identity(info: &PluginInfo, settings: &PluginSettings) -> Arc<str> {
    let mut h = Sha256::new();
    h.update(info.sha256.as_bytes());
    for (k, v) in settings.get(&info.name).into_iter().flatten() {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    Arc::from(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A wasmtime error's chain of causes on one line, clipped: a trap's wasm backtrace can run
/// to thousands of frames.
pub(crate) fn root_cause(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    // Some causes print `Debug` over several lines: one line reads better in a log or event.
    let one_line = chain
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    clip(&one_line, MAX_REASON)
}

/// Longest reason kept from a plugin's failure.
pub(crate) const MAX_REASON: usize = 2048;
