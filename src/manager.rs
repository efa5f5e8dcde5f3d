//! The facade bots use: [`CommandManager`] with `setup_all`, `update_user` and `clear_user`.
//!
//! It wires the flow together (context -> profile -> menu -> desired state -> diff -> Bot API)
//! and reports every outcome; it holds no logic of its own beyond that wiring.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;

use crate::coalesce::{Coalescer, SharedTurns};
use crate::config::{Config, MenuButton};
use crate::deliver::{ApiError, BotApi, Delivery, DeliveryOptions, DeliveryStats};
pub use crate::engine::{Engine, EngineBuilder, Resolution};
use crate::menu::Menu;
use crate::plan::{Plan, override_key};
use crate::resolve::UserContext;
use crate::scope::{ChatRef, ListKey, Scope};
use crate::state::{KeyState, MemoryStore, StateStore, StoreError};
use crate::sync::{Op, diff};

/// What happened to one list.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Telegram already had it: no call made.
    Unchanged,
    /// `setMyCommands` succeeded.
    Set,
    /// `deleteMyCommands` succeeded.
    Deleted,
    /// A newer update for the same list arrived while this one waited; that one carries the
    /// latest menu and reports the call.
    Superseded,
    /// The call failed for good (after the retries the policy allows); the Bot API's reason.
    Failed(ApiError),
    /// The state store failed, so nothing was sent (sending without recording could lose
    /// track of what Telegram holds).
    StoreFailed(StoreError),
}

impl Status {
    pub fn is_failed(&self) -> bool {
        matches!(self, Status::Failed(_) | Status::StoreFailed(_))
    }

    /// A short name for metrics and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Unchanged => "unchanged",
            Status::Set => "set",
            Status::Deleted => "deleted",
            Status::Superseded => "superseded",
            Status::Failed(_) => "failed",
            Status::StoreFailed(_) => "store_failed",
        }
    }

    /// Whether a Bot API call changed the list.
    pub fn is_applied(&self) -> bool {
        matches!(self, Status::Set | Status::Deleted)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Unchanged => f.write_str("unchanged"),
            Status::Set => f.write_str("set"),
            Status::Deleted => f.write_str("deleted"),
            Status::Superseded => f.write_str("superseded by a newer update"),
            Status::Failed(e) => write!(f, "FAILED: {e}"),
            Status::StoreFailed(e) => write!(f, "FAILED: {e}"),
        }
    }
}

/// The outcome of `update_user`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserOutcome {
    pub user_id: i64,
    pub resolution: Resolution,
    /// The user's own list key (private chat or group membership).
    pub key: ListKey,
    /// The menu the user should now see.
    pub menu: Menu,
    /// Whether the user needs an override of their own (their menu differs from the inherited one).
    pub has_override: bool,
    pub status: Status,
}

/// The outcome of one list of `setup_all` or `clear_user`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListOutcome {
    pub key: ListKey,
    pub status: Status,
}

/// The outcome of `setup_all`: every list and the menu button, applied or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupReport {
    pub lists: Vec<ListOutcome>,
    pub menu_button: Status,
}

impl SetupReport {
    pub fn failures(&self) -> impl Iterator<Item = &ListOutcome> {
        self.lists.iter().filter(|l| l.status.is_failed())
    }

    pub fn is_complete(&self) -> bool {
        self.failures().next().is_none() && !self.menu_button.is_failed()
    }
}

/// Counts of one batch, as `cmdscope sync-users` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub users: usize,
    /// Bot API requests made while the batch ran, by method (retries included).
    pub calls: std::collections::BTreeMap<&'static str, u64>,
    pub unchanged: usize,
    pub applied: usize,
    /// Overtaken by a later update for the same list in the same batch.
    pub superseded: usize,
    pub failed: usize,
}

/// The outcome of `update_users`: one outcome per user, in input order, and the counts.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub outcomes: Vec<UserOutcome>,
    pub summary: BatchSummary,
}

