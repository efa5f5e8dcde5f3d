//! Staged rollouts on a running host (see `crate::rollout`): start, follow, promote, abort.
//!
//! The rollout lives in the state store (its record and the candidate's bytes), so every
//! worker of a store and every restart serves the same one. A worker installs it by loading
//! the candidate through the folder's plugin host (the checks a file gets: size, compile
//! budget, interface, `info`; then its sha256 against the record) and building its engine
//! with a [`SplitResolver`] in place of the resolver: the generation moves, and the
//! reconciliation brings the canary users to the candidate (the others' menus do not change:
//! no call). A watchdog aborts by itself past `[rollout]`'s fallback limit. Promote writes the
//! candidate over the plugin's file (each worker its own folder) and ends the rollout once
//! the folder serves it; abort removes the record and every worker goes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, watch};

use super::{Host, HostEvent, Inner, Trigger};
use crate::plugin::stats::CallSummary;
use crate::plugin::{LivePlugins, Plugin, WasmResolver};
use crate::resolve::{Resolver, Translator};
use crate::rollout::{CANDIDATE, RECORD, Rollout, SplitResolver, verdict};
use crate::sources::PluginLookup;
use crate::state::StateStore;

/// How often a worker looks at the store's rollout and at the candidate's fallbacks.
const POLL: Duration = Duration::from_millis(500);
/// Longest a promotion waits for the folder to serve the candidate.
const PROMOTE_WAIT: Duration = Duration::from_secs(120);

/// What the store holds: the rollout, and whether it was promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    rollout: Rollout,
    #[serde(default)]
    promoted: bool,
}

/// The rollout this worker serves.
pub(super) struct Active {
    rollout: Rollout,
    candidate: Arc<WasmResolver>,
    /// Bot API calls of the reconciliations since it started here.
    calls: AtomicU64,
}

impl Active {
    /// The candidate, when it decides for `ctx` under resolver `name` (a canary user).
    pub(super) fn decides(
        &self,
        ctx: &crate::UserContext,
        name: &str,
    ) -> Option<crate::explain::PluginRef> {
        (self.rollout.plugin == name
            && crate::rollout::in_canary(name, ctx.user_id, self.rollout.percent))
        .then(|| crate::explain::PluginRef::of(self.candidate.info()))
    }
}

/// A rollout as `GET /v1/rollouts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutStatus {
    #[serde(flatten)]
    pub rollout: Rollout,
    /// The candidate's answers (the canary users' resolutions), fallbacks and latency.
    pub candidate: CallSummary,
    /// The same for the version serving everyone else (since it loaded).
    pub current: Option<CallSummary>,
    /// Bot API calls the reconciliations made since the rollout started on this worker.
    pub calls: u64,
}

/// Why a rollout request was refused.
#[derive(Debug)]
pub enum RolloutError {
    /// The request cannot be served as asked (400).
    Invalid(String),
    /// The candidate does not load or cannot serve (422).
    Refused(Vec<String>),
    /// Not now, or not on this host (409).
    Conflict(String),
    Store(crate::state::StoreError),
}

impl std::fmt::Display for RolloutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RolloutError::Invalid(why) | RolloutError::Conflict(why) => f.write_str(why),
            RolloutError::Refused(why) => {
                write!(f, "the candidate cannot serve: {}", why.join("; "))
            }
            RolloutError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<crate::state::StoreError> for RolloutError {
    fn from(e: crate::state::StoreError) -> Self {
        RolloutError::Store(e)
    }
}

/// The folder's plugins, with the split resolver in place while a rollout runs: every
/// engine of a host with a plugin folder is built through this.
pub(super) struct Staged<'a> {
    /// The folder (hot handles), or the versions serving at one moment (a pinned set).
    pub(super) live: &'a dyn PluginLookup,
    pub(super) active: Option<Arc<Active>>,
}

impl PluginLookup for Staged<'_> {
    fn resolver(&self, name: &str) -> Option<Arc<dyn Resolver>> {
        let current = self.live.resolver(name)?;
        match &self.active {
            Some(active) if active.rollout.plugin == name => Some(Arc::new(SplitResolver {
                current,
                candidate: active.candidate.clone(),
                rollout: active.rollout.clone(),
            })),
            _ => Some(current),
        }
    }
    fn translator(&self, name: &str) -> Option<Arc<dyn Translator>> {
        self.live.translator(name)
    }
    fn summary(&self) -> String {
        self.live.summary()
    }
}

