//! What the manager reports: a list's [`Status`], a user's [`UserOutcome`], `setup_all`'s
//! [`SetupReport`], a batch's counts.

use serde::Serialize;

use crate::deliver::{ApiError, DeliveryStats};
use crate::engine::Resolution;
use crate::menu::Menu;
use crate::scope::ListKey;
use crate::state::StoreError;

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
    /// Nothing was tried: the host is not started yet, or is shutting down.
    NotSent(String),
}

impl Status {
    pub fn is_failed(&self) -> bool {
        matches!(
            self,
            Status::Failed(_) | Status::StoreFailed(_) | Status::NotSent(_)
        )
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
            Status::NotSent(_) => "not_sent",
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
            Status::NotSent(why) => write!(f, "NOT SENT: {why}"),
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

impl BatchSummary {
    /// Adds one user's outcome to the counts.
    pub fn count(&mut self, outcome: &UserOutcome) {
        self.users += 1;
        match &outcome.status {
            Status::Unchanged => self.unchanged += 1,
            Status::Set | Status::Deleted => self.applied += 1,
            Status::Superseded => self.superseded += 1,
            Status::Failed(_) | Status::StoreFailed(_) | Status::NotSent(_) => self.failed += 1,
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
