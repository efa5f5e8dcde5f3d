//! Hot reload: the plugins of a folder, kept current as files change, without a restart.
//!
//! - The folder (not the files: a rename replaces the inode) is watched with a debounced
//!   watcher, and rescanned periodically as a safety net.
//! - A plugin is identified by the sha256 of its bytes: the same bytes never reload.
//! - A new or changed file is compiled, linked, asked for its info and checked against the
//!   config before it is swapped in atomically ([`ArcSwap`]). A call takes a snapshot at its
//!   start, so calls in flight finish on the version they started with.
//! - A file that fails any step is rejected with the reason; the last good version keeps
//!   serving. A half-written file fails to compile and is retried when it changes again.
//! - Deleting a file keeps the last good version serving (with a `removed` event): a deploy
//!   that deletes and then writes never leaves a window without the plugin. Replace a plugin
//!   by writing a new file with the same plugin name; stop using one by changing the config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::{LoadError, Plugin, PluginHost, WasmResolver, WasmTranslator, hex};
use crate::config::Config;
use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

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

/// What the folder held at the last look.
#[derive(Clone)]
struct FileEntry {
    sha256: String,
    len: u64,
    modified: Option<SystemTime>,
    /// The plugin name this file serves, when its last version loaded.
    plugin: Option<String>,
}

struct Folder {
    files: HashMap<PathBuf, FileEntry>,
}

/// Every plugin of one folder, kept current. Cheap handles ([`HotResolver`], [`HotTranslator`])
/// always call the current version.
pub struct LivePlugins {
    host: PluginHost,
    dir: PathBuf,
    config: Arc<Config>,
    folder: Mutex<Folder>,
    slots: RwLock<HashMap<String, Slot>>,
    generation: AtomicU64,
    events: broadcast::Sender<ReloadEvent>,
    /// Run after every swap, with the plugin name, before the event is sent.
    swap_hooks: RwLock<Vec<SwapHook>>,
}

type SwapHook = Box<dyn Fn(&str) + Send + Sync>;

impl LivePlugins {
    /// A host for the folder `dir`, holding nothing yet: subscribe, then [`rescan`](Self::rescan)
    /// to load what is there (each file a `loaded` or `rejected` event), then [`watch`](Self::watch).
    pub fn new(
        host: PluginHost,
        dir: &Path,
        config: Arc<Config>,
    ) -> std::io::Result<Arc<LivePlugins>> {
        let (events, _) = broadcast::channel(1024);
        let live = Arc::new(LivePlugins {
            host,
            dir: dir.to_path_buf(),
            config,
            folder: Mutex::new(Folder {
                files: HashMap::new(),
            }),
            slots: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            events,
            swap_hooks: RwLock::new(Vec::new()),
        });
        std::fs::read_dir(dir)?;
        Ok(live)
    }