impl Inner {
    /// The lookup engines are built with (`None` without a plugin folder).
    pub(super) fn staged(&self) -> Option<Staged<'_>> {
        Some(Staged {
            live: self.live.as_deref()?,
            active: self.rollout.load_full(),
        })
    }

    /// The rules serving now, pinned: an engine over the plugin versions serving (not the
    /// folder's hot handles), so it keeps answering as these rules did after a swap.
    pub(super) fn pinned_engine(&self) -> Option<Arc<crate::engine::Engine>> {
        let config = self.engine.load().config().clone();
        let pinned = self.live.as_ref().map(|live| crate::plugin::PluginSet {
            loaded: live.current().into_iter().map(|(_, p)| p).collect(),
            rejected: Vec::new(),
        });
        let staged = pinned.as_ref().map(|set| Staged {
            live: set,
            active: self.rollout.load_full(),
        });
        let lookup = staged.as_ref().map(|s| s as &dyn PluginLookup);
        crate::sources::engine(config, lookup, self.resolver.clone())
            .map(|(engine, _)| Arc::new(engine))
            .inspect_err(|e| tracing::warn!("audit: cannot pin the rules serving: {e}"))
            .ok()
    }

    /// Builds the engine again from the config serving and the plugins as staged now, serves
    /// it and kicks the reconciler: what a rollout's start and end do.
    fn restage(&self, why: &str) {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.engine.load().config().clone();
        let staged = self.staged();
        let lookup = staged.as_ref().map(|s| s as &dyn PluginLookup);
        match crate::sources::engine(config, lookup, self.resolver.clone()) {
            Ok((engine, _)) => {
                self.serve_engine(Arc::new(engine));
                let _ = self.kick.send(Trigger::Rollout {
                    change: why.to_string(),
                });
            }
            Err(e) => tracing::error!("rollout: cannot build the engine ({why}): {e}"),
        }
    }

    fn install(&self, active: Option<Arc<Active>>, why: &str) {
        self.rollout.store(active);
        self.restage(why);
    }
}

