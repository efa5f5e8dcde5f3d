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
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::files::{self, FileKey, Stamp};
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

type SwapHook = Box<dyn Fn(&str) + Send + Sync>;

/// What the handles and the reload thread share.
struct Shared {
    host: PluginHost,
    /// Absolute, decided once: every path the host reads is `dir` joined with a [`FileKey`].
    dir: PathBuf,
    config: ArcSwap<Config>,
    slots: RwLock<HashMap<String, Slot>>,
    generation: AtomicU64,
    events: broadcast::Sender<ReloadEvent>,
    /// Run after every swap, with the plugin name, before the event is sent.
    swap_hooks: RwLock<Vec<SwapHook>>,
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

/// What the reload thread is asked to do.
enum Msg {
    /// The watcher saw these paths change.
    Changed(Vec<PathBuf>),
    /// Look at every file; answer on `settled` once everything found is loaded or rejected.
    Rescan(Option<mpsc::Sender<()>>),
    /// A file's load ended.
    Loaded(Box<Finished>),
    /// A new config: profiles and settings are checked against it from now on.
    Config(Arc<Config>, mpsc::Sender<()>),
    /// Rescan every `period` (`None`: stop).
    Periodic(Option<Duration>),
}

struct Finished {
    key: FileKey,
    job: u64,
    stamp: Stamp,
    sha256: String,
    started: Instant,
    result: Result<Plugin, LoadError>,
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
        let shared = Arc::new(Shared {
            host,
            dir: std::path::absolute(dir)?,
            config: ArcSwap::new(config),
            slots: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            events,
            swap_hooks: RwLock::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let reloader = Reloader {
            shared: shared.clone(),
            tx: tx.clone(),
            files: HashMap::new(),
            jobs: HashMap::new(),
            next_job: 0,
            waiters: Vec::new(),
            rescan_every: None,
        };
        std::thread::Builder::new()
            .name("cmdscope-reload".into())
            .spawn(move || reloader.run(rx))?;
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

/// What the folder held at the last look, per file.
struct FileEntry {
    stamp: Stamp,
    /// Of the bytes last read; `None` when the file could not be read as a plugin at all.
    sha256: Option<String>,
    /// The plugin name this file's last good version serves.
    serves: Option<String>,
    /// A loaded version refused for a reason outside the file (its name taken by another
    /// file, a profile the config lacks), admitted when that reason goes away.
    parked: Option<Plugin>,
    /// The last version was refused for the limits the config gave it: loaded again when the
    /// config's plugin limits change.
    over_limits: bool,
}

/// A load running for one file.
struct Job {
    id: u64,
    /// The file changed again meanwhile: look again when this load ends.
    again: bool,
}

/// The reload thread's state: only it reads the folder and changes slots.
struct Reloader {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    files: HashMap<FileKey, FileEntry>,
    jobs: HashMap<FileKey, Job>,
    next_job: u64,
    /// Callers of `rescan` waiting for these files' loads to end.
    waiters: Vec<(Vec<FileKey>, mpsc::Sender<()>)>,
    rescan_every: Option<Duration>,
}

impl Reloader {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut next_rescan: Option<Instant> = None;
        loop {
            let msg = match next_rescan {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Changed(paths)) => self.changed(paths),
                Ok(Msg::Rescan(settled)) => {
                    self.rescan();
                    if let Some(settled) = settled {
                        self.waiters
                            .push((self.jobs.keys().cloned().collect(), settled));
                    }
                }
                Ok(Msg::Loaded(finished)) => self.finish(*finished),
                Ok(Msg::Config(config, settled)) => {
                    self.set_config(config);
                    self.waiters
                        .push((self.jobs.keys().cloned().collect(), settled));
                }
                Ok(Msg::Periodic(every)) => self.rescan_every = every,
                Err(RecvTimeoutError::Timeout) => self.rescan(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let jobs = &self.jobs;
            self.waiters.retain(|(keys, settled)| {
                let waiting = keys.iter().any(|k| jobs.contains_key(k));
                if !waiting {
                    let _ = settled.send(());
                }
                waiting
            });
            next_rescan = match (self.rescan_every, next_rescan) {
                (None, _) => None,
                (Some(every), Some(at)) if at > Instant::now() && at <= Instant::now() + every => {
                    Some(at)
                }
                (Some(every), _) => Some(Instant::now() + every),
            };
        }
    }

    /// Paths the watcher reported: plugin files are looked at one by one; anything else in
    /// the folder (a renamed `..data` symlink, a directory swapped in) may have changed what
    /// the plugin files point to, so everything is looked at.
    fn changed(&mut self, paths: Vec<PathBuf>) {
        let mut keys: Vec<FileKey> = Vec::new();
        let mut everything = false;
        for path in &paths {
            match files::plugin_key(path) {
                Some(key) => keys.push(key),
                None => everything = true,
            }
        }
        if everything {
            return self.rescan();
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            self.look(key);
        }
    }

    fn rescan(&mut self) {
        let mut keys: Vec<FileKey> = match std::fs::read_dir(&self.shared.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .filter(|name| files::is_plugin_name(name))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.shared.dir.display(), "cannot list the plugins folder: {e}");
                return;
            }
        };
        keys.sort();
        let gone: Vec<FileKey> = self
            .files
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        for key in gone.into_iter().chain(keys) {
            self.look(key);
        }
    }

    /// Brings one file up to date: starts its load, or reports it rejected or removed.
    fn look(&mut self, key: FileKey) {
        if let Some(job) = self.jobs.get_mut(&key) {
            job.again = true;
            return;
        }
        let started = Instant::now();
        let path = self.shared.dir.join(&key);
        let Some((stamp, kind)) = files::look(&path) else {
            return self.removed(&key, started);
        };
        let max = self.shared.host.limits().max_file_bytes;
        if let Some(entry) = self.files.get(&key)
            && stamp.same_as(&entry.stamp)
        {
            return; // unchanged since the last look: not even read
        }
        let unreadable = match kind {
            Err(e) => Some(e),
            Ok(()) if stamp.len > max => Some(LoadError::TooLarge {
                len: stamp.len,
                max,
            }),
            Ok(()) => None,
        };
        let read = match unreadable {
            Some(e) => Err(e),
            None => files::read(&path, max),
        };
        let (bytes, stamp) = match read {
            Ok(read) => read,
            Err(LoadError::Read(e)) => {
                tracing::debug!(file = ?key, "cannot read yet: {e}");
                return;
            }
            Err(error) => {
                // Not a plugin at all: said once, until the file changes.
                let entry = self.entry(&key, stamp);
                entry.sha256 = None;
                let serves = entry.serves.clone();
                return self.reject(&key, serves, None, error, started);
            }
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        let entry = self.entry(&key, stamp);
        if entry.sha256.as_deref() == Some(sha256.as_str()) {
            return; // same bytes (touched, or rewritten identically): never reloaded
        }
        self.start(key, bytes, stamp, sha256, started);
    }

    /// The entry of `key`, created (serving nothing) when new, with its stamp updated.
    fn entry(&mut self, key: &FileKey, stamp: Stamp) -> &mut FileEntry {
        let entry = self.files.entry(key.clone()).or_insert(FileEntry {
            stamp,
            sha256: None,
            serves: None,
            parked: None,
            over_limits: false,
        });
        entry.stamp = stamp;
        entry
    }

    /// Loads the file's bytes on a thread of its own; the result comes back as a message.
    fn start(
        &mut self,
        key: FileKey,
        bytes: Vec<u8>,
        stamp: Stamp,
        sha256: String,
        started: Instant,
    ) {
        self.next_job += 1;
        let job = self.next_job;
        self.jobs.insert(
            key.clone(),
            Job {
                id: job,
                again: false,
            },
        );
        let host = self.shared.host.clone();
        let settings = self.shared.config.load().plugin_settings.clone();
        let tx = self.tx.clone();
        let file = key.to_string_lossy().into_owned();
        let spawned = std::thread::Builder::new()
            .name("cmdscope-load".into())
            .spawn(move || {
                let result = host.load_bytes(&bytes, &file, &settings);
                let _ = tx.send(Msg::Loaded(Box::new(Finished {
                    key,
                    job,
                    stamp,
                    sha256,
                    started,
                    result,
                })));
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a plugin load: {e}");
        }
    }

    /// A load ended: the plugin is admitted and swapped in, parked, or rejected.
    fn finish(&mut self, done: Finished) {
        match self.jobs.get(&done.key) {
            Some(job) if job.id == done.job => {}
            _ => return,
        }
        let again = self.jobs.remove(&done.key).is_some_and(|j| j.again);
        let entry = self.entry(&done.key, done.stamp);
        entry.sha256 = Some(done.sha256.clone());
        entry.parked = None;
        entry.over_limits = done.result.as_ref().is_err_and(LoadError::is_over_limits);
        let serves = entry.serves.clone();
        let admitted = done
            .result
            .map_err(|e| (e, None))
            .and_then(|plugin| self.admit(plugin, &done.key));
        match admitted {
            Ok(plugin) => self.serve(&done.key, plugin, done.started),
            Err((error, parked)) => {
                self.reject(&done.key, serves, Some(done.sha256), error, done.started);
                if let Some(entry) = self.files.get_mut(&done.key) {
                    entry.parked = parked;
                }
            }
        }
        if again {
            self.look(done.key);
        }
    }

    /// The checks that involve more than the file: one file per plugin name, declared
    /// profiles defined by the config, one world per name. A plugin refused for a reason
    /// outside its file comes back to be parked.
    fn admit(&self, plugin: Plugin, key: &FileKey) -> Result<Plugin, (LoadError, Option<Plugin>)> {
        let name = plugin.info().name.clone();
        let claimed = self
            .files
            .iter()
            .find(|(k, e)| *k != key && e.serves.as_deref() == Some(name.as_str()));
        let refusal = if let Some((other, _)) = claimed {
            Some(LoadError::DuplicateName(
                name.clone(),
                other.to_string_lossy().into_owned(),
            ))
        } else if let Err(e) = plugin.check_profiles(&self.shared.config.load()) {
            Some(e)
        } else {
            match (self.shared.read_slots().get(&name), &plugin) {
                (Some(Slot::Resolver(_)), Plugin::Translator(_)) => {
                    Some(LoadError::OtherWorld(name, super::World::Resolver))
                }
                (Some(Slot::Translator(_)), Plugin::Resolver(_)) => {
                    Some(LoadError::OtherWorld(name, super::World::Translator))
                }
                _ => None,
            }
        };
        match refusal {
            None => Ok(plugin),
            Some(e) if e.is_external() => Err((e, Some(plugin))),
            Some(e) => Err((e, None)),
        }
    }

    fn serve(&mut self, key: &FileKey, plugin: Plugin, started: Instant) {
        let name = plugin.info().name.clone();
        let sha256 = plugin.info().sha256.clone();
        let kind = self.shared.swap(plugin);
        for hook in self
            .shared
            .swap_hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            hook(&name);
        }
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let previous = self
            .files
            .get_mut(key)
            .and_then(|e| e.serves.replace(name.clone()));
        self.shared.emit(ReloadEvent {
            event: kind,
            plugin: Some(name.clone()),
            file: key.to_string_lossy().into_owned(),
            sha256: Some(sha256),
            generation,
            ms: ms(started),
            error: None,
        });
        // The file served another name before: that name is free for a parked file now.
        if previous.is_some_and(|p| p != name) {
            self.admit_parked();
        }
    }

    fn reject(
        &mut self,
        key: &FileKey,
        serves: Option<String>,
        sha256: Option<String>,
        error: LoadError,
        started: Instant,
    ) {
        self.shared.emit(ReloadEvent {
            event: ReloadKind::Rejected,
            plugin: serves,
            file: key.to_string_lossy().into_owned(),
            sha256,
            generation: self.shared.generation.load(Ordering::SeqCst),
            ms: ms(started),
            error: Some(error.to_string()),
        });
    }

    fn removed(&mut self, key: &FileKey, started: Instant) {
        let Some(gone) = self.files.remove(key) else {
            return;
        };
        self.shared.emit(ReloadEvent {
            event: ReloadKind::Removed,
            plugin: gone.serves.clone(),
            file: key.to_string_lossy().into_owned(),
            sha256: gone.sha256,
            generation: self.shared.generation.load(Ordering::SeqCst),
            ms: ms(started),
            error: None,
        });
        // Its name is no longer claimed by a file: a parked version may take it.
        if gone.serves.is_some() {
            self.admit_parked();
        }
    }

    /// Looks again at every parked version, in file-name order.
    fn admit_parked(&mut self) {
        let mut parked: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, e)| e.parked.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        parked.sort();
        for key in parked {
            let Some(plugin) = self.files.get_mut(&key).and_then(|e| e.parked.take()) else {
                continue;
            };
            match self.admit(plugin, &key) {
                Ok(plugin) => self.serve(&key, plugin, Instant::now()),
                Err((_, parked)) => {
                    if let Some(entry) = self.files.get_mut(&key) {
                        entry.parked = parked;
                    }
                }
            }
        }
    }

    /// A new config: parked versions are looked at again, and files whose plugin's settings
    /// changed are loaded again (settings are handed to instances at load).
    fn set_config(&mut self, config: Arc<Config>) {
        let old = self.shared.config.swap(config.clone());
        // Any plugin's limits may change what `info` runs within (names are not known before
        // it answers), so a file refused over limits is looked at again on any settings change.
        let settings_changed = old.plugin_settings != config.plugin_settings;
        let changed: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, e)| {
                e.serves.as_ref().is_some_and(|name| {
                    old.plugin_settings.get(name) != config.plugin_settings.get(name)
                }) || (e.over_limits && settings_changed)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in changed {
            if let Some(entry) = self.files.get_mut(&key) {
                entry.sha256 = None;
                entry.stamp.modified = None; // not "unchanged": read it again
            }
            self.look(key);
        }
        self.admit_parked();
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

    /// One snapshot for the whole batch, so every answer of a page comes from one version,
    /// and the plugin's own batch call: a page crosses into the sandbox once per 128 users,
    /// not once per user.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        self.slot.load_full().resolve_batch(ctxs)
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
