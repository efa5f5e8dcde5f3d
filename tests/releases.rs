//! Fleet releases as operators run them: `cmdscope release publish / list / rollback /
//! keygen` against a real redis-server, and three `cmdscope serve --follow-releases` workers
//! switching together while the bot keeps writing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use cmdscope::emulator::RunningEmulator;

use common::process::BIN;
use common::redis::{prefix, redis};
use common::serve::{Serve, serve_with, wait_healthy};
use common::users::{context, post_users, premium_in_v2, traffic, wrong_after};
use common::{emulator, plugin_bytes, shop_folder};

/// `cmdscope release ARGS` against the test's store.
fn release(store: &[&str], args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("release")
        .args(args)
        .args(store)
        .env("CMDSCOPE_LOG", "warn")
        .output()
        .unwrap()
}

/// `release publish` of a folder: the JSON line it prints.
fn publish(store: &[&str], config: &Path, plugins: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "publish",
        "--config",
        config.to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
        "--no-compiled-cache",
    ];
    args.extend_from_slice(extra);
    let out = release(store, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The shop example with resolver version `version` (1 or 2), laid out in `dir`.
fn shop_version(dir: &Path, version: u32) -> (PathBuf, PathBuf) {
    let (config, plugins) = shop_folder(dir);
    if version == 2 {
        std::fs::write(
            plugins.join("tiered.wasm"),
            plugin_bytes("tiered-resolver-v2"),
        )
        .unwrap();
    }
    (config, plugins)
}

fn worker(running: &RunningEmulator, store: &[&str], extra: &[&str]) -> Serve {
    let mut args = vec!["--follow-releases", "--no-compiled-cache"];
    args.extend_from_slice(store);
    args.extend_from_slice(extra);
    serve_with(running, &args)
}

async fn status(client: &reqwest::Client, worker: &Serve) -> Value {
    client
        .get(format!("{}/status.json", worker.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every worker's status satisfies `want`; answers how long that took.
async fn all_report(
    client: &reqwest::Client,
    workers: &[Serve],
    limit: Duration,
    want: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for w in workers {
            all &= want(&status(client, w).await);
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the workers never all reported it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_switch_together_on_publish_and_back_on_rollback() {
    let Some(redis) = redis() else { return };
    let running = emulator().await;
    let prefix = prefix("releases");
    let store = ["--state", &redis.url, "--redis-prefix", &prefix];
    let (v1, v2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_v1, plugins_v1) = shop_version(v1.path(), 1);
    let (config_v2, plugins_v2) = shop_version(v2.path(), 2);

    let first = publish(&store, &config_v1, &plugins_v1, &[]);
    assert_eq!(first["release"], 1, "{first}");
    let names: Vec<&str> = first["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-translator", "tiered-resolver"], "{first}");

    let workers: Vec<Serve> = (0..3).map(|_| worker(&running, &store, &[])).collect();
    let client = reqwest::Client::new();
    for w in &workers {
        wait_healthy(&client, &w.url).await;
    }
    all_report(&client, &workers, Duration::from_secs(10), |s| {
        s["release"] == 1
    })
    .await;
    let users: Vec<i64> = (1..=300).collect();
    for (i, chunk) in users.chunks(100).enumerate() {
        let contexts: Vec<Value> = chunk.iter().map(|&id| context(id)).collect();
        post_users(&client, &workers[i].url, &contexts).await;
    }
    assert!(
        wrong_after(&running, &users, Duration::ZERO, |_| false)
            .await
            .is_empty()
    );

    // The bot keeps writing to every worker while version 2 is published.
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = workers.iter().map(|w| w.url.clone()).collect();
    let bot = traffic(urls, users.clone(), stop.clone());
    let calls_before = running.emulator.call_log().len();
    let second = publish(&store, &config_v2, &plugins_v2, &[]);
    assert_eq!(second["release"], 2, "{second}");
    let took = all_report(&client, &workers, Duration::from_secs(30), |s| {
        s["release"] == 2
    })
    .await;
    assert!(
        took < Duration::from_secs(5),
        "workers on release 2 only after {took:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    bot.await.unwrap();
    let wrong = wrong_after(&running, &users, Duration::from_secs(30), premium_in_v2).await;
    assert!(
        wrong.is_empty(),
        "users without release 2's menu: {wrong:?}"
    );
    let mut sets: BTreeMap<String, usize> = BTreeMap::new();
    for call in &running.emulator.call_log()[calls_before..] {
        if call.method == "setMyCommands"
            && let Some(key) = &call.key
        {
            *sets.entry(key.clone()).or_default() += 1;
        }
    }
    let changed = users.iter().filter(|&&id| premium_in_v2(id)).count();
    let calls: usize = sets.values().sum();
    assert!(
        calls <= changed + 5,
        "{calls} setMyCommands for {changed} users whose menu changed: {sets:?}"
    );
    let most = sets.values().copied().max().unwrap_or(0);
    assert!(most <= 2, "a chat set {most} times: {sets:?}");

    // The list says which workers run what.
    let out = release(&store, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["current"], true);
    assert_eq!(
        listed[1]["workers"].as_array().unwrap().len(),
        3,
        "{listed:?}"
    );

    // Rollback: release 1's content again, as release 3, and every user back.
    let out = release(&store, &["rollback"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (rolled["release"].as_u64(), rolled["rollback_of"].as_u64()),
        (Some(3), Some(1))
    );
    all_report(&client, &workers, Duration::from_secs(10), |s| {
        s["release"] == 3
    })
    .await;
    let wrong = wrong_after(&running, &users, Duration::from_secs(30), |_| false).await;
    assert!(
        wrong.is_empty(),
        "users still on release 2's menu: {wrong:?}"
    );
    eprintln!("3 workers on release 2 within {took:?}; {calls} calls for {changed} changed users");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_unsigned_or_signed_with_another_key_is_refused_and_the_last_keeps_serving() {
    let Some(redis) = redis() else { return };
    let running = emulator().await;
    let prefix = prefix("signed");
    let store = ["--state", &redis.url, "--redis-prefix", &prefix];
    let keys = tempfile::tempdir().unwrap();
    let keygen = |name: &str| {
        let out = Command::new(BIN)
            .args(["release", "keygen", "--out"])
            .arg(keys.path().join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            keys.path().join(format!("{name}.key")),
            keys.path().join(format!("{name}.pub")),
        )
    };
    let (fleet_secret, fleet_public) = keygen("fleet");
    let (other_secret, _) = keygen("other");
    let sign = |key: &Path| vec!["--sign-key".to_string(), key.to_str().unwrap().to_string()];

    let (v1, v2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_v1, plugins_v1) = shop_version(v1.path(), 1);
    let (config_v2, plugins_v2) = shop_version(v2.path(), 2);
    let signed = sign(&fleet_secret);
    let signed: Vec<&str> = signed.iter().map(String::as_str).collect();
    assert_eq!(
        publish(&store, &config_v1, &plugins_v1, &signed)["signed"],
        true
    );

    let verify = ["--verify-key", fleet_public.to_str().unwrap()];
    let workers: Vec<Serve> = (0..2).map(|_| worker(&running, &store, &verify)).collect();
    let client = reqwest::Client::new();
    for w in &workers {
        wait_healthy(&client, &w.url).await;
    }
    all_report(&client, &workers, Duration::from_secs(10), |s| {
        s["release"] == 1
    })
    .await;

    // Unsigned: refused by every worker, release 1 keeps serving.
    assert_eq!(publish(&store, &config_v2, &plugins_v2, &[])["release"], 2);
    all_report(&client, &workers, Duration::from_secs(15), |s| {
        s["release"] == 1
            && s["release_refused"]["release"] == 2
            && s["release_refused"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not signed"))
    })
    .await;
    // Signed with another key: refused too.
    let other = sign(&other_secret);
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    assert_eq!(
        publish(&store, &config_v2, &plugins_v2, &other)["release"],
        3
    );
    all_report(&client, &workers, Duration::from_secs(15), |s| {
        s["release"] == 1
            && s["release_refused"]["release"] == 3
            && s["release_refused"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not from key"))
    })
    .await;
    // The fleet sees who refused what.
    let out = release(&store, &["list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("not from key"), "{listed}");
    // Signed with the fleet's key: served.
    assert_eq!(
        publish(&store, &config_v2, &plugins_v2, &signed)["release"],
        4
    );
    all_report(&client, &workers, Duration::from_secs(15), |s| {
        s["release"] == 4 && s["release_refused"].is_null()
    })
    .await;
}

#[test]
fn publish_refuses_a_release_that_would_not_load_and_writes_nothing() {
    let Some(redis) = redis() else { return };
    let prefix = prefix("refused");
    let store = ["--state", &redis.url, "--redis-prefix", &prefix];
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    std::fs::write(plugins.join("broken.wasm"), b"\0asm garbage").unwrap();
    // And a config naming a profile the resolver does not know is not the problem here: the
    // broken file is, and the resolver of another world named as translator.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "translators = [\"shop-translator\"]",
            "translators = [\"shop-translator\", \"tiered-resolver\"]",
            1,
        ),
    )
    .unwrap();
    let out = release(
        &store,
        &[
            "publish",
            "--config",
            config.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
            "--no-compiled-cache",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(stderr.contains("broken.wasm"), "{stderr}");
    assert!(
        stderr.contains("translator `tiered-resolver`"),
        "every reason: {stderr}"
    );
    let out = release(&store, &["list"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release"));
}
