//! `cmdscope demo`: the whole flow on an embedded default, no token, no network. An emulator
//! runs in process on loopback; teloxide talks real HTTP to it.

use std::process::ExitCode;
use std::sync::Arc;

use cmdscope::config::{Config, Format};
use cmdscope::deliver::TeloxideApi;
use cmdscope::emulator::Emulator;
use cmdscope::manager::{Status, UserOutcome};
use cmdscope::resolve::UserContext;
use cmdscope::{ChatType, CommandManager};

use super::{engine_for, print_commands};

/// The example, embedded so the demo needs no files: config and the two example plugins
/// (built from `plugins/` by the build script).
const EXAMPLE_CONFIG: &str = include_str!("../../../examples/shop.toml");
const EXAMPLE_PLUGINS: [(&str, &[u8]); 2] = [
    (
        "tiered_resolver.wasm",
        include_bytes!(concat!(
            env!("CMDSCOPE_PLUGIN_DIR"),
            "/tiered_resolver.wasm"
        )),
    ),
    (
        "shop_translator.wasm",
        include_bytes!(concat!(
            env!("CMDSCOPE_PLUGIN_DIR"),
            "/shop_translator.wasm"
        )),
    ),
];

/// A token of the right shape; the emulator accepts it, Telegram never sees it.
const DEMO_TOKEN: &str = "123456:demo-token-for-the-embedded-emulator";

fn sample_users() -> Vec<UserContext> {
    vec![
        UserContext::private(1001).language("en"),
        UserContext::private(1002)
            .language("ru")
            .flag("registered", true),
        UserContext::private(1003)
            .language("es")
            .flag("registered", true)
            .flag("premium", true),
        UserContext::private(1004)
            .language("en")
            .flag("admin", true),
        UserContext::private(1005)
            .language("ru")
            .flag("registered", true)
            .flag("banned", true),
        UserContext::private(1006)
            .language("pt-br")
            .flag("registered", true),
        UserContext::in_group(1007, -100_200).language("en"),
        UserContext::in_group(1008, -100_200)
            .language("ru")
            .admin(true)
            .flag("admin", true),
        UserContext::in_group(1009, -100_200)
            .language("en")
            .flag("banned", true),
    ]
}

fn describe(ctx: &UserContext) -> String {
    let chat = match ctx.chat_type {
        ChatType::Private => "private chat".to_string(),
        _ => format!(
            "group {}{}",
            ctx.chat(),
            if ctx.is_chat_admin { " (admin)" } else { "" }
        ),
    };
    let flags: Vec<String> = ctx.flags.keys().cloned().collect();
    format!(
        "user {} in {chat}, language {}, flags [{}]",
        ctx.user_id,
        ctx.language_code.as_deref().unwrap_or("?"),
        flags.join(", ")
    )
}

fn action(outcome: &UserOutcome) -> String {
    match &outcome.status {
        Status::Unchanged if outcome.has_override => "override already in place".into(),
        Status::Unchanged => "inherits its scope's menu: no call needed".into(),
        Status::Set => format!("override set at {}", outcome.key),
        Status::Deleted => format!("override removed at {}", outcome.key),
        other => other.to_string(),
    }
}

pub(crate) async fn run() -> anyhow::Result<ExitCode> {
    let config = Config::parse(EXAMPLE_CONFIG, Format::Toml, "examples/shop.toml")
        .map_err(|e| anyhow::anyhow!("embedded example config is invalid:\n{e}"))?
        .config;
    // Plugins arrive as files in a folder, as an operator would drop them.
    let plugin_dir = tempfile::tempdir()?;
    for (file, bytes) in EXAMPLE_PLUGINS {
        std::fs::write(plugin_dir.path().join(file), bytes)?;
    }
    let running = Emulator::new()
        .require_token(DEMO_TOKEN)
        .start("127.0.0.1:0".parse()?)
        .await?;
    let emulator = running.emulator.clone();
    println!(
        "cmdscope demo: Bot API emulator on {} (in process, no token, no network)",
        running.url()
    );
    println!(
        "config: examples/shop.toml ({} commands, {} profiles, languages en, ru, es)",
        config.commands.len(),
        config.profiles.len()
    );
    let engine = engine_for(config, Some(plugin_dir.path()))?;
    println!("plugins: tiered-resolver and shop-translator, sandboxed WebAssembly components\n");

    let api = TeloxideApi::with_api_url(DEMO_TOKEN, &running.url())?;
    let manager = CommandManager::new(Arc::new(engine), Arc::new(api));

    let report = manager.setup_all().await;
    let set = report
        .lists
        .iter()
        .filter(|l| l.status == Status::Set)
        .count();
    println!(
        "setup_all: {set} of {} scope lists set, menu button {:?}",
        report.lists.len(),
        manager.plan().menu_button
    );
    for failure in report.failures() {
        println!("  FAILED {}: {:?}", failure.key, failure.status);
    }
    let after_setup = emulator.calls().total;
    println!("Bot API calls so far: {after_setup}\n");

    let mut mismatches = 0;
    for ctx in sample_users() {
        let outcome = manager.update_user(&ctx).await;
        let (_, shown) = emulator.effective(&ctx.viewer());
        let ok = shown[..] == outcome.menu[..];
        mismatches += usize::from(!ok);
        println!("{}", describe(&ctx));
        println!(
            "  -> profile `{}` ({}); {}",
            outcome.resolution.profile,
            outcome.resolution.source,
            action(&outcome)
        );
        println!(
            "  Telegram shows{}:",
            if ok {
                ""
            } else {
                " (MISMATCH with the profile's menu!)"
            }
        );
        print_commands(&shown, "    ");
    }
    let after_users = emulator.calls().total;
    println!(
        "\n{} users updated with {} Bot API calls (only users whose menu differs from their scope's get an override)",
        sample_users().len(),
        after_users - after_setup
    );

    for ctx in sample_users() {
        manager.update_user(&ctx).await;
    }
    let repeat = emulator.calls().total - after_users;
    println!("same users again: {repeat} Bot API calls (Telegram already has every list)");

    let demoted = UserContext::private(1004).language("en");
    let outcome = manager.update_user(&demoted).await;
    println!("user 1004 loses the admin flag: {}", action(&outcome));

    let calls = emulator.calls();
    let by_method: Vec<String> = calls
        .by_method
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    println!(
        "\ntotal Bot API calls: {} ({})",
        calls.total,
        by_method.join(", ")
    );
    if mismatches > 0 || !report.is_complete() {
        println!("demo FAILED: {mismatches} users see a menu other than their profile's");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
