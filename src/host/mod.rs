//! The live host: a bot's menus kept right while plugins and the config change under it.
//!
//! [`Host`] owns everything a running bot needs: the config file (watched; an invalid version
//! is rejected and the last good one keeps serving), the plugin folder (hot reload, compiled
//! cache, bounded compiles), the engine following both, delivery (pace, retries, breaker) and
//! the state store named by `[state]`, with the bot's known users. After any change that moves
//! the [generation](crate::engine::Engine::generation), the reconciler brings the configured
//! lists and every known user to it, behind live traffic (see `reconcile.rs`).
//!
//! ```no_run
//! # async fn run(api: std::sync::Arc<dyn cmdscope::BotApi>) -> anyhow::Result<()> {
//! let host = cmdscope::Host::builder("cmdscope.toml").plugins("plugins").build().await?;
//! host.start(api).await?;                     // configured lists applied, reconciling
//! let ctx = cmdscope::UserContext::private(42).flag("registered", true);
//! host.update_user(&ctx).await;               // on each message
//! host.shutdown().await;                      // in-flight updates finish
//! # Ok(()) }
//! ```
//!
//! All tasks belong to the host and stop with [`Host::shutdown`], in order: no new updates,
//! in-flight updates and the reconciler's current page finish, watchers stop, the store is
//! flushed.

mod builder;
mod config_watch;
mod event;
mod fleet;
#[cfg(feature = "redis")]
mod follow;
#[cfg(feature = "http")]
pub mod http;
mod impact;
mod recent;
mod reconcile;
mod rollback;
mod rollout;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc, watch};

use crate::deliver::{BotApi, DeliveryOptions};
use crate::engine::{Engine, Resolution};
use crate::manager::{
    CommandManager, KnownUserPolicy, ListOutcome, SetupReport, Status, UserOutcome,
};
use crate::menu::Menu;
use crate::plugin::{Compiler, LivePlugins, ReloadEvent, WatchHandle};
use crate::resolve::{Resolver, UserContext};

pub use self::builder::HostBuilder;
pub use self::event::HostEvent;
#[cfg(feature = "redis")]
pub use self::follow::ReleaseFollow;
pub use self::impact::{Candidate, ImpactError};
pub use self::recent::Recent;
pub use self::reconcile::{ReconcileOptions, ReconcileReport, Trigger};
pub use self::rollout::{RolloutError, RolloutStatus};

/// A running bot's menus, following every change of its config and plugins. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    /// This worker in its fleet: id, the release it serves, the workers it last saw.
    membership: Arc<fleet::Membership>,
    #[cfg(feature = "redis")]
    follow: Option<(ReleaseFollow, Option<PathBuf>, Compiler)>,
    config_path: PathBuf,
    live: Option<Arc<LivePlugins>>,
    /// The engine serving: the one slot, shared with the manager once started.
    engine: Arc<ArcSwap<Engine>>,
    /// What the current engine was built from (config text, catalog files), to tell a real
    /// change from a touch.
    config_bytes: Mutex<config_watch::Inputs>,
    /// The plugins a changed config waits for, while it waits.
    config_waiting: Mutex<Option<Vec<String>>>,
    reloading: Mutex<()>,
    resolver: Option<Arc<dyn Resolver>>,
    events: broadcast::Sender<HostEvent>,
    kick: mpsc::UnboundedSender<Trigger>,
    kicks: Mutex<Option<mpsc::UnboundedReceiver<Trigger>>>,
    /// The store, and with `[state]` in Redis the pace and turns the bot's workers share.
    backend: crate::backend::Opened,
    delivery: DeliveryOptions,
    reconcile: ReconcileOptions,
    running: OnceLock<Arc<CommandManager>>,
    /// True once the configured lists are applied.
    ready: Arc<watch::Sender<bool>>,
    closing: AtomicBool,
    in_flight: AtomicUsize,
    drained: tokio::sync::Notify,
    /// Tasks that finish their work on shutdown (the reconciler).
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Tasks that only pass events on; stopped at once on shutdown.
    helpers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Tells the host's tasks to stop.
    stop: watch::Sender<bool>,
    plugin_watch: Mutex<Option<WatchHandle>>,
    config_watch: Mutex<Option<config_watch::ConfigWatch>>,
    recent: Arc<Mutex<Recent>>,
    /// Held while an impact report is made (one at a time).
    impact_running: tokio::sync::Mutex<()>,
    /// The staged rollout this worker serves, if any.
    rollout: arc_swap::ArcSwapOption<rollout::Active>,
    /// The decision log (`[audit]`).
    audit: Option<Arc<crate::audit::AuditLog>>,
}

