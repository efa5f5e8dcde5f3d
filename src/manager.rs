//! The facade bots use: [`CommandManager`] with `setup_all`, `update_user` and `clear_user`.
//!
//! It wires the flow together (context -> profile -> menu -> desired state -> diff -> Bot API)
//! and reports every outcome; it holds no logic of its own beyond that wiring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use tracing::Instrument;

mod known;
mod outcome;

pub use self::outcome::{BatchReport, BatchSummary, ListOutcome, SetupReport, Status, UserOutcome};
use crate::coalesce::{Coalescer, SharedTurns};
use crate::config::{Config, MenuButton};
use crate::deliver::{BotApi, Delivery, DeliveryOptions, DeliveryStats, Lane};
pub use crate::engine::{Engine, EngineBuilder, Resolution};
use crate::menu::Menu;
use crate::plan::{Plan, override_key};
use crate::resolve::UserContext;
use crate::scope::{ChatRef, ListKey, Scope};
use crate::state::{KeyState, MemoryStore, StateStore, UserKey};
use crate::sync::{Op, diff};

impl EngineBuilder {
    /// The engine with a Bot API to deliver through (defined here: the engine knows nothing
    /// of delivery).
    pub fn build(self, api: Arc<dyn BotApi>) -> CommandManager {
        CommandManager::new(Arc::new(self.engine()), api)
    }
}

/// Keeps a bot's command menus right: the configured scopes and each user's own.
pub struct CommandManager {
    /// Replaced as a whole when the config changes; an update uses one engine throughout. A
    /// host shares this slot ([`CommandManager::with_engine_slot`]): one place holds the
    /// engine serving.
    engine: Arc<ArcSwap<Engine>>,
    delivery: Arc<Delivery>,
    store: Arc<dyn StateStore>,
    turns: Coalescer,
    /// Turns shared with the bot's other workers, if any.
    shared: Option<Arc<dyn SharedTurns>>,
    known: KnownUserPolicy,
    /// Known users in the store, counted from the first remembered one.
    known_count: AtomicU64,
    known_counted: AtomicBool,
    /// Users the store could not take (it was away), written when it answers again.
    unsaved: crate::state::Unsaved,
    /// Woken when a live update records a user behind the rules serving now (an update
    /// resolved just before a swap), so the reconciler walks them without waiting for a change.
    left_behind: tokio::sync::Notify,
}

/// Whether updates remember each user's context (for reconciliation), and how many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownUserPolicy {
    pub remember: bool,
    /// Users beyond this many are updated but not remembered.
    pub max: u64,
}

