//! "Did you mean": the command a user most likely meant when they typed one they do not have,
//! chosen from **their own menu** (their profile, their language), never from another
//! profile's commands or another language's descriptions.
//!
//! Pure: no I/O. The rules, so that a suggestion is never a guess:
//! - the text is what a user sends: `/ordres`, `/ordres@shop_bot extra words`, `ordres`,
//!   any case; anything but `a-z 0-9 _` after the slash is no command;
//! - a command the user has is found, not "unknown" ([`Suggestion::exact`]);
//! - one edit away (insert, delete, substitute, swap two neighbours: optimal string alignment)
//!   is always suggested; two edits only when both names have at least 6 letters (`/stats`
//!   is not a typo of `/start`); a text of at least 3 letters that starts a command suggests
//!   it; nothing else (a short or unrelated text gets no suggestion);
//! - ties go to the fewer edits, then to a command the text starts (`/stat` is `/stats` for
//!   an admin, `/start` for a guest), then to one with the same letters (`/stast` is
//!   `/stats`: swapped neighbours), then to the command's place in the menu (the config's
//!   order), so the same text always gets the same answer.

use serde::Serialize;

use crate::menu::BotCommand;

/// The command a user meant (or typed exactly), with its description in their language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub command: String,
    pub description: String,
    /// The user typed a command of their menu (in another case or with the bot's name).
    pub exact: bool,
}

/// The command name in what a user sent: `/Orders@shop_bot now` -> `orders`. `None` when the
/// text names no command.
pub fn command_name(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let bare = first.strip_prefix('/').unwrap_or(first);
    let name = bare.split('@').next().unwrap_or("").to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= crate::limits::MAX_COMMAND_LEN + 2
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid.then_some(name)
}

/// The command of `menu` the user meant by `text`, if any (see the module's rules).
pub fn suggest(menu: &[BotCommand], text: &str) -> Option<Suggestion> {
    let typed = command_name(text)?;
    let found = |c: &BotCommand, exact: bool| Suggestion {
        command: c.command.clone(),
        description: c.description.clone(),
        exact,
    };
    if let Some(c) = menu.iter().find(|c| c.command == typed) {
        return Some(found(c, true));
    }
    menu.iter()
        .enumerate()
        .filter_map(|(place, c)| rank(&typed, &c.command).map(|rank| (rank, place, c)))
        .min_by_key(|(rank, place, _)| (*rank, *place))
        .map(|(_, _, c)| found(c, false))
}

/// How close `typed` is to `command` (lower is closer), or `None` when it is no likely typo.
fn rank(typed: &str, command: &str) -> Option<(usize, bool, bool)> {
    let edits = strsim::osa_distance(typed, command);
    let shorter = typed.len().min(command.len());
    let starts = typed.len() >= 3 && command.starts_with(typed);
    // `false` sorts first: a command the text starts wins a tie, then one with the same
    // letters (two swapped neighbours, the commonest slip: `/stast` is `/stats`).
    let other_letters = !same_letters(typed, command);
    match edits {
        1 => Some((1, !starts, other_letters)),
        _ if starts => Some((2, false, other_letters)),
        2 if shorter >= 6 => Some((2, true, other_letters)),
        _ => None,
    }
}

fn same_letters(a: &str, b: &str) -> bool {
    let mut a: Vec<u8> = a.bytes().collect();
    let mut b: Vec<u8> = b.bytes().collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_read_as_telegram_sends_them() {
        assert_eq!(
            command_name("/Orders@shop_bot now").as_deref(),
            Some("orders")
        );
        assert_eq!(command_name("  ordres ").as_deref(), Some("ordres"));
        assert_eq!(command_name("/"), None);
        assert_eq!(command_name(""), None);
        assert_eq!(command_name("/заказы"), None);
        assert_eq!(command_name("/a-b"), None);
        assert_eq!(command_name(&format!("/{}", "x".repeat(40))), None);
    }
}
