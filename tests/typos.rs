//! Typos on both sides, through `cmdscope serve` over HTTP and the CLI: a user's unknown
//! command gets the command they meant (`GET /v1/suggest`), and a bot's typo in a context is
//! refused with the field and the closest known one, never silently changing a menu.

mod common;

use std::process::Command;

use serde_json::{Value, json};

use cmdscope::UserContext;

use common::process::BIN;
use common::serve::{KEY, post, serve, wait_healthy};
use common::{emulator, plugin_path, shop_folder};

#[tokio::test(flavor = "multi_thread")]
async fn serve_suggests_from_the_users_menu_and_refuses_a_bots_typos() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let server = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    let url = server.url.clone();
    wait_healthy(&client, &url).await;
    let get = |path: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(format!("{url}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // Users: the command they meant, from their own menu.
    let (status, body) =
        get("/v1/suggest?user_id=42&flags=registered&text=/ordres@shop_bot%20now".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"command": "orders", "description": "Your orders", "exact": false})
    );
    let (_, body) =
        get("/v1/suggest?user_id=42&language_code=ru&flags=registered&text=ordres".into()).await;
    assert_eq!(body["description"], "Ваши заказы", "{body}");
    let (_, body) = get("/v1/suggest?user_id=42&text=/ordres".into()).await;
    assert_eq!(body, json!({"command": null}), "a guest has no /orders");
    let (_, body) = get("/v1/suggest?user_id=42&flags=admin&text=/stats".into()).await;
    assert_eq!(body["exact"], true, "{body}");
    let (status, body) = get("/v1/suggest?user_id=42".into()).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("text")),
        "{body}"
    );
    let (status, body) = get("/v1/suggest?user_id=42&txet=/ordres".into()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "txet");
    assert_eq!(
        body["error"],
        "unknown parameter `txet`; did you mean `text`?"
    );
    let (status, body) = get("/v1/preview?user_id=42&flag=registered".into()).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("flag")),
        "{body}"
    );

    // A registered user with their own list.
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .json(&json!({"user_id": 42, "language_code": "en", "flags": {"registered": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let viewer = UserContext::private(42).language("en").viewer();
    let before = running.emulator.effective(&viewer);
    assert!(before.1.iter().any(|c| c.command == "orders"));
    let calls_before = running.emulator.call_log().len();

    // Bots: every typo a 422 naming the field and the closest one; the menu untouched.
    let typos = [
        (
            json!({"user_id": 42, "flag": {"registered": true}}),
            "flag",
            "flags",
        ),
        (
            json!({"user_id": 42, "langauge_code": "en", "flags": {"registered": true}}),
            "langauge_code",
            "language_code",
        ),
        (
            json!({"user_id": 42, "chat_tpye": "private", "flags": {"registered": true}}),
            "chat_tpye",
            "chat_type",
        ),
        (
            json!({"user_id": 42, "is_admin": true}),
            "is_admin",
            "is_chat_admin",
        ),
        (json!({"userid": 42}), "userid", "user_id"),
    ];
    for (context, field, meant) in typos {
        let r = post(&client, &url, "/v1/users", Some(KEY))
            .json(&context)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{context}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], field, "{body}");
        assert_eq!(
            body["error"],
            format!("unknown field `{field}`; did you mean `{meant}`?"),
            "{body}"
        );
    }
    let refused = [
        (json!({"flags": {"registered": true}}), "user_id"),
        (json!({"user_id": 42, "chat_id": 43}), "chat_id"),
        (
            json!({"user_id": 42, "chat_id": 500, "chat_type": "group"}),
            "chat_id",
        ),
        (json!({"user_id": 42, "chat_type": "supergroup"}), "chat_id"),
        (
            json!({"user_id": 42, "flags": {"level": [1]}}),
            "flags.level",
        ),
    ];
    for (context, field) in refused {
        let r = post(&client, &url, "/v1/users", Some(KEY))
            .json(&context)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{context}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], field, "{body}");
    }
    // In a list, the typo is refused by index and the rest processed.
    let r = post(&client, &url, "/v1/users", Some(KEY))
        .json(&json!([{"user_id": 43}, {"user_id": 42, "flag": {}}]))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"][0]["status"], "unchanged", "{body}");
    assert_eq!(
        (
            body["results"][1]["index"].as_u64(),
            body["results"][1]["field"].as_str()
        ),
        (Some(1), Some("flag"))
    );
    // Nothing reached Telegram for user 42: their list stands.
    assert!(
        !running.emulator.call_log()[calls_before..].iter().any(|c| c
            .key
            .as_deref()
            .is_some_and(|k| k.contains("\"chat_id\":42"))),
        "a typo changed user 42's lists"
    );
    assert_eq!(running.emulator.effective(&viewer), before);

    // A request whose headers are over 64 KiB is refused.
    let r = client
        .get(format!("{url}/healthz"))
        .header("x-padding", "a".repeat(200 << 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let r = client
        .get(format!("{url}/healthz"))
        .header("x-padding", "a".repeat(32 << 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "32 KiB of headers are fine");
    drop(server);
}

#[test]
fn sync_users_and_plugins_test_name_a_typo_and_the_field_meant() {
    let dir = tempfile::tempdir().unwrap();
    // plugins test: a case whose context has a typo is a bad line, said with the field.
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"context": {"user_id": 1, "flags": {"registered": true}}, "profile": "user"}"#,
            "\n",
            r#"{"context": {"user_id": 2, "flag": {"registered": true}}, "profile": "user"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["plugins", "test"])
        .arg(plugin_path("tiered-resolver"))
        .arg("--cases")
        .arg(&cases)
        .args(["--no-compiled-cache", "--format", "json"])
        .env("CMDSCOPE_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("unknown field `flag`; did you mean `flags`?"),
        "{text}"
    );

    // sync-users: the line is skipped with its number and the reason.
    let (config, plugins) = shop_folder(dir.path());
    let users = dir.path().join("users.jsonl");
    std::fs::write(
        &users,
        concat!(
            r#"{"user_id": 1, "flags": {"registered": true}}"#,
            "\n",
            r#"{"user_id": 2, "langauge_code": "en"}"#,
            "\n"
        ),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let running = runtime.block_on(emulator());
    let out = Command::new(BIN)
        .args(["sync-users", "--config"])
        .arg(&config)
        .arg("--plugins")
        .arg(&plugins)
        .arg("--users")
        .arg(&users)
        .args(["--token", common::TOKEN, "--api-url", &running.url()])
        .env("CMDSCOPE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "users.jsonl:2: skipped: unknown field `langauge_code`; did you mean `language_code`?"
        ),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["invalid_lines"], 1, "{summary}");
    assert_eq!(summary["users"], 1, "{summary}");
}
