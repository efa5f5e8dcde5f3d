//! The reconciler: level-triggered, like a Kubernetes controller. It does not replay what
//! changed; it compares. Every known user records the [generation](crate::engine::Generation)
//! their menu was brought to; after any change (a plugin swapped, the config reloaded, a
//! restart), the users behind the current generation are walked, resolved again in pages (one
//! trip to the resolver per page) and brought to their menu through the background lane: a
//! call only where Telegram's list differs, at the bot's pace, behind live updates.
//!
//! A run is resumable: pages are marked as they finish, so a process killed mid-walk picks up
//! the users still behind after a restart, and a list confirmed before the kill is not sent
//! again. Users it could not bring (a failed call, a live update that took them over) stay
//! behind and are walked again after `retry_after`.
//!
//! No marker decides that a walk is not needed: every run asks the store which users are
//! behind the current generation, so a user recorded at other rules (by a worker that still
//! served them, or by an update resolved just before a swap) is always walked. A live update
//! that records a user behind wakes the reconciler itself.
//!
//! Workers sharing a store: each checks in to the store's fleet registry with the generation
//! it serves (every `heartbeat`, and before each run). While the workers serve different
//! generations (a rolling deploy half done), nobody walks: two workers would otherwise bring
//! users back and forth between the versions. Once they agree, one walk per change runs under
//! a lease (another worker takes it over if the holder dies), and the others find nobody behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use tokio::sync::broadcast;

use super::HostEvent;
use super::fleet::Membership;
use crate::manager::CommandManager;
use crate::manager::Status;
use crate::state::KnownUser;

/// How reconciliation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Known users resolved together (one trip to the resolver) and marked together.
    pub page: usize,
    /// Users whose menu needs a call brought at once (the others are settled by one read of
    /// their page); the calls still go at the bot's pace, behind live updates.
    pub concurrency: usize,
    /// When a run leaves users behind, the next run comes this much later.
    pub retry_after: Duration,
    /// How long a run's lease lasts without renewal (workers sharing a store).
    pub lease: Duration,
    /// Changes arriving within this of each other make one run.
    pub settle: Duration,
    /// How often a worker checks in to the fleet registry (a worker silent for three times
    /// this is taken for gone), and writes the known users kept during a store outage.
    pub heartbeat: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            page: 512,
            concurrency: 32,
            retry_after: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            settle: Duration::from_millis(200),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The host started (or restarted).
    Start,
    /// A plugin was swapped for a new version.
    Plugin { name: String, sha256: String },
    /// The config (or a catalog it names) changed.
    Config { file: String },
    /// An earlier run left users behind, or the fleet did not agree yet.
    Retry,
    /// A live update recorded a user at rules replaced meanwhile.
    Behind,
    /// The fleet's release `number` is serving.
    Release { number: u64 },
    /// A staged rollout started, changed or ended.
    Rollout { change: String },
    /// [`super::Host::reconcile_now`].
    Requested,
}

/// One run, as its event reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileReport {
    pub trigger: Vec<Trigger>,
    /// The generation the run brought users to (hex).
    pub generation: String,
    /// Configured lists sent again by this run.
    pub lists_applied: u64,
    pub users_examined: u64,
    /// Bot API calls the run's updates made, by method.
    pub calls: BTreeMap<&'static str, u64>,
    /// Users whose menu Telegram already showed.
    pub unchanged: u64,
    /// Users whose update failed: they stay behind and are retried.
    pub failed: u64,
    /// Users left to a live update that was running for them.
    pub deferred: u64,
    /// Users not seen for `[known_users] forget_after_days`, forgotten.
    pub forgotten: u64,
    pub duration_ms: f64,
    /// Every known user is at the generation.
    pub complete: bool,
    /// The workers sharing the store and the generation each serves, when they disagree (the
    /// run then waits for them to agree).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fleet: Vec<crate::state::Worker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl ReconcileReport {
    fn new(trigger: Vec<Trigger>, generation: u64) -> ReconcileReport {
        ReconcileReport {
            trigger,
            generation: format!("{generation:016x}"),
            lists_applied: 0,
            users_examined: 0,
            calls: BTreeMap::new(),
            unchanged: 0,
            failed: 0,
            deferred: 0,
            forgotten: 0,
            duration_ms: 0.0,
            complete: false,
            fleet: Vec::new(),
            note: None,
        }
    }

    fn call(&mut self, method: &'static str) {
        *self.calls.entry(method).or_default() += 1;
    }
}

/// What the reconciler works with, and nothing else of the host: the manager, its options,
/// where its reports go, the readiness it updates, and this worker's fleet membership.
pub(super) struct Context {
    pub(super) manager: Arc<CommandManager>,
    pub(super) options: ReconcileOptions,
    pub(super) events: broadcast::Sender<HostEvent>,
    pub(super) ready: Arc<watch::Sender<bool>>,
    pub(super) membership: Arc<Membership>,
    /// The decision log, and who decides for a user (the plugin version, a rollout's
    /// candidate for its canary), when `[audit]` is on.
    pub(super) audit: Option<Audit>,
}

