//! Several workers of one bot sharing state, pace and turns through a real redis-server.
//!
//! The server: `CMDSCOPE_TEST_REDIS_URL` (set by `.ci/run`), else one these tests start with
//! `redis-server` on a free port. Without either, the tests fail when `CI` or
//! `CMDSCOPE_REQUIRE_REDIS` is set and are skipped (saying so) otherwise.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmdscope::config::{Config, Format};
use cmdscope::deliver::{Delivery, DeliveryOptions, HttpBotApi, RetryPolicy};
use cmdscope::emulator::RunningEmulator;
use cmdscope::menu::Fingerprint;
use cmdscope::redis::{RedisGate, RedisShared, RedisStore, RedisTurns};
use cmdscope::resolve::FlagRules;
use cmdscope::state::{Intent, StateStore};
use cmdscope::{CommandManager, ListKey, Scope, UserContext};

use common::redis::{RedisServer, prefix, redis, unavailable};
use common::{TOKEN, emulator, shop_folder};

fn config() -> Config {
    let text = r#"
default_profile = "guest"
languages = ["en"]
[commands.start]
descriptions = { en = "Start" }
[commands.help]
descriptions = { en = "Help" }
[commands.ban]
descriptions = { en = "Ban a user" }
[commands.tips]
descriptions = { en = "Tips for helpers" }
[profiles.guest]
include = ["start", "help"]
[profiles.admin]
include = ["start", "help", "ban"]
[profiles.helper]
include = ["start", "help", "tips"]
[[scopes]]
scope = "default"
profile = "guest"
"#;
    Config::parse(text, Format::Toml, "workers.toml")
        .unwrap()
        .config
}

/// One worker: its own Redis connection, HTTP client and manager, sharing everything else
/// through Redis.
fn worker(
    running: &RunningEmulator,
    redis_url: &str,
    prefix: &str,
    pace: f64,
    burst: u32,
) -> CommandManager {
    let shared = RedisShared::connect(redis_url, prefix).unwrap();
    let api = Arc::new(HttpBotApi::new(TOKEN, &running.url()).unwrap());
    let options = DeliveryOptions {
        pace,
        burst,
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        ..DeliveryOptions::default()
    };
    let gate = Arc::new(RedisGate::new(shared.clone(), pace, burst));
    let delivery = Delivery::with_gate(api, gate, options);
    let engine = Arc::new(
        CommandManager::builder(config())
            .resolver(Arc::new(FlagRules::new(
                [("admin", "admin"), ("helper", "helper")],
                "guest",
            )))
            .engine(),
    );
    CommandManager::with_parts(
        engine,
        Arc::new(delivery),
        Arc::new(RedisStore::new(shared.clone())),
    )
    .with_shared_turns(Arc::new(RedisTurns::new(shared)))
}

fn user(id: i64) -> UserContext {
    UserContext::private(id)
        .language("en")
        .flag("admin", id % 10 == 0)
        .flag("helper", id % 10 == 5)
}

fn profile_of(ctx: &UserContext) -> &'static str {
    if ctx.is("admin") {
        "admin"
    } else if ctx.is("helper") {
        "helper"
    } else {
        "guest"
    }
}

fn assert_all_correct(running: &RunningEmulator, m: &CommandManager, users: &[UserContext]) {
    for ctx in users {
        let want = m.engine().menu_of(profile_of(ctx), ctx);
        let shown = running.emulator.effective(&ctx.viewer()).1;
        assert_eq!(shown[..], want[..], "user {}", ctx.user_id);
    }
}

