//! Telegram's rules for command lists, in one place: the config validator, the menu builder
//! and the emulator all check against these, so they can never disagree.

/// Longest command name.
pub const MAX_COMMAND_LEN: usize = 32;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Most commands in one list.
pub const MAX_COMMANDS: usize = 100;

/// Why a command name is not valid, or `None` when it is.
/// Telegram allows 1-32 characters of `a-z`, `0-9` and `_`.
pub fn command_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a command name cannot be empty".into());
    }
    if name.len() > MAX_COMMAND_LEN {
        return Some(format!(
            "`{name}` is {} characters long; Telegram allows at most {MAX_COMMAND_LEN}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Some(format!(
            "`{name}` contains `{bad}`; Telegram allows only lowercase letters a-z, digits and `_`"
        ));
    }
    None
}

/// A name Telegram would accept, offered as a fix (never applied silently).
pub fn suggested_command_name(name: &str) -> String {
    let mut out: String = name
        .trim_start_matches('/')
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(MAX_COMMAND_LEN);
    if out.is_empty() {
        "command".into()
    } else {
        out
    }
}

/// Why a description is not valid, or `None` when it is.
pub fn description_problem(description: &str) -> Option<String> {
    let chars = description.chars().count();
    if description.trim().is_empty() {
        Some("the description is empty".into())
    } else if chars > MAX_DESCRIPTION_CHARS {
        Some(format!(
            "the description is {chars} characters long; Telegram allows at most {MAX_DESCRIPTION_CHARS}"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_follow_telegram() {
        assert!(command_name_problem("start").is_none());
        assert!(command_name_problem("2fa").is_none());
        assert!(command_name_problem("a_b_9").is_none());
        assert!(command_name_problem(&"a".repeat(32)).is_none());
        assert!(
            command_name_problem(&"a".repeat(33))
                .unwrap()
                .contains("at most 32")
        );
        assert!(command_name_problem("").is_some());
        assert!(command_name_problem("Start").unwrap().contains("`S`"));
        assert!(command_name_problem("my-cmd").is_some());
        assert!(command_name_problem("/start").is_some());
        assert!(command_name_problem("старт").is_some());
    }

    #[test]
    fn suggestions_are_valid_names() {
        for bad in ["Start", "my-cmd", "/help", "Über", "", &"x".repeat(40)] {
            let fixed = suggested_command_name(bad);
            assert!(command_name_problem(&fixed).is_none(), "{bad} -> {fixed}");
        }
        assert_eq!(suggested_command_name("My-Cmd"), "my_cmd");
    }

    #[test]
    fn descriptions_are_1_to_256_chars() {
        assert!(description_problem("ok").is_none());
        assert!(description_problem(&"я".repeat(256)).is_none());
        assert!(
            description_problem(&"я".repeat(257))
                .unwrap()
                .contains("257")
        );
        assert!(description_problem("").is_some());
        assert!(description_problem("   ").is_some());
    }
}