/// Who decides for a user under a resolver name (a plugin version; a rollout's candidate).
pub(super) type DecidedBy =
    Arc<dyn Fn(&crate::UserContext, &str) -> Option<crate::explain::PluginRef> + Send + Sync>;

/// What the reconciler needs to write the decision log.
pub(super) struct Audit {
    pub(super) log: Arc<crate::audit::AuditLog>,
    pub(super) decided_by: DecidedBy,
    /// The rules serving now, pinned (plugin versions, not hot handles): what a run brings
    /// users to, and so what the next run moves them from.
    pub(super) pin: Arc<dyn Fn() -> Option<Arc<crate::engine::Engine>> + Send + Sync>,
}

impl Context {
    /// Checks in to the fleet registry (ttl: three heartbeats).
    async fn check_in(&self) -> Option<Vec<crate::state::Worker>> {
        self.membership
            .check_in(&self.manager, self.options.heartbeat * 3)
            .await
    }
}

/// The reconciler task: one run per burst of triggers, a retry while users stay behind, and
/// a heartbeat (fleet check-in, known users kept during a store outage written).
pub(super) async fn run(
    ctx: Context,
    mut kicks: mpsc::UnboundedReceiver<Trigger>,
    mut stop: watch::Receiver<bool>,
) {
    let options = ctx.options;
    let manager = ctx.manager.clone();
    let mut pending = vec![Trigger::Start];
    let mut retry_at: Option<tokio::time::Instant> = None;
    // The rules of the last complete run: what every known user was brought to, so what
    // the next run moves them from.
    let mut brought_to: Option<Arc<crate::engine::Engine>> = None;
    let mut heartbeat = tokio::time::interval(options.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !pending.is_empty() {
            // A burst of changes (a deploy of several plugins) makes one run.
            let settle = tokio::time::sleep(options.settle);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    Some(t) = kicks.recv() => pending.push(t),
                }
            }
            pending.dedup();
            // Pinned before the run: the rules it brings users to (a swap during the run
            // interrupts it, and then they are not adopted).
            let pinned = ctx.audit.as_ref().and_then(|a| (a.pin)());
            let report = once(
                &ctx,
                std::mem::take(&mut pending),
                &stop,
                brought_to.as_deref(),
            )
            .await;
            if report.complete && pinned.is_some() {
                brought_to = pinned;
            }
            retry_at = match (&report.complete, report.failed) {
                (true, _) => None,
                // The fleet disagrees: look again at the next heartbeat (a worker that swaps
                // runs at once on its own).
                (false, _) if !report.fleet.is_empty() => {
                    Some(tokio::time::Instant::now() + options.heartbeat)
                }
                // Only deferred users (or another worker's run): look again soon.
                (false, 0) => Some(tokio::time::Instant::now() + options.settle * 5),
                (false, _) => Some(tokio::time::Instant::now() + options.retry_after),
            };
            tracing::info!(
                examined = report.users_examined,
                failed = report.failed,
                complete = report.complete,
                "reconciliation run ended"
            );
            let _ = ctx.events.send(HostEvent::Reconciled(report));
        }
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            kick = kicks.recv() => match kick {
                Some(t) => pending.push(t),
                None => break,
            },
            _ = retry => {
                retry_at = None;
                pending.push(Trigger::Retry);
            }
            _ = manager.user_left_behind() => pending.push(Trigger::Behind),
            _ = heartbeat.tick() => {
                ctx.check_in().await;
                manager.save_unsaved().await;
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    ctx.membership.check_out(&manager).await;
}

