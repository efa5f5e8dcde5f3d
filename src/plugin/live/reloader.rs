//! The reload thread (`cmdscope-reload`): the one place that reads the folder and changes
//! slots. It applies every load, swap and removal in the order they are decided; each file
//! loads on a thread of its own, so a slow file never delays another's reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{ReloadEvent, ReloadKind, Shared, Slot};
use crate::config::Config;
use crate::plugin::files::{self, FileKey, Stamp};
use crate::plugin::{LoadError, Plugin, hex};

/// What the reload thread is asked to do.
pub(super) enum Msg {
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

pub(super) struct Finished {
    key: FileKey,
    job: u64,
    stamp: Stamp,
    sha256: String,
    started: Instant,
    result: Result<Plugin, LoadError>,
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
pub(super) struct Reloader {
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
    /// Starts the reload thread, fed by `rx` (`tx` is how its own loads report back).
    pub(super) fn spawn(
        shared: Arc<Shared>,
        tx: mpsc::Sender<Msg>,
        rx: mpsc::Receiver<Msg>,
    ) -> std::io::Result<()> {
        let reloader = Reloader {
            shared,
            tx,
            files: HashMap::new(),
            jobs: HashMap::new(),
            next_job: 0,
            waiters: Vec::new(),
            rescan_every: None,
        };
        std::thread::Builder::new()
            .name("cmdscope-reload".into())
            .spawn(move || reloader.run(rx))
            .map(|_| ())
    }

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
        let shelf = self.shared.shelf.clone();
        let settings = self.shared.config.load().plugin_settings.clone();
        let tx = self.tx.clone();
        let file = key.to_string_lossy().into_owned();
        let spawned = std::thread::Builder::new()
            .name("cmdscope-load".into())
            .spawn(move || {
                let result = host.load_bytes(&bytes, &file, &settings);
                // Kept for a rollback before it may serve; the reload thread records it.
                if let (Ok(_), Some(shelf)) = (&result, &shelf)
                    && let Err(e) = shelf.keep(&sha256, &bytes)
                {
                    tracing::warn!(file, "cannot keep this version for rollback: {e}");
                }
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
        let taken = self
            .files
            .iter()
            .find(|(k, e)| *k != key && e.serves.as_deref() == Some(name.as_str()))
            .map(|(other, _)| other.to_string_lossy().into_owned());
        let serving = match self.shared.read_slots().get(&name) {
            Some(Slot::Resolver(_)) => Some(crate::plugin::World::Resolver),
            Some(Slot::Translator(_)) => Some(crate::plugin::World::Translator),
            None => None,
        };
        match crate::plugin::set::admission(
            &plugin,
            &self.shared.config.load(),
            taken.as_deref(),
            serving,
        ) {
            Ok(()) => Ok(plugin),
            Err(e) if e.is_external() => Err((e, Some(plugin))),
            Err(e) => Err((e, None)),
        }
    }

    fn serve(&mut self, key: &FileKey, plugin: Plugin, started: Instant) {
        let name = plugin.info().name.clone();
        let sha256 = plugin.info().sha256.clone();
        let version = plugin.info().version.clone();
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
        if let Some(shelf) = &self.shared.shelf {
            let version = crate::plugin::shelf::Shelved {
                sha256: sha256.clone(),
                version: version.clone(),
                file: key.to_string_lossy().into_owned(),
                served_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            if let Err(e) = shelf.served(&name, version) {
                tracing::warn!(plugin = %name, "cannot record this version for rollback: {e}");
            }
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

fn ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}
