//! Releases: a change of rules made once for a whole fleet. A release is the config text and
//! every plugin's bytes (stored once by sha256) under a number that only grows, written to the
//! shared store in one step (`release publish`). Workers that follow releases
//! (`serve --follow-releases`) fetch what they lack, verify it and switch to it only when the
//! whole release loaded, so there is no order between a plugin and the config that names it,
//! and every worker serves the same rules within seconds of each other.
//!
//! The same [`check`] runs before a release is written and when a worker loads it: the checks
//! `serve` makes of a folder (file size, compile budget, imports, `info`, declared profiles,
//! one file per plugin name, everything the config names present), plus each file's sha256
//! against the manifest and, when the fleet has a key, the signature.

pub mod keys;
#[cfg(feature = "redis")]
mod store;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, Format};
use crate::engine::Engine;
use crate::plugin::{PluginHost, PluginSet};

pub use self::keys::{PublicKey, SecretKey};
#[cfg(feature = "redis")]
pub use self::store::ReleaseStore;

/// One plugin file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePlugin {
    /// Its file name (the key a folder would give it).
    pub file: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A release as the store keeps it (the plugins' bytes apart, by sha256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Assigned by the store when published; 0 before.
    #[serde(default)]
    pub number: u64,
    /// The config file's name (its extension gives the format) and text.
    pub config_file: String,
    pub config: String,
    pub plugins: Vec<ReleasePlugin>,
    /// Milliseconds since 1970 when it was published.
    pub published_at_ms: u64,
    /// Who published it (`user@host`).
    pub by: String,
    /// The ed25519 signature of [`Release::manifest`], hex, when the publisher signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Set on a rollback: the release whose content this one repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
}

impl Release {
    /// What a signature covers: everything that decides what the workers serve (the config's
    /// bytes and each plugin file's name and sha256), not the number, time or publisher, so
    /// a rollback keeps the signature of the release it repeats.
    pub fn manifest(&self) -> Vec<u8> {
        let mut out = format!(
            "cmdscope-release/1\nconfig {} {}\n",
            self.config_file,
            crate::release::keys::hex(&Sha256::digest(self.config.as_bytes()))
        );
        let mut plugins: Vec<&ReleasePlugin> = self.plugins.iter().collect();
        plugins.sort_by(|a, b| a.file.cmp(&b.file));
        for p in plugins {
            out.push_str(&format!("plugin {} {}\n", p.file, p.sha256));
        }
        out.into_bytes()
    }

    /// Refuses a release `key` did not sign (when the fleet has a key).
    pub fn verify(&self, key: Option<&PublicKey>) -> Result<(), String> {
        let Some(key) = key else { return Ok(()) };
        match &self.signature {
            None => Err(format!(
                "release {} is not signed, and this worker only serves releases signed for key {} (publish with --sign-key)",
                self.number,
                key.id()
            )),
            Some(signature) if key.verifies(&self.manifest(), signature) => Ok(()),
            Some(_) => Err(format!(
                "release {}'s signature is not from key {} (signed with another key, or its content was changed)",
                self.number,
                key.id()
            )),
        }
    }
}

/// A release's content, loaded and checked: what a worker swaps in.
pub struct Loaded {
    pub config: Config,
    pub plugins: PluginSet,
    pub engine: Engine,
}

/// Loads a release's config and plugin files exactly as `serve` loads a config and a folder,
/// with the sandbox the config sets; every reason it cannot serve, listed. `files` are the
/// plugin files (name, bytes); each must have the sha256 the release lists.
pub fn check(
    release: &Release,
    files: &[(String, Vec<u8>)],
    compiled_cache: Option<&std::path::Path>,
    compiler: &crate::plugin::Compiler,
) -> Result<Loaded, Vec<String>> {
    let source = if release.number > 0 {
        format!("release {} ({})", release.number, release.config_file)
    } else {
        release.config_file.clone()
    };
    let format = Format::from_path(std::path::Path::new(&release.config_file));
    let mut config = Config::parse(&release.config, format, &source)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?
        .config;
    config.base_dir = std::env::current_dir().unwrap_or_default();
    let mut errors = Vec::new();
    let mut host = PluginHost::new(config.sandbox.clone())
        .map_err(|e| vec![format!("cannot start the sandbox: {e}")])?
        .with_compiler(compiler.clone());
    if let Some(dir) = compiled_cache {
        match crate::plugin::CompiledCache::open(dir) {
            Ok(cache) => host = host.with_compiled_cache(cache),
            Err(e) => tracing::warn!(dir = %dir.display(), "compiled cache unusable ({e})"),
        }
    }
    let mut loads = Vec::new();
    for listed in &release.plugins {
        let Some((_, bytes)) = files.iter().find(|(file, _)| *file == listed.file) else {
            errors.push(format!(
                "{}: the file is missing from the release",
                listed.file
            ));
            continue;
        };
        let sha256 = crate::release::keys::hex(&Sha256::digest(bytes));
        if sha256 != listed.sha256 {
            errors.push(format!(
                "{}: its bytes have sha256 {sha256}, the release lists {} (a corrupt or changed blob)",
                listed.file, listed.sha256
            ));
            continue;
        }
        let loaded = host.load_untrusted(bytes, &listed.file, &config.plugin_settings);
        // A draft (being published) lists no name yet: loading tells it.
        if let Ok(plugin) = &loaded
            && !listed.name.is_empty()
            && (plugin.info().name != listed.name || plugin.info().version != listed.version)
        {
            errors.push(format!(
                "{}: it says it is {} {}, the release lists {} {}",
                listed.file,
                plugin.info().name,
                plugin.info().version,
                listed.name,
                listed.version
            ));
            continue;
        }
        loads.push((listed.file.clone(), loaded));
    }
    let plugins = PluginSet::admit_all(loads, &config);
    for rejected in &plugins.rejected {
        errors.push(format!("{}: {}", rejected.file, rejected.error));
    }
    let lookup = &plugins as &dyn crate::sources::PluginLookup;
    match crate::sources::engine(config.clone(), Some(lookup), None) {
        Ok((engine, _)) if errors.is_empty() => Ok(Loaded {
            config,
            plugins,
            engine,
        }),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more.lines().map(str::to_string));
            Err(errors)
        }
    }
}

impl Release {
    /// A release to publish: `config_file`'s text and plugin files (name, bytes), listed by
    /// sha256; [`check`] it, then [`Release::named_from`] fills in each plugin's name and
    /// version.
    pub fn draft(config_file: &str, config: String, files: &[(String, Vec<u8>)]) -> Release {
        Release {
            number: 0,
            config_file: config_file.to_string(),
            config,
            plugins: files
                .iter()
                .map(|(file, bytes)| ReleasePlugin {
                    file: file.clone(),
                    name: String::new(),
                    version: String::new(),
                    sha256: crate::release::keys::hex(&Sha256::digest(bytes)),
                })
                .collect(),
            published_at_ms: now(),
            by: publisher(),
            signature: None,
            rollback_of: None,
        }
    }

    /// Each plugin's name and version, as it said when loaded.
    pub fn named_from(mut self, loaded: &PluginSet) -> Release {
        for listed in &mut self.plugins {
            if let Some(plugin) = loaded.loaded.iter().find(|p| p.info().file == listed.file) {
                listed.name = plugin.info().name.clone();
                listed.version = plugin.info().version.clone();
            }
        }
        self
    }
}

/// Milliseconds since 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `user@host` of whoever runs this process.
fn publisher() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", crate::state::hostname())
}