/// Keeps a bot's command menus right: the configured scopes and each user's own.
pub struct CommandManager {
    engine: Arc<Engine>,
    delivery: Arc<Delivery>,
    store: Arc<dyn StateStore>,
    turns: Coalescer,
    /// Turns shared with the bot's other workers, if any.
    shared: Option<Arc<dyn SharedTurns>>,
}

impl CommandManager {
    /// Starts a builder. Without a resolver everyone gets `default_profile`; without a
    /// translator descriptions come from the config alone.
    pub fn builder(config: Config) -> EngineBuilder {
        Engine::builder(config)
    }

    /// A manager with the default pace and retries and state kept in memory.
    pub fn new(engine: Arc<Engine>, api: Arc<dyn BotApi>) -> CommandManager {
        let delivery = Delivery::new(api, DeliveryOptions::default());
        CommandManager::with_parts(engine, Arc::new(delivery), Arc::new(MemoryStore::new()))
    }

    /// A manager delivering through `delivery` and remembering what Telegram holds in `store`
    /// (a [`crate::state::FileStore`] survives restarts).
    pub fn with_parts(
        engine: Arc<Engine>,
        delivery: Arc<Delivery>,
        store: Arc<dyn StateStore>,
    ) -> CommandManager {
        CommandManager {
            engine,
            delivery,
            store,
            turns: Coalescer::default(),
            shared: None,
        }
    }

    /// Takes turns on each list with the bot's other workers too (builder style): two workers
    /// updating one chat at once end in one call with the latest menu.
    pub fn with_shared_turns(mut self, shared: Arc<dyn SharedTurns>) -> CommandManager {
        self.shared = Some(shared);
        self
    }

    /// Replaces the state store (builder style).
    pub fn with_store(mut self, store: Arc<dyn StateStore>) -> CommandManager {
        self.store = store;
        self
    }

    /// Replaces pace, retry and breaker settings (builder style).
    pub fn with_delivery_options(mut self, options: DeliveryOptions) -> CommandManager {
        self.delivery = Arc::new(Delivery::new(self.delivery.api().clone(), options));
        self
    }

