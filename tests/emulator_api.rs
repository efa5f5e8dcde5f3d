//! The embedded Bot API emulator, driven over real HTTP by teloxide and by raw requests.

mod common;

use cmdscope::deliver::{ApiError, BotApi};
use cmdscope::emulator::{Emulator, Fault};
use cmdscope::{BotCommand, Lang, ListKey, Scope, scope::ChatRef};
use serde_json::{Value, json};
use teloxide_core::payloads::{
    DeleteMyCommandsSetters, GetMyCommandsSetters, SetMyCommandsSetters,
};
use teloxide_core::prelude::Requester;
use teloxide_core::types::{BotCommand as TgCommand, BotCommandScope, ChatId, Recipient, UserId};

use common::{TOKEN, api, bot, emulator, get_json};

fn cmd(name: &str, description: &str) -> BotCommand {
    BotCommand {
        command: name.into(),
        description: description.into(),
    }
}

fn lang(s: &str) -> Option<Lang> {
    Lang::parse(s)
}

#[tokio::test]
async fn teloxide_set_get_delete_round_trip() {
    let running = emulator().await;
    let bot = bot(&running);
    let scope = BotCommandScope::Chat {
        chat_id: Recipient::Id(ChatId(77)),
    };
    bot.set_my_commands([
        TgCommand::new("start", "Старт"),
        TgCommand::new("help", "Помощь"),
    ])
    .scope(scope.clone())
    .language_code("ru")
    .await
    .unwrap();
    let got = bot
        .get_my_commands()
        .scope(scope.clone())
        .language_code("ru")
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|c| c.command.as_str()).collect::<Vec<_>>(),
        ["start", "help"]
    );
    // Another language of the same scope is a different list.
    assert!(
        bot.get_my_commands()
            .scope(scope.clone())
            .await
            .unwrap()
            .is_empty()
    );
    bot.delete_my_commands()
        .scope(scope.clone())
        .language_code("ru")
        .await
        .unwrap();
    assert!(
        bot.get_my_commands()
            .scope(scope)
            .language_code("ru")
            .await
            .unwrap()
            .is_empty()
    );

    let calls = running.emulator.calls();
    assert_eq!(calls.total, 5);
    assert_eq!(calls.by_method["setMyCommands"], 1);
    assert_eq!(calls.by_method["getMyCommands"], 3);
    assert_eq!(calls.by_method["deleteMyCommands"], 1);
}

