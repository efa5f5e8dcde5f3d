//! The load pipeline: bytes to a checked, linked plugin. Compile (within the budget, or from
//! the compiled cache), check the interface versions and imports, detect the world, link once
//! (`InstancePre`), ask `info` within the most any configured plugin may have, check what it
//! says, then again within its own limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::breaker::Breaker;
use super::calls::{Pool, RawInfo};
use super::instances::CallFailure;
use super::sandbox::{self, CallLimits, Sandbox};
use super::{
    CacheOutcome, CompiledCache, Compiler, FileRead, LoadError, MAX_REASON, Plugin, PluginInfo,
    PluginSettings, SandboxLimits, WasmResolver, WasmTranslator, World, bindings, clip,
    clip_display, files, hex,
};

/// The engine and linker shared by every plugin. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    sandbox: Arc<Sandbox>,
    cache: Option<CompiledCache>,
    compiler: Compiler,
}

impl PluginHost {
    pub fn new(limits: SandboxLimits) -> anyhow::Result<PluginHost> {
        Ok(PluginHost {
            sandbox: Arc::new(Sandbox::new(limits, bindings::add_hosts)?),
            cache: None,
            compiler: Compiler::default(),
        })
    }

    /// Keeps compiled plugins in `cache`, so a restart does not compile them again.
    pub fn with_compiled_cache(mut self, cache: CompiledCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Where compiled plugins are kept, if anywhere.
    pub fn compiled_cache(&self) -> Option<&CompiledCache> {
        self.cache.as_ref()
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
        sandbox::check_imports(engine, &component, &bindings::plugin_imports())?;
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let Some((world, version)) = bindings::detect(&exports) else {
            return Err(LoadError::NotAPlugin(exports));
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
                interface: version.version(),
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
        // `info` within the first limits, checked; the plugin's own limits set, and `info`
        // asked again within them: the same for both worlds.
        let introduce = |pool: &dyn Pool, ask: &dyn Fn() -> Result<RawInfo, CallFailure>| {
            let info = info_of(ask().map_err(failed_info)?);
            check_info(&info)?;
            pool.configure(&info.name, settings)
                .map_err(|f| limits_error(&info, f))?;
            if pool.limits() != first {
                same_info_within_own_limits(&info, ask())?;
            }
            Ok::<_, LoadError>(info)
        };
        match world {
            World::Resolver => {
                let calls = version.resolver(self.sandbox.clone(), pre, file, first)?;
                let info = introduce(calls.as_ref(), &|| calls.info())?;
                Ok(Plugin::Resolver(Arc::new(WasmResolver {
                    identity: identity(&info, settings),
                    calls_series: crate::metrics::plugin_calls(&info.name, &info.version),
                    stats: Default::default(),
                    breaker,
                    calls,
                    info,
                })))
            }
            World::Translator => {
                let calls = version.translator(self.sandbox.clone(), pre, file, first)?;
                let info = introduce(calls.as_ref(), &|| calls.info())?;
                Ok(Plugin::Translator(Arc::new(WasmTranslator {
                    identity: identity(&info, settings),
                    calls_series: crate::metrics::plugin_calls(&info.name, &info.version),
                    stats: Default::default(),
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

/// A plugin that does not fit its own limits, told so with the setting to raise.
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

/// A plugin's answers depend on its bytes and its settings (and nothing else: the sandbox
/// grants no other input): their hash is its identity for the output caches.
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
