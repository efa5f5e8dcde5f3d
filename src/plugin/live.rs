//! Hot reload: the plugins of a folder, kept current as files change, without a restart.
//!
//! - The folder (not the files: a rename replaces the inode) is watched with a debounced
//!   watcher, and rescanned periodically as a safety net.
//! - A plugin is identified by the sha256 of its bytes: the same bytes never reload.
//! - A new or changed file is compiled, linked, asked for its info and checked against the
//!   config before it is swapped in atomically ([`ArcSwap`]). A call takes a snapshot at its
//!   start, so calls in flight finish on the version they started with.
//! - A file that fails any step is rejected with the reason; the last good version keeps
//!   serving. A half-written file fails to compile and is retried when it changes again. A
//!   file refused for a reason outside it (its plugin name served by another file, a profile
//!   the config lacks) is admitted when that reason goes away.
//! - One file is one key, its file name (see `files.rs`), however the folder was named.
//! - Deleting a file keeps the last good version serving (with a `removed` event): a deploy
//!   that deletes and then writes never leaves a window without the plugin. Replace a plugin
//!   by writing a new file with the same plugin name; stop using one by changing the config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use serde::Serialize;
use tokio::sync::broadcast;

mod reloader;

use self::reloader::{Msg, Reloader};
use super::{HotResolver, HotTranslator, Plugin, PluginHost, WasmResolver, WasmTranslator};
use crate::config::Config;

/// What happened to a plugin file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadKind {
    /// First version of a plugin name.
    Loaded,
    /// A new version replaced the one serving.
    Reloaded,
    /// The file could not be used; the last good version (if any) keeps serving.
    Rejected,
    /// The file disappeared; its last good version keeps serving.
    Removed,
}

/// One reload event, as subscribers and `cmdscope watch` see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadEvent {
    pub event: ReloadKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Increases with every swap in this folder.
    pub generation: u64,
    /// Time spent reading, compiling and checking the file.
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the folder is watched.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last change to a file before it is loaded.
    pub debounce: Duration,
    /// Full rescan period, the safety net for missed events.
    pub rescan: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            rescan: Duration::from_secs(2),
        }
    }
}

/// The current version of one plugin name.
enum Slot {
    Resolver(Arc<ArcSwap<WasmResolver>>),
    Translator(Arc<ArcSwap<WasmTranslator>>),
}

type SwapHook = Box<dyn Fn(&str) + Send + Sync>;

/// What the handles and the reload thread share.
struct Shared {
    host: PluginHost,
    /// The last good versions of each plugin, beside the compiled cache (none without one).
    shelf: Option<super::shelf::Shelf>,
    /// Absolute, decided once: every path the host reads is `dir` joined with a [`FileKey`].
    dir: PathBuf,
    config: ArcSwap<Config>,
    slots: RwLock<HashMap<String, Slot>>,
    generation: AtomicU64,
    events: broadcast::Sender<ReloadEvent>,
    /// Run after every swap, with the plugin name, before the event is sent.
    swap_hooks: RwLock<Vec<SwapHook>>,
}

/// A rollback made: `file` now holds version `to`, which serves once reloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolledBack {
    pub plugin: String,
    pub file: String,
    pub from: String,
    pub from_sha256: String,
    pub to: String,
    pub to_sha256: String,
}

/// Every plugin of one folder, kept current. Cheap handles ([`HotResolver`], [`HotTranslator`])
/// always call the current version.
///
/// One thread (`cmdscope-reload`) applies every load, swap and removal, in the order they are
/// decided; each file compiles on a thread of its own (bounded by `[sandbox]
/// compile_timeout_s`), so a slow file never delays another's reload.
pub struct LivePlugins {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
}

