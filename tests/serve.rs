//! `cmdscope serve` as operators run it: the JSON API over HTTP with an API key, server-sent
//! events, `/healthz`, `/metrics`, SIGTERM; a `kill -9` in the middle of a reconciliation
//! of 5,000 users, then a restart that finishes the job and sends no list twice; and the
//! aiogram example (`examples/aiogram_bot.py`, Python) using it to keep its users' menus.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cmdscope::UserContext;
use cmdscope::emulator::RunningEmulator;
use cmdscope::state::{FileStore, StateStore};

use common::chat::{has, say, sees};
use common::process::{BIN, Killed};
use common::serve::{KEY, post, serve, wait_healthy};
use common::{TOKEN, emulator, plugin_bytes, shop_folder};

#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_the_api_with_a_key_streams_events_and_stops_on_sigterm() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let server = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    let url = server.url.clone();
    wait_healthy(&client, &url).await;

    // Writes need the key.
    let ctx = json!({"user_id": 5, "language_code": "en", "flags": {"registered": true}});
    for key in [None, Some("wrong")] {
        let r = post(&client, &url, "/v1/users", key)
            .json(&ctx)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{key:?}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    }
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .json(&ctx)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let one: Value = r.json().await.unwrap();
    assert_eq!(one["profile"], "user", "{one}");
    assert_eq!(one["source"], "tiered-resolver");
    assert_eq!(one["status"], "set");
    assert!(
        one["menu"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "cart")
    );

    // A list: the bad contexts are answered with the field named, the others processed.
    let list = json!([
        {"user_id": 6, "flags": {"premium": true, "registered": true}},
        {"user_id": 7, "chat_type": "group"},
        {"user_id": "eight"},
        {"user_id": 9},
    ]);
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let results: Value = r.json().await.unwrap();
    let results = results["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["profile"], "premium");
    assert_eq!(results[1]["field"], "chat_id", "{}", results[1]);
    assert_eq!(results[1]["index"], 1);
    assert_eq!(results[2]["field"], "user_id", "{}", results[2]);
    assert_eq!(
        results[3]["status"], "unchanged",
        "a guest inherits: no call"
    );
    assert_eq!(
        running
            .emulator
            .effective(&UserContext::private(6).viewer())
            .1[6]
            .command,
        "deals"
    );
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Preview: no call.
    let calls = running.emulator.calls().total;
    let preview: Value = client
        .get(format!(
            "{url}/v1/preview?user_id=11&flags=registered,premium&language_code=ru"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["profile"], "premium");
    assert_eq!(running.emulator.calls().total, calls);
    let bad = client
        .get(format!("{url}/v1/preview?user_id=11&chat_type=channel"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "chat_type");

    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cmdscope_user_updates_total"), "{metrics}");

    // Events: a new resolver version is announced, then its reconciliation.
    let mut stream = client.get(format!("{url}/v1/events")).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let tmp = plugins.join(".tiered.incoming");
    std::fs::write(&tmp, plugin_bytes("tiered-resolver-v2")).unwrap();
    std::fs::rename(&tmp, plugins.join("tiered.wasm")).unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen.contains("event: reloaded") && seen.contains("\"trigger\":[{\"kind\":\"plugin\""))
    {
        assert!(Instant::now() < deadline, "events so far: {seen}");
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: reconciled"), "{seen}");

    // Clear: the user's own list goes.
    let r = post(&client, &url, "/v1/users/clear", Some(KEY))
        .json(&json!({"user_id": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !running
            .emulator
            .effective(&UserContext::private(6).viewer())
            .1
            .iter()
            .any(|c| c.command == "deals")
    );

    // SIGTERM, with an event stream still open: a clean exit.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    drop(stream);
}

/// A list of thousands (several pages, updated 16 at a time, answered as they finish) comes
/// back in input order, each bad context refused in its own place; the body's shape is
/// checked before any context is.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_of_thousands_is_answered_in_input_order_with_each_bad_context_in_place() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let server = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    let url = server.url.clone();
    wait_healthy(&client, &url).await;

    // Bad contexts at the first place, on both sides of a page's edge and at the last place;
    // one user in 50 is premium (a list of their own, a call), the rest guests (no call).
    let bad = [0usize, 255, 256, 1_000, 2_999];
    let list: Vec<Value> = (0..3_000)
        .map(|i| {
            if bad.contains(&i) {
                json!({"user_id": 10_000 + i, "flag": {"registered": true}})
            } else if i % 50 == 7 {
                json!({"user_id": 10_000 + i, "flags": {"registered": true, "premium": true}})
            } else {
                json!({"user_id": 10_000 + i})
            }
        })
        .collect();
    let body = format!("  \n{}", serde_json::to_string(&list).unwrap());
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3_000);
    for (i, result) in results.iter().enumerate() {
        if bad.contains(&i) {
            assert_eq!(result["index"], i, "{result}");
            assert_eq!(result["field"], "flag", "{result}");
            assert!(
                result["error"].as_str().unwrap().contains("flags"),
                "{result}"
            );
        } else {
            assert_eq!(result["user_id"], 10_000 + i, "answer {i}: {result}");
            let premium = i % 50 == 7;
            assert_eq!(result["profile"], if premium { "premium" } else { "guest" });
            assert_eq!(result["status"], if premium { "set" } else { "unchanged" });
        }
    }
    let premium = UserContext::private(10_000 + 2_957).viewer();
    assert!(
        running
            .emulator
            .effective(&premium)
            .1
            .iter()
            .any(|c| c.command == "deals")
    );

    // The body as a whole: too many contexts, not JSON, neither an object nor a list.
    let too_many = serde_json::to_string(&vec![json!({"user_id": 1}); 10_001]).unwrap();
    for (body, status, says) in [
        (too_many.as_str(), 413, "at most 10000"),
        ("{\"user_id\": 5", 400, "not JSON"),
        ("[{\"user_id\": 5}", 400, "not JSON"),
        ("42", 400, "one context object or a list"),
    ] {
        let r = post(&client, &url, "/v1/users", Some(KEY))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{}", &body[..body.len().min(40)]);
        let refusal: Value = r.json().await.unwrap();
        assert!(
            refusal["error"].as_str().unwrap().contains(says),
            "{refusal}"
        );
    }
    // One context that is JSON but not a context: 422, the field named.
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .json(&json!({"user_id": "five"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "user_id");
}

/// 5,000 registered users, one in ten with 10 or more orders: version 2 of the resolver
/// changes exactly those 500.
fn users() -> Vec<UserContext> {
    (1..=5000)
        .map(|id| {
            UserContext::private(id)
                .language("en")
                .flag("registered", true)
                .flag("orders", if id % 10 == 0 { 12 } else { 3 })
        })
        .collect()
}

/// Every list key the emulator was asked to set since call `from`, with how many times.
fn sent(running: &RunningEmulator, from: usize) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for call in &running.emulator.call_log()[from..] {
        if call.method == "setMyCommands"
            && let Some(key) = &call.key
        {
            *out.entry(key.clone()).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_mid_reconciliation_is_finished_after_a_restart_sending_nothing_twice() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let state = dir.path().join("state.redb");
    let users_file = dir.path().join("users.jsonl");
    let all = users();
    let text: String = all
        .iter()
        .map(|u| serde_json::to_string(u).unwrap() + "\n")
        .collect();
    std::fs::write(&users_file, text).unwrap();
    // The configured lists, then the users (who become known) through the same state file.
    let out = Command::new(BIN)
        .args(["apply", "--config", config.to_str().unwrap()])
        .args(["--plugins", plugins.to_str().unwrap()])
        .args([
            "--token",
            TOKEN,
            "--api-url",
            &running.url(),
            "--state",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["sync-users", "--config", config.to_str().unwrap()])
        .args([
            "--plugins",
            plugins.to_str().unwrap(),
            "--users",
            users_file.to_str().unwrap(),
        ])
        .args([
            "--token",
            TOKEN,
            "--api-url",
            &running.url(),
            "--state",
            state.to_str().unwrap(),
        ])
        .args(["--pace", "100000", "--burst", "1000", "--concurrency", "32"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        let store = FileStore::open(&state).unwrap();
        let known = store.known_users().unwrap().count().await.unwrap();
        assert_eq!(known, 5000, "sync-users remembered every user");
    }

    // The new rules arrive while serve is down; it starts at 200 calls/s and is killed after
    // a hundred or so of the 500 calls.
    let tmp = plugins.join(".tiered.incoming");
    std::fs::write(&tmp, plugin_bytes("tiered-resolver-v2")).unwrap();
    std::fs::rename(&tmp, plugins.join("tiered.wasm")).unwrap();
    let before = running.emulator.call_log().len();
    let pace = [
        "--state",
        state.to_str().unwrap(),
        "--pace",
        "200",
        "--burst",
        "1",
    ];
    let mut first = serve(&running, &config, &plugins, &pace);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent(&running, before).len() < 100 {
        assert!(
            Instant::now() < deadline,
            "the reconciliation did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let at_kill = sent(&running, before);
    // Lists whose call may have landed without being confirmed: the only ones that may go twice.
    let uncertain: BTreeSet<String> = {
        let store = FileStore::open(&state).unwrap();
        store
            .entries()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, s)| s.pending.is_some())
            .map(|(k, _)| k.storage_key())
            .collect()
    };
    assert!(uncertain.len() <= 2, "{uncertain:?}");
    assert!(
        at_kill.len() < 500,
        "killed before the end: {}",
        at_kill.len()
    );

    let second = serve(&running, &config, &plugins, &pace);
    let client = reqwest::Client::new();
    wait_healthy(&client, &second.url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Value = client
            .get(format!("{}/status.json", second.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = status["recent_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "reconciled" && e["complete"] == true);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restart never finished: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);

    // Every user right, each changed list sent once (or twice only if it was uncertain).
    let after = sent(&running, before);
    let loyal: BTreeSet<String> = all
        .iter()
        .filter(|u| u.user_id % 10 == 0)
        .map(|u| cmdscope::plan::override_key(&u.viewer()).storage_key())
        .collect();
    let sent_keys: BTreeSet<String> = after.keys().cloned().collect();
    let extra: Vec<&String> = sent_keys.difference(&loyal).take(5).collect();
    let missing: Vec<&String> = loyal.difference(&sent_keys).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "sent {} lists for {} loyal users; extra {extra:?}, missing {missing:?}",
        sent_keys.len(),
        loyal.len()
    );
    for (key, times) in &after {
        assert!(
            *times == 1 || (*times == 2 && uncertain.contains(key)),
            "{key} sent {times} times"
        );
    }
    for u in &all {
        let menu = running.emulator.effective(&u.viewer()).1;
        let premium = menu.iter().any(|c| c.command == "deals");
        assert_eq!(premium, u.user_id % 10 == 0, "user {}", u.user_id);
    }
}

/// The Python of a virtualenv holding `examples/aiogram-requirements.txt`, made once under
/// the target directory (pip, from the package registry) and again when the file changes.
fn aiogram_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aiogram-venv");
    let requirements = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/aiogram-requirements.txt"
    );
    let wanted = std::fs::read_to_string(requirements).unwrap();
    let stamp = venv.join("cmdscope-installed.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let run = |c: &mut Command| {
            let out = c.output().unwrap();
            assert!(out.status.success(), "{c:?}: {out:?}");
        };
        run(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv));
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(requirements));
        std::fs::write(&stamp, &wanted).unwrap();
    }
    venv.join("bin/python3")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aiogram_example_keeps_its_users_menus_right_through_serve() {
    let python = aiogram_python();
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let serve = serve(&running, &config, &plugins, &[]);
    wait_healthy(&reqwest::Client::new(), &serve.url).await;
    let _bot = Killed(
        Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/aiogram_bot.py"
            ))
            .env("BOT_TOKEN", TOKEN)
            .env("CMDSCOPE_API_KEY", KEY)
            .env("CMDSCOPE_URL", &serve.url)
            .env("BOT_API_URL", running.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A guest sees their scope's menu; `/register` makes the bot post a registered context
    // to serve, which sends the user their own list.
    say(&running, 21, "hello");
    sees(&running, 21, |m| has(m, "catalog") && !has(m, "cart")).await;
    say(&running, 21, "/register");
    sees(&running, 21, |m| has(m, "cart") && !has(m, "deals")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running
        .emulator
        .sent_messages()
        .iter()
        .any(|m| m.chat_id == 21 && m.text.starts_with("Welcome!"))
    {
        assert!(Instant::now() < deadline, "the bot did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A typo: the bot asks serve which command the user meant.
    say(&running, 21, "/ordres");
    while !running.emulator.sent_messages().iter().any(|m| {
        m.chat_id == 21 && m.text == "Unknown command /ordres. Did you mean /orders (Your orders)?"
    }) {
        assert!(
            Instant::now() < deadline,
            "no suggestion: {:?}",
            running.emulator.sent_messages()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