/// Runs `n` workers, each on its own runtime and thread, each updating `users` (its own
/// order), and returns the summaries.
fn run_workers(
    running: &RunningEmulator,
    url: &str,
    prefix: &str,
    n: usize,
    users: &[UserContext],
    pace: f64,
    burst: u32,
) -> Vec<cmdscope::manager::BatchSummary> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|w| {
                scope.spawn(move || {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let m = worker(running, url, prefix, pace, burst);
                        let mut mine = users.to_vec();
                        // Every worker meets the users in its own order.
                        let mut rng = fastrand::Rng::with_seed(w as u64);
                        rng.shuffle(&mut mine);
                        m.update_users(mine, 16).await.summary
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[tokio::test]
async fn a_worker_on_an_older_release_never_writes_over_a_newer_ones_list() {
    let Some(redis) = redis() else { return };
    let prefix = prefix("releases-order");
    let (new, old) = (
        RedisShared::connect(&redis.url, &prefix).unwrap(),
        RedisShared::connect(&redis.url, &prefix).unwrap(),
    );
    new.serve_release(2);
    old.serve_release(1);
    let (new_store, old_store) = (RedisStore::new(new), RedisStore::new(old.clone()));
    let key = ListKey::new(
        Scope::Chat {
            chat_id: cmdscope::scope::ChatRef::Id(7),
        },
        None,
    );
    let t = new_store
        .begin(&key, Intent::Set(Fingerprint(2)))
        .await
        .unwrap();
    new_store
        .confirm(&key, Intent::Set(Fingerprint(2)), t)
        .await
        .unwrap();
    // The worker still on release 1 is refused: nothing would be sent.
    let refused = old_store
        .begin(&key, Intent::Set(Fingerprint(1)))
        .await
        .unwrap();
    assert_eq!(refused, cmdscope::state::OVERTAKEN);
    assert!(
        old_store
            .load(&key)
            .await
            .unwrap()
            .holds(Some(Fingerprint(2)))
    );
    // Once it serves release 2 (or a later one) it writes as before.
    old.serve_release(2);
    let t = old_store
        .begin(&key, Intent::Set(Fingerprint(3)))
        .await
        .unwrap();
    assert_ne!(t, cmdscope::state::OVERTAKEN);
    old_store
        .confirm(&key, Intent::Set(Fingerprint(3)), t)
        .await
        .unwrap();
    assert!(
        old_store
            .load(&key)
            .await
            .unwrap()
            .holds(Some(Fingerprint(3)))
    );
}

#[tokio::test]
async fn the_redis_store_keeps_the_contract_and_refuses_overtaken_confirmations() {
    let Some(redis) = redis() else { return };
    let url = redis.url.clone();
    let store = RedisStore::new(RedisShared::connect(&url, &prefix("store")).unwrap());
    let key = ListKey::new(Scope::AllPrivateChats, None);
    let (a, b) = (Fingerprint(1), Fingerprint(2));
    assert_eq!(store.load(&key).await.unwrap(), Default::default());
    let t = store.begin(&key, Intent::Set(a)).await.unwrap();
    assert!(
        !store.load(&key).await.unwrap().holds(Some(a)),
        "uncertain until confirmed"
    );
    store.confirm(&key, Intent::Set(a), t).await.unwrap();
    assert!(store.load(&key).await.unwrap().holds(Some(a)));

    // Worker 1 begins B, worker 2 begins A after it; worker 1's late confirmation of B must
    // not record B over what worker 2 is doing.
    let t1 = store.begin(&key, Intent::Set(b)).await.unwrap();
    let t2 = store.begin(&key, Intent::Set(a)).await.unwrap();
    store.confirm(&key, Intent::Set(b), t1).await.unwrap();
    let state = store.load(&key).await.unwrap();
    assert_eq!(state.pending, Some(Intent::Set(a)), "still uncertain");
    store.confirm(&key, Intent::Set(a), t2).await.unwrap();
    assert!(store.load(&key).await.unwrap().holds(Some(a)));

    let t = store.begin(&key, Intent::Delete).await.unwrap();
    store.confirm(&key, Intent::Delete, t).await.unwrap();
    assert!(store.load(&key).await.unwrap().holds(None));
    store.record_menu_button(Some("commands")).await.unwrap();
    assert_eq!(
        store.menu_button().await.unwrap().as_deref(),
        Some("commands")
    );
}

#[tokio::test]
async fn the_redis_store_keeps_the_general_and_known_users_contracts() {
    let Some(redis) = redis() else { return };
    let store = RedisStore::new(RedisShared::connect(&redis.url, &prefix("contracts")).unwrap());
    cmdscope::state::conformance::store_contract(&store).await;
    cmdscope::state::conformance::known_users_contract(&store).await;
    // Leases: one holder at a time, renewable by its holder, free once released.
    let users = store.known_users().unwrap();
    let ttl = Duration::from_secs(5);
    assert!(users.lease("worker-a", ttl).await.unwrap());
    assert!(!users.lease("worker-b", ttl).await.unwrap());
    assert!(users.lease("worker-a", ttl).await.unwrap(), "renewed");
    users.release_lease("worker-a").await.unwrap();
    assert!(users.lease("worker-b", ttl).await.unwrap());
}

#[test]
fn four_workers_on_2000_overlapping_users_make_exactly_the_needed_calls_at_the_pace() {
    let Some(redis) = redis() else { return };
    let url = redis.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(emulator());
    let prefix = prefix("four");
    let (pace, burst) = (100.0, 10);
    rt.block_on(async {
        let first = worker(&running, &url, &prefix, pace, burst);
        assert!(first.setup_all().await.is_complete());
    });
    let after_setup = running.emulator.calls().total;
    let users: Vec<UserContext> = (1..=2000).map(user).collect();

    let summaries = run_workers(&running, &url, &prefix, 4, &users, pace, burst);
    let failed: usize = summaries.iter().map(|s| s.failed).sum();
    assert_eq!(failed, 0, "{summaries:?}");
    // 200 admins and 200 helpers need an override each; the 1600 guests none.
    let calls = running.emulator.calls().total - after_setup;
    assert_eq!(
        calls, 400,
        "exactly the needed calls, none twice: {summaries:?}"
    );
    let applied: usize = summaries.iter().map(|s| s.applied).sum();
    assert_eq!(applied, 400);
    let peak = running.emulator.max_calls_within(Duration::from_secs(1));
    assert!(
        peak <= 110,
        "{peak} calls within a second: pace 100 + burst 10"
    );
    let checker = rt.block_on(async { worker(&running, &url, &prefix, pace, burst) });
    assert_all_correct(&running, &checker, &users);

    // A second round by all four: nothing left to send.
    let again = run_workers(&running, &url, &prefix, 4, &users, pace, burst);
    assert!(again.iter().all(|s| s.calls.is_empty()), "{again:?}");
}

#[test]
fn two_workers_racing_on_one_chat_the_latest_menu_wins() {
    let Some(redis) = redis() else { return };
    let url = redis.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(emulator());
    let prefix = prefix("race");
    // A slow pace, its burst spent, so the first update waits for its slot.
    let (a, b) = rt.block_on(async {
        let a = worker(&running, &url, &prefix, 2.0, 1);
        let b = worker(&running, &url, &prefix, 2.0, 1);
        assert!(a.update_user(&user(10)).await.status.is_applied());
        (a, b)
    });
    let before = running.emulator.calls().total;
    let chat = 7;
    let as_admin = UserContext::private(chat)
        .language("en")
        .flag("admin", true);
    let as_helper = UserContext::private(chat)
        .language("en")
        .flag("helper", true);
    let (first, second) = rt.block_on(async {
        let first = a.update_user(&as_admin);
        let second = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.update_user(&as_helper).await
        };
        tokio::join!(first, second)
    });
    assert_eq!(first.status, cmdscope::Status::Superseded);
    assert!(second.status.is_applied(), "{:?}", second.status);
    assert_eq!(running.emulator.calls().total - before, 1, "one call");
    let shown = running.emulator.effective(&as_helper.viewer()).1;
    assert_eq!(shown[..], b.engine().menu_of("helper", &as_helper)[..]);
}

#[test]
fn a_redis_restart_mid_run_loses_nothing() {
    // Its own server, persisting every write (as production should), so it can be restarted.
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_string_lossy().into_owned();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir,
    ];
    let Some(mut server) = RedisServer::start(&args) else {
        unavailable();
        return;
    };
    let url = server.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(emulator());
    let prefix = prefix("restart");
    rt.block_on(async {
        let first = worker(&running, &url, &prefix, 400.0, 20);
        assert!(first.setup_all().await.is_complete());
    });
    // Every user needs an override: 800 calls at 400 a second take about 2 s.
    let users: Vec<UserContext> = (1..=800)
        .map(|id| UserContext::private(id).language("en").flag("admin", true))
        .collect();
    let summaries = std::thread::scope(|scope| {
        let run = scope.spawn(|| run_workers(&running, &url, &prefix, 2, &users, 400.0, 20));
        // Restart the server while the workers run.
        let deadline = Instant::now() + Duration::from_secs(30);
        while running.emulator.calls().total < 200 {
            assert!(Instant::now() < deadline, "the workers made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        server.restart_after(Duration::from_millis(300));
        run.join().unwrap()
    });
    assert_eq!(
        summaries.iter().map(|s| s.failed).sum::<usize>(),
        0,
        "{summaries:?}"
    );
    let checker = rt.block_on(async { worker(&running, &url, &prefix, 400.0, 20) });
    assert_all_correct(&running, &checker, &users);
    // What the outage left unrecorded is marked uncertain and settled by the next rounds.
    run_workers(&running, &url, &prefix, 2, &users, 400.0, 20);
    assert_all_correct(&running, &checker, &users);
    let settled = run_workers(&running, &url, &prefix, 2, &users, 400.0, 20);
    assert!(settled.iter().all(|s| s.calls.is_empty()), "{settled:?}");
}

/// The README's two-worker recipe: two `cmdscope sync-users` processes on one Redis.
#[test]
fn two_sync_users_processes_share_one_redis() {
    let Some(redis) = redis() else { return };
    let url = redis.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(emulator());
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["tiered-resolver", "shop-translator"] {
        std::fs::copy(
            common::plugin_path(name),
            plugins.join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    let users = dir.path().join("users.jsonl");
    // Every third user is registered and every seventh premium: they need overrides.
    let lines: String = (1..=300)
        .map(|id| {
            format!(
                "{{\"user_id\":{id},\"language_code\":\"en\",\"flags\":{{\"registered\":{},\"premium\":{}}}}}\n",
                id % 3 == 0,
                id % 7 == 0
            )
        })
        .collect();
    std::fs::write(&users, lines).unwrap();
    let prefix = prefix("cli");
    let sync = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cmdscope"));
        cmd.args([
            "sync-users",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml"),
        ])
        .arg("--plugins")
        .arg(&plugins)
        .arg("--users")
        .arg(&users)
        .args([
            "--token",
            TOKEN,
            "--api-url",
            &running.url(),
            "--state",
            &url,
        ])
        .args(["--redis-prefix", &prefix, "--pace", "200", "--burst", "10"])
        .env_remove("CMDSCOPE_BOT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let summary = |child: Child| -> serde_json::Value {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let (a, b) = (sync(), sync());
    let (a, b) = (summary(a), summary(b));
    let sent = |s: &serde_json::Value| s["calls"]["setMyCommands"].as_u64().unwrap();
    let log = running.emulator.call_log();
    let distinct: std::collections::HashSet<_> = log.iter().map(|c| c.key.clone()).collect();
    assert!(log.len() >= 100, "{} calls", log.len());
    assert_eq!(distinct.len(), log.len(), "no list sent twice");
    assert_eq!(sent(&a) + sent(&b), log.len() as u64);
    assert!(a["state"].as_str().unwrap().starts_with("redis "));
    let again = summary(sync());
    assert_eq!(sent(&again), 0);
    assert_eq!(again["unchanged"], 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_on_one_redis_run_one_reconciliation_per_change() {
    use cmdscope::Host;
    use cmdscope::host::{HostEvent, ReconcileOptions, ReconcileReport, Trigger};
    let Some(redis) = redis() else { return };
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let state = cmdscope::config::StateBackend::Redis {
        url: redis.url.clone(),
        key_prefix: Some(prefix("hosts")),
    };
    let worker = || async {
        Host::builder(&config)
            .plugins(&plugins)
            .state(state.clone())
            .watch_options(cmdscope::plugin::WatchOptions {
                debounce: Duration::from_millis(50),
                rescan: Duration::from_millis(500),
            })
            .reconcile_options(ReconcileOptions {
                settle: Duration::from_millis(100),
                retry_after: Duration::from_millis(300),
                ..ReconcileOptions::default()
            })
            .build()
            .await
            .unwrap()
    };
    let (a, b) = (worker().await, worker().await);
    let mut events = [a.subscribe(), b.subscribe()];
    a.start(common::http_api(&running)).await.unwrap();
    b.start(common::http_api(&running)).await.unwrap();
    let users: Vec<UserContext> = (1..=300)
        .map(|id| {
            UserContext::private(id)
                .flag("registered", true)
                .flag("orders", if id % 10 == 0 { 12 } else { 1 })
        })
        .collect();
    // Half the users write through each worker.
    let (left, right) = users.split_at(150);
    a.update_users(left.to_vec(), 8).await;
    b.update_users(right.to_vec(), 8).await;
    let calls_before = running.emulator.call_log().len();

    let tmp = plugins.join(".tiered.incoming");
    std::fs::write(&tmp, common::plugin_bytes("tiered-resolver-v2")).unwrap();
    std::fs::rename(&tmp, plugins.join("tiered.wasm")).unwrap();

    // Each worker reports until it has a complete run for the new rules.
    let mut examined = 0;
    for events in events.iter_mut() {
        let mut plugin_seen = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("a reconciliation report")
                .unwrap();
            let HostEvent::Reconciled(ReconcileReport {
                trigger,
                users_examined,
                complete,
                ..
            }) = event
            else {
                continue;
            };
            plugin_seen |= trigger.iter().any(|t| matches!(t, Trigger::Plugin { .. }));
            if plugin_seen {
                examined += users_examined;
                if complete {
                    break;
                }
            }
        }
    }
    assert_eq!(examined, 300, "the users were walked once, by one worker");
    let sent: Vec<String> = running.emulator.call_log()[calls_before..]
        .iter()
        .filter(|c| c.method == "setMyCommands")
        .filter_map(|c| c.key.clone())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = sent.iter().collect();
    assert_eq!(sent.len(), 30, "one call per loyal user: {sent:?}");
    assert_eq!(distinct.len(), 30);
    for u in &users {
        let premium = running
            .emulator
            .effective(&u.viewer())
            .1
            .iter()
            .any(|c| c.command == "deals");
        assert_eq!(premium, u.user_id % 10 == 0, "user {}", u.user_id);
    }
    a.shutdown().await;
    b.shutdown().await;
}