impl Default for KnownUserPolicy {
    fn default() -> Self {
        KnownUserPolicy {
            remember: false,
            max: 10_000_000,
        }
    }
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
        CommandManager::with_engine_slot(Arc::new(ArcSwap::new(engine)), delivery, store)
    }

    /// [`with_parts`](Self::with_parts) following an engine slot the caller swaps (a host's):
    /// whatever is stored there is what the next update uses.
    pub fn with_engine_slot(
        engine: Arc<ArcSwap<Engine>>,
        delivery: Arc<Delivery>,
        store: Arc<dyn StateStore>,
    ) -> CommandManager {
        CommandManager {
            engine,
            delivery,
            store,
            turns: Coalescer::default(),
            shared: None,
            known: KnownUserPolicy::default(),
            known_count: AtomicU64::new(0),
            known_counted: AtomicBool::new(false),
            unsaved: crate::state::Unsaved::new(crate::state::unsaved::DEFAULT_CAPACITY),
            left_behind: tokio::sync::Notify::new(),
        }
    }

    /// Remembers each updated user's context and the generation their menu was brought to, in
    /// the state store (builder style), so a later change of rules reaches them without a
    /// message of theirs ([`crate::host::Host`] does this).
    pub fn with_known_users(mut self, policy: KnownUserPolicy) -> CommandManager {
        self.known = policy;
        self
    }

    /// Updates from now on use `engine` (a new config); updates in flight finish on theirs.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        self.engine.store(engine);
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
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// What the user meant by a command they do not have, from their own menu (see
    /// [`crate::suggest`]); no Bot API call.
    pub async fn suggest(
        &self,
        ctx: &UserContext,
        text: &str,
    ) -> Option<crate::suggest::Suggestion> {
        self.engine().suggest(ctx, text).await
    }

    /// The configured lists, as of the engine's latest menu build.
    pub fn plan(&self) -> Arc<Plan> {
        self.engine.load().plan()
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
        self.setup_all_in(Lane::Live).await
    }

    /// `setup_all` in `lane` (the reconciler's runs go in the background lane).
    pub(crate) async fn setup_all_in(&self, lane: Lane) -> SetupReport {
        let plan = self.engine.load().plan();
        let mut lists = Vec::with_capacity(plan.lists.len());
        for planned in &plan.lists {
            let status = self
                .bring(
                    &planned.key,
                    Some(&planned.commands),
                    Force::No,
                    lane,
                    Whose::Nobody,
                )
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
                        let status = self.bring(&key, None, Force::No, lane, Whose::Nobody).await;
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
        self.update_in(ctx, Lane::Live).instrument(span).await
    }

    /// Brings known users to the current rules, in the background lane: one resolution trip
    /// for all of them, then at most `concurrency` lists at a time. A user with a live update
    /// running or waiting is left to it (`Superseded`), and a live update arriving meanwhile
    /// supersedes this one. Outcomes come back in input order; the caller marks generations.
    pub async fn reconcile_users(
        &self,
        users: &[UserContext],
        concurrency: usize,
    ) -> Vec<UserOutcome> {
        let started = std::time::Instant::now();
        let engine = self.engine.load_full();
        let generation = engine.generation();
        let resolutions = engine.resolve_many(users).await;
        let planned: Vec<UserPlan> = users
            .iter()
            .zip(resolutions)
            .map(|(ctx, resolution)| self.plan_user(ctx, resolution, &engine))
            .collect();
        // Most users of a run need no call: one read of the whole page tells which (a round
        // trip per page, not per user, on Redis), and only the others take turns. A user whose
        // list is pending elsewhere does not hold its menu, so it takes the full path.
        let keys: Vec<&ListKey> = planned.iter().map(|p| &p.target.key).collect();
        let held: Vec<bool> = match self.store.load_many(&keys).await {
            Ok(states) => planned
                .iter()
                .zip(&states)
                .map(|(p, state)| diff(p.target.desired.as_ref(), state).is_none())
                .collect(),
            Err(e) => {
                tracing::warn!("reconciler: cannot read the page's lists, checking each: {e}");
                vec![false; planned.len()]
            }
        };
        let mut outcomes: Vec<Option<UserOutcome>> = Vec::with_capacity(users.len());
        let mut due = Vec::new();
        for ((ctx, planned), held) in users.iter().zip(planned).zip(held) {
            if held {
                crate::metrics::user_update(Status::Unchanged.label(), started);
                outcomes.push(Some(UserOutcome {
                    user_id: ctx.user_id,
                    resolution: planned.resolution,
                    key: planned.target.key,
                    menu: planned.menu,
                    has_override: planned.has_override,
                    status: Status::Unchanged,
                }));
            } else {
                due.push((outcomes.len(), ctx, planned));
                outcomes.push(None);
            }
        }
        // A window of at most `concurrency` updates, in order. A plain loop rather than stream
        // adapters over closures, whose lifetimes rustc cannot prove `Send` here.
        let mut window = futures_util::stream::FuturesOrdered::new();
        let mut next = due.into_iter();
        loop {
            while window.len() < concurrency.max(1) {
                let Some((at, ctx, planned)) = next.next() else {
                    break;
                };
                let started = std::time::Instant::now();
                window.push_back(async move {
                    // The rules changed while this page waited for its turn (a rollout
                    // aborted, a new version): its menu is no longer the one to send. The
                    // user stays behind and the next run brings them to the new rules.
                    if self.engine.load().generation() != generation {
                        return (at, planned.superseded(ctx.user_id));
                    }
                    let outcome = self
                        .apply_planned(ctx, planned, Lane::Background, Whose::Known(ctx), started)
                        .await;
                    (at, outcome)
                });
            }
            match window.next().await {
                Some((at, outcome)) => outcomes[at] = Some(outcome),
                None => break,
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every user has an outcome"))
            .collect()
    }

    async fn update_in(&self, ctx: &UserContext, lane: Lane) -> UserOutcome {
        let started = std::time::Instant::now();
        let engine = self.engine.load_full();
        // Read before resolving: if the rules change during this update, the user is recorded
        // behind the new generation and looked at again.
        let generation = engine.generation();
        let resolution = engine.resolve_async(ctx).await;
        let whose = match lane {
            Lane::Live => Whose::Live(ctx, generation),
            Lane::Background => Whose::Known(ctx),
        };
        self.apply(ctx, resolution, &engine, lane, whose, started)
            .await
    }

    /// The user's menu under `resolution` and the key it lives at, from one build of menus and
    /// plan (even if a translator swap rebuilds them meanwhile).
    fn plan_user(&self, ctx: &UserContext, resolution: Resolution, engine: &Engine) -> UserPlan {
        let built = engine.built();
        let menu = built.menu_of(engine.config(), &resolution.profile, ctx);
        let plan = &built.plan;
        let target = plan.user_target(&ctx.viewer(), &menu);
        // An override is the user's own list, not a configured list at the same key.
        let has_override = target
            .desired
            .as_ref()
            .is_some_and(|d| plan.get(&target.key).is_none_or(|c| c.commands != *d));
        UserPlan {
            resolution,
            menu,
            target,
            has_override,
        }
    }

    /// Brings the user's own key to the menu of `resolution`.
    async fn apply(
        &self,
        ctx: &UserContext,
        resolution: Resolution,
        engine: &Engine,
        lane: Lane,
        whose: Whose<'_>,
        started: std::time::Instant,
    ) -> UserOutcome {
        let planned = self.plan_user(ctx, resolution, engine);
        self.apply_planned(ctx, planned, lane, whose, started).await
    }

    async fn apply_planned(
        &self,
        ctx: &UserContext,
        planned: UserPlan,
        lane: Lane,
        whose: Whose<'_>,
        started: std::time::Instant,
    ) -> UserOutcome {
        let UserPlan {
            resolution,
            menu,
            target,
            has_override,
        } = planned;
        let status = self
            .bring(&target.key, target.desired.as_ref(), Force::No, lane, whose)
            .await;
        crate::metrics::user_update(status.label(), started);
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
        let mut indexed: Vec<(usize, UserOutcome)> = self
            .paged(users.into_iter().enumerate(), concurrency)
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
    /// batches of any size, in memory that does not grow with it.
    pub fn update_stream<'a>(
        &'a self,
        users: impl IntoIterator<Item = UserContext> + 'a,
        concurrency: usize,
    ) -> impl futures_util::Stream<Item = UserOutcome> + 'a {
        self.paged(users.into_iter().map(|u| (0, u)), concurrency)
            .map(|(_, outcome)| outcome)
    }

    /// `update_stream` with each user's position carried through: `(index, outcome)` in
    /// completion order, so a caller can answer in input order while holding only the
    /// outcomes that arrived early (the HTTP API's lists).
    pub fn update_numbered<'a>(
        &'a self,
        users: impl IntoIterator<Item = (usize, UserContext)> + 'a,
        concurrency: usize,
    ) -> impl futures_util::Stream<Item = (usize, UserOutcome)> + 'a {
        self.paged(users.into_iter(), concurrency)
    }

    /// The bulk path: users are resolved a page at a time (one trip to the resolver, one
    /// sandbox crossing with interface 0.2), the next page while this one's lists are brought,
    /// at most `concurrency` at a time. Items carry an index through.
    fn paged<'a>(
        &'a self,
        users: impl Iterator<Item = (usize, UserContext)> + 'a,
        concurrency: usize,
    ) -> impl futures_util::Stream<Item = (usize, UserOutcome)> + 'a {
        futures_util::stream::iter(users)
            .chunks(PAGE)
            .map(move |page| self.resolve_page(page))
            .buffered(2)
            .flat_map(futures_util::stream::iter)
            .map(move |(i, ctx, resolved)| self.apply_resolved(i, ctx, resolved))
            .buffer_unordered(concurrency.max(1))
    }

    async fn resolve_page(
        &self,
        page: Vec<(usize, UserContext)>,
    ) -> Vec<(usize, UserContext, Resolved)> {
        let started = std::time::Instant::now();
        let engine = self.engine.load_full();
        let generation = engine.generation();
        let (indices, contexts): (Vec<usize>, Vec<UserContext>) = page.into_iter().unzip();
        let resolutions = engine.resolve_many(&contexts).await;
        indices
            .into_iter()
            .zip(contexts)
            .zip(resolutions)
            .map(|((i, ctx), resolution)| {
                (
                    i,
                    ctx,
                    Resolved {
                        resolution,
                        engine: engine.clone(),
                        generation,
                        started,
                    },
                )
            })
            .collect()
    }

    async fn apply_resolved(
        &self,
        i: usize,
        ctx: UserContext,
        r: Resolved,
    ) -> (usize, UserOutcome) {
        let whose = Whose::Live(&ctx, r.generation);
        let span = tracing::debug_span!("update_user", user_id = ctx.user_id, chat_id = ctx.chat());
        let outcome = self
            .apply(&ctx, r.resolution, &r.engine, Lane::Live, whose, r.started)
            .instrument(span)
            .await;
        (i, outcome)
    }

    /// Removes what `update_user` set for this user: the override without a language and any
    /// per-language list at the same scope, so every language is covered. A list the config
    /// itself sets at that key is restored instead.
    pub async fn clear_user(&self, ctx: &UserContext) -> Vec<ListOutcome> {
        let base = override_key(&ctx.viewer());
        let engine = self.engine.load_full();
        let keys = std::iter::once(None)
            .chain(engine.config().languages.iter().copied().map(Some))
            .map(|lang| ListKey::new(base.scope.clone(), lang));
        let plan = engine.plan();
        let mut out = Vec::new();
        for key in keys {
            let configured = plan.get(&key).map(|c| &c.commands);
            let status = self
                .bring(
                    &key,
                    configured,
                    Force::DeleteUnknown,
                    Lane::Live,
                    Whose::Nobody,
                )
                .await;
            out.push(ListOutcome { key, status });
        }
        // A cleared user is no longer reconciled.
        if let Some(known) = self.known_users()
            && let Err(e) = known.forget(UserKey::of(ctx)).await
        {
            tracing::warn!(user_id = ctx.user_id, "cannot forget the user: {e}");
        }
        out
    }

    /// Brings one key to its desired content: nothing when the store knows Telegram has it;
    /// else, in the key's turn (this process's, then the workers' shared one), the intent is
    /// recorded, the call made and the result recorded.
    async fn bring(
        &self,
        key: &ListKey,
        desired: Option<&Menu>,
        force: Force,
        lane: Lane,
        whose: Whose<'_>,
    ) -> Status {
        // Background work never waits behind, or supersedes, a live update of the same key.
        let turn = match lane {
            Lane::Live => self.turns.turn(key).await,
            Lane::Background => match self.turns.try_turn(key) {
                Some(turn) => turn,
                None => return Status::Superseded,
            },
        };
        crate::metrics::queue_depth(self.turns.busy_keys());
        if turn.superseded() {
            return Status::Superseded;
        }
        let shared = match (&self.shared, lane) {
            (Some(s), Lane::Live) => s.enter(key).await.map(|t| (s, t)),
            (Some(s), Lane::Background) => match s.enter_if_idle(key).await {
                Ok(t) => t.map(|t| (s, t)),
                Err(()) => return Status::Superseded,
            },
            (None, _) => None,
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
        let status = self
            .bring_in_turn(key, desired, force, lane, whose, superseded)
            .await;
        // Still in the key's turn: a reconciler taking the turn next reads this context.
        if let Whose::Live(ctx, generation) = whose {
            self.remember(ctx, generation, &status).await;
        }
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
        lane: Lane,
        whose: Whose<'_>,
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
        // A call is due. From a page read earlier, it stands down if the user wrote meanwhile.
        if let Whose::Known(ctx) = whose
            && self.stale(ctx).await
        {
            return Status::Superseded;
        }
        // Wait for the pace before committing to this menu: a newer one may arrive meanwhile.
        let permit = self.delivery.ready_in(lane).await;
        if superseded().await {
            return Status::Superseded;
        }
        let intent = op.intent();
        let ticket = match self.store.begin(key, intent).await {
            // A worker on a newer release wrote this list: its menu stands.
            Ok(crate::state::OVERTAKEN) => return Status::Superseded,
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

/// Users resolved together on bulk paths.
pub const PAGE: usize = 256;

/// A user's resolution on a bulk path, with the engine and generation it came from.
struct Resolved {
    resolution: Resolution,
    engine: Arc<Engine>,
    generation: u64,
    started: std::time::Instant,
}

/// What an update brings a user's chat to.
struct UserPlan {
    resolution: Resolution,
    menu: Menu,
    target: crate::plan::UserTarget,
    has_override: bool,
}

impl UserPlan {
    /// The outcome of a plan not sent: newer rules supersede it.
    fn superseded(self, user_id: i64) -> UserOutcome {
        UserOutcome {
            user_id,
            resolution: self.resolution,
            key: self.target.key,
            menu: self.menu,
            has_override: self.has_override,
            status: Status::Superseded,
        }
    }
}

/// Whose update a `bring` is, for the known users.
#[derive(Clone, Copy)]
enum Whose<'a> {
    /// The configured lists, or a clear.
    Nobody,
    /// A live update: its context is remembered, inside the key's turn, at the generation
    /// it used.
    Live(&'a UserContext, u64),
    /// A reconciliation from a page of known users read earlier.
    Known(&'a UserContext),
}

/// Whether `bring` sends what the store says Telegram already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Force {
    No,
    DeleteUnknown,
}