/// Loads a candidate's bytes through the folder's checks, as the resolver of `config`.
async fn load_candidate(
    live: &Arc<LivePlugins>,
    bytes: Vec<u8>,
    config: &crate::config::Config,
) -> Result<Arc<WasmResolver>, Vec<String>> {
    let plugin =
        super::impact::load_candidate(live.clone(), bytes, "rollout-candidate.wasm", config)
            .await
            .map_err(|why| vec![why])?;
    let Plugin::Resolver(resolver) = &plugin else {
        return Err(vec![
            "it is a translator: a rollout stages a resolver (review a translator with impact, then deploy it whole)".into(),
        ]);
    };
    let name = &resolver.info().name;
    if config.resolver.as_deref() != Some(name.as_str()) {
        return Err(vec![format!(
            "it is `{name}`, and the config's resolver is {}",
            config
                .resolver
                .as_deref()
                .map_or("none".to_string(), |r| format!("`{r}`"))
        )]);
    }
    plugin
        .check_profiles(config)
        .map_err(|e| vec![e.to_string()])?;
    Ok(resolver.clone())
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Host {
    /// Stages `bytes` (a resolver version) on `percent` of the users: recorded in the store
    /// (every worker follows), served here at once, the canary users reconciled.
    pub async fn start_rollout(
        &self,
        bytes: Vec<u8>,
        percent: f64,
    ) -> Result<RolloutStatus, RolloutError> {
        let inner = &self.inner;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(RolloutError::Invalid(format!(
                "percent must be above 0 and at most 100, not {percent}"
            )));
        }
        let live = self.rollout_folder()?;
        if let Some(active) = inner.rollout.load_full() {
            return Err(RolloutError::Conflict(format!(
                "a rollout of {} {} is under way: promote or abort it first",
                active.rollout.plugin, active.rollout.version
            )));
        }
        let config = inner.engine.load().config().clone();
        let sha256 = crate::plugin::hex(&Sha256::digest(&bytes));
        let candidate = load_candidate(&live, bytes.clone(), &config)
            .await
            .map_err(RolloutError::Refused)?;
        let rollout = Rollout {
            plugin: candidate.info().name.clone(),
            version: candidate.info().version.clone(),
            sha256,
            percent,
            started_at: now_s(),
        };
        let store = inner.backend.store.clone();
        precheck(store.as_ref(), &candidate, &config, &rollout)
            .await
            .map_err(|why| RolloutError::Refused(vec![why]))?;
        // The bytes first: a worker that sees the record finds them.
        store.set_document(CANDIDATE, Some(&bytes)).await?;
        let record = serde_json::to_vec(&Stored {
            rollout: rollout.clone(),
            promoted: false,
        })
        .expect("a rollout serializes");
        store.set_document(RECORD, Some(&record)).await?;
        let active = Arc::new(Active {
            rollout: rollout.clone(),
            candidate,
            calls: AtomicU64::new(0),
        });
        inner.install(Some(active), "started");
        tracing::info!(plugin = %rollout.plugin, version = %rollout.version, percent, "rollout started");
        inner.emit(HostEvent::Rollout {
            action: "started",
            rollout,
            reason: None,
        });
        self.rollout_status()
            .ok_or_else(|| RolloutError::Conflict("the rollout ended at once".into()))
    }

    /// The rollout this worker serves, with the candidate's and the current version's counts.
    pub fn rollout_status(&self) -> Option<RolloutStatus> {
        let active = self.inner.rollout.load_full()?;
        let current = self.plugins().and_then(|live| {
            live.current()
                .into_iter()
                .find(|(n, _)| *n == active.rollout.plugin)
                .map(|(_, p)| p.call_summary())
        });
        Some(RolloutStatus {
            rollout: active.rollout.clone(),
            candidate: active.candidate.call_summary(),
            current,
            calls: active.calls.load(Ordering::Relaxed),
        })
    }

    /// Makes the candidate the version for everyone: written over the plugin's file (on
    /// every worker, each in its own folder), the rollout ended once the folder serves it.
    pub async fn promote_rollout(&self) -> Result<Rollout, RolloutError> {
        let inner = &self.inner;
        let active = inner
            .rollout
            .load_full()
            .ok_or_else(|| RolloutError::Conflict("no rollout is under way".into()))?;
        let record = serde_json::to_vec(&Stored {
            rollout: active.rollout.clone(),
            promoted: true,
        })
        .expect("a rollout serializes");
        inner
            .backend
            .store
            .set_document(RECORD, Some(&record))
            .await?;
        promote_here(inner, &active)
            .await
            .map_err(RolloutError::Conflict)?;
        Ok(active.rollout.clone())
    }

    /// Takes the candidate back on every worker: the canary users are reconciled back.
    pub async fn abort_rollout(&self, reason: &str) -> Result<Rollout, RolloutError> {
        let inner = &self.inner;
        let active = inner
            .rollout
            .load_full()
            .ok_or_else(|| RolloutError::Conflict("no rollout is under way".into()))?;
        abort(inner, &active, reason).await?;
        Ok(active.rollout.clone())
    }

    fn rollout_folder(&self) -> Result<Arc<LivePlugins>, RolloutError> {
        if self.inner.follows_releases() {
            return Err(RolloutError::Conflict(
                "this worker follows releases: stage a change by publishing a release".into(),
            ));
        }
        self.inner.live.clone().ok_or_else(|| {
            RolloutError::Conflict(
                "this host has no plugin folder: there is no version to stage against".into(),
            )
        })
    }
}

