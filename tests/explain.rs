//! `GET /v1/explain` against what Telegram really shows: users in private chats and groups,
//! as admins and members, with and without a language, through `cmdscope serve` and the
//! emulator. The explanation's list must be the one `/_emulator/effective` says the user sees,
//! with the same commands, and name the plugin version that decided.

mod common;

use serde_json::{Value, json};

use cmdscope::UserContext;

use common::serve::{KEY, post, serve, wait_healthy};
use common::{emulator, plugin_bytes, shop_folder};

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user as the bot posts them and as the explain query describes them.
struct Case {
    context: Value,
    query: String,
    ctx: UserContext,
}

fn case(ctx: UserContext) -> Case {
    let mut query = format!("user_id={}", ctx.user_id);
    if let Some(chat) = ctx.chat_id {
        query += &format!("&chat_id={chat}&chat_type=supergroup");
    }
    if let Some(lang) = &ctx.language_code {
        query += &format!("&language_code={lang}");
    }
    if ctx.is_chat_admin {
        query += "&chat_admin=true";
    }
    let flags: Vec<String> = ctx
        .flags
        .iter()
        .map(|(name, value)| match value {
            cmdscope::FlagValue::Bool(true) => name.clone(),
            cmdscope::FlagValue::Bool(false) => format!("{name}=false"),
            cmdscope::FlagValue::Int(i) => format!("{name}={i}"),
            cmdscope::FlagValue::Text(t) => format!("{name}={t}"),
        })
        .collect();
    if !flags.is_empty() {
        query += &format!("&flags={}", flags.join(","));
    }
    Case {
        context: serde_json::to_value(&ctx).unwrap(),
        query,
        ctx,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_agrees_with_the_list_telegram_shows_for_every_kind_of_user() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let server = serve(&running, &config, &plugins, &[]);
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.url).await;
    let group = -100_500;
    let cases = [
        // Private chats: a guest inherits the scope's list, others get their own.
        case(UserContext::private(1).language("en")),
        case(UserContext::private(2)),
        case(
            UserContext::private(3)
                .language("ru")
                .flag("registered", true),
        ),
        case(UserContext::private(4).flag("premium", true)),
        case(UserContext::private(5).language("es").flag("banned", true)),
        case(
            UserContext::private(6)
                .language("pt-br")
                .flag("admin", true),
        ),
        // Groups: a member, a member with their own menu, admins with and without one.
        case(UserContext::in_group(7, group).language("en")),
        case(UserContext::in_group(8, group).flag("registered", true)),
        case(UserContext::in_group(9, group).admin(true)),
        case(
            UserContext::in_group(10, group)
                .language("ru")
                .admin(true)
                .flag("admin", true),
        ),
    ];
    let contexts: Vec<Value> = cases.iter().map(|c| c.context.clone()).collect();
    let r = post(&client, &server.url, "/v1/users", Some(KEY))
        .json(&contexts)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let resolver_sha = sha256(&plugin_bytes("tiered-resolver"));
    for c in &cases {
        let explained: Value = client
            .get(format!("{}/v1/explain?{}", server.url, c.query))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (shown, commands) = running.emulator.effective(&c.ctx.viewer());
        let who = format!("user {} ({})", c.ctx.user_id, c.query);
        assert_eq!(
            explained["shown_from"],
            json!(shown.as_ref().map(|k| k.to_string())),
            "{who}: {explained:#}"
        );
        let menu: Vec<&str> = explained["menu"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap())
            .collect();
        let seen: Vec<&str> = commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(
            menu, seen,
            "{who}: the menu explained is the one Telegram shows"
        );
        assert_eq!(explained["telegram_has_this_menu"], true, "{who}");
        assert_eq!(explained["decided_by"]["plugin"]["name"], "tiered-resolver");
        assert_eq!(explained["decided_by"]["plugin"]["sha256"], resolver_sha);
        assert_eq!(explained["known"]["current"], true, "{who}: {explained:#}");
        // The chain is Telegram's: the list shown is its first step that is set.
        let chain = explained["chain"].as_array().unwrap();
        let first_set = chain.iter().find(|s| s["set"] == true);
        assert_eq!(
            first_set.map(|s| s["list"].clone()),
            shown.map(|k| json!(k.to_string())),
            "{who}"
        );
    }
    // A user never posted is explained too, without a known record.
    let stranger: Value = client
        .get(format!(
            "{}/v1/explain?user_id=99&language_code=en",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stranger.get("known").is_none(), "{stranger}");
    assert_eq!(stranger["profile"], "guest");
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_explains_from_the_store_the_host_uses() {
    let Some(redis) = common::redis::redis() else {
        return;
    };
    let prefix = common::redis::prefix("explain");
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
    let user = json!({"user_id": 2, "language_code": "ru", "flags": {"registered": true}});
    let r = post(&client, &server.url, "/v1/users", Some(KEY))
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = std::process::Command::new(common::process::BIN)
        .args(["explain", "--config"])
        .arg(&config)
        .arg("--plugins")
        .arg(&plugins)
        .args(state)
        .args([
            "--user-id",
            "2",
            "--language-code",
            "ru",
            "--flag",
            "registered=true",
        ])
        .env("CMDSCOPE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let explained: Value = serde_json::from_slice(&out.stdout).unwrap();
    let viewer = UserContext::private(2).language("ru").viewer();
    let (shown, _) = running.emulator.effective(&viewer);
    assert_eq!(
        explained["shown_from"],
        json!(shown.map(|k| k.to_string())),
        "{explained:#}"
    );
    assert_eq!(explained["profile"], "user");
    assert_eq!(explained["telegram_has_this_menu"], true);
    assert_eq!(explained["known"]["current"], true, "{explained:#}");
    assert_eq!(explained["decided_by"]["plugin"]["version"], "0.1.0");
    drop(server);
}
