//! `cmdscope apply` and `sync-users` as processes against an in-process emulator: minimal calls,
//! a second run that sends nothing, bad lines, and a `kill -9` in the middle of a run.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use cmdscope::emulator::RunningEmulator;
use cmdscope::engine::Engine;
use cmdscope::state::{FileStore, StateStore};
use cmdscope::{CommandManager, UserContext};

use common::{TOKEN, emulator, shop_config, shop_plugins};

const BIN: &str = env!("CARGO_BIN_EXE_cmdscope");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml");

/// A folder with the example's two plugins.
fn plugin_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiered-resolver", "shop-translator"] {
        std::fs::copy(
            common::plugin_path(name),
            dir.path().join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    dir
}

/// Private and group users with every kind of flag and language.
fn users(ids: std::ops::Range<i64>) -> Vec<UserContext> {
    let langs = ["en", "ru", "es", "de"];
    ids.map(|id| {
        let base = if id % 5 == 0 {
            UserContext::in_group(id, -1000 - id % 3)
        } else {
            UserContext::private(id)
        };
        base.language(langs[id as usize % 4])
            .flag("registered", id % 2 == 0)
            .flag("premium", id % 7 == 0)
            .flag("admin", id % 31 == 0)
            .flag("banned", id % 43 == 0)
    })
    .collect()
}

fn write_users(path: &Path, users: &[UserContext], extra: &[&str]) {
    let mut text: String = users
        .iter()
        .map(|u| serde_json::to_string(u).unwrap() + "\n")
        .collect();
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The example config with its plugins, as the CLI builds it.
fn engine() -> Engine {
    let (resolver, translator) = shop_plugins();
    CommandManager::builder(shop_config())
        .resolver(resolver)
        .translator(translator)
        .engine()
}

/// The override keys these users need (the configured lists being in place).
fn needed_keys(engine: &Engine, users: &[UserContext]) -> HashSet<String> {
    users
        .iter()
        .filter_map(|ctx| {
            let (_, menu) = engine.menu_for(ctx);
            let target = engine.plan().user_target(&ctx.viewer(), &menu);
            target.desired.map(|_| target.key.storage_key())
        })
        .collect()
}

fn assert_all_correct(running: &RunningEmulator, engine: &Engine, users: &[UserContext]) {
    for ctx in users {
        let (_, menu) = engine.menu_for(ctx);
        let shown = running.emulator.effective(&ctx.viewer()).1;
        assert_eq!(shown[..], menu[..], "user {}", ctx.user_id);
    }
}

fn cli(args: &[&str], running: &RunningEmulator, plugins: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["--config", EXAMPLE, "--token", TOKEN, "--api-url"])
        .arg(running.url())
        .arg("--plugins")
        .arg(plugins)
        .env_remove("CMDSCOPE_BOT_TOKEN");
    cmd
}