impl Inner {
    fn emit(&self, event: HostEvent) {
        let _ = self.events.send(event);
    }

    /// The one place a new engine starts serving (the manager shares the slot): new updates
    /// use it; updates in flight finish on theirs.
    fn serve_engine(&self, engine: Arc<Engine>) {
        self.engine.store(engine);
    }

    fn follows_releases(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.follow.is_some();
        #[cfg(not(feature = "redis"))]
        return false;
    }

    /// Plugin swaps reach the engine before they are announced, and kick the reconciler.
    fn follow_plugins(
        inner: &Arc<Inner>,
        live: &LivePlugins,
        mut plugin_events: broadcast::Receiver<ReloadEvent>,
    ) {
        let weak = Arc::downgrade(inner);
        live.on_swap(move |name| {
            let Some(inner) = weak.upgrade() else { return };
            inner.engine.load().on_plugin_swap(name);
            let sha256 = inner
                .live
                .as_ref()
                .and_then(|l| l.current().into_iter().find(|(n, _)| n == name))
                .map(|(_, p)| p.info().sha256.clone())
                .unwrap_or_default();
            let _ = inner.kick.send(Trigger::Plugin {
                name: name.to_string(),
                sha256,
            });
        });
        // Plugin events reach subscribers as host events; a plugin that loads may be what a
        // waiting config needs.
        let weak = Arc::downgrade(inner);
        let forward = tokio::spawn(async move {
            loop {
                match plugin_events.recv().await {
                    Ok(event) => match weak.upgrade() {
                        Some(inner) => {
                            let loaded = matches!(
                                event.event,
                                crate::plugin::ReloadKind::Loaded
                                    | crate::plugin::ReloadKind::Reloaded
                            );
                            inner.emit(HostEvent::Plugin(event));
                            let waiting = inner
                                .config_waiting
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .is_some();
                            if loaded && waiting {
                                tokio::task::spawn_blocking(move || {
                                    config_watch::reload(&inner, true)
                                });
                            }
                        }
                        None => return,
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} plugin events dropped (subscribers too slow)")
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        inner
            .helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(forward);
    }

    fn manager(&self) -> Option<&Arc<CommandManager>> {
        self.running.get()
    }
}

impl Host {
    /// Starts a builder for the config at `config` (relative to the working directory, taken
    /// once).
    pub fn builder(config: impl AsRef<Path>) -> HostBuilder {
        HostBuilder::new(config.as_ref())
    }

    /// Applies the configured lists through `api` (sending only what the store says Telegram
    /// lacks; lists of removed scopes are deleted), then keeps reconciling: every later change
    /// reaches the configured lists and every known user. Call once.
    pub async fn start(&self, api: Arc<dyn BotApi>) -> anyhow::Result<SetupReport> {
        let inner = &self.inner;
        let config = inner.engine.load().config().clone();
        let manager = inner
            .backend
            .manager(inner.engine.clone(), api, inner.delivery)
            .with_known_users(KnownUserPolicy {
                remember: config.known_users.max > 0,
                max: config.known_users.max,
            });
        let manager = Arc::new(manager);
        if inner.running.set(manager.clone()).is_err() {
            anyhow::bail!("the host is already started");
        }
        let report = manager.setup_all().await;
        inner.ready.send_replace(report.is_complete());
        let kicks = inner
            .kicks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("started once");
        let context = reconcile::Context {
            manager: manager.clone(),
            options: inner.reconcile,
            events: inner.events.clone(),
            ready: inner.ready.clone(),
            membership: inner.membership.clone(),
            audit: inner.audit.clone().map(|log| {
                let (weak, pin_weak) = (Arc::downgrade(inner), Arc::downgrade(inner));
                reconcile::Audit {
                    log,
                    decided_by: Arc::new(move |ctx: &UserContext, name: &str| {
                        weak.upgrade()?.decided_by(ctx, name)
                    }),
                    pin: Arc::new(move || pin_weak.upgrade()?.pinned_engine()),
                }
            }),
        };
        let task = tokio::spawn(reconcile::run(context, kicks, inner.stop.subscribe()));
        inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        if inner.live.is_some() {
            let task = tokio::spawn(rollout::run(inner.clone(), inner.stop.subscribe()));
            inner
                .helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        #[cfg(feature = "redis")]
        if let Some((follow, cache, compiler)) = inner.follow.clone() {
            let task = tokio::spawn(follow::run(
                inner.clone(),
                follow,
                cache,
                compiler,
                inner.stop.subscribe(),
            ));
            inner
                .helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        Ok(report)
    }

    /// Resolves the user's profile and makes their chat show its menu (see
    /// [`CommandManager::update_user`]); the context is remembered for reconciliation.
    pub async fn update_user(&self, ctx: &UserContext) -> UserOutcome {
        let Some(_guard) = self.enter() else {
            return self.refused(ctx);
        };
        let manager = self.inner.manager().expect("entered only when started");
        manager.update_user(ctx).await
    }

    /// `update_user` for many users, at most `concurrency` at a time; outcomes in input order.
    pub async fn update_users(
        &self,
        users: Vec<UserContext>,
        concurrency: usize,
    ) -> Vec<UserOutcome> {
        let Some(_guard) = self.enter() else {
            return users.iter().map(|u| self.refused(u)).collect();
        };
        let manager = self.inner.manager().expect("entered only when started");
        manager.update_users(users, concurrency).await.outcomes
    }

    /// `update_users` as a stream of `(index, outcome)` in completion order, for callers that
    /// answer as outcomes arrive instead of holding a whole batch (the HTTP API's lists): the
    /// contexts are taken from `users` as the pages need them.
    pub fn update_stream<'a>(
        &'a self,
        users: impl IntoIterator<Item = (usize, UserContext)> + 'a,
        concurrency: usize,
    ) -> impl futures_util::Stream<Item = (usize, UserOutcome)> + 'a {
        use futures_util::StreamExt;
        use futures_util::future::Either;
        match (self.enter(), self.inner.manager()) {
            (Some(in_flight), Some(manager)) => Either::Left(
                manager
                    .update_numbered(users, concurrency)
                    // The stream counts as an update in flight until it is dropped.
                    .map(move |item| {
                        let _ = &in_flight;
                        item
                    }),
            ),
            _ => Either::Right(futures_util::stream::iter(
                users.into_iter().map(|(i, u)| (i, self.refused(&u))),
            )),
        }
    }

    /// Removes the user's own lists and forgets them.
    pub async fn clear_user(&self, ctx: &UserContext) -> Vec<ListOutcome> {
        let Some(_guard) = self.enter() else {
            return Vec::new();
        };
        let manager = self.inner.manager().expect("entered only when started");
        manager.clear_user(ctx).await
    }

    /// What this user would see now: their profile and menu. No Bot API call; a resolver
    /// plugin is called (off the async threads).
    pub async fn preview(&self, ctx: &UserContext) -> (Resolution, Menu) {
        let engine = self.inner.engine.load_full();
        let resolution = engine.resolve_async(ctx).await;
        let menu = engine.menu_of(&resolution.profile, ctx);
        (resolution, menu)
    }

    /// Why this user sees the menu they see (see [`crate::explain`]): the profile and the
    /// plugin version (or fallback) that decided it, the menu, Telegram's precedence chain
    /// for them with what the store says is set at each step, and the user as the store
    /// remembers them. No Bot API call; a resolver plugin is called (off the async threads).
    pub async fn explain(
        &self,
        ctx: &UserContext,
    ) -> Result<crate::explain::Explanation, crate::state::StoreError> {
        let engine = self.inner.engine.load_full();
        let store = self.inner.backend.store.as_ref();
        crate::explain::read(&engine, store, |name| self.inner.decided_by(ctx, name), ctx).await
    }
}

impl Inner {
    /// The plugin version that decides for `ctx` under resolver `name`: a rollout's
    /// candidate for its canary users, else the version serving (from the folder, or the
    /// release), if it is a plugin.
    fn decided_by(&self, ctx: &UserContext, name: &str) -> Option<crate::explain::PluginRef> {
        if let Some(active) = self.rollout.load_full()
            && let Some(candidate) = active.decides(ctx, name)
        {
            return Some(candidate);
        }
        self.plugin_serving(name)
    }

    /// The plugin serving under `name` (from the folder, or the release), if it is one.
    fn plugin_serving(&self, name: &str) -> Option<crate::explain::PluginRef> {
        if let Some(live) = &self.live
            && let Some((_, plugin)) = live.current().into_iter().find(|(n, _)| n == name)
        {
            return Some(crate::explain::PluginRef::of(plugin.info()));
        }
        self.membership
            .serving()?
            .plugins
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| crate::explain::PluginRef {
                name: p.name,
                version: p.version,
                sha256: p.sha256,
            })
    }
}

impl Host {
    /// What the user meant by `text` (`/ordres`, `/ordres@my_bot extra`): the closest command
    /// of their own menu, or the one they typed (`exact`); `None` for no likely command. For a
    /// bot's "unknown command" answer; no Bot API call (see [`crate::suggest`]).
    pub async fn suggest(
        &self,
        ctx: &UserContext,
        text: &str,
    ) -> Option<crate::suggest::Suggestion> {
        self.inner.engine.load_full().suggest(ctx, text).await
    }

    /// Events from now on: plugin reloads and rejections, config reloads and rejections,
    /// reconciliation runs. A slow subscriber misses the oldest, never blocks the host.
    pub fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.inner.events.subscribe()
    }

    /// The last events, rejections and plugin generations (the status page's).
    pub fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.inner.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine serving now (config, menus, plan, resolver).
    pub fn engine(&self) -> Arc<Engine> {
        self.inner.engine.load_full()
    }

    /// The plugin folder, when the host has one.
    pub fn plugins(&self) -> Option<&Arc<LivePlugins>> {
        self.inner.live.as_ref()
    }

    /// The release serving, when the host follows releases.
    pub fn release(&self) -> Option<crate::release::Release> {
        self.inner.membership.serving()
    }

    /// The last release this host could not load (it keeps serving [`Host::release`]).
    pub fn refused_release(&self) -> Option<crate::state::RefusedRelease> {
        self.inner.membership.refused()
    }

    /// The workers sharing the store, as this one last checked in (empty with a store one
    /// process owns).
    pub fn fleet(&self) -> Vec<crate::state::Worker> {
        self.inner.membership.seen()
    }

    /// This worker's name in the fleet registry of a shared store.
    pub fn worker_id(&self) -> &str {
        &self.inner.membership.id
    }

    /// The manager once started (delivery stats, the store).
    pub fn manager(&self) -> Option<&Arc<CommandManager>> {
        self.inner.manager()
    }

    /// Whether the configured lists are applied (`/healthz`).
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Reads the config file (and its catalogs) again now, as a change on disk would; answers
    /// whether a new config is serving. An invalid config is a `config_rejected` event.
    pub async fn reload_config(&self) -> bool {
        if self.inner.follows_releases() {
            tracing::info!(
                "following releases: the config comes with each release, not from a file"
            );
            return false;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || config_watch::reload(&inner, true))
            .await
            .unwrap_or(false)
    }

    /// Runs a reconciliation now (as after a change), e.g. when a bot's native rules changed.
    pub fn reconcile_now(&self) {
        let _ = self.inner.kick.send(Trigger::Requested);
    }

    /// Stops the host: new updates are refused, in-flight updates and the reconciler's current
    /// page finish, the watchers stop and the store is flushed. Waits at most `grace` for
    /// in-flight work.
    pub async fn shutdown(&self) {
        self.shutdown_within(Duration::from_secs(30)).await
    }

    pub async fn shutdown_within(&self, grace: Duration) {
        let inner = &self.inner;
        if inner.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        inner.stop.send_replace(true);
        let drained = async {
            loop {
                let notified = inner.drained.notified();
                if inner.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                in_flight = inner.in_flight.load(Ordering::SeqCst),
                "shutdown: updates still running after the grace period"
            );
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("shutdown: a host task did not stop within the grace period");
            }
        }
        for helper in std::mem::take(&mut *inner.helpers.lock().unwrap_or_else(|p| p.into_inner()))
        {
            helper.abort();
        }
        inner
            .plugin_watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        inner
            .config_watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(known) = inner.backend.store.known_users()
            && let Err(e) = known.flush().await
        {
            tracing::warn!("shutdown: the known users could not be flushed: {e}");
        }
    }

    /// Counts an update in flight; `None` once shutting down (or before `start`).
    fn enter(&self) -> Option<InFlight<'_>> {
        let inner = &self.inner;
        inner.manager()?;
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        if inner.closing.load(Ordering::SeqCst) {
            drop(InFlight { inner });
            return None;
        }
        Some(InFlight { inner })
    }

    fn refused(&self, ctx: &UserContext) -> UserOutcome {
        let engine = self.inner.engine.load();
        let why = if self.inner.manager().is_none() {
            "the host is not started: call Host::start first"
        } else {
            "the host is shutting down: the update was not sent"
        };
        UserOutcome {
            user_id: ctx.user_id,
            resolution: Resolution {
                profile: engine.config().default_profile.as_str().into(),
                source: "".into(),
                error: None,
            },
            key: crate::plan::override_key(&ctx.viewer()),
            menu: Menu::from([]),
            has_override: false,
            status: Status::NotSent(why.into()),
        }
    }
}

struct InFlight<'a> {
    inner: &'a Inner,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.drained.notify_waiters();
        }
    }
}
