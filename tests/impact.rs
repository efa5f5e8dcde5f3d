//! Impact before a change, against what the change then really does: 10,000 known users of a
//! `cmdscope serve` (redb store, then Redis), the report for resolver version 2 (over HTTP,
//! and from the CLI reading the store), then version 2 deployed for real: the users the
//! report says get a call are exactly the chats the emulator sees set.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use cmdscope::emulator::RunningEmulator;

use common::chat::chats_set_since;
use common::serve::{KEY, post, serve, wait_healthy};
use common::users::wrong_after;
use common::{emulator, plugin_bytes, shop_folder};

const USERS: i64 = 10_000;

/// Most users are guests (they inherit a configured list: no call); one in 100 is a loyal
/// customer (12 orders: version 2 makes them premium), one in 100 a customer with 1 order.
fn context(id: i64) -> Value {
    match id % 100 {
        0 => {
            json!({"user_id": id, "language_code": "en", "flags": {"registered": true, "orders": 12}})
        }
        50 => {
            json!({"user_id": id, "language_code": "ru", "flags": {"registered": true, "orders": 1}})
        }
        n if n % 3 == 0 => json!({"user_id": id, "language_code": "es"}),
        _ => json!({"user_id": id}),
    }
}

fn loyal(id: i64) -> bool {
    id % 100 == 0
}

async fn post_all(client: &reqwest::Client, url: &str) {
    let all: Vec<Value> = (1..=USERS).map(context).collect();
    for page in all.chunks(1_000) {
        let r = post(client, url, "/v1/users", Some(KEY))
            .json(page)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

/// Renames `bytes` into `folder` as `name`, the way a deploy does.
fn deploy(folder: &Path, name: &str, bytes: &[u8]) {
    let tmp = folder.join(format!(".{name}.incoming"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, folder.join(name)).unwrap();
}

/// The chats a report says the swap sets: each listed user's private chat.
fn reported_sets(report: &Value) -> BTreeSet<i64> {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["call"] == "setMyCommands")
        .map(|u| u["chat_id"].as_i64().unwrap())
        .collect()
}

fn check_report(report: &Value) {
    let loyal_users = USERS / 100;
    assert_eq!(report["users_examined"], USERS, "{report:#}");
    assert_eq!(report["users_changed"], loyal_users, "{report:#}");
    let transitions = report["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1, "{report:#}");
    assert_eq!(transitions[0]["from"], "user");
    assert_eq!(transitions[0]["to"], "premium");
    assert_eq!(transitions[0]["users"], loyal_users);
    let sample = transitions[0]["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 5);
    assert!(
        sample.iter().all(|id| loyal(id.as_i64().unwrap())),
        "{sample:?}"
    );
    assert_eq!(report["calls"]["setMyCommands"], loyal_users);
    assert_eq!(report["calls"]["deleteMyCommands"], 0);
    assert_eq!(report["fallbacks"]["candidate"], 0);
    assert_eq!(report["changes"][0]["kind"], "plugin");
    assert_eq!(report["changes"][0]["version"], "2.0.0");
    assert_eq!(report["changes"][0]["replaces"]["version"], "0.1.0");
    // 100 calls at the host's 25 a second.
    assert_eq!(report["calls_take_s"], 4.0);
}

/// Deploys version 2 and answers which lists the swap set.
async fn swap_to_v2(running: &RunningEmulator, plugins: &Path) -> BTreeSet<i64> {
    let from = running.emulator.call_log().len();
    deploy(plugins, "tiered.wasm", &plugin_bytes("tiered-resolver-v2"));
    let watched: Vec<i64> = (1..=USERS).filter(|id| id % 50 == 0).collect();
    let left = wrong_after(running, &watched, Duration::from_secs(60), loyal).await;
    assert!(left.is_empty(), "users still on version 1: {left:?}");
    // Every call of the walk is in: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    chats_set_since(running, from)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_impact_over_http_is_what_the_swap_then_does_redb() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let state = dir.path().join("state.redb");
    let server = serve(
        &running,
        &config,
        &plugins,
        &["--state", state.to_str().unwrap()],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    post_all(&client, &server.url).await;

    // The key is required.
    let v2 = plugin_bytes("tiered-resolver-v2");
    let r = post(&client, &server.url, "/v1/impact", None)
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let calls_before = running.emulator.call_log().len();
    let r = post(&client, &server.url, "/v1/impact?users=true", Some(KEY))
        .header("content-type", "application/wasm")
        .body(v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    check_report(&report);
    assert_eq!(
        running.emulator.call_log().len(),
        calls_before,
        "a report makes no Bot API call"
    );
    eprintln!("impact over 10,000 users (redb): {} ms", report["took_ms"]);

    // A config that drops /profile from customers' menus: every customer's menu changes.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "include = [\"cart\", \"orders\", \"profile\"]",
        "include = [\"cart\", \"orders\"]",
    );
    let r = post(&client, &server.url, "/v1/impact", Some(KEY))
        .header("content-type", "application/toml")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let by_config: Value = r.json().await.unwrap();
    assert_eq!(by_config["users_changed"], 2 * USERS / 100, "{by_config:#}");
    let kinds: Vec<(&str, &str)> = by_config["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap(), t["to"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("user", "user")], "{by_config:#}");

    // A candidate that does not load, and a config that does not validate: refused, with why.
    let r = post(&client, &server.url, "/v1/impact", Some(KEY))
        .body(b"\0asm not really".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let refused: Value = r.json().await.unwrap();
    assert!(
        refused["reasons"][0]
            .as_str()
            .unwrap()
            .contains("does not load"),
        "{refused}"
    );
    let r = post(&client, &server.url, "/v1/impact", Some(KEY))
        .header("content-type", "application/toml")
        .body("default_profile = \"nobody\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let refused: Value = r.json().await.unwrap();
    assert!(
        refused["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("default_profile")),
        "{refused}"
    );

    // Now for real: the chats set are the ones the report named.
    let set = swap_to_v2(&running, &plugins).await;
    assert_eq!(set, reported_sets(&report));
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_reports_from_redis_what_the_swap_then_does() {
    let Some(redis) = common::redis::redis() else {
        return;
    };
    let prefix = common::redis::prefix("impact");
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let state = [
        "--state",
        redis.url.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];
    let server = serve(&running, &config, &plugins, &state);
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    post_all(&client, &server.url).await;

    let candidate = dir.path().join("tiered-v2.wasm");
    std::fs::write(&candidate, plugin_bytes("tiered-resolver-v2")).unwrap();
    let impact = |extra: &[&str]| {
        std::process::Command::new(common::process::BIN)
            .args(["impact", "--config"])
            .arg(&config)
            .arg("--plugins")
            .arg(&plugins)
            .args(state)
            .arg("--candidate")
            .arg(&candidate)
            .args(extra)
            .env("CMDSCOPE_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = impact(&["--format", "json", "--list-users"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_report(&report);
    eprintln!(
        "impact over 10,000 users (Redis, CLI): {} ms",
        report["took_ms"]
    );
    let table = impact(&[]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("user -> premium: 100 (e.g. "), "{text}");
    assert!(text.contains("users examined: 10,000"), "{text}");

    // A candidate that is not a component: exit 1, saying why.
    std::fs::write(&candidate, b"not wasm").unwrap();
    let out = impact(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not load"), "{stderr}");

    let set = swap_to_v2(&running, &plugins).await;
    assert_eq!(set, reported_sets(&report));
    drop(server);
}
