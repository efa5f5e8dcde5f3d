//! Rollback in one step: a `serve` keeps the versions that served each plugin (beside its
//! compiled cache); `POST /v1/plugins/NAME/rollback` writes the previous one back over the
//! plugin's file and every user it moved is brought back in one reconciliation; the CLI's
//! `rollout rollback` undoes the rollback the same way.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::serve::{KEY, post, serve_with, wait_healthy};
use common::users::{context, post_users, premium_in_v2, wrong_after};
use common::{emulator, plugin_bytes, shop_folder};

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The decision log's lines, oldest first.
fn decisions(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// setMyCommands calls since `from` (an index into the emulator's call log).
fn sets_since(running: &cmdscope::emulator::RunningEmulator, from: usize) -> usize {
    running.emulator.call_log()[from..]
        .iter()
        .filter(|c| c.method == "setMyCommands")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_puts_the_previous_version_back_and_every_moved_user_with_it() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    // The decision log, beside the config.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[audit]\npath = \"audit.jsonl\"\n");
    std::fs::write(&config, text).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let cache = dir.path().join("compiled");
    let server = serve_with(
        &running,
        &[
            "--config",
            config.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
            "--compiled-cache",
            cache.to_str().unwrap(),
        ],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    let users: Vec<i64> = (1..=100).collect();
    let all: Vec<Value> = users.iter().map(|&id| context(id)).collect();
    post_users(&client, &server.url, &all).await;
    let moved = users.iter().filter(|&&id| premium_in_v2(id)).count();

    // Nothing to go back to yet.
    let rollback = |key: Option<&str>| {
        post(
            &client,
            &server.url,
            "/v1/plugins/tiered-resolver/rollback",
            key,
        )
        .send()
    };
    assert_eq!(rollback(None).await.unwrap().status(), 401);
    let r = rollback(Some(KEY)).await.unwrap();
    assert_eq!(r.status(), 409);
    let why: Value = r.json().await.unwrap();
    assert!(
        why["error"]
            .as_str()
            .unwrap()
            .contains("no earlier version"),
        "{why}"
    );

    // Version 2 deployed: the loyal customers become premium.
    let v1 = plugin_bytes("tiered-resolver");
    let v2 = plugin_bytes("tiered-resolver-v2");
    let file = plugins.join("tiered.wasm");
    let tmp = plugins.join(".tiered.wasm.incoming");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let left = wrong_after(&running, &users, Duration::from_secs(30), premium_in_v2).await;
    assert!(left.is_empty(), "not moved by version 2: {left:?}");
    let versions: Value = client
        .get(format!(
            "{}/v1/plugins/tiered-resolver/versions",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["0.1.0", "2.0.0"], "{versions:#}");
    // The new version's calls are counted apart: the reconciliation resolved every known
    // user through it once, none fell back.
    let status: Value = client
        .get(format!("{}/status.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resolver = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tiered-resolver")
        .unwrap();
    assert_eq!(resolver["version"], "2.0.0");
    let answers = resolver["calls"]["answers"].as_u64().unwrap();
    assert!(answers >= users.len() as u64, "{resolver:#}");
    assert_eq!(resolver["calls"]["fallbacks"], 0, "{resolver:#}");
    assert!(resolver["calls"]["crossings"].as_u64().unwrap() > 0);
    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"cmdscope_plugin_calls_total{plugin="tiered-resolver",version="2.0.0",outcome="ok"}"#
        ),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The decision log has one line per user version 2 moved: from, to, who, why.
    let lines = decisions(&audit);
    let mut logged: Vec<i64> = lines
        .iter()
        .map(|l| l["user_id"].as_i64().unwrap())
        .collect();
    logged.sort();
    let expected: Vec<i64> = users
        .iter()
        .copied()
        .filter(|&id| premium_in_v2(id))
        .collect();
    assert_eq!(logged, expected, "{lines:#?}");
    for line in &lines {
        assert_eq!(line["from"], "user", "{line}");
        assert_eq!(line["to"], "premium", "{line}");
        assert_eq!(line["plugin"]["version"], "2.0.0", "{line}");
        assert_eq!(line["plugin"]["sha256"], sha256(&v2), "{line}");
        let triggers = line["trigger"].as_array().unwrap();
        assert!(
            triggers
                .iter()
                .any(|t| t["kind"] == "plugin" && t["name"] == "tiered-resolver"),
            "{line}"
        );
    }

    // One step back: the file holds version 1 again, and every moved user follows it.
    let from = running.emulator.call_log().len();
    let r = rollback(Some(KEY)).await.unwrap();
    assert_eq!(r.status(), 200);
    let rolled: Value = r.json().await.unwrap();
    assert_eq!(rolled["from"], "2.0.0", "{rolled}");
    assert_eq!(rolled["to"], "0.1.0", "{rolled}");
    assert_eq!(rolled["file"], "tiered.wasm");
    assert_eq!(sha256(&std::fs::read(&file).unwrap()), sha256(&v1));
    let left = wrong_after(&running, &users, Duration::from_secs(30), |_| false).await;
    assert!(left.is_empty(), "still on version 2: {left:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sets_since(&running, from),
        moved,
        "one call per user the rollback moves, no more"
    );

    let back: Vec<Value> = decisions(&audit).split_off(lines.len());
    assert_eq!(back.len(), moved, "{back:#?}");
    assert!(
        back.iter()
            .all(|l| l["from"] == "premium" && l["to"] == "user")
    );

    // The CLI undoes the rollback the same way.
    let from = running.emulator.call_log().len();
    let out = std::process::Command::new(common::process::BIN)
        .args([
            "rollout",
            "rollback",
            "tiered-resolver",
            "--url",
            &server.url,
        ])
        .env("CMDSCOPE_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tiered-resolver: 0.1.0 -> 2.0.0"), "{said}");
    let left = wrong_after(&running, &users, Duration::from_secs(30), premium_in_v2).await;
    assert!(left.is_empty(), "not back on version 2: {left:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sets_since(&running, from), moved);
    drop(server);
}