#[tokio::test]
async fn method_names_are_case_insensitive_and_form_bodies_work() {
    let running = emulator().await;
    let client = reqwest::Client::new();
    let url = |m: &str| format!("{}bot{TOKEN}/{m}", running.url());
    let resp: Value = client
        .post(url("SETMYCOMMANDS"))
        .form(&[
            ("commands", r#"[{"command":"start","description":"Go"}]"#),
            ("scope", r#"{"type":"all_private_chats"}"#),
            ("language_code", "en"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp, json!({"ok": true, "result": true}));
    let resp: Value = client
        .get(url("getmycommands"))
        .query(&[
            ("scope", r#"{"type":"all_private_chats"}"#),
            ("language_code", "en"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["result"],
        json!([{"command": "start", "description": "Go"}])
    );
    let me: Value = client
        .post(url("getMe"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["is_bot"], true);
    // teloxide parses getMe too.
    let me = bot(&running).get_me().await.unwrap();
    assert_eq!(me.username(), "cmdscope_emulator_bot");
    let unknown = client.post(url("sendPhoto")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn get_updates_long_polls_and_offsets_confirm() {
    let running = emulator().await;
    let client = reqwest::Client::new();
    let url = |m: &str| format!("{}bot{}/{m}", running.url(), common::TOKEN);
    let poll = |offset: i64, timeout: u64| {
        let (client, url) = (client.clone(), url("getUpdates"));
        async move {
            let v: Value = client
                .post(url)
                .json(&json!({"offset": offset, "timeout": timeout}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["result"].as_array().unwrap().clone()
        }
    };
    assert!(poll(0, 0).await.is_empty(), "nothing yet, answered at once");
    // A long poll waits for the user's message.
    let waiting = tokio::spawn(poll(0, 30));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r: Value = client
        .post(format!("{}_emulator/updates", running.url()))
        .json(&json!({"user_id": 7, "text": "/start", "language_code": "ru"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["update_id"].as_i64().unwrap();
    let got = waiting.await.unwrap();
    assert_eq!(got.len(), 1);
    let message = &got[0]["message"];
    assert_eq!(got[0]["update_id"], id);
    assert_eq!(message["from"]["language_code"], "ru");
    assert_eq!(message["chat"]["type"], "private");
    assert_eq!(message["entities"][0]["type"], "bot_command");
    // Not confirmed yet: served again; an offset past it confirms it.
    assert_eq!(poll(0, 0).await.len(), 1);
    assert!(poll(id + 1, 0).await.is_empty());
    assert!(poll(0, 0).await.is_empty(), "confirmed updates are gone");
    // sendMessage is recorded; long polls stay out of the call counts.
    let sent: Value = client
        .post(url("sendMessage"))
        .json(&json!({"chat_id": 7, "text": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["result"]["text"], "hello");
    assert_eq!(running.emulator.sent_messages()[0].text, "hello");
    assert_eq!(running.emulator.calls().by_method.get("getUpdates"), None);
}

#[tokio::test]
async fn validates_like_telegram_with_its_error_shape() {
    let running = emulator().await;
    let api = api(&running);
    let default = ListKey::new(Scope::Default, None);
    let cases: Vec<(ListKey, Vec<BotCommand>, &str)> = vec![
        (
            default.clone(),
            vec![cmd("Start", "x")],
            "BOT_COMMAND_INVALID",
        ),
        (
            default.clone(),
            vec![cmd(&"a".repeat(33), "x")],
            "BOT_COMMAND_INVALID",
        ),
        (
            default.clone(),
            vec![cmd("start", "")],
            "BOT_COMMAND_DESCRIPTION_INVALID",
        ),
        (
            default.clone(),
            vec![cmd("start", &"d".repeat(257))],
            "BOT_COMMAND_DESCRIPTION_INVALID",
        ),
        (
            default.clone(),
            (0..101).map(|i| cmd(&format!("c{i}"), "x")).collect(),
            "BOT_COMMANDS_TOO_MUCH",
        ),
    ];
    for (key, commands, expected) in cases {
        match api.set_my_commands(&key, &commands).await {
            Err(ApiError::Api { code, description }) => {
                assert_eq!(code, Some(400), "{description}");
                assert!(
                    description.contains(expected),
                    "{description} lacks {expected}"
                );
            }
            other => panic!("expected a 400 for {expected}, got {other:?}"),
        }
    }
    // 100 commands and 256 characters are fine.
    let max: Vec<BotCommand> = (0..100)
        .map(|i| cmd(&format!("c{i}"), &"d".repeat(256)))
        .collect();
    api.set_my_commands(&default, &max).await.unwrap();

    // Raw requests: bad scopes and language codes, and the exact error shape.
    let client = reqwest::Client::new();
    let url = format!("{}bot{TOKEN}/setMyCommands", running.url());
    for body in [
        json!({"commands": [{"command": "a", "description": "b"}], "scope": {"type": "chat"}}),
        json!({"commands": [{"command": "a", "description": "b"}], "scope": {"type": "chat_member", "chat_id": 1}}),
        json!({"commands": [{"command": "a", "description": "b"}], "scope": {"type": "everyone"}}),
        json!({"commands": [{"command": "a", "description": "b"}], "language_code": "eng"}),
        json!({"scope": {"type": "default"}}),
    ] {
        let resp = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["error_code"], 400);
        assert!(
            answer["description"]
                .as_str()
                .unwrap()
                .starts_with("Bad Request: "),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let running = emulator().await;
    let api = api(&running);
    let key = ListKey::new(Scope::AllPrivateChats, lang("en"));
    let list = [cmd("start", "Start")];
    // Through the HTTP control endpoint, as a test of another process would.
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}_emulator/faults", running.url()))
        .json(&json!({"status": 429, "retry_after": 3, "count": 2}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    for _ in 0..2 {
        assert_eq!(
            api.set_my_commands(&key, &list).await,
            Err(ApiError::RetryAfter(std::time::Duration::from_secs(3)))
        );
    }
    api.set_my_commands(&key, &list).await.unwrap();

    // 5xx and delays, seen raw (teloxide waits 10 s after any 5xx).
    running.emulator.inject(Fault {
        status: Some(502),
        retry_after: None,
        delay_ms: Some(50),
        count: 1,
    });
    let resp = client
        .post(format!("{}bot{TOKEN}/getMyCommands", running.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})
    );

    running.emulator.inject(Fault {
        status: None,
        retry_after: None,
        delay_ms: Some(20),
        count: 1,
    });
    api.delete_my_commands(&key).await.unwrap();

    let calls = get_json(&running, "/_emulator/calls").await;
    assert_eq!(calls["total"], 5);
    assert_eq!(calls["faulted"], 3);
    assert_eq!(calls["by_method"]["setMyCommands"], 3);

    let bad = client
        .post(format!("{}_emulator/faults", running.url()))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn reset_clears_lists_counters_and_faults() {
    let running = emulator().await;
    let api = api(&running);
    api.set_my_commands(&ListKey::new(Scope::Default, None), &[cmd("start", "S")])
        .await
        .unwrap();
    running.emulator.inject(Fault {
        status: Some(500),
        retry_after: None,
        delay_ms: None,
        count: 5,
    });
    reqwest::Client::new()
        .post(format!("{}_emulator/reset", running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(get_json(&running, "/_emulator/calls").await["total"], 0);
    assert_eq!(
        get_json(&running, "/_emulator/lists").await["lists"],
        json!([])
    );
    api.set_my_commands(&ListKey::new(Scope::Default, None), &[cmd("start", "S")])
        .await
        .unwrap();
}

#[tokio::test]
async fn required_token_is_enforced() {
    let running = Emulator::new()
        .require_token("1:right")
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let wrong = api(&running);
    match wrong
        .delete_my_commands(&ListKey::new(Scope::Default, None))
        .await
    {
        Err(ApiError::Api { code, description }) => {
            assert_eq!(code, Some(401));
            assert!(description.starts_with("Unauthorized"), "{description}");
            assert!(
                !description.contains("right"),
                "the token never appears in errors"
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Lists at every applicable key, each describing itself; the effective endpoint must show the
/// highest-precedence one that is set. Keys are removed from the top one at a time.
#[tokio::test]
async fn effective_endpoint_follows_the_rule_table() {
    let running = emulator().await;
    let api = api(&running);
    let chat = ChatRef::Id(-500);
    let member = Scope::ChatMember {
        chat_id: chat.clone(),
        user_id: 9,
    };
    // Telegram's documented order for a group admin with language `de`.
    let table: Vec<ListKey> = vec![
        ListKey::new(member.clone(), lang("de")),
        ListKey::new(member, None),
        ListKey::new(
            Scope::ChatAdministrators {
                chat_id: chat.clone(),
            },
            lang("de"),
        ),
        ListKey::new(
            Scope::ChatAdministrators {
                chat_id: chat.clone(),
            },
            None,
        ),
        ListKey::new(
            Scope::Chat {
                chat_id: chat.clone(),
            },
            lang("de"),
        ),
        ListKey::new(Scope::Chat { chat_id: chat }, None),
        ListKey::new(Scope::AllChatAdministrators, lang("de")),
        ListKey::new(Scope::AllChatAdministrators, None),
        ListKey::new(Scope::AllGroupChats, lang("de")),
        ListKey::new(Scope::AllGroupChats, None),
        ListKey::new(Scope::Default, lang("de")),
        ListKey::new(Scope::Default, None),
    ];
    for (i, key) in table.iter().enumerate() {
        api.set_my_commands(key, &[cmd("which", &format!("list {i}"))])
            .await
            .unwrap();
    }
    // Decoys that must never show: private scope, another user, another language.
    api.set_my_commands(
        &ListKey::new(Scope::AllPrivateChats, None),
        &[cmd("which", "decoy")],
    )
    .await
    .unwrap();
    for (i, key) in table.iter().enumerate() {
        let admin = get_json(&running, "/_emulator/effective?chat_type=supergroup&chat_id=-500&user_id=9&language_code=de-AT&is_admin=true").await;
        assert_eq!(
            admin["commands"][0]["description"],
            format!("list {i}"),
            "admin, top key {key}"
        );
        // A plain member skips the admin lists.
        let member = get_json(
            &running,
            "/_emulator/effective?chat_type=group&chat_id=-500&user_id=9&language_code=de",
        )
        .await;
        let expected = table[i..]
            .iter()
            .position(|k| {
                !matches!(
                    k.scope,
                    Scope::ChatAdministrators { .. } | Scope::AllChatAdministrators
                )
            })
            .map(|p| format!("list {}", i + p))
            .unwrap();
        assert_eq!(
            member["commands"][0]["description"], expected,
            "member, top key {key}"
        );
        api.delete_my_commands(key).await.unwrap();
    }
    let none = get_json(
        &running,
        "/_emulator/effective?chat_type=group&chat_id=-500&user_id=9",
    )
    .await;
    assert_eq!(none["commands"], json!([]));
    let private = get_json(&running, "/_emulator/effective?user_id=9").await;
    assert_eq!(private["commands"][0]["description"], "decoy");
    assert_eq!(private["scope"], json!({"type": "all_private_chats"}));
}

#[tokio::test]
async fn empty_list_unsets_like_telegram() {
    let running = emulator().await;
    let bot = bot(&running);
    bot.set_my_commands([TgCommand::new("a", "A")])
        .await
        .unwrap();
    let member = BotCommandScope::ChatMember {
        chat_id: Recipient::Id(ChatId(-1)),
        user_id: UserId(5),
    };
    bot.set_my_commands([TgCommand::new("b", "B")])
        .scope(member.clone())
        .await
        .unwrap();
    bot.set_my_commands(Vec::<TgCommand>::new())
        .scope(member)
        .await
        .unwrap();
    let shown = get_json(
        &running,
        "/_emulator/effective?chat_type=group&chat_id=-1&user_id=5",
    )
    .await;
    assert_eq!(
        shown["commands"],
        json!([{"command": "a", "description": "A"}])
    );
}
