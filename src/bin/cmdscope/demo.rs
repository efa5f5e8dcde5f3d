//! `cmdscope demo`: the whole flow on an embedded default, no token, no network. An emulator
//! runs in process on loopback; teloxide talks real HTTP to it. The host runs as a bot's
//! would (`cmdscope::Host`), and a second version of the resolver is swapped in while it
//! runs: the users it moves follow, the others cost nothing.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cmdscope::config::{Config, Format};
use cmdscope::deliver::TeloxideApi;
use cmdscope::emulator::Emulator;
use cmdscope::host::{HostEvent, ReconcileOptions, ReconcileReport, Trigger};
use cmdscope::manager::{Status, UserOutcome};
use cmdscope::plugin::WatchOptions;
use cmdscope::resolve::UserContext;
use cmdscope::{ChatType, Host};

use super::print_commands;

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

/// Version 2 of the resolver: a registered user with 10 or more orders is premium.
const RESOLVER_V2: &[u8] = include_bytes!(concat!(
    env!("CMDSCOPE_PLUGIN_DIR"),
    "/tiered_resolver_v2.wasm"
));

/// A token of the right shape; the emulator accepts it, Telegram never sees it.
const DEMO_TOKEN: &str = "123456:demo-token-for-the-embedded-emulator";

fn sample_users() -> Vec<UserContext> {
    vec![
        UserContext::private(1001).language("en"),
        UserContext::private(1002)
            .language("ru")
            .flag("registered", true)
            .flag("orders", 12),
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
            .flag("registered", true)
            .flag("orders", 3),
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
    // The config and the plugins arrive as files, as an operator would lay them out.
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("shop.toml");
    std::fs::write(&config_path, EXAMPLE_CONFIG)?;
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir)?;
    for (file, bytes) in EXAMPLE_PLUGINS {
        std::fs::write(plugin_dir.join(file), bytes)?;
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
    let host = Host::builder(&config_path)
        .plugins(&plugin_dir)
        .compiler(cmdscope::plugin::Compiler::this_program()?)
        .watch_options(WatchOptions {
            debounce: Duration::from_millis(50),
            ..WatchOptions::default()
        })
        .reconcile_options(ReconcileOptions {
            settle: Duration::from_millis(50),
            ..ReconcileOptions::default()
        })
        .build()
        .await?;
    let mut events = host.subscribe();
    println!("plugins: tiered-resolver and shop-translator, sandboxed WebAssembly components\n");

    let api = TeloxideApi::with_api_url(DEMO_TOKEN, &running.url())?;
    let report = host.start(Arc::new(api)).await?;
    let set = report
        .lists
        .iter()
        .filter(|l| l.status == Status::Set)
        .count();
    println!(
        "setup_all: {set} of {} scope lists set, menu button {:?}",
        report.lists.len(),
        host.engine().plan().menu_button
    );
    for failure in report.failures() {
        println!("  FAILED {}: {:?}", failure.key, failure.status);
    }
    let after_setup = emulator.calls().total;
    println!("Bot API calls so far: {after_setup}\n");

    let mut mismatches = 0;
    for ctx in sample_users() {
        let outcome = host.update_user(&ctx).await;
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
        host.update_user(&ctx).await;
    }
    let repeat = emulator.calls().total - after_users;
    println!("same users again: {repeat} Bot API calls (Telegram already has every list)");

    let demoted = UserContext::private(1004).language("en");
    let outcome = host.update_user(&demoted).await;
    println!("user 1004 loses the admin flag: {}", action(&outcome));

    // A new version of the resolver, dropped into the folder while the bot runs.
    let mut users = sample_users();
    users[3] = demoted;
    let before: Vec<_> = users
        .iter()
        .map(|u| emulator.effective(&u.viewer()).1)
        .collect();
    println!(
        "\nswapping in tiered-resolver 2.0.0 while running (a registered user with 10+ orders is premium)..."
    );
    let incoming = plugin_dir.join(".tiered_resolver.wasm.incoming");
    std::fs::write(&incoming, RESOLVER_V2)?;
    std::fs::rename(&incoming, plugin_dir.join("tiered_resolver.wasm"))?;
    let run = reconciliation(&mut events).await?;
    let mut changed = 0;
    for (u, old) in users.iter().zip(&before) {
        let (_, now) = emulator.effective(&u.viewer());
        if now[..] != old[..] {
            changed += 1;
            let (resolution, menu) = host.preview(u).await;
            mismatches += usize::from(menu[..] != now[..]);
            println!(
                "user {} now sees the `{}` menu, without writing to the bot:",
                u.user_id, resolution.profile
            );
            print_commands(&now, "    ");
        }
    }
    let calls: Vec<String> = run.calls.iter().map(|(m, n)| format!("{n} {m}")).collect();
    println!(
        "reconciliation: {} known users examined, {} changed with {} ({:.0} ms); the other {} needed no call",
        run.users_examined,
        changed,
        if calls.is_empty() {
            "no call".to_string()
        } else {
            calls.join(", ")
        },
        run.duration_ms,
        run.users_examined as usize - changed
    );

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
    host.shutdown().await;
    if mismatches > 0 || !report.is_complete() || !run.complete {
        println!("demo FAILED: {mismatches} users see a menu other than their profile's");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The complete run the new resolver version started.
async fn reconciliation(
    events: &mut tokio::sync::broadcast::Receiver<HostEvent>,
) -> anyhow::Result<ReconcileReport> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut started = false;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("the new resolver version was not picked up within a minute")
            })??;
        match event {
            HostEvent::Plugin(e) if e.error.is_some() => {
                anyhow::bail!("{} rejected: {}", e.file, e.error.unwrap_or_default())
            }
            HostEvent::Reconciled(report) => {
                started |= report
                    .trigger
                    .iter()
                    .any(|t| matches!(t, Trigger::Plugin { .. }));
                if started && report.complete {
                    return Ok(report);
                }
            }
            _ => {}
        }
    }
}
