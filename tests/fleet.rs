//! Rule changes on a fleet, as operators make them: several `cmdscope serve` processes on one
//! real redis-server, a rolling deploy that reaches one worker before the other, a store that
//! goes away and comes back under traffic, and a plugin deployed together with the config
//! that names it, in either order.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use cmdscope::UserContext;
use cmdscope::emulator::RunningEmulator;

use common::redis::{RedisServer, prefix, redis, unavailable};
use common::serve::{serve, wait_healthy};
use common::users::{context, post_users, premium_in_v2, traffic, wrong_after};
use common::{emulator, plugin_bytes, shop_folder};

/// Renames `bytes` into `folder` as `name`, the way a deploy does.
fn deploy(folder: &Path, name: &str, bytes: &[u8]) {
    let tmp = folder.join(format!(".{name}.incoming"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, folder.join(name)).unwrap();
}

/// setMyCommands calls per list since `from` (an index into the call log).
fn sets_per_list(running: &RunningEmulator, from: usize) -> BTreeMap<String, usize> {
    let mut sets = BTreeMap::new();
    for call in &running.emulator.call_log()[from..] {
        if call.method == "setMyCommands"
            && let Some(key) = &call.key
        {
            *sets.entry(key.clone()).or_default() += 1;
        }
    }
    sets
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_deploy_across_two_serve_workers_ends_with_every_user_right() {
    let Some(redis) = redis() else { return };
    let running = emulator().await;
    let prefix = prefix("rolling");
    let state = ["--state", &redis.url, "--redis-prefix", &prefix];
    // Two machines: each worker has its own config file and plugin folder.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, plugins_a) = shop_folder(dir_a.path());
    let (config_b, plugins_b) = shop_folder(dir_b.path());
    let a = serve(&running, &config_a, &plugins_a, &state);
    let b = serve(&running, &config_b, &plugins_b, &state);
    let client = reqwest::Client::new();
    wait_healthy(&client, &a.url).await;
    wait_healthy(&client, &b.url).await;

    let users: Vec<i64> = (1..=200).collect();
    let all: Vec<Value> = users.iter().map(|&id| context(id)).collect();
    post_users(&client, &a.url, &all[..100]).await;
    post_users(&client, &b.url, &all[100..]).await;
    assert_eq!(
        wrong_after(&running, &users, Duration::ZERO, |_| false).await,
        Vec::<i64>::new()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let bot = traffic(
        vec![a.url.clone(), b.url.clone()],
        users.clone(),
        stop.clone(),
    );
    deploy(
        &plugins_a,
        "tiered.wasm",
        &plugin_bytes("tiered-resolver-v2"),
    );
    // Half deployed: A serves version 2, B version 1, and the bot writes to both.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::SeqCst);
    let posted = bot.await.unwrap();
    assert!(posted > 100, "the bot kept writing: {posted} contexts");
    // The users B updated last still have version 1's menu: only a reconciliation fixes them.
    let agreed_from = running.emulator.call_log().len();
    deploy(
        &plugins_b,
        "tiered.wasm",
        &plugin_bytes("tiered-resolver-v2"),
    );

    let left = wrong_after(&running, &users, Duration::from_secs(30), premium_in_v2).await;
    assert!(
        left.is_empty(),
        "users left with version 1's menu: {left:?}"
    );
    // Once both workers serve version 2 nobody is brought back and forth.
    let sets = sets_per_list(&running, agreed_from);
    let most = sets.values().copied().max().unwrap_or(0);
    assert!(
        most <= 2,
        "a chat set {most} times after the deploy: {sets:?}"
    );
    eprintln!(
        "rolling deploy: {posted} contexts posted, {} chats set after both workers agreed",
        sets.len()
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_posted_while_redis_is_away_are_known_when_it_comes_back() {
    // A server of its own, persisting every write, so stopping it loses nothing it took.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    let Some(mut server) = RedisServer::start(&args) else {
        unavailable();
        return;
    };
    let running = emulator().await;
    let prefix = prefix("outage");
    let (config, plugins) = shop_folder(dir.path());
    let worker = serve(
        &running,
        &config,
        &plugins,
        &["--state", &server.url(), "--redis-prefix", &prefix],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &worker.url).await;
    let before: Vec<Value> = (1..=100).map(context).collect();
    post_users(&client, &worker.url, &before).await;

    server.stop();
    let outage = Instant::now();
    let during: Vec<Value> = (101..=200).map(context).collect();
    for chunk in during.chunks(10) {
        post_users(&client, &worker.url, chunk).await;
    }
    // Telegram got every menu although the store was away.
    let users: Vec<i64> = (1..=200).collect();
    let old_rules = |id: i64| id < 0;
    assert_eq!(
        wrong_after(&running, &users, Duration::ZERO, old_rules).await,
        Vec::<i64>::new()
    );
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(outage.elapsed())).await;
    server.resume();
    let after: Vec<Value> = (201..=300).map(context).collect();
    post_users(&client, &worker.url, &after).await;

    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let known = loop {
        let known: u64 = ::redis::cmd("HLEN")
            .arg(format!("{prefix}:users"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if known == 300 || Instant::now() > deadline {
            break known;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(known, 300, "every posted user is known");

    // And a change of rules reaches the ones posted during the outage.
    deploy(&plugins, "tiered.wasm", &plugin_bytes("tiered-resolver-v2"));
    let left = wrong_after(&running, &users, Duration::from_secs(30), premium_in_v2).await;
    assert!(
        left.is_empty(),
        "users the new rules never reached: {left:?}"
    );
    drop(worker);
}

/// The shop config naming the Python resolver, with a `/vip` command for registered users: a
/// menu change only this config makes, and only once the plugin it names serves.
fn config_naming_the_python_resolver(shop: &str) -> String {
    let named = shop.replacen(
        "resolver = \"tiered-resolver\"",
        "resolver = \"tiered-resolver-py\"",
        1,
    );
    assert_ne!(named, shop, "the example names its resolver");
    let with_vip = named.replacen(
        "[commands.start]",
        "[commands.vip]\ndescriptions = { en = \"VIP lounge\" }\n[commands.start]",
        1,
    );
    let user_include = "include = [\"cart\", \"orders\", \"profile\"]";
    let text = with_vip.replacen(
        user_include,
        "include = [\"cart\", \"orders\", \"profile\", \"vip\"]",
        1,
    );
    assert_ne!(
        text, with_vip,
        "the example's user profile includes its commands"
    );
    text
}

async fn plugin_and_config_together(config_first: bool) {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let shop = std::fs::read_to_string(&config).unwrap();
    let new_config = config_naming_the_python_resolver(&shop);
    let worker = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &worker.url).await;
    let users: Vec<i64> = (1..=40).collect();
    let all: Vec<Value> = users.iter().map(|&id| context(id)).collect();
    post_users(&client, &worker.url, &all).await;

    let python = plugin_bytes("tiered-resolver-py");
    let write_config = || {
        let tmp = dir.path().join(".cmdscope.toml.new");
        std::fs::write(&tmp, &new_config).unwrap();
        std::fs::rename(&tmp, &config).unwrap();
    };
    if config_first {
        write_config();
        // The config is seen (and waits) while the plugin is not there yet.
        tokio::time::sleep(Duration::from_secs(3)).await;
        deploy(&plugins, "vip.wasm", &python);
    } else {
        deploy(&plugins, "vip.wasm", &python);
        tokio::time::sleep(Duration::from_millis(500)).await;
        write_config();
    }
    let deployed = Instant::now();
    let has_vip = |id: i64| {
        let viewer = UserContext::private(id).language("en").viewer();
        running
            .emulator
            .effective(&viewer)
            .1
            .iter()
            .any(|c| c.command == "vip")
    };
    let deadline = deployed + Duration::from_secs(60);
    let left = loop {
        let left: Vec<i64> = users
            .iter()
            .copied()
            .filter(|&id| has_vip(id) != (id % 2 == 0))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(left.is_empty(), "users without the new rules: {left:?}");
    let took = deployed.elapsed();
    // The Python component compiles in seconds; the budget is its compile plus a few seconds.
    assert!(
        took < Duration::from_secs(40),
        "every known user had the new rules only after {took:?}"
    );
    let preview: Value = client
        .get(format!(
            "{}/v1/preview?user_id=2&flags=registered",
            worker.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["source"], "tiered-resolver-py", "{preview}");
    eprintln!(
        "plugin and config ({}): every known user live {took:?} after the last step",
        if config_first {
            "config first"
        } else {
            "plugin first"
        }
    );
    drop(worker);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_deployed_before_the_plugin_it_names_waits_for_it() {
    plugin_and_config_together(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_deployed_before_the_config_that_names_it_serves() {
    plugin_and_config_together(false).await;
}
