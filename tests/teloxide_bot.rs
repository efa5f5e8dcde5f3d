//! A real teloxide bot (`examples/teloxide_bot.rs`, a `Dispatcher` long-polling the emulator)
//! end to end: a user's message changes their menu, and a new resolver version renamed into
//! the plugin folder changes it again with no further message.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmdscope::UserContext;

use common::chat::{has, say, sees};
use common::process::Killed;
use common::{TOKEN, emulator, plugin_bytes, shop_folder};

/// `target/<profile>/examples/teloxide_bot`, built by `cargo test` with the other examples.
fn example() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join("teloxide_bot")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_teloxide_bot_follows_messages_and_a_resolver_swap_without_a_restart() {
    let binary = example();
    assert!(
        binary.exists(),
        "{} is built by `cargo test`",
        binary.display()
    );
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());

    let mut child = Command::new(&binary)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ])
        .args(["--token", TOKEN, "--api-url", &running.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let bot = Killed(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let ready = lines.next().unwrap().unwrap();
    assert!(
        ready.starts_with("ready: 16 configured lists, 0 failed"),
        "{ready}"
    );

    // A guest registers: their menu becomes the registered one.
    sees(&running, 7, |m| has(m, "catalog") && !has(m, "cart")).await;
    say(&running, 7, "/register");
    sees(&running, 7, |m| has(m, "cart") && !has(m, "deals")).await;
    // Ten orders: still a registered user under version 1's rules.
    for _ in 0..10 {
        say(&running, 7, "/buy");
    }
    say(&running, 8, "/register");
    sees(&running, 8, |m| has(m, "cart")).await;
    // The bot answered each message.
    let deadline = Instant::now() + Duration::from_secs(60);
    while running
        .emulator
        .sent_messages()
        .iter()
        .filter(|m| m.chat_id == 7)
        .count()
        < 11
    {
        assert!(Instant::now() < deadline, "the bot did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = running.emulator.sent_messages();
    assert!(
        last.iter()
            .any(|m| m.chat_id == 7 && m.text.starts_with("/buy: your menu is `user`")),
        "{last:?}"
    );
    let calls_before = running.emulator.call_log().len();

    // Version 2 of the resolver: 10 orders make a registered user premium. No message now.
    let tmp = plugins.join(".tiered.incoming");
    std::fs::write(&tmp, plugin_bytes("tiered-resolver-v2")).unwrap();
    std::fs::rename(&tmp, plugins.join("tiered.wasm")).unwrap();
    let premium = sees(&running, 7, |m| has(m, "deals")).await;
    assert!(has(&premium, "cart"));
    // User 8 (no orders) kept their menu, and got no call.
    assert!(has(
        &running
            .emulator
            .effective(&UserContext::private(8).language("en").viewer())
            .1,
        "cart"
    ));
    let later: Vec<String> = running.emulator.call_log()[calls_before..]
        .iter()
        .filter(|c| c.method == "setMyCommands")
        .filter_map(|c| c.key.clone())
        .collect();
    assert_eq!(later.len(), 1, "one call, for user 7: {later:?}");
    assert!(later[0].contains("\"chat_id\":7"), "{later:?}");

    // SIGTERM: the dispatcher and the host stop gracefully.
    let pid = bot.0.id();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let stopped = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(stopped, "stopped");
}