/// One run: the configured lists (unless the host just applied them), then every known user
/// behind the current generation, page by page.
async fn once(
    ctx: &Context,
    trigger: Vec<Trigger>,
    stop: &watch::Receiver<bool>,
    brought_to: Option<&crate::engine::Engine>,
) -> ReconcileReport {
    let started = Instant::now();
    let options = ctx.options;
    let holder = ctx.membership.id.as_str();
    let manager = ctx.manager.clone();
    let engine = manager.engine();
    let generation = engine.generation();
    let mut report = ReconcileReport::new(trigger, generation);
    let known = manager.known_users();
    if let Some(known) = known {
        // The users are written first, so this walk finds them.
        manager.save_unsaved().await;
        if let Some(fleet) = ctx.check_in().await
            && fleet.iter().any(|w| w.generation != generation)
        {
            let generations: std::collections::BTreeSet<String> = fleet
                .iter()
                .map(|w| format!("{:016x}", w.generation))
                .collect();
            report.note = Some(format!(
                "the workers serve different rules ({}): waiting until they agree",
                generations.into_iter().collect::<Vec<_>>().join(", ")
            ));
            report.fleet = fleet;
            report.duration_ms = ms(started);
            return report;
        }
        match known.lease(holder, options.lease).await {
            Ok(true) => {}
            Ok(false) => {
                report.note = Some("another worker is running this reconciliation".into());
                report.duration_ms = ms(started);
                return report;
            }
            Err(e) => tracing::warn!("reconciler: cannot take the lease, running alone: {e}"),
        }
    }
    // The configured lists: start() applied them already.
    if report.trigger != [super::Trigger::Start] {
        let setup = manager.setup_all_in(crate::deliver::Lane::Background).await;
        for list in &setup.lists {
            match &list.status {
                Status::Set => report.call("setMyCommands"),
                Status::Deleted => report.call("deleteMyCommands"),
                _ => {}
            }
        }
        report.lists_applied = setup.lists.iter().filter(|l| l.status.is_applied()).count() as u64;
        report.failed += setup.failures().count() as u64;
        ctx.ready.send_replace(setup.is_complete());
    }
    let mut interrupted = None;
    if let Some(known) = known {
        let forget_after = engine.config().known_users.forget_after_days;
        let today = crate::state::today();
        let mut cursor = None;
        loop {
            if *stop.borrow() {
                interrupted = Some("the host is shutting down");
                break;
            }
            if manager.engine().generation() != generation {
                interrupted = Some("the rules changed again: a new run follows");
                break;
            }
            let (page, next) = match known
                .behind(generation, cursor.as_ref(), options.page)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!("reconciler: cannot read known users: {e}");
                    interrupted = Some("the store could not be read");
                    break;
                }
            };
            let (current, stale): (Vec<KnownUser>, Vec<KnownUser>) = page
                .into_iter()
                .partition(|u| forget_after == 0 || u.seen_day + forget_after >= today);
            for user in stale {
                if known.forget(user.key()).await.is_ok() {
                    report.forgotten += 1;
                }
            }
            let contexts: Vec<_> = current.into_iter().map(|u| u.context).collect();
            let outcomes = manager
                .reconcile_users(&contexts, options.concurrency)
                .await;
            let mut done: Vec<&crate::UserContext> = Vec::with_capacity(contexts.len());
            for (ctx, outcome) in contexts.iter().zip(&outcomes) {
                report.users_examined += 1;
                match &outcome.status {
                    Status::Unchanged => report.unchanged += 1,
                    Status::Set => report.call("setMyCommands"),
                    Status::Deleted => report.call("deleteMyCommands"),
                    Status::Superseded => {
                        report.deferred += 1;
                        continue;
                    }
                    Status::Failed(_) | Status::StoreFailed(_) | Status::NotSent(_) => {
                        report.failed += 1;
                        continue;
                    }
                }
                done.push(ctx);
            }
            if let (Some(audit), Some(before)) = (&ctx.audit, brought_to)
                && before.generation() != generation
            {
                log_decisions(audit, before, &contexts, &outcomes, &report.trigger).await;
            }
            // A user whose context changed since the page was read stays behind: their
            // newer context may have been resolved under the old rules.
            match known.mark(&done, generation).await {
                Ok(marked) => report.deferred += done.len() as u64 - marked.min(done.len() as u64),
                Err(e) => {
                    tracing::warn!("reconciler: cannot mark users (they are walked again): {e}");
                    report.failed += done.len() as u64;
                }
            }
            if let Err(e) = known.lease(holder, options.lease).await {
                tracing::warn!("reconciler: cannot renew the lease: {e}");
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        report.complete = interrupted.is_none() && report.failed == 0 && report.deferred == 0;
        if report.complete
            && let Err(e) = known.set_reconciled(generation).await
        {
            tracing::warn!("reconciler: cannot record the reconciled generation: {e}");
        }
        let _ = known.release_lease(holder).await;
    } else {
        report.complete = report.failed == 0;
    }
    report.note = interrupted.map(str::to_string);
    report.duration_ms = ms(started);
    report
}

/// One line per user of the page whose call moved them to another profile than the rules
/// they were brought to gave them (resolved again, for those users only).
async fn log_decisions(
    audit: &Audit,
    before: &crate::engine::Engine,
    contexts: &[crate::UserContext],
    outcomes: &[crate::manager::UserOutcome],
    trigger: &[Trigger],
) {
    let moved: Vec<(&crate::UserContext, &crate::manager::UserOutcome)> = contexts
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o.status, Status::Set | Status::Deleted))
        .collect();
    if moved.is_empty() {
        return;
    }
    let users: Vec<crate::UserContext> = moved.iter().map(|(c, _)| (*c).clone()).collect();
    let was = before.resolve_many(&users).await;
    let trigger = serde_json::to_value(trigger).unwrap_or_default();
    let time = crate::audit::rfc3339(std::time::SystemTime::now());
    for ((ctx, outcome), was) in moved.into_iter().zip(&was) {
        let now = &outcome.resolution;
        if was.profile == now.profile {
            continue;
        }
        audit.log.write(&crate::audit::Decision {
            time: time.clone(),
            user_id: ctx.user_id,
            chat_id: ctx.chat(),
            from: &was.profile,
            to: &now.profile,
            resolver: &now.source,
            plugin: (audit.decided_by)(ctx, &now.source),
            fallback: now.error.as_ref().map(|e| e.to_string()),
            trigger: &trigger,
        });
    }
}

fn ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}
