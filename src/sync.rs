//! The diff: the one operation (if any) that makes a key hold what the plan wants, given what
//! the state store knows Telegram holds.

use crate::menu::{Fingerprint, Menu};
use crate::state::{Intent, KeyState};

/// The Bot API operation that brings one key to its desired content.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Set(Menu),
    Delete,
}

impl Op {
    /// The Bot API method this operation calls.
    pub fn method(&self) -> &'static str {
        match self {
            Op::Set(_) => "setMyCommands",
            Op::Delete => "deleteMyCommands",
        }
    }

    /// What the state store records for this operation.
    pub fn intent(&self) -> Intent {
        match self {
            Op::Set(menu) => Intent::Set(Fingerprint::of(menu)),
            Op::Delete => Intent::Delete,
        }
    }
}

/// Nothing when the key is known to hold what is desired. An empty desired list is no list:
/// Telegram treats `setMyCommands([])` as a delete. An uncertain key (a call began and was never
/// confirmed) is always sent.
pub fn diff(desired: Option<&Menu>, state: &KeyState) -> Option<Op> {
    let desired = desired.filter(|m| !m.is_empty());
    if state.holds(desired.map(|m| Fingerprint::of(m))) {
        return None;
    }
    Some(match desired {
        Some(menu) => Op::Set(menu.clone()),
        None => Op::Delete,
    })
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

    fn applied(fp: Option<Fingerprint>) -> KeyState {
        KeyState {
            applied: fp,
            pending: None,
        }
    }

    #[test]
    fn diff_sends_only_differences() {
        let a = menu(&["start", "help"]);
        let b = menu(&["help", "start"]);
        let fa = Some(Fingerprint::of(&a));
        assert_eq!(diff(Some(&a), &applied(fa)), None);
        assert_eq!(diff(Some(&b), &applied(fa)), Some(Op::Set(b.clone())));
        assert_eq!(diff(Some(&a), &applied(None)), Some(Op::Set(a.clone())));
        assert_eq!(diff(None, &applied(fa)), Some(Op::Delete));
        assert_eq!(diff(None, &applied(None)), None);
        assert_eq!(diff(Some(&menu(&[])), &applied(fa)), Some(Op::Delete));
        assert_eq!(diff(Some(&menu(&[])), &applied(None)), None);
    }

    #[test]
    fn an_uncertain_key_is_sent_even_when_the_fingerprint_matches() {
        let a = menu(&["start"]);
        let fa = Fingerprint::of(&a);
        let uncertain = KeyState {
            applied: Some(fa),
            pending: Some(Intent::Delete),
        };
        assert_eq!(diff(Some(&a), &uncertain), Some(Op::Set(a.clone())));
        let uncertain_none = KeyState {
            applied: None,
            pending: Some(Intent::Set(fa)),
        };
        assert_eq!(diff(None, &uncertain_none), Some(Op::Delete));
    }
}
