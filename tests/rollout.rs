//! Staged rollouts through real `serve` processes and the emulator: a 10% rollout moves
//! exactly the hashed users (no call for the others), survives a restart without a call,
//! and promote moves the rest; two workers on one Redis serve the same canary and an abort on
//! one takes it back on both; a candidate that traps for one user in 20 is aborted by itself.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cmdscope::UserContext;
use cmdscope::emulator::RunningEmulator;
use cmdscope::rollout::in_canary;

use common::chat::chats_set_since;
use common::serve::{KEY, Serve, post, serve, serve_with, wait_healthy};
use common::users::{context, post_users, premium_in_v2};
use common::{emulator, plugin_bytes, shop_folder};

const PLUGIN: &str = "tiered-resolver";

fn sees_deals(running: &RunningEmulator, id: i64) -> bool {
    let viewer = UserContext::private(id).language("en").viewer();
    running
        .emulator
        .effective(&viewer)
        .1
        .iter()
        .any(|c| c.command == "deals")
}

/// Waits up to 30 s until every user sees `/deals` exactly when `premium` says; answers the
/// users still wrong.
async fn settle(
    running: &RunningEmulator,
    users: &[i64],
    premium: impl Fn(i64) -> bool,
) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wrong: Vec<i64> = users
            .iter()
            .copied()
            .filter(|&id| sees_deals(running, id) != premium(id))
            .collect();
        if wrong.is_empty() || Instant::now() > deadline {
            return wrong;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(client: &reqwest::Client, url: &str, path: &str) -> Value {
    client
        .get(format!("{url}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn start(client: &reqwest::Client, url: &str, bytes: Vec<u8>, percent: u32) -> Value {
    let r = post(
        client,
        url,
        &format!("/v1/rollouts?percent={percent}"),
        Some(KEY),
    )
    .body(bytes)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

fn serve_on(
    running: &RunningEmulator,
    config: &std::path::Path,
    plugins: &std::path::Path,
    state: &[&str],
) -> Serve {
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
        "--no-compiled-cache",
    ];
    args.extend_from_slice(state);
    serve_with(running, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_percent_rollout_moves_exactly_the_hashed_users_survives_a_restart_and_promotes() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let state_file = dir.path().join("state.redb");
    let state = ["--state", state_file.to_str().unwrap()];
    let server = serve(&running, &config, &plugins, &state);
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    let users: Vec<i64> = (1..=240).collect();
    let all: Vec<Value> = users.iter().map(|&id| context(id)).collect();
    post_users(&client, &server.url, &all).await;
    let canary = |id: i64| in_canary(PLUGIN, id, 10.0);
    let moved: BTreeSet<i64> = users
        .iter()
        .copied()
        .filter(|&id| premium_in_v2(id) && canary(id))
        .collect();
    assert!((1..20).contains(&moved.len()), "{moved:?}");

    // A bad request and a candidate that is not a resolver of this config are refused.
    let r = post(&client, &server.url, "/v1/rollouts?percent=0", Some(KEY))
        .body(plugin_bytes("tiered-resolver-v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = post(&client, &server.url, "/v1/rollouts?percent=10", Some(KEY))
        .body(plugin_bytes("shop-translator"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    let from = running.emulator.call_log().len();
    let status = start(&client, &server.url, plugin_bytes("tiered-resolver-v2"), 10).await;
    assert_eq!(status["version"], "2.0.0");
    assert_eq!(status["percent"], 10.0);
    let wrong = settle(&running, &users, |id| premium_in_v2(id) && canary(id)).await;
    assert!(
        wrong.is_empty(),
        "wrong menus during the rollout: {wrong:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        chats_set_since(&running, from),
        moved,
        "calls for exactly the canary users the candidate moves"
    );
    let status = get(&client, &server.url, "/v1/rollouts").await;
    assert!(
        status["candidate"]["answers"].as_u64().unwrap() > 0,
        "{status:#}"
    );
    assert_eq!(status["candidate"]["fallbacks"], 0);

    // A restart serves the same rollout from the start: nobody is moved back and forth.
    drop(server);
    let from = running.emulator.call_log().len();
    let server = serve(&running, &config, &plugins, &state);
    wait_healthy(&client, &server.url).await;
    let status = get(&client, &server.url, "/v1/rollouts").await;
    assert_eq!(status["version"], "2.0.0", "{status:#}");
    post_users(&client, &server.url, &all).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        chats_set_since(&running, from),
        BTreeSet::new(),
        "no call after a restart"
    );

    // Promote: the rest of the loyal customers move, and the folder holds the candidate.
    let from = running.emulator.call_log().len();
    let r = post(
        &client,
        &server.url,
        "/v1/rollouts/current/promote",
        Some(KEY),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let wrong = settle(&running, &users, premium_in_v2).await;
    assert!(wrong.is_empty(), "not moved by the promotion: {wrong:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rest: BTreeSet<i64> = users
        .iter()
        .copied()
        .filter(|&id| premium_in_v2(id) && !canary(id))
        .collect();
    assert_eq!(chats_set_since(&running, from), rest);
    assert_eq!(
        std::fs::read(plugins.join("tiered.wasm")).unwrap(),
        plugin_bytes("tiered-resolver-v2")
    );
    assert_eq!(get(&client, &server.url, "/v1/rollouts").await, Value::Null);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_one_redis_serve_the_same_canary_and_abort_together() {
    let Some(redis) = common::redis::redis() else {
        return;
    };
    let prefix = common::redis::prefix("rollout");
    let running = emulator().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, plugins_a) = shop_folder(dir_a.path());
    let (config_b, plugins_b) = shop_folder(dir_b.path());
    let state = [
        "--state",
        redis.url.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];
    let a = serve_on(&running, &config_a, &plugins_a, &state);
    let b = serve_on(&running, &config_b, &plugins_b, &state);
    let client = reqwest::Client::new();
    wait_healthy(&client, &a.url).await;
    wait_healthy(&client, &b.url).await;
    let users: Vec<i64> = (1..=160).collect();
    let all: Vec<Value> = users.iter().map(|&id| context(id)).collect();
    post_users(&client, &a.url, &all[..80]).await;
    post_users(&client, &b.url, &all[80..]).await;
    let canary = |id: i64| in_canary(PLUGIN, id, 25.0);

    start(&client, &a.url, plugin_bytes("tiered-resolver-v2"), 25).await;
    // B follows from the store.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&client, &b.url, "/v1/rollouts").await.is_null() {
        assert!(
            Instant::now() < deadline,
            "worker B never followed the rollout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wrong = settle(&running, &users, |id| premium_in_v2(id) && canary(id)).await;
    assert!(
        wrong.is_empty(),
        "wrong menus during the rollout: {wrong:?}"
    );
    // The bot writes to either worker: the canary is the same on both.
    post_users(&client, &b.url, &all[..80]).await;
    post_users(&client, &a.url, &all[80..]).await;
    let wrong = settle(&running, &users, |id| premium_in_v2(id) && canary(id)).await;
    assert!(
        wrong.is_empty(),
        "the workers disagree on the canary: {wrong:?}"
    );

    // Abort on B: both take it back, the canary users go back.
    let r = post(&client, &b.url, "/v1/rollouts/current/abort", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get(&client, &a.url, "/v1/rollouts").await.is_null() {
        assert!(Instant::now() < deadline, "worker A kept the rollout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wrong = settle(&running, &users, |_| false).await;
    assert!(wrong.is_empty(), "still on the candidate: {wrong:?}");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_that_traps_for_one_user_in_twenty_is_aborted_by_itself() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let server = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    // Guests (no call to make them known), none of whom the bug hits: the trial at the start
    // finds nothing wrong.
    let guest = |id: i64| json!({"user_id": id});
    let spared: Vec<Value> = (1..=600).filter(|id| id % 20 != 0).map(guest).collect();
    post_users(&client, &server.url, &spared).await;
    start(&client, &server.url, plugin_bytes("tiered-flaky"), 50).await;

    // Live traffic meets the bug: the watchdog takes the candidate back.
    let all: Vec<Value> = (1..=600).map(guest).collect();
    post_users(&client, &server.url, &all).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(&client, &server.url, "/v1/rollouts").await.is_null() {
        assert!(
            Instant::now() < deadline,
            "the flaky candidate was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = get(&client, &server.url, "/status.json").await;
    let aborted = status["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "rollout" && e["action"] == "aborted")
        .unwrap_or_else(|| panic!("no abort event: {status:#}"))
        .clone();
    let reason = aborted["reason"].as_str().unwrap();
    assert!(reason.contains("fell back"), "{aborted}");
    assert!(reason.contains("max_fallback_percent"), "{aborted}");
    assert_eq!(aborted["version"], "3.0.0");

    // Now that the known users include some it fails for, it is refused before anything is
    // sent: the trial on the known canary users finds the trap.
    let calls = running.emulator.call_log().len();
    let r = post(&client, &server.url, "/v1/rollouts?percent=50", Some(KEY))
        .body(plugin_bytes("tiered-flaky"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let refused: Value = r.json().await.unwrap();
    let why = refused["reasons"][0].as_str().unwrap();
    assert!(why.contains("tried on 100 known users"), "{refused}");
    assert!(why.contains("trapped"), "{refused}");
    assert_eq!(get(&client, &server.url, "/v1/rollouts").await, Value::Null);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        running.emulator.call_log().len(),
        calls,
        "a refused rollout sends nothing"
    );
    drop(server);
}