impl LivePlugins {
    /// A host for the folder `dir` (relative to the current directory, taken now), holding
    /// nothing yet: subscribe, then [`rescan`](Self::rescan) to load what is there (each file
    /// a `loaded` or `rejected` event), then [`watch`](Self::watch).
    pub fn new(
        host: PluginHost,
        dir: &Path,
        config: Arc<Config>,
    ) -> std::io::Result<Arc<LivePlugins>> {
        std::fs::read_dir(dir)?;
        let (events, _) = broadcast::channel(1024);
        let dir = std::path::absolute(dir)?;
        let shelf = host.compiled_cache().and_then(|cache| {
            super::shelf::Shelf::open(cache.dir(), &dir)
                .inspect_err(|e| {
                    tracing::warn!("cannot keep plugin versions for rollback: {e}");
                })
                .ok()
        });
        let shared = Arc::new(Shared {
            host,
            shelf,
            dir,
            config: ArcSwap::new(config),
            slots: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            events,
            swap_hooks: RwLock::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        Reloader::spawn(shared.clone(), tx.clone(), rx)?;
        Ok(Arc::new(LivePlugins { shared, tx }))
    }

    /// Runs `hook(plugin name)` after every swap, before the event goes out: output caches
    /// drop the replaced version's entries here, so a reload is seen at once. Hooks run on
    /// the reload thread: they must not wait for a reload.
    pub fn on_swap(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.shared
            .swap_hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    /// Events from now on. A slow subscriber misses the oldest events, never blocks reloads.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.shared.events.subscribe()
    }

    /// The folder, absolute.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// The plugin host this folder loads with: a candidate version (an impact report's) is
    /// loaded by it, under the same limits and compile budget as a file of the folder.
    pub fn plugin_host(&self) -> &PluginHost {
        &self.shared.host
    }

    /// The config plugins are checked against now.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config.load_full()
    }

    /// The plugins serving now, by name.
    pub fn current(&self) -> Vec<(String, Plugin)> {
        let slots = self.shared.read_slots();
        let mut out: Vec<(String, Plugin)> = slots
            .iter()
            .map(|(name, slot)| {
                let plugin = match slot {
                    Slot::Resolver(s) => Plugin::Resolver(s.load_full()),
                    Slot::Translator(s) => Plugin::Translator(s.load_full()),
                };
                (name.clone(), plugin)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A resolver handle that always calls the current version of plugin `name`.
    pub fn resolver(&self, name: &str) -> Option<HotResolver> {
        match self.shared.read_slots().get(name) {
            Some(Slot::Resolver(slot)) => Some(HotResolver {
                name: name.to_string(),
                slot: slot.clone(),
            }),
            _ => None,
        }
    }

    /// A translator handle that always calls the current version of plugin `name`.
    pub fn translator(&self, name: &str) -> Option<HotTranslator> {
        match self.shared.read_slots().get(name) {
            Some(Slot::Translator(slot)) => Some(HotTranslator { slot: slot.clone() }),
            _ => None,
        }
    }

    /// The versions kept for `name`, oldest first (the last serves, unless a newer file is
    /// loading); empty without a compiled cache.
    pub fn versions(&self, name: &str) -> Vec<super::shelf::Shelved> {
        self.shared
            .shelf
            .as_ref()
            .map(|shelf| shelf.history(name))
            .unwrap_or_default()
    }

    /// Puts the version of `name` that served before the current one back: its kept bytes
    /// are written by rename over the file serving the name, and the folder reloads them
    /// like any deploy (every check of a file, then the swap and the reconciliation). The
    /// folder then holds what serves.
    pub fn rollback(&self, name: &str) -> Result<RolledBack, String> {
        let Some(shelf) = &self.shared.shelf else {
            return Err("no versions are kept: the host keeps them beside its compiled cache, and runs without one".into());
        };
        let Some((_, serving)) = self.current().into_iter().find(|(n, _)| n == name) else {
            return Err(format!("no plugin `{name}` serves"));
        };
        let serving = serving.info().clone();
        let Some(previous) = shelf.previous(name, &serving.sha256) else {
            return Err(format!(
                "no earlier version of `{name}` is kept (versions kept: {})",
                shelf.history(name).len()
            ));
        };
        let bytes = shelf
            .bytes(&previous.sha256)
            .map_err(|e| format!("the kept copy of {} {}: {e}", name, previous.version))?;
        let file = self.shared.dir.join(&serving.file);
        super::shelf::write_by_rename(&file, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        tracing::info!(
            plugin = name,
            from = %serving.version,
            to = %previous.version,
            file = %serving.file,
            "rolled back: the previous version was written over the file"
        );
        Ok(RolledBack {
            plugin: name.to_string(),
            file: serving.file.clone(),
            from: serving.version.clone(),
            from_sha256: serving.sha256.clone(),
            to: previous.version,
            to_sha256: previous.sha256,
        })
    }

    /// Looks at every file of the folder and returns once each new or changed one is loaded
    /// or rejected (each within the compile budget); vanished ones are reported.
    pub fn rescan(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Rescan(Some(tx))).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Checks plugins against `config` from now on, and returns once that is done: files
    /// rejected for a profile the old config lacked are looked at again, and a plugin whose
    /// `[plugins.<name>]` settings changed is loaded again with the new ones.
    pub fn set_config(&self, config: Arc<Config>) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Config(config, tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Starts watching the folder; dropping the returned handle stops it.
    pub fn watch(&self, options: WatchOptions) -> anyhow::Result<WatchHandle> {
        let tx = self.tx.clone();
        let mut debouncer = notify_debouncer_full::new_debouncer(
            options.debounce,
            None,
            move |result: notify_debouncer_full::DebounceEventResult| {
                let msg = match result {
                    Ok(events) => {
                        Msg::Changed(events.into_iter().flat_map(|e| e.event.paths).collect())
                    }
                    // A watcher error means events may be lost: rescan everything.
                    Err(_) => Msg::Rescan(None),
                };
                let _ = tx.send(msg);
            },
        )?;
        debouncer.watch(&self.shared.dir, RecursiveMode::NonRecursive)?;
        let _ = self.tx.send(Msg::Periodic(Some(options.rescan)));
        Ok(WatchHandle {
            _debouncer: Box::new(debouncer),
            tx: self.tx.clone(),
        })
    }
}

impl Shared {
    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: ReloadEvent) {
        crate::metrics::reload(
            event.plugin.as_deref(),
            match event.event {
                ReloadKind::Loaded => "loaded",
                ReloadKind::Reloaded => "reloaded",
                ReloadKind::Rejected => "rejected",
                ReloadKind::Removed => "removed",
            },
        );
        match event.event {
            ReloadKind::Rejected => {
                tracing::warn!(file = %event.file, "plugin rejected: {}", event.error.as_deref().unwrap_or(""))
            }
            ReloadKind::Removed => tracing::warn!(
                file = %event.file,
                "plugin file removed; its last good version keeps serving until replaced"
            ),
            _ => {
                tracing::info!(file = %event.file, plugin = ?event.plugin, generation = event.generation, "{:?}", event.event)
            }
        }
        let _ = self.events.send(event);
    }

    /// Puts `plugin` in its name's slot; says whether it is the name's first version.
    fn swap(&self, plugin: Plugin) -> ReloadKind {
        let name = plugin.info().name.clone();
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        match (slots.get(&name), plugin) {
            (Some(Slot::Resolver(slot)), Plugin::Resolver(new)) => {
                slot.store(new);
                ReloadKind::Reloaded
            }
            (Some(Slot::Translator(slot)), Plugin::Translator(new)) => {
                slot.store(new);
                ReloadKind::Reloaded
            }
            (_, Plugin::Resolver(new)) => {
                slots.insert(name, Slot::Resolver(Arc::new(ArcSwap::new(new))));
                ReloadKind::Loaded
            }
            (_, Plugin::Translator(new)) => {
                slots.insert(name, Slot::Translator(Arc::new(ArcSwap::new(new))));
                ReloadKind::Loaded
            }
        }
    }
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _debouncer: Box<dyn std::any::Any + Send>,
    tx: mpsc::Sender<Msg>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Periodic(None));
    }
}
