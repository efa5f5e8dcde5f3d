//! The config file and the catalog folders it names, watched like the plugin folder: a
//! debounced watcher on their folders (any event there, since editors and Kubernetes replace
//! files by renames), and a look every two seconds as a safety net. What counts is content: a
//! change of the file's bytes or of a catalog file's stamp. A changed config is parsed and
//! validated in full and checked against the plugins serving; if anything is wrong it is a
//! `config_rejected` event with every error, and the last good config keeps serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify_debouncer_full::notify::RecursiveMode;

use super::{HostEvent, Inner, Trigger};
use crate::catalog::TranslatorSource;
use crate::config::Config;
use crate::plugin::Plugin;

/// The safety-net period.
const POLL: Duration = Duration::from_secs(2);

/// What a config's engine was built from, as a hash of the config's bytes and of the stamps
/// of every file in its catalog folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inputs {
    hash: u64,
    /// The folders to watch besides the config's own.
    catalog_dirs: BTreeSet<PathBuf>,
}

/// The inputs of `config`, read from `path`, as they are on disk now.
pub(super) fn inputs(path: &Path, config: &Config) -> Inputs {
    inputs_of(&std::fs::read(path).unwrap_or_default(), config)
}

fn inputs_of(bytes: &[u8], config: &Config) -> Inputs {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(bytes);
    let catalog_dirs: BTreeSet<PathBuf> = config
        .translators
        .iter()
        .filter_map(|t| match TranslatorSource::parse(t, &config.base_dir) {
            Ok(TranslatorSource::Catalog { dir, .. }) => Some(dir),
            _ => None,
        })
        .collect();
    for dir in &catalog_dirs {
        h.update(dir.as_os_str().as_encoded_bytes());
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        files.sort_by_key(|e| e.file_name());
        for file in files {
            h.update(file.file_name().as_encoded_bytes());
            if let Ok(meta) = std::fs::metadata(file.path()) {
                h.update(&meta.len().to_le_bytes());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                h.update(&modified.as_nanos().to_le_bytes());
                #[cfg(unix)]
                h.update(&std::os::unix::fs::MetadataExt::ino(&meta).to_le_bytes());
            }
        }
    }
    Inputs {
        hash: h.digest(),
        catalog_dirs,
    }
}

/// The watcher's thread; dropping it stops the thread.
pub(super) struct ConfigWatch {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
    }
}

pub(super) fn start(inner: &Arc<Inner>) -> anyhow::Result<ConfigWatch> {
    let (wake, woken) = mpsc::channel::<()>();
    let notify = wake.clone();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(100),
        None,
        move |_: notify_debouncer_full::DebounceEventResult| {
            let _ = notify.send(());
        },
    )?;
    let config_dir = inner
        .config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    debouncer.watch(&config_dir, RecursiveMode::NonRecursive)?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let stop = Arc::new(AtomicBool::new(false));
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("cmdscope-config".into())
        .spawn(move || {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                // Catalog folders follow the config serving now.
                let wanted = inner
                    .config_bytes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .catalog_dirs
                    .clone();
                for dir in wanted.difference(&watched.clone()) {
                    if debouncer.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                        watched.insert(dir.clone());
                    }
                }
                for dir in watched.clone().difference(&wanted) {
                    let _ = debouncer.unwatch(dir);
                    watched.remove(dir);
                }
                drop(inner);
                match woken.recv_timeout(POLL) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                // Drain a burst of events into one look.
                while woken.try_recv().is_ok() {}
                let Some(inner) = weak.upgrade() else { return };
                reload(&inner, false);
            }
        })?;
    Ok(ConfigWatch { stop, wake })
}

/// Reads the config and its catalogs; when they changed (or `force`), validates them and
/// swaps in a new engine. Answers whether a new config is serving.
pub(super) fn reload(inner: &Inner, force: bool) -> bool {
    // The watcher and `Host::reload_config` take turns.
    let _one_at_a_time = inner.reloading.lock().unwrap_or_else(|p| p.into_inner());
    let path = &inner.config_path;
    let file = path.display().to_string();
    let Ok(bytes) = std::fs::read(path) else {
        // Gone for a moment (an editor's save, a ConfigMap swap): the next look sees it.
        return false;
    };
    let serving = inner.engine.load().config().clone();
    let seen = inner
        .config_bytes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let candidate = match Config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Some(loaded.config)
        }
        Err(_) => None,
    };
    let now = inputs_of(&bytes, candidate.as_ref().unwrap_or(&serving));
    if !force && now == seen {
        return false;
    }
    *inner.config_bytes.lock().unwrap_or_else(|p| p.into_inner()) = now;
    match check_and_build(inner, path) {
        Ok((config, engine)) => {
            let restart_needed = restart_needed(&serving, &config);
            for what in &restart_needed {
                tracing::warn!(config = %file, "{what} changed: it takes effect after a restart");
            }
            let engine = Arc::new(engine);
            let generation = engine.generation();
            inner.engine.store(engine.clone());
            if let Some(manager) = inner.manager() {
                manager.set_engine(engine);
            }
            tracing::info!(config = %file, "config reloaded");
            inner.emit(HostEvent::ConfigReloaded {
                file: file.clone(),
                generation,
                restart_needed,
            });
            let _ = inner.kick.send(Trigger::Config { file });
            true
        }
        Err(errors) => {
            for e in &errors {
                tracing::warn!(config = %file, "config rejected, the last good one keeps serving: {e}");
            }
            inner.emit(HostEvent::ConfigRejected { file, errors });
            false
        }
    }
}

/// Everything a new config must pass before it serves, every error listed: the file itself,
/// the serving resolver's profiles, the plugins and catalogs it names. Then the plugins
/// follow it (parked files, changed settings) and its engine is built.
fn check_and_build(
    inner: &Inner,
    path: &Path,
) -> Result<(Config, crate::engine::Engine), Vec<String>> {
    let config = Config::load(path)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?
        .config;
    let lookup = inner
        .live
        .as_deref()
        .map(|l| l as &dyn crate::sources::PluginLookup);
    let mut errors = Vec::new();
    if let (Some(live), Some(name)) = (&inner.live, &config.resolver)
        && let Some((_, plugin @ Plugin::Resolver(_))) =
            live.current().into_iter().find(|(n, _)| n == name)
        && let Err(e) = plugin.check_profiles(&config)
    {
        errors.push(format!(
            "{}: resolver `{name}` (serving, from {}) {e}",
            config.source,
            plugin.info().file
        ));
    }
    if let Err(e) = crate::sources::assemble(&config, lookup) {
        errors.extend(e.lines().map(str::to_string));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(live) = &inner.live {
        live.set_config(Arc::new(config.clone()));
    }
    let (engine, _) = crate::sources::engine(config.clone(), lookup, inner.resolver.clone())
        .map_err(|e| e.lines().map(str::to_string).collect::<Vec<_>>())?;
    Ok((config, engine))
}

/// Sections a running host cannot change in place.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.sandbox != new.sandbox {
        out.push("[sandbox]".to_string());
    }
    if old.state != new.state {
        out.push("[state]".to_string());
    }
    if old.known_users != new.known_users {
        out.push("[known_users]".to_string());
    }
    out
}