    /// Config, menus, plan and resolver: everything that needs no Bot API.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// The configured lists, as of the engine's latest menu build.
    pub fn plan(&self) -> Arc<Plan> {
        self.engine.plan()
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub fn delivery(&self) -> &Arc<Delivery> {
        &self.delivery
    }

    pub fn delivery_stats(&self) -> DeliveryStats {
        self.delivery.stats()
    }

    /// Lists with an update running or waiting for its turn.
    pub fn queue_depth(&self) -> usize {
        self.turns.busy_keys()
    }

    /// Applies every configured list and the menu button. Lists Telegram already has (as far
    /// as the state store knows) are not sent again; lists the store knows were set by an
    /// earlier config and this one no longer has are deleted; one failing list does not stop
    /// the rest.
    pub async fn setup_all(&self) -> SetupReport {
        let plan = self.engine.plan();
        let mut lists = Vec::with_capacity(plan.lists.len());
        for planned in &plan.lists {
            let status = self
                .bring(&planned.key, Some(&planned.commands), Force::No)
                .await;
            lists.push(ListOutcome {
                key: planned.key.clone(),
                status,
            });
        }
        // Lists a previous config set that this one no longer has.
        match self.store.entries().await {
            Ok(entries) => {
                for (key, _) in entries {
                    if only_config_sets(&key) && plan.get(&key).is_none() {
                        let status = self.bring(&key, None, Force::No).await;
                        lists.push(ListOutcome { key, status });
                    }
                }
            }
            Err(e) => tracing::warn!("cannot look for lists of removed scopes: {e}"),
        }
        let menu_button = self.set_menu_button(plan.menu_button).await;
        SetupReport { lists, menu_button }
    }

    /// Resolves the user's profile and makes their chat show its menu: an override of their
    /// own when their menu differs from the inherited one, none when it does not.
    pub async fn update_user(&self, ctx: &UserContext) -> UserOutcome {
        let span = tracing::debug_span!("update_user", user_id = ctx.user_id, chat_id = ctx.chat());
        self.update_user_in(ctx).instrument(span).await
    }

    async fn update_user_in(&self, ctx: &UserContext) -> UserOutcome {
        let started = std::time::Instant::now();
        let resolution = self.engine.resolve_async(ctx).await;
        // Menu and plan from one build, even if a translator swap rebuilds them meanwhile.
        let built = self.engine.built();
        let menu = built.menu_of(self.config(), &resolution.profile, ctx);
        let plan = &built.plan;
        let target = plan.user_target(&ctx.viewer(), &menu);
        // An override is the user's own list, not a configured list at the same key.
        let has_override = target
            .desired
            .as_ref()
            .is_some_and(|d| plan.get(&target.key).is_none_or(|c| c.commands != *d));
        let status = self
            .bring(&target.key, target.desired.as_ref(), Force::No)
            .await;
        crate::metrics::user_update(status.label(), started.elapsed());
        UserOutcome {
            user_id: ctx.user_id,
            resolution,
            key: target.key,
            menu,
            has_override,
            status,
        }
    }

    /// `update_user` for many users, at most `concurrency` at a time (the pace still holds
    /// for the whole bot). Outcomes come back in input order.
    pub async fn update_users(
        &self,
        users: impl IntoIterator<Item = UserContext>,
        concurrency: usize,
    ) -> BatchReport {
        let before = self.delivery.stats();
        let mut indexed: Vec<(usize, UserOutcome)> =
            futures_util::stream::iter(users.into_iter().enumerate())
                .map(|(i, ctx)| async move { (i, self.update_user(&ctx).await) })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        indexed.sort_by_key(|(i, _)| *i);
        let mut summary = BatchSummary::default();
        let outcomes: Vec<UserOutcome> = indexed
            .into_iter()
            .map(|(_, o)| {
                summary.count(&o);
                o
            })
            .collect();
        summary.count_calls(&before, &self.delivery.stats());
        BatchReport { outcomes, summary }
    }

    /// `update_users` as a stream of outcomes in completion order, holding none of them: for
    /// batches too large to keep every outcome.
    pub fn update_stream<'a>(
        &'a self,
        users: impl IntoIterator<Item = UserContext> + 'a,
        concurrency: usize,
    ) -> impl futures_util::Stream<Item = UserOutcome> + 'a {
        futures_util::stream::iter(users)
            .map(move |ctx| async move { self.update_user(&ctx).await })
            .buffer_unordered(concurrency.max(1))
    }

    /// Removes what `update_user` set for this user: the override without a language and any
    /// per-language list at the same scope, so every language is covered. A list the config
    /// itself sets at that key is restored instead.
    pub async fn clear_user(&self, ctx: &UserContext) -> Vec<ListOutcome> {
        let base = override_key(&ctx.viewer());
        let keys = std::iter::once(None)
            .chain(self.config().languages.iter().copied().map(Some))
            .map(|lang| ListKey::new(base.scope.clone(), lang));
        let plan = self.engine.plan();
        let mut out = Vec::new();
        for key in keys {
            let configured = plan.get(&key).map(|c| &c.commands);
            let status = self.bring(&key, configured, Force::DeleteUnknown).await;
            out.push(ListOutcome { key, status });
        }
        out
    }

    /// Brings one key to its desired content: nothing when the store knows Telegram has it;
    /// else, in the key's turn (this process's, then the workers' shared one), the intent is
    /// recorded, the call made and the result recorded.
    async fn bring(&self, key: &ListKey, desired: Option<&Menu>, force: Force) -> Status {
        let turn = self.turns.turn(key).await;
        crate::metrics::queue_depth(self.turns.busy_keys());
        if turn.superseded() {
            return Status::Superseded;
        }
        let shared = match &self.shared {
            Some(s) => s.enter(key).await.map(|t| (s, t)),
            None => None,
        };
        let superseded = || async {
            if turn.superseded() {
                return true;
            }
            match &shared {
                Some((s, t)) => s.superseded(t).await,
                None => false,
            }
        };
        let status = self.bring_in_turn(key, desired, force, superseded).await;
        if let Some((s, t)) = shared {
            s.leave(t).await;
        }
        status
    }

    async fn bring_in_turn<F, Fut>(
        &self,
        key: &ListKey,
        desired: Option<&Menu>,
        force: Force,
        superseded: F,
    ) -> Status
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if superseded().await {
            return Status::Superseded;
        }
        let op = match self.store.load(key).await {
            Ok(state) => {
                let unknown = state == KeyState::default();
                match diff(desired, &state) {
                    Some(op) => op,
                    // An explicit clear also deletes lists this store never saw (set before a
                    // restart with the memory store, or by another tool).
                    None if force == Force::DeleteUnknown && desired.is_none() && unknown => {
                        Op::Delete
                    }
                    None => return Status::Unchanged,
                }
            }
            Err(e) => return Status::StoreFailed(e),
        };
        // Wait for the pace before committing to this menu: a newer one may arrive meanwhile.
        let permit = self.delivery.ready().await;
        if superseded().await {
            return Status::Superseded;
        }
        let intent = op.intent();
        let ticket = match self.store.begin(key, intent).await {
            Ok(ticket) => ticket,
            Err(e) => return Status::StoreFailed(e),
        };
        if let Err(e) = self.delivery.apply(permit, key, &op).await {
            // The intent stays unconfirmed, so the next update sends this key again.
            return Status::Failed(e);
        }
        if let Err(e) = self.store.confirm(key, intent, ticket).await {
            return Status::StoreFailed(e);
        }
        match op {
            Op::Set(_) => Status::Set,
            Op::Delete => Status::Deleted,
        }
    }

    /// Sets the bot's default menu button unless the store knows Telegram has it.
    async fn set_menu_button(&self, button: MenuButton) -> Status {
        let name = button.name();
        match self.store.menu_button().await {
            Ok(Some(applied)) if applied == name => return Status::Unchanged,
            Ok(_) => {}
            Err(e) => return Status::StoreFailed(e),
        }
        // Unknown while the call is out, so a crash mid-call leads to sending it again.
        if let Err(e) = self.store.record_menu_button(None).await {
            return Status::StoreFailed(e);
        }
        if let Err(e) = self.delivery.set_default_menu_button(button).await {
            return Status::Failed(e);
        }
        match self.store.record_menu_button(Some(name)).await {
            Ok(()) => Status::Set,
            Err(e) => Status::StoreFailed(e),
        }
    }
}

/// Whether only a config (never a user override) sets lists at this key: overrides live at
/// `chat` scopes of private chats (positive ids) and at `chat_member` scopes.
fn only_config_sets(key: &ListKey) -> bool {
    match &key.scope {
        Scope::Chat { chat_id } => !matches!(chat_id, ChatRef::Id(id) if *id > 0),
        Scope::ChatMember { .. } => false,
        _ => true,
    }
}

/// Whether `bring` sends what the store says Telegram already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Force {
    No,
    DeleteUnknown,
}

impl BatchSummary {
    /// Adds one user's outcome to the counts.
    pub fn count(&mut self, outcome: &UserOutcome) {
        self.users += 1;
        match &outcome.status {
            Status::Unchanged => self.unchanged += 1,
            Status::Set | Status::Deleted => self.applied += 1,
            Status::Superseded => self.superseded += 1,
            Status::Failed(_) | Status::StoreFailed(_) => self.failed += 1,
        }
    }

    /// Sets `calls` to the requests made between two snapshots of the delivery's counters.
    pub fn count_calls(&mut self, before: &DeliveryStats, after: &DeliveryStats) {
        self.calls = after
            .calls
            .iter()
            .map(|(m, n)| (*m, n - before.calls.get(m).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
    }
}