    /// Runs `hook(plugin name)` after every swap, before the event goes out: output caches
    /// drop the replaced version's entries here, so a reload is seen at once.
    pub fn on_swap(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.swap_hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    /// Events from now on. A slow subscriber misses the oldest events, never blocks reloads.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The plugins serving now, by name.
    pub fn current(&self) -> Vec<(String, Plugin)> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
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
        match self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            Some(Slot::Resolver(slot)) => Some(HotResolver {
                name: name.to_string(),
                slot: slot.clone(),
            }),
            _ => None,
        }
    }

    /// A translator handle that always calls the current version of plugin `name`.
    pub fn translator(&self, name: &str) -> Option<HotTranslator> {
        match self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            Some(Slot::Translator(slot)) => Some(HotTranslator { slot: slot.clone() }),
            _ => None,
        }
    }

    /// Looks at every file of the folder: new and changed ones are loaded, vanished ones reported.
    pub fn rescan(&self) {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_plugin_file(p))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot list the plugins folder: {e}");
                return;
            }
        };
        paths.sort();
        let known: Vec<PathBuf> = self.lock_folder().files.keys().cloned().collect();
        for gone in known.iter().filter(|p| !paths.contains(p)) {
            self.consider(gone);
        }
        for path in &paths {
            self.consider(path);
        }
    }

    /// Brings one path up to date: load, swap, reject or report removal.
    pub fn consider(&self, path: &Path) {
        if !is_plugin_file(path) {
            return;
        }
        let started = Instant::now();
        let mut folder = self.lock_folder();
        let previous = folder.files.get(path).cloned();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(meta) = std::fs::metadata(path) else {
            if let Some(prev) = folder.files.remove(path) {
                self.emit(ReloadEvent {
                    event: ReloadKind::Removed,
                    plugin: prev.plugin,
                    file,
                    sha256: Some(prev.sha256),
                    generation: self.generation(),
                    ms: ms(started),
                    error: None,
                });
            }
            return;
        };
        let modified = meta.modified().ok();
        if let Some(prev) = &previous
            && prev.len == meta.len()
            && prev.modified == modified
            && modified.is_some()
        {
            return; // unchanged since the last look: not even hashed
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(file, "cannot read yet: {e}");
                return;
            }
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        let unchanged = previous.as_ref().is_some_and(|p| p.sha256 == sha256);
        let mut entry = FileEntry {
            sha256: sha256.clone(),
            len: bytes.len() as u64,
            modified,
            plugin: previous.as_ref().and_then(|p| p.plugin.clone()),
        };
        if unchanged {
            folder.files.insert(path.to_path_buf(), entry);
            return; // same bytes (touched, or rewritten identically): never reloaded
        }
        let result = self
            .host
            .load_bytes(&bytes, &file, &self.config.plugin_settings)
            .and_then(|plugin| self.admit(plugin, path, &folder));
        match result {
            Ok(plugin) => {
                let name = plugin.info().name.clone();
                let kind = self.swap(&name, plugin);
                for hook in self
                    .swap_hooks
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                {
                    hook(&name);
                }
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                entry.plugin = Some(name.clone());
                folder.files.insert(path.to_path_buf(), entry);
                self.emit(ReloadEvent {
                    event: kind,
                    plugin: Some(name),
                    file,
                    sha256: Some(sha256),
                    generation,
                    ms: ms(started),
                    error: None,
                });
            }
            Err(error) => {
                // Remember the bad bytes so a rescan does not retry them; keep the name of
                // the last good version this file served.
                folder.files.insert(path.to_path_buf(), entry.clone());
                self.emit(ReloadEvent {
                    event: ReloadKind::Rejected,
                    plugin: entry.plugin,
                    file,
                    sha256: Some(sha256),
                    generation: self.generation(),
                    ms: ms(started),
                    error: Some(error.to_string()),
                });
            }
        }
    }

    /// The config's checks: declared profiles exist, one file per plugin name, one world per name.
    fn admit(&self, plugin: Plugin, path: &Path, folder: &Folder) -> Result<Plugin, LoadError> {
        let info = plugin.info();
        if let Some((other, _)) = folder
            .files
            .iter()
            .find(|(p, e)| p.as_path() != path && e.plugin.as_deref() == Some(info.name.as_str()))
        {
            let other = other
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(LoadError::DuplicateName(info.name.clone(), other));
        }
        plugin.check_profiles(&self.config)?;
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        let clash = matches!(
            (slots.get(&info.name), &plugin),
            (Some(Slot::Resolver(_)), Plugin::Translator(_))
                | (Some(Slot::Translator(_)), Plugin::Resolver(_))
        );
        if clash {
            return Err(LoadError::Info(format!(
                "`{}` is already loaded as the other world",
                info.name
            )));
        }
        Ok(plugin)
    }

    fn swap(&self, name: &str, plugin: Plugin) -> ReloadKind {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        match (slots.get(name), plugin) {
            (Some(Slot::Resolver(slot)), Plugin::Resolver(new)) => {
                slot.store(new);
                ReloadKind::Reloaded
            }
            (Some(Slot::Translator(slot)), Plugin::Translator(new)) => {
                slot.store(new);
                ReloadKind::Reloaded
            }
            (_, Plugin::Resolver(new)) => {
                slots.insert(
                    name.to_string(),
                    Slot::Resolver(Arc::new(ArcSwap::new(new))),
                );
                ReloadKind::Loaded
            }
            (_, Plugin::Translator(new)) => {
                slots.insert(
                    name.to_string(),
                    Slot::Translator(Arc::new(ArcSwap::new(new))),
                );
                ReloadKind::Loaded
            }
        }
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

    fn lock_folder(&self) -> std::sync::MutexGuard<'_, Folder> {
        self.folder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts watching the folder in a background thread; dropping the returned handle stops it.
    pub fn watch(self: &Arc<Self>, options: WatchOptions) -> anyhow::Result<WatchHandle> {
        let (tx, rx) = mpsc::channel::<Vec<PathBuf>>();
        let mut debouncer = notify_debouncer_full::new_debouncer(
            options.debounce,
            None,
            move |result: notify_debouncer_full::DebounceEventResult| {
                let paths = match result {
                    Ok(events) => events.into_iter().flat_map(|e| e.event.paths).collect(),
                    // A watcher error means events may be lost: rescan everything.
                    Err(_) => Vec::new(),
                };
                let _ = tx.send(paths);
            },
        )?;
        debouncer.watch(&self.dir, RecursiveMode::NonRecursive)?;
        let live = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("cmdscope-reload".into())
            .spawn(move || {
                loop {
                    let received = rx.recv_timeout(options.rescan);
                    let Some(live) = live.upgrade() else { return };
                    match received {
                        Ok(paths) if paths.is_empty() => live.rescan(),
                        Ok(mut paths) => {
                            paths.sort();
                            paths.dedup();
                            for path in paths {
                                live.consider(&path);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => live.rescan(),
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(WatchHandle {
            _debouncer: Box::new(debouncer),
            _thread: thread,
        })
    }
}

/// Keeps the watcher alive; dropping it stops watching (the reload thread ends with it).
pub struct WatchHandle {
    _debouncer: Box<dyn std::any::Any + Send>,
    _thread: std::thread::JoinHandle<()>,
}

fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

fn ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// A `Resolver` that calls whatever version of its plugin is current when a call starts.
#[derive(Clone)]
pub struct HotResolver {
    name: String,
    slot: Arc<ArcSwap<WasmResolver>>,
}

impl HotResolver {
    /// The version serving now.
    pub fn current(&self) -> Arc<WasmResolver> {
        self.slot.load_full()
    }
}

impl Resolver for HotResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        // The snapshot lives until the call returns, even if a swap happens meanwhile.
        let current = self.slot.load_full();
        current.resolve(ctx)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.slot.load().identity()
    }

    fn resolve_identified(
        &self,
        ctx: &UserContext,
    ) -> (Option<Arc<str>>, Result<String, ResolveError>) {
        let current = self.slot.load_full();
        (current.identity(), current.resolve(ctx))
    }
}

/// A `Translator` that calls whatever version of its plugin is current when a call starts.
#[derive(Clone)]
pub struct HotTranslator {
    slot: Arc<ArcSwap<WasmTranslator>>,
}

impl Translator for HotTranslator {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.slot.load_full().translate(key, language)
    }

    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        self.slot.load_full().translate_batch(keys, language)
    }

    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        self.slot.load_full().try_translate_batch(keys, language)
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.slot.load().identity()
    }
}
