//! Client CPU per user update, end to end over HTTP against the emulator (peer: 515 us per
//! update with aiogram's HTTP client).
//!
//! The emulator runs on its own runtime threads; the client runs on a current-thread runtime,
//! so its connection tasks run on the measured thread too. Each figure is the client
//! thread's CPU time (CLOCK_THREAD_CPUTIME_ID) per update, not wall time.
//!
//! `cargo bench --bench delivery`. Figures are in the README.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use cmdscope::config::{Config, Format};
use cmdscope::deliver::{DeliveryOptions, HttpBotApi};
use cmdscope::emulator::Emulator;
use cmdscope::resolve::FlagRules;
use cmdscope::{BotApi, CommandManager, ListKey, Scope, UserContext};

const CONFIG: &str = r#"
default_profile = "guest"
languages = ["en"]
[commands.start]
descriptions = { en = "Start the bot" }
[commands.help]
descriptions = { en = "How to use the bot" }
[commands.orders]
descriptions = { en = "Your orders" }
[commands.ban]
descriptions = { en = "Ban a user" }
[profiles.guest]
include = ["start", "help"]
[profiles.admin]
include = ["start", "help", "orders", "ban"]
[[scopes]]
scope = "default"
profile = "guest"
"#;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// (user, system) CPU time of this thread so far.
fn thread_rusage() -> (Duration, Duration) {
    // SAFETY: getrusage writes a plain struct; RUSAGE_THREAD is Linux's per-thread usage.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

fn bench(c: &mut Criterion) {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let running = server
        .block_on(Emulator::new().start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = Arc::new(HttpBotApi::new("1:bench", &running.url()).unwrap());
    let config = Config::parse(CONFIG, Format::Toml, "bench.toml")
        .unwrap()
        .config;
    let manager = CommandManager::builder(config)
        .resolver(Arc::new(FlagRules::new([("admin", "admin")], "guest")))
        .build(api.clone())
        .with_delivery_options(DeliveryOptions {
            pace: 1e9,
            burst: 1_000_000,
            ..DeliveryOptions::default()
        });
    client.block_on(manager.setup_all());
    let admin = UserContext::private(7).language("en").flag("admin", true);
    let guest = UserContext::private(7).language("en").flag("admin", false);

    let mut group = c.benchmark_group("delivery_client_cpu");
    // Every update changes the user's menu: one setMyCommands or deleteMyCommands each.
    let mut flip = false;
    group.bench_function("update_user_with_call", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            client.block_on(async {
                for _ in 0..iters {
                    flip = !flip;
                    let ctx = if flip { &admin } else { &guest };
                    let out = manager.update_user(ctx).await;
                    assert!(out.status.is_applied(), "{:?}", out.status);
                }
            });
            thread_cpu() - start
        })
    });
    // The common case: the user's menu is what Telegram already has.
    client.block_on(manager.update_user(&admin));
    group.bench_function("update_user_unchanged", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            client.block_on(async {
                for _ in 0..iters {
                    manager.update_user(&admin).await;
                }
            });
            thread_cpu() - start
        })
    });
    // The HTTP request alone, without engine or state.
    let key = ListKey::new(Scope::Default, None);
    let menu = manager.engine().menu_of("admin", &admin);
    group.bench_function("raw_set_my_commands", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu();
            client.block_on(async {
                for _ in 0..iters {
                    api.set_my_commands(&key, &menu).await.unwrap();
                }
            });
            thread_cpu() - start
        })
    });
    group.finish();

    // Where an update with a call spends its CPU: in the process or in the kernel (the
    // loopback TCP round trip). Printed once, for the README.
    const N: u32 = 4000;
    let (user0, sys0) = thread_rusage();
    client.block_on(async {
        for _ in 0..N {
            flip = !flip;
            manager
                .update_user(if flip { &admin } else { &guest })
                .await;
        }
    });
    let (user1, sys1) = thread_rusage();
    println!(
        "update_user_with_call split over {N} updates: user {:.1} us, kernel {:.1} us per update",
        (user1 - user0).as_secs_f64() * 1e6 / f64::from(N),
        (sys1 - sys0).as_secs_f64() * 1e6 / f64::from(N),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
