//! The facade bots use: [`CommandManager`] with `setup_all`, `update_user` and `clear_user`.
//!
//! It wires the flow together (context -> profile -> menu -> desired state -> diff -> Bot API)
//! and reports every outcome; it holds no logic of its own beyond that wiring.

use std::sync::Arc;

use crate::config::{Config, MenuButton};
use crate::deliver::{ApiError, BotApi};
pub use crate::engine::{Engine, EngineBuilder, Resolution};
use crate::menu::{Fingerprint, Menu};
use crate::plan::{Plan, override_key};
use crate::resolve::UserContext;
use crate::scope::ListKey;
use crate::sync::{AppliedState, Op, diff};

/// What happened to one list.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Telegram already had it: no call made.
    Unchanged,
    /// `setMyCommands` succeeded.
    Set,
    /// `deleteMyCommands` succeeded.
    Deleted,
    /// The call failed; the Bot API's reason.
    Failed(ApiError),
}

impl Status {
    pub fn is_failed(&self) -> bool {
        matches!(self, Status::Failed(_))
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

/// Keeps a bot's command menus right: the configured scopes and each user's own.
pub struct CommandManager {
    engine: Arc<Engine>,
    api: Arc<dyn BotApi>,
    state: AppliedState,
}

impl CommandManager {
    /// Starts a builder. Without a resolver everyone gets `default_profile`; without a
    /// translator descriptions come from the config alone.
    pub fn builder(config: Config) -> EngineBuilder {
        Engine::builder(config)
    }

    pub fn new(engine: Arc<Engine>, api: Arc<dyn BotApi>) -> CommandManager {
        CommandManager {
            engine,
            api,
            state: AppliedState::new(),
        }
    }

    /// Config, menus, plan and resolver: everything that needs no Bot API.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    pub fn plan(&self) -> &Plan {
        self.engine.plan()
    }

    pub fn applied_state(&self) -> &AppliedState {
        &self.state
    }

    /// Applies every configured list and the menu button. Lists Telegram already has (as far
    /// as this manager knows) are not sent again; one failing list does not stop the rest.
    pub async fn setup_all(&self) -> SetupReport {
        let plan = self.engine.plan();
        let mut lists = Vec::with_capacity(plan.lists.len());
        for planned in &plan.lists {
            let status = self.bring(&planned.key, Some(&planned.commands)).await;
            lists.push(ListOutcome {
                key: planned.key.clone(),
                status,
            });
        }
        let menu_button = self.set_menu_button(plan.menu_button).await;
        SetupReport { lists, menu_button }
    }

    /// Resolves the user's profile and makes their chat show its menu: an override of their
    /// own when their menu differs from the inherited one, none when it does not.
    pub async fn update_user(&self, ctx: &UserContext) -> UserOutcome {
        let resolution = self.engine.resolve_async(ctx).await;
        let menu = self.engine.menu_of(&resolution.profile, ctx);
        let plan = self.engine.plan();
        let target = plan.user_target(&ctx.viewer(), &menu);
        // An override is the user's own list, not a configured list at the same key.
        let has_override = target
            .desired
            .as_ref()
            .is_some_and(|d| plan.get(&target.key).is_none_or(|c| c.commands != *d));
        let status = self.bring(&target.key, target.desired.as_ref()).await;
        UserOutcome {
            user_id: ctx.user_id,
            resolution,
            key: target.key,
            menu,
            has_override,
            status,
        }
    }

    /// Removes what `update_user` set for this user: the override without a language and any
    /// per-language list at the same scope, so every language is covered. A list the config
    /// itself sets at that key is restored instead.
    pub async fn clear_user(&self, ctx: &UserContext) -> Vec<ListOutcome> {
        let base = override_key(&ctx.viewer());
        let keys = std::iter::once(None)
            .chain(self.config().languages.iter().copied().map(Some))
            .map(|lang| ListKey::new(base.scope.clone(), lang));
        let mut out = Vec::new();
        for key in keys {
            let status = match self.engine.plan().get(&key) {
                Some(configured) => self.bring(&key, Some(&configured.commands)).await,
                None => self.send(&key, Op::Delete).await,
            };
            out.push(ListOutcome { key, status });
        }
        out
    }

    /// Brings one key to its desired content, sending nothing when it already has it.
    async fn bring(&self, key: &ListKey, desired: Option<&Menu>) -> Status {
        match diff(desired, self.state.get(key)) {
            None => Status::Unchanged,
            Some(op) => self.send(key, op).await,
        }
    }

    /// Sends one operation and records it as applied once Telegram confirms it.
    async fn send(&self, key: &ListKey, op: Op) -> Status {
        let result = match &op {
            Op::Set(menu) => self.api.set_my_commands(key, menu).await,
            Op::Delete => self.api.delete_my_commands(key).await,
        };
        match (result, op) {
            (Ok(()), Op::Set(menu)) => {
                self.state.record_set(key, Fingerprint::of(&menu));
                Status::Set
            }
            (Ok(()), Op::Delete) => {
                self.state.record_deleted(key);
                Status::Deleted
            }
            (Err(e), _) => {
                tracing::warn!(list = %key, "Bot API call failed: {e}");
                Status::Failed(e)
            }
        }
    }

    async fn set_menu_button(&self, button: MenuButton) -> Status {
        match self.api.set_default_menu_button(button).await {
            Ok(()) => Status::Set,
            Err(e) => {
                tracing::warn!("setChatMenuButton failed: {e}");
                Status::Failed(e)
            }
        }
    }
}
