//! Applied state and the diff: what Telegram already has, per (scope, language), kept as content
//! fingerprints, and the one operation (if any) that makes a key hold what the plan wants.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::menu::{Fingerprint, Menu};
use crate::scope::ListKey;

/// What this process knows Telegram holds. A key that is absent is taken as not set: the
/// engine assumes it is the only writer of the bot's command lists.
#[derive(Debug, Default)]
pub struct AppliedState {
    lists: Mutex<HashMap<ListKey, Fingerprint>>,
}

impl AppliedState {
    pub fn new() -> Self {
        AppliedState::default()
    }

    pub fn get(&self, key: &ListKey) -> Option<Fingerprint> {
        self.lock().get(key).copied()
    }

    /// Records a confirmed `setMyCommands`.
    pub fn record_set(&self, key: &ListKey, fingerprint: Fingerprint) {
        self.lock().insert(key.clone(), fingerprint);
    }

    /// Records a confirmed `deleteMyCommands`.
    pub fn record_deleted(&self, key: &ListKey) {
        self.lock().remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, Fingerprint>> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Bot API operation that brings one key to its desired content.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Set(Menu),
    Delete,
}

/// Nothing when the key already holds what is desired. An empty desired list is no list:
/// Telegram treats `setMyCommands([])` as a delete.
pub fn diff(desired: Option<&Menu>, applied: Option<Fingerprint>) -> Option<Op> {
    match (desired.filter(|m| !m.is_empty()), applied) {
        (None, None) => None,
        (None, Some(_)) => Some(Op::Delete),
        (Some(menu), Some(fp)) if Fingerprint::of(menu) == fp => None,
        (Some(menu), _) => Some(Op::Set(menu.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::BotCommand;

    fn menu(names: &[&str]) -> Menu {
        names
            .iter()
            .map(|n| BotCommand {
                command: n.to_string(),
                description: n.to_uppercase(),
            })
            .collect()
    }

    #[test]
    fn diff_sends_only_differences() {
        let a = menu(&["start", "help"]);
        let b = menu(&["help", "start"]);
        let fa = Fingerprint::of(&a);
        assert_eq!(diff(Some(&a), Some(fa)), None);
        assert_eq!(diff(Some(&b), Some(fa)), Some(Op::Set(b.clone())));
        assert_eq!(diff(Some(&a), None), Some(Op::Set(a.clone())));
        assert_eq!(diff(None, Some(fa)), Some(Op::Delete));
        assert_eq!(diff(None, None), None);
        assert_eq!(diff(Some(&menu(&[])), Some(fa)), Some(Op::Delete));
        assert_eq!(diff(Some(&menu(&[])), None), None);
    }
}
