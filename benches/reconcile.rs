//! Reconciliation as a running host does it: known users, a resolver swapped for a version
//! that changes some of their menus, and the run that brings Telegram along.
//!
//! `cargo bench --bench reconcile` (add a number to choose the users, 100,000 by default, and
//! store names to run only those: `-- 20000 memory redb`). The host runs in this process
//! against a `cmdscope emulator` process at an unlimited pace, so the CPU time this process
//! spends between the swap (the new version serving) and the run's report is the
//! reconciler's own: reading known users from the store, resolving them in the sandbox,
//! building and checking their menus, the calls, and marking everyone. Each store runs twice:
//! version 2 changes the menu of 10% of the users, then of none (the examination alone).
//! Then what a known user costs in each store. Redis needs `redis-server` on the PATH.

#[path = "common/counting.rs"]
mod counting;
#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::Receiver;

use cmdscope::config::StateBackend;
use cmdscope::deliver::{DeliveryOptions, HttpBotApi};
use cmdscope::host::{HostEvent, ReconcileOptions, ReconcileReport, Trigger};
use cmdscope::plugin::{ReloadKind, WatchOptions};
use cmdscope::state::{FileStore, MemoryStore, StateStore};
use cmdscope::{Host, UserContext};
use process::{Process, emulator};

const TOKEN: &str = "4242:bench";

/// A `redis-server` on a free port, or `None` when there is none on the PATH.
fn redis(dir: &Path) -> Option<(Process, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str()).ok()?;
    for _ in 0..100 {
        if let Ok(mut c) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut c).is_ok()
        {
            return Some((Process(child), url));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// User and system CPU time of this process so far.
fn cpu() -> Duration {
    // SAFETY: a zeroed rusage is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Guests, and `changed_per_ten` in ten registered with 10 or more orders, whom version 2
/// makes premium.
fn users(n: i64, changed_per_ten: i64) -> Vec<UserContext> {
    (1..=n)
        .map(|id| {
            let ctx = UserContext::private(id).language(if id % 3 == 0 { "ru" } else { "en" });
            if id % 10 < changed_per_ten {
                ctx.flag("registered", true).flag("orders", 10 + id % 7)
            } else {
                ctx.flag("registered", false)
            }
        })
        .collect()
}

fn plugin(name: &str) -> PathBuf {
    Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join(format!("{name}.wasm"))
}

async fn next(events: &mut Receiver<HostEvent>, want: impl Fn(&HostEvent) -> bool) -> HostEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(600), events.recv()).await {
            Ok(Ok(event)) if want(&event) => return event,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("no matching event within 10 minutes"),
        }
    }
}

async fn complete_run(
    events: &mut Receiver<HostEvent>,
    want: impl Fn(&Trigger) -> bool,
) -> ReconcileReport {
    loop {
        if let HostEvent::Reconciled(report) =
            next(events, |e| matches!(e, HostEvent::Reconciled(_))).await
            && report.trigger.iter().any(&want)
        {
            assert!(report.complete, "the run left users behind: {report:?}");
            return report;
        }
    }
}

struct Measured {
    report: ReconcileReport,
    cpu: Duration,
    wall: Duration,
}

/// Makes `users` known to a host on `backend`, swaps the resolver and measures the run.
async fn swap_and_reconcile(
    dir: &Path,
    backend: StateBackend,
    redis_prefix: &str,
    users: &[UserContext],
    url: &str,
) -> Measured {
    let plugins = dir.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin("tiered_resolver"), plugins.join("tiered.wasm")).unwrap();
    std::fs::copy(plugin("shop_translator"), plugins.join("shop.wasm")).unwrap();
    let config = dir.join("cmdscope.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml"),
        &config,
    )
    .unwrap();
    let host = Host::builder(&config)
        .plugins(&plugins)
        .compiled_cache(dir.join("compiled"))
        .state(backend)
        .redis_prefix(redis_prefix)
        .delivery(DeliveryOptions {
            pace: 1e9,
            burst: 1_000_000,
            ..DeliveryOptions::default()
        })
        .watch_options(WatchOptions {
            debounce: Duration::from_millis(20),
            rescan: Duration::from_secs(1),
        })
        .reconcile_options(ReconcileOptions {
            settle: Duration::from_millis(10),
            ..ReconcileOptions::default()
        })
        .build()
        .await
        .expect("the host builds");
    let mut events = host.subscribe();
    let api = Arc::new(HttpBotApi::new(TOKEN, url).unwrap());
    assert!(host.start(api).await.unwrap().is_complete());
    complete_run(&mut events, |t| *t == Trigger::Start).await;
    for outcome in host.update_users(users.to_vec(), 64).await {
        assert!(!outcome.status.is_failed(), "{outcome:?}");
    }

    // The new version, renamed into place; the clock starts once it serves.
    let incoming = plugins.join("tiered.incoming");
    std::fs::copy(plugin("tiered_resolver_v2"), &incoming).unwrap();
    std::fs::rename(&incoming, plugins.join("tiered.wasm")).unwrap();
    next(
        &mut events,
        |e| matches!(e, HostEvent::Plugin(r) if r.event == ReloadKind::Reloaded),
    )
    .await;
    let (cpu0, wall0) = (cpu(), Instant::now());
    let report = complete_run(
        &mut events,
        |t| matches!(t, Trigger::Plugin { name, .. } if name == "tiered-resolver"),
    )
    .await;
    let measured = Measured {
        report,
        cpu: cpu() - cpu0,
        wall: wall0.elapsed(),
    };
    host.shutdown().await;
    measured
}