/// Before anything is sent: the candidate asked for the known canary users, up to
/// `[rollout] min_calls` of them, and refused if more of its answers than the limit would
/// fall back. A trap that hits one user in twenty is caught here, not on Telegram.
async fn precheck(
    store: &dyn StateStore,
    candidate: &Arc<WasmResolver>,
    config: &crate::config::Config,
    rollout: &Rollout,
) -> Result<(), String> {
    let Some(known) = store.known_users() else {
        return Ok(());
    };
    let limits = config.rollout;
    let (mut tried, mut fell) = (0u64, 0u64);
    let mut first_reason = None;
    let mut cursor = None;
    // Every known user: no user is at a generation no rules have.
    let nobody = u64::MAX;
    while tried < limits.min_calls {
        let (page, next) = known
            .behind(nobody, cursor.as_ref(), 1024)
            .await
            .map_err(|e| format!("cannot read the known users to try it on: {e}"))?;
        let canary: Vec<crate::UserContext> = page
            .into_iter()
            .map(|u| u.context)
            .filter(|ctx| crate::rollout::in_canary(&rollout.plugin, ctx.user_id, rollout.percent))
            .take((limits.min_calls - tried) as usize)
            .collect();
        if !canary.is_empty() {
            let resolver = candidate.clone();
            let profiles: Vec<String> = config.profiles.keys().cloned().collect();
            let answers = tokio::task::spawn_blocking(move || {
                let refs: Vec<&crate::UserContext> = canary.iter().collect();
                resolver.resolve_batch(&refs)
            })
            .await
            .map_err(|e| format!("the trial did not finish: {e}"))?;
            for answer in answers {
                tried += 1;
                let why = match answer {
                    Ok(profile) if profiles.contains(&profile) => continue,
                    Ok(profile) => format!("answered `{profile}`, a profile the config lacks"),
                    Err(e) => e.to_string(),
                };
                fell += 1;
                first_reason.get_or_insert(why);
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if tried == 0 {
        return Ok(());
    }
    let percent = fell as f64 * 100.0 / tried as f64;
    if percent > limits.max_fallback_percent {
        return Err(format!(
            "tried on {tried} known users of the canary before sending anything: {fell} fell back ({percent:.1}%, more than [rollout] max_fallback_percent = {}); the first: {}",
            limits.max_fallback_percent,
            first_reason.unwrap_or_default()
        ));
    }
    Ok(())
}

async fn abort(inner: &Inner, active: &Arc<Active>, reason: &str) -> Result<(), RolloutError> {
    let store = inner.backend.store.clone();
    // The record first: every worker follows it.
    store.set_document(RECORD, None).await?;
    store.set_document(CANDIDATE, None).await?;
    end_here(inner, active, "aborted", Some(reason.to_string()));
    Ok(())
}

/// Takes this worker's rollout back (the store's record is gone, or was never ours).
fn end_here(inner: &Inner, active: &Arc<Active>, action: &'static str, reason: Option<String>) {
    let still_ours = inner
        .rollout
        .load()
        .as_ref()
        .is_some_and(|a| Arc::ptr_eq(a, active));
    if !still_ours {
        return;
    }
    inner.install(None, action);
    tracing::warn!(
        plugin = %active.rollout.plugin,
        version = %active.rollout.version,
        reason = reason.as_deref().unwrap_or(""),
        "rollout {action}"
    );
    inner.emit(HostEvent::Rollout {
        action,
        rollout: active.rollout.clone(),
        reason,
    });
}

/// Writes the candidate over the plugin's file, waits until the folder serves it, then ends
/// the rollout: nobody's menu moves twice (the split resolver answers the same for everyone
/// once the current version is the candidate).
async fn promote_here(inner: &Inner, active: &Arc<Active>) -> Result<(), String> {
    let live = inner.live.clone().ok_or("no plugin folder")?;
    let serving = live
        .current()
        .into_iter()
        .find(|(n, _)| *n == active.rollout.plugin)
        .map(|(_, p)| p.info().clone())
        .ok_or_else(|| format!("no plugin `{}` serves", active.rollout.plugin))?;
    if serving.sha256 != active.rollout.sha256 {
        let bytes = inner
            .backend
            .store
            .document(CANDIDATE)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the candidate's bytes are gone from the store")?;
        if crate::plugin::hex(&Sha256::digest(&bytes)) != active.rollout.sha256 {
            return Err("the stored candidate's bytes do not match its sha256".into());
        }
        let file = live.dir().join(&serving.file);
        crate::plugin::shelf::write_by_rename(&file, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let deadline = tokio::time::Instant::now() + PROMOTE_WAIT;
        loop {
            let now = live
                .current()
                .into_iter()
                .find(|(n, _)| *n == active.rollout.plugin)
                .map(|(_, p)| p.info().sha256.clone());
            if now.as_deref() == Some(active.rollout.sha256.as_str()) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{} holds the candidate, and the folder did not serve it within {} s: see the plugin events",
                    file.display(),
                    PROMOTE_WAIT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    end_here(inner, active, "promoted", None);
    Ok(())
}

/// Reads the store's record (`None` for none, or one this version cannot read).
async fn stored(store: &dyn StateStore) -> Result<Option<Stored>, crate::state::StoreError> {
    Ok(store
        .document(RECORD)
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The rollout the store holds, loaded, for a host being built: a restart serves it from the
/// first engine on, so no canary user is moved back and forth.
pub(super) async fn restore(
    store: &dyn StateStore,
    live: &Arc<LivePlugins>,
    config: &crate::config::Config,
) -> Option<Arc<Active>> {
    let record = match stored(store).await {
        Ok(Some(record)) if !record.promoted => record,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!("cannot read the rollout from the store: {e}");
            return None;
        }
    };
    match fetch(store, live, config, &record.rollout).await {
        Ok(active) => Some(active),
        Err(errors) => {
            tracing::error!(
                plugin = %record.rollout.plugin,
                "the stored rollout's candidate cannot serve here; serving without it: {}",
                errors.join("; ")
            );
            None
        }
    }
}

/// The candidate of `rollout`, from the store, checked and loaded.
async fn fetch(
    store: &dyn StateStore,
    live: &Arc<LivePlugins>,
    config: &crate::config::Config,
    rollout: &Rollout,
) -> Result<Arc<Active>, Vec<String>> {
    let bytes = store
        .document(CANDIDATE)
        .await
        .map_err(|e| vec![e.to_string()])?
        .ok_or_else(|| vec!["the candidate's bytes are not in the store".to_string()])?;
    let sha256 = crate::plugin::hex(&Sha256::digest(&bytes));
    if sha256 != rollout.sha256 {
        return Err(vec![format!(
            "the candidate's bytes have sha256 {sha256}, the rollout names {}",
            rollout.sha256
        )]);
    }
    let candidate = load_candidate(live, bytes, config).await?;
    Ok(Arc::new(Active {
        rollout: rollout.clone(),
        candidate,
        calls: AtomicU64::new(0),
    }))
}

/// The worker's rollout task: follows the store's record (another worker's start, promote
/// or abort), counts the reconciliations' calls, and aborts past `[rollout]`'s limit.
pub(super) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let Some(live) = inner.live.clone() else {
        return;
    };
    let mut events = inner.events.subscribe();
    let mut refused: Option<String> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            event = events.recv() => {
                match event {
                    Ok(HostEvent::Reconciled(report)) => {
                        if let Some(active) = inner.rollout.load_full() {
                            let calls: u64 = report.calls.values().sum();
                            active.calls.fetch_add(calls, Ordering::Relaxed);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
                continue;
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        let store = inner.backend.store.clone();
        let local = inner.rollout.load_full();
        match (stored(store.as_ref()).await, &local) {
            (Err(e), _) => tracing::debug!("rollout: cannot read the store: {e}"),
            (Ok(None), Some(active)) => end_here(
                &inner,
                active,
                "ended",
                Some("the rollout was taken back by another worker".into()),
            ),
            (Ok(Some(record)), Some(active)) if record.rollout.sha256 == active.rollout.sha256 => {
                if record.promoted {
                    if let Err(e) = promote_here(&inner, active).await {
                        tracing::error!("rollout: cannot promote here: {e}");
                    }
                    continue;
                }
                if record.rollout.percent != active.rollout.percent {
                    let moved = Arc::new(Active {
                        rollout: record.rollout.clone(),
                        candidate: active.candidate.clone(),
                        calls: AtomicU64::new(active.calls.load(Ordering::Relaxed)),
                    });
                    inner.install(Some(moved), "changed");
                }
            }
            (Ok(Some(record)), _) if !record.promoted => {
                if refused.as_deref() == Some(record.rollout.sha256.as_str()) {
                    continue;
                }
                let config = inner.engine.load().config().clone();
                match fetch(store.as_ref(), &live, &config, &record.rollout).await {
                    Ok(active) => {
                        inner.install(Some(active), "followed");
                        inner.emit(HostEvent::Rollout {
                            action: "followed",
                            rollout: record.rollout.clone(),
                            reason: None,
                        });
                    }
                    Err(errors) => {
                        tracing::error!(
                            plugin = %record.rollout.plugin,
                            "the fleet's rollout cannot serve here: {}",
                            errors.join("; ")
                        );
                        refused = Some(record.rollout.sha256.clone());
                    }
                }
                continue;
            }
            _ => {}
        }
        // The watchdog: the candidate's fallbacks, and a config that no longer names it.
        if let Some(active) = inner.rollout.load_full() {
            let config = inner.engine.load().config().clone();
            let why = if config.resolver.as_deref() != Some(active.rollout.plugin.as_str()) {
                Some(format!(
                    "the config's resolver is no longer `{}`",
                    active.rollout.plugin
                ))
            } else {
                verdict(&active.candidate.call_summary(), &config.rollout)
            };
            if let Some(why) = why
                && let Err(e) = abort(&inner, &active, &why).await
            {
                tracing::error!("rollout: cannot abort ({why}): {e}");
            }
        }
    }
}
