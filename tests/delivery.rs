//! Delivery end to end: our HTTP client against the emulator with injected 429s, 5xx and
//! delays. Success is judged by what the emulator says each user sees and by its call log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cmdscope::config::{Config, Format};
use cmdscope::deliver::{BreakerState, DeliveryOptions, RetryPolicy};
use cmdscope::emulator::{Fault, RunningEmulator};
use cmdscope::manager::Status;
use cmdscope::resolve::FlagRules;
use cmdscope::{CommandManager, UserContext};

use common::{emulator, http_api};

/// Guests inherit the default list; admins need an override of their own.
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
[profiles.guest]
include = ["start", "help"]
[profiles.admin]
include = ["start", "help", "ban"]
[[scopes]]
scope = "default"
profile = "guest"
"#;
    Config::parse(text, Format::Toml, "delivery.toml")
        .unwrap()
        .config
}

fn fast(pace: f64, burst: u32) -> DeliveryOptions {
    DeliveryOptions {
        pace,
        burst,
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_millis(200),
    }
}

fn manager(running: &RunningEmulator, options: DeliveryOptions) -> CommandManager {
    CommandManager::builder(config())
        .resolver(Arc::new(FlagRules::new([("admin", "admin")], "guest")))
        .build(http_api(running))
        .with_delivery_options(options)
}

/// User `id` is an admin when `id % every == 0`.
fn users(ids: std::ops::Range<i64>, every: i64) -> Vec<UserContext> {
    ids.map(|id| {
        UserContext::private(id)
            .language("en")
            .flag("admin", id % every == 0)
    })
    .collect()
}

/// Every user sees exactly their profile's menu.
fn assert_all_correct(running: &RunningEmulator, m: &CommandManager, users: &[UserContext]) {
    for ctx in users {
        let profile = if ctx.is("admin") { "admin" } else { "guest" };
        let want = m.engine().menu_of(profile, ctx);
        let shown = running.emulator.effective(&ctx.viewer()).1;
        assert_eq!(shown[..], want[..], "user {}", ctx.user_id);
    }
}

#[tokio::test]
async fn a_thousand_users_cost_exactly_the_needed_calls_then_none() {
    let running = emulator().await;
    let m = manager(&running, fast(2000.0, 100));
    assert!(m.setup_all().await.is_complete());
    let after_setup = running.emulator.calls().total;
    let all = users(0..1000, 10);

    let report = m.update_users(all.clone(), 16).await;
    let s = &report.summary;
    assert_eq!(
        (s.users, s.applied, s.unchanged, s.failed),
        (1000, 100, 900, 0)
    );
    assert_eq!(s.calls.get("setMyCommands"), Some(&100));
    assert_eq!(running.emulator.calls().total - after_setup, 100);
    assert_all_correct(&running, &m, &all);

    let again = m.update_users(all.clone(), 16).await;
    assert_eq!(again.summary.unchanged, 1000);
    assert!(again.summary.calls.is_empty(), "{:?}", again.summary);
    assert_eq!(running.emulator.calls().total - after_setup, 100);

    // Two admins lose the role: exactly their overrides are deleted.
    let demoted: Vec<UserContext> = [10, 20]
        .into_iter()
        .map(|id| UserContext::private(id).language("en").flag("admin", false))
        .collect();
    let report = m.update_users(demoted.clone(), 4).await;
    assert_eq!(report.summary.calls.get("deleteMyCommands"), Some(&2));
    assert_all_correct(&running, &m, &demoted);
}

#[tokio::test]
async fn storms_of_429_5xx_and_delays_lose_nothing() {
    let running = emulator().await;
    let m = manager(&running, fast(200.0, 8));
    assert!(m.setup_all().await.is_complete());
    let faults = [
        (Some(429), Some(1), None, 30),
        (Some(502), None, None, 12),
        (None, None, Some(150), 20),
        (Some(500), None, Some(50), 6),
    ];
    for (status, retry_after, delay_ms, count) in faults {
        running.emulator.inject(Fault {
            status,
            retry_after,
            delay_ms,
            count,
        });
    }
    // The 150 admins need a call each; the 150 guests inherit the default list.
    let all = users(1000..1300, 2);
    let report = m.update_users(all.clone(), 16).await;
    assert_eq!(report.summary.failed, 0, "{:?}", report.summary);
    assert_eq!(report.summary.applied, 150);
    let stats = m.delivery_stats();
    assert_eq!(stats.rate_limited, 30);
    assert_eq!(running.emulator.calls().faulted, 30 + 12 + 6);
    assert_all_correct(&running, &m, &all);
    // Nothing is left uncertain.
    let entries = m.store().entries().await.unwrap();
    assert!(entries.iter().all(|(_, s)| s.pending.is_none()));
}