/// Runs a CLI command to the end off the async threads (the emulator serves meanwhile).
async fn finish(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no summary; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_users_sends_what_is_needed_once_and_nothing_on_a_second_run() {
    let running = emulator().await;
    let plugins = plugin_folder();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bot.state");
    let state_arg = state.to_str().unwrap();

    let apply = finish(cli(
        &["apply", "--state", state_arg],
        &running,
        plugins.path(),
    ))
    .await;
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let apply_calls = running.emulator.calls().total;
    let again = finish(cli(
        &["apply", "--state", state_arg],
        &running,
        plugins.path(),
    ))
    .await;
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("16 lists: 0 set, 16 unchanged, 0 failed; menu button unchanged")
    );
    assert_eq!(
        running.emulator.calls().total,
        apply_calls,
        "a second apply sends nothing"
    );

    let all = users(1..301);
    let file = dir.path().join("users.jsonl");
    write_users(
        &file,
        &all,
        &["{not json", r#"{"user_id":9999,"chat_type":"channel"}"#],
    );
    let sync = |pace: &str| {
        let mut c = cli(
            &[
                "sync-users",
                "--users",
                file.to_str().unwrap(),
                "--state",
                state_arg,
                "--pace",
                pace,
                "--burst",
                "20",
            ],
            &running,
            plugins.path(),
        );
        c.stderr(Stdio::piped());
        c
    };
    let engine = engine();
    let needed = needed_keys(&engine, &all);
    assert!(needed.len() > 50 && needed.len() < 300, "{}", needed.len());

    let first = finish(sync("400")).await;
    let s = summary(&first);
    assert_eq!(s["users"], 300);
    assert_eq!(s["applied"], needed.len());
    assert_eq!(s["calls"]["setMyCommands"], needed.len());
    assert_eq!(s["calls"]["deleteMyCommands"], 0);
    assert_eq!(s["unchanged"], 300 - needed.len());
    assert_eq!(s["failed"], 0);
    assert_eq!(s["invalid_lines"], 2);
    assert_eq!(first.status.code(), Some(1), "bad lines make the run fail");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("users.jsonl:301: skipped"), "{stderr}");
    assert!(
        stderr.contains("users.jsonl:302: skipped: chat_type: unknown variant `channel`"),
        "{stderr}"
    );
    assert_all_correct(&running, &engine, &all);

    let before = running.emulator.calls().total;
    let second = finish(sync("400")).await;
    let s = summary(&second);
    assert_eq!(s["calls"]["setMyCommands"], 0);
    assert_eq!(s["unchanged"], 300);
    assert_eq!(running.emulator.calls().total, before, "0 Bot API calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_resumes_without_resending_what_was_confirmed() {
    let running = emulator().await;
    let plugins = plugin_folder();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bot.state");
    let state_arg = state.to_str().unwrap().to_string();
    let apply = finish(cli(
        &["apply", "--state", &state_arg],
        &running,
        plugins.path(),
    ))
    .await;
    assert!(apply.status.success());

    let all = users(1000..1400);
    let engine = engine();
    let needed = needed_keys(&engine, &all);
    let file = dir.path().join("users.jsonl");
    write_users(&file, &all, &[]);
    let args = |pace: &'static str| {
        let mut c = cli(
            &[
                "sync-users",
                "--users",
                file.to_str().unwrap(),
                "--state",
                &state_arg,
                "--pace",
                pace,
                "--burst",
                "1",
            ],
            &running,
            plugins.path(),
        );
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };

    // At 40 calls a second the run takes several seconds: kill it after 60 user calls.
    let start_calls = running.emulator.call_log().len();
    let mut child = args("40").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.emulator.call_log().len() < start_calls + 60 {
        assert!(Instant::now() < deadline, "sync-users made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup of any kind
    child.wait().unwrap();
    let killed_at = running.emulator.call_log().len();

    let confirmed: HashSet<String> = {
        let store = FileStore::open(&state).unwrap();
        store
            .entries()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, s)| s.pending.is_none() && s.applied.is_some())
            .map(|(k, _)| k.storage_key())
            .filter(|k| needed.contains(k))
            .collect()
    };
    assert!(
        confirmed.len() >= 50 && confirmed.len() < needed.len(),
        "{} of {}",
        confirmed.len(),
        needed.len()
    );

    let rerun = finish(args("400")).await;
    assert!(rerun.status.success());
    let resent: Vec<String> = running.emulator.call_log()[killed_at..]
        .iter()
        .filter_map(|c| c.key.clone())
        .collect();
    let twice: Vec<&String> = resent.iter().filter(|k| confirmed.contains(*k)).collect();
    assert!(twice.is_empty(), "confirmed lists sent again: {twice:?}");
    let resent: HashSet<String> = resent.into_iter().collect();
    let missing: HashSet<String> = needed.difference(&confirmed).cloned().collect();
    assert_eq!(
        resent, missing,
        "the rerun sends exactly what was not confirmed"
    );
    assert_all_correct(&running, &engine, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_while_running_and_no_log_or_span_holds_the_token() {
    let running = emulator().await;
    let plugins = plugin_folder();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.jsonl");
    write_users(&file, &users(2000..2150), &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "987654:TOPSECRET-do-not-print";
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "sync-users",
            "--config",
            EXAMPLE,
            "--token",
            secret,
            "--api-url",
        ])
        .arg(running.url())
        .arg("--plugins")
        .arg(plugins.path())
        .arg("--users")
        .arg(&file)
        .args(["--pace", "40", "--burst", "1", "--metrics"])
        .arg(format!("127.0.0.1:{port}"))
        // Ours and the HTTP stack at trace (where a URL could show); the compiler stays quiet.
        .env(
            "CMDSCOPE_LOG",
            "info,cmdscope=trace,reqwest=trace,hyper=trace,hyper_util=trace",
        )
        .env_remove("CMDSCOPE_BOT_TOKEN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // Scrape while it runs, until Bot API calls show up.
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        assert!(Instant::now() < deadline, "no Bot API series on /metrics");
        if let Ok(r) = reqwest::get(&url).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("cmdscope_bot_api_requests_total") {
                break text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for series in [
        r#"cmdscope_bot_api_requests_total{method="setMyCommands",outcome="ok"}"#,
        r#"cmdscope_user_updates_total{status="set"}"#,
        r#"cmdscope_resolutions_total{resolver="tiered-resolver",outcome="ok"}"#,
        r#"cmdscope_plugin_calls_total{plugin="tiered-resolver",version="0.1.0",outcome="ok"}"#,
        r#"cmdscope_plugin_call_seconds_count{plugin="tiered-resolver",version="0.1.0",function="resolve-batch"}"#,
        r#"cmdscope_output_cache_total{plugin="tiered-resolver",result="miss"}"#,
        "cmdscope_update_user_seconds",
        "cmdscope_menu_build_seconds",
        "cmdscope_bot_api_breaker_state",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(!metrics.contains("TOPSECRET"));
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let logged = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        logged.contains("update_user"),
        "spans are logged at trace level"
    );
    assert!(logged.contains("bot_api"), "delivery spans too");
    assert!(
        !logged.contains("TOPSECRET"),
        "the token leaked into the log"
    );
}

/// The bulk path (pages resolved in one sandbox crossing, the cache read but not filled) gives
/// exactly what the one-user path gives: 10,000 users of every kind, their calls and the menus
/// Telegram shows them, against `Engine::menu_for` user by user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_through_the_bulk_path_match_the_one_user_path() {
    let running = emulator().await;
    let plugins = plugin_folder();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    let all = users(1..10_001);
    write_users(&path, &all, &[]);
    let engine = engine();
    let needed = needed_keys(&engine, &all);
    let apply = finish(cli(&["apply"], &running, plugins.path())).await;
    assert!(apply.status.success());
    let before = running
        .emulator
        .calls()
        .by_method
        .get("setMyCommands")
        .copied()
        .unwrap_or(0);
    let out = finish(cli(
        &[
            "sync-users",
            "--users",
            path.to_str().unwrap(),
            "--pace",
            "100000",
            "--burst",
            "1000",
            "--concurrency",
            "32",
        ],
        &running,
        plugins.path(),
    ))
    .await;
    let s = summary(&out);
    assert_eq!(s["users"], 10_000);
    assert_eq!(s["failed"], 0);
    assert_eq!(
        s["applied"],
        needed.len(),
        "one call per user whose menu differs"
    );
    let calls = running.emulator.calls().by_method["setMyCommands"] - before;
    assert_eq!(calls as usize, needed.len());
    let sent: HashSet<String> = running
        .emulator
        .call_log()
        .iter()
        .filter(|c| c.method == "setMyCommands")
        .filter_map(|c| c.key.clone())
        .collect();
    assert!(needed.is_subset(&sent));
    assert_all_correct(&running, &engine, &all);
}
