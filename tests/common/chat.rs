//! A user's side of a bot under test: write to it through the emulator, and wait for the menu
//! Telegram would show them.

use std::time::{Duration, Instant};

use cmdscope::emulator::{RunningEmulator, UserMessage};
use cmdscope::{BotCommand, UserContext};

/// User `user_id` writes `text` to the bot in their private chat (language `en`).
pub fn say(running: &RunningEmulator, user_id: i64, text: &str) {
    running.emulator.push_message(&UserMessage {
        user_id,
        text: text.into(),
        chat_id: None,
        chat_type: None,
        language_code: Some("en".into()),
        first_name: None,
    });
}

/// Waits (up to a minute) until `user` sees a menu satisfying `want`, in their private chat.
pub async fn sees(
    running: &RunningEmulator,
    user: i64,
    want: impl Fn(&[BotCommand]) -> bool,
) -> Vec<BotCommand> {
    let viewer = UserContext::private(user).language("en").viewer();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let menu = running.emulator.effective(&viewer).1;
        if want(&menu) {
            return menu;
        }
        assert!(Instant::now() < deadline, "user {user} still sees {menu:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn has(menu: &[BotCommand], command: &str) -> bool {
    menu.iter().any(|c| c.command == command)
}

/// The chats whose list the emulator saw set since `from` (an index into its call log).
pub fn chats_set_since(running: &RunningEmulator, from: usize) -> std::collections::BTreeSet<i64> {
    running.emulator.call_log()[from..]
        .iter()
        .filter(|c| c.method == "setMyCommands")
        .filter_map(|c| {
            // The log names a list as `<scope as JSON>|<language>`.
            let key = c.key.as_ref()?.split('|').next()?;
            let scope: serde_json::Value = serde_json::from_str(key).ok()?;
            scope["chat_id"].as_i64()
        })
        .collect()
}