#[tokio::test]
async fn the_pace_is_never_exceeded() {
    let running = emulator().await;
    let (pace, burst) = (20.0, 5);
    let m = manager(&running, fast(pace, burst));
    // Every user is an admin: 120 calls at 20 a second take about 6 s.
    let all = users(1..121, 1);
    let report = m.update_users(all.clone(), 32).await;
    assert_eq!(report.summary.applied, 120);
    let peak = running.emulator.max_calls_within(Duration::from_secs(1));
    assert!(
        peak <= 25,
        "{peak} calls within one second, pace 20 + burst 5"
    );
    assert!(peak >= 18, "the test ran at the limit ({peak})");
    assert_all_correct(&running, &m, &all);
}

#[tokio::test]
async fn a_burst_of_updates_for_one_chat_ends_in_one_call_with_the_latest_menu() {
    let running = emulator().await;
    let m = manager(&running, fast(4.0, 1));
    // Spend the burst so the next call waits for the pace.
    let first = m.update_user(&users(500..501, 1)[0]).await;
    assert_eq!(first.status, Status::Set);
    let before = running.emulator.calls().total;

    // Admin, guest, admin, ... and an admin last: every admin update needs a call.
    let updates: Vec<UserContext> = (0..20)
        .map(|i| {
            UserContext::private(7)
                .language("en")
                .flag("admin", i % 2 == 0 || i == 19)
        })
        .collect();
    let outcomes =
        futures_util::future::join_all(updates.iter().map(|ctx| m.update_user(ctx))).await;
    assert_eq!(running.emulator.calls().total - before, 1);
    let superseded = outcomes
        .iter()
        .filter(|o| o.status == Status::Superseded)
        .count();
    let statuses: Vec<_> = outcomes.iter().map(|o| o.status.to_string()).collect();
    assert_eq!(superseded, 19, "{statuses:?}");
    assert_eq!(outcomes.last().unwrap().status, Status::Set);
    // The last update (an admin) wins.
    let shown = running.emulator.effective(&updates[19].viewer()).1;
    assert_eq!(shown[..], m.engine().menu_of("admin", &updates[19])[..]);
}

#[tokio::test]
async fn the_breaker_stops_calling_a_failing_api_and_probes_it() {
    let running = emulator().await;
    let options = DeliveryOptions {
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(300),
        ..fast(100.0, 10)
    };
    let m = manager(&running, options);
    running.emulator.inject(Fault {
        status: Some(503),
        retry_after: None,
        delay_ms: None,
        count: 4,
    });
    let out = m.update_user(&users(3..4, 1)[0]).await;
    assert_eq!(out.status, Status::Set);
    assert_eq!(m.delivery().breaker_state(), BreakerState::Closed);
    let log = running.emulator.call_log();
    let times: Vec<f64> = log.iter().map(|c| c.at_ms).collect();
    assert_eq!(times.len(), 5, "3 failures, a failed probe, a good probe");
    assert!(
        times[3] - times[2] >= 300.0,
        "open for the cooldown: {times:?}"
    );
    assert!(
        times[4] - times[3] >= 600.0,
        "a failed probe doubles it: {times:?}"
    );
}

#[tokio::test]
async fn a_refusal_is_reported_not_retried() {
    let running = emulator().await;
    let m = manager(&running, fast(100.0, 10));
    running.emulator.inject(Fault {
        status: Some(400),
        retry_after: None,
        delay_ms: None,
        count: 1,
    });
    let out = m.update_user(&users(9..10, 1)[0]).await;
    assert!(
        matches!(&out.status, Status::Failed(e) if e.to_string().contains("Bad Request")),
        "{:?}",
        out.status
    );
    assert_eq!(running.emulator.calls().total, 1);
    let stats = m.delivery_stats();
    assert_eq!((stats.retries, stats.failed), (0, 1));
}
