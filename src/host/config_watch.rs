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
///
/// A config that names a plugin the folder does not serve yet (a plugin deployed with its
/// config, still compiling) is not final: it waits, is handed to the plugin folder (so a
/// plugin version parked for a profile only this config defines is admitted), and is looked at
/// again whenever the plugin set changes, until it validates or a newer config replaces it.
pub(super) fn reload(inner: &Inner, force: bool) -> bool {
    // The watcher, plugin swaps and `Host::reload_config` take turns.
    let _one_at_a_time = inner.reloading.lock().unwrap_or_else(|p| p.into_inner());
    let mut force = force;
    loop {
        match look(inner, force) {
            Look::Done(serving) => return serving,
            // A plugin it waited for loaded while it was being checked.
            Look::Again => force = true,
        }
    }
}

enum Look {
    /// Whether a new config is serving.
    Done(bool),
    Again,
}

fn look(inner: &Inner, force: bool) -> Look {
    let path = &inner.config_path;
    let file = path.display().to_string();
    let Ok(bytes) = std::fs::read(path) else {
        // Gone for a moment (an editor's save, a ConfigMap swap): the next look sees it.
        return Look::Done(false);
    };
    let serving = inner.engine.load().config().clone();
    let seen = inner
        .config_bytes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    // The safety net looks every few seconds: bytes and catalogs as they were cost a hash,
    // not a parse.
    if !force && inputs_of(&bytes, &serving) == seen {
        return Look::Done(false);
    }
    // Parsed from the bytes just read, so what is hashed is what is built.
    let candidate = parse(path, &bytes);
    let now = inputs_of(&bytes, candidate.as_ref().ok().unwrap_or(&serving));
    if !force && now == seen {
        return Look::Done(false);
    }
    *inner.config_bytes.lock().unwrap_or_else(|p| p.into_inner()) = now;
    let checked = candidate.and_then(|config| match check_and_build(inner, &config) {
        Ok(engine) => Ok((config, engine)),
        Err(errors) => Err(Refusal {
            errors,
            waiting_for: waiting_for_now(inner, &config),
            config: Some(Box::new(config)),
        }),
    });
    match checked {
        Ok((config, engine)) => {
            *inner
                .config_waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            let restart_needed = restart_needed(&serving, &config);
            for what in &restart_needed {
                tracing::warn!(config = %file, "{what} changed: it takes effect after a restart");
            }
            let engine = Arc::new(engine);
            let generation = engine.generation();
            inner.serve_engine(engine);
            tracing::info!(config = %file, "config reloaded");
            inner.emit(HostEvent::ConfigReloaded {
                file: file.clone(),
                generation,
                restart_needed,
            });
            let _ = inner.kick.send(Trigger::Config { file });
            Look::Done(true)
        }
        Err(Refusal {
            errors,
            waiting_for,
            config,
        }) if !waiting_for.is_empty() => {
            // Only plugins missing: the folder follows this config now, so a version parked
            // for one of its profiles is admitted.
            if errors.len() == 1
                && let (Some(live), Some(config)) = (&inner.live, &config)
            {
                live.set_config(Arc::new(Config::clone(config)));
            }
            tracing::warn!(
                config = %file,
                "config waits for {}; the last good one serves meanwhile",
                waiting_for.join(", ")
            );
            *inner
                .config_waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(waiting_for.clone());
            // A plugin that loaded after the check and before the line above found nothing
            // waiting: look again now rather than wait for the next plugin change.
            if let Some(config) = &config
                && waiting_for_now(inner, config).len() < waiting_for.len()
            {
                return Look::Again;
            }
            inner.emit(HostEvent::ConfigWaiting {
                file,
                waiting_for,
                errors,
            });
            Look::Done(false)
        }
        Err(Refusal { errors, .. }) => {
            *inner
                .config_waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            for e in &errors {
                tracing::warn!(config = %file, "config rejected, the last good one keeps serving: {e}");
            }
            inner.emit(HostEvent::ConfigRejected { file, errors });
            Look::Done(false)
        }
    }
}

/// Why a changed config does not serve.
struct Refusal {
    /// Every error, as the `config_rejected` / `config_waiting` event lists them.
    errors: Vec<String>,
    /// Plugins it names that the folder does not serve yet: it waits for them.
    waiting_for: Vec<String>,
    /// The config, when it parsed.
    config: Option<Box<Config>>,
}

/// The config in `bytes`, read from `path`, every error listed.
fn parse(path: &Path, bytes: &[u8]) -> Result<Config, Refusal> {
    let loaded = Config::from_bytes(path, bytes).map_err(|errors| Refusal {
        errors: errors.iter().map(|e| e.to_string()).collect(),
        waiting_for: Vec::new(),
        config: None,
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.config)
}

/// The plugins `config` names that the folder does not serve (yet).
fn waiting_for_now(inner: &Inner, config: &Config) -> Vec<String> {
    let Some(live) = &inner.live else {
        return Vec::new();
    };
    let serving: BTreeSet<String> = live.current().into_iter().map(|(name, _)| name).collect();
    config
        .resolver
        .iter()
        .cloned()
        .chain(config.translators.iter().filter_map(|t| {
            match TranslatorSource::parse(t, &config.base_dir) {
                Ok(TranslatorSource::Plugin(name)) => Some(name),
                _ => None,
            }
        }))
        .filter(|name| !serving.contains(name))
        .collect()
}

/// Everything a new config must pass before it serves, every error listed: the serving
/// resolver's profiles, the plugins and catalogs it names. Then the plugins follow it (parked
/// files, changed settings) and its engine is built.
fn check_and_build(inner: &Inner, config: &Config) -> Result<crate::engine::Engine, Vec<String>> {
    // With a rollout under way, its split resolver stays in place.
    let staged = inner.staged();
    let lookup = staged
        .as_ref()
        .map(|s| s as &dyn crate::sources::PluginLookup);
    let mut errors = Vec::new();
    if let (Some(live), Some(name)) = (&inner.live, &config.resolver)
        && let Some((_, plugin @ Plugin::Resolver(_))) =
            live.current().into_iter().find(|(n, _)| n == name)
        && let Err(e) = plugin.check_profiles(config)
    {
        errors.push(format!(
            "{}: resolver `{name}` (serving, from {}) {e}",
            config.source,
            plugin.info().file
        ));
    }
    if let Err(e) = crate::sources::assemble(config, lookup) {
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
    Ok(engine)
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
    if old.audit != new.audit {
        out.push("[audit]".to_string());
    }
    out
}