/// Heap bytes per user the memory store keeps for `users`.
async fn memory_store_bytes(users: &[UserContext]) -> f64 {
    let before = counting::LIVE.load(Ordering::Relaxed);
    let store = MemoryStore::new();
    for u in users {
        store.known_users().unwrap().remember(u, 1).await.unwrap();
    }
    let bytes = counting::LIVE.load(Ordering::Relaxed) - before;
    drop(store);
    bytes as f64 / users.len() as f64
}

/// Bytes per user of a redb file holding only `users`.
async fn file_store_bytes(path: &Path, users: &[UserContext]) -> f64 {
    let store = FileStore::open(path).unwrap();
    let known = store.known_users().unwrap();
    for chunk in users.chunks(1024) {
        futures_util::future::try_join_all(chunk.iter().map(|u| known.remember(u, 1)))
            .await
            .unwrap();
    }
    known.flush().await.unwrap();
    drop(store);
    std::fs::metadata(path).unwrap().len() as f64 / users.len() as f64
}

/// Bytes Redis reports for the known-users hashes under `prefix`.
fn redis_known_user_bytes(url: &str, prefix: &str) -> i64 {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    ["users", "users:gen"]
        .iter()
        .map(|k| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("{prefix}:{k}"))
                .arg("SAMPLES")
                .arg(0)
                .query::<Option<i64>>(&mut c)
                .unwrap()
                .expect("the hash exists")
        })
        .sum()
}

fn main() {
    // `cargo bench` passes `--bench`; a number sets the users, names pick stores.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: i64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let only: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.parse::<i64>().is_err())
        .collect();
    let users = users(n, 1);
    // First, while nothing else runs in this process.
    let memory_per_user = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(memory_store_bytes(&users));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_emulator, url) = emulator();
    let redis = redis(dir.path());
    let mut stores = vec![
        ("memory", StateBackend::Memory),
        ("redb", StateBackend::File(dir.path().join("state.redb"))),
    ];
    match &redis {
        Some((_, url)) => stores.push((
            "redis",
            StateBackend::Redis {
                url: url.clone(),
                key_prefix: None,
            },
        )),
        None => eprintln!("redis-server is not on the PATH: the Redis store is skipped"),
    }
    stores.retain(|(name, _)| only.is_empty() || only.iter().any(|o| name == o));

    println!(
        "Reconciling {n} known users after a resolver swap (wasm `tiered-resolver` v1 -> v2)\n"
    );
    println!(
        "| store | menus changed | examined | setMyCommands | CPU per examined user | CPU total | wall |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut known_cost = Vec::new();
    for (name, backend) in &stores {
        for changed_per_ten in [1, 0] {
            let users = self::users(n, changed_per_ten);
            if let StateBackend::File(path) = backend {
                let _ = std::fs::remove_file(path);
            }
            let prefix = format!("bench:{name}:{changed_per_ten}");
            let m = runtime.block_on(swap_and_reconcile(
                dir.path(),
                backend.clone(),
                &prefix,
                &users,
                &url,
            ));
            assert_eq!(m.report.users_examined, n as u64);
            assert_eq!(m.report.failed, 0);
            let calls = m.report.calls.get("setMyCommands").copied().unwrap_or(0);
            assert_eq!(calls, n as u64 * changed_per_ten as u64 / 10);
            println!(
                "| {name} | {}% | {} | {calls} | {:.2} us | {:.2} s | {:.2} s |",
                changed_per_ten * 10,
                m.report.users_examined,
                m.cpu.as_secs_f64() * 1e6 / n as f64,
                m.cpu.as_secs_f64(),
                m.wall.as_secs_f64(),
            );
            if changed_per_ten == 0
                && let StateBackend::Redis { url, .. } = backend
            {
                known_cost.push((
                    "redis (`MEMORY USAGE` of the two hashes)",
                    redis_known_user_bytes(url, &prefix) as f64 / n as f64,
                ));
            }
        }
        match backend {
            StateBackend::Memory => {
                known_cost.push(("memory (heap, counting allocator)", memory_per_user))
            }
            StateBackend::File(_) => known_cost.push((
                "redb (file size / users)",
                runtime.block_on(file_store_bytes(
                    &dir.path().join("users-only.redb"),
                    &users,
                )),
            )),
            StateBackend::Redis { .. } => {}
        }
    }
    println!("\n| what a known user costs | bytes per user |\n|---|---|");
    for (store, bytes) in known_cost {
        println!("| {store} | {bytes:.0} |");
    }
}
