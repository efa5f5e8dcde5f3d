//! The manager end to end: teloxide over HTTP against the emulator, checked through what the
//! emulator says each user sees.

mod common;

use std::sync::Arc;

use cmdscope::deliver::ApiError;
use cmdscope::emulator::{Fault, RunningEmulator};
use cmdscope::manager::Status;
use cmdscope::resolve::{FnResolver, ResolveError};
use cmdscope::scope::ChatRef;
use cmdscope::{BotApi, BotCommand, CommandManager, Lang, ListKey, Scope, UserContext};

use common::{api, emulator, shop_config, shop_plugins};

/// The example config with its example plugins (real wasm components).
fn manager(running: &RunningEmulator) -> CommandManager {
    let (resolver, translator) = shop_plugins();
    CommandManager::builder(shop_config())
        .resolver(resolver)
        .translator(translator)
        .build(api(running))
}

/// What Telegram (the emulator) shows this user right now.
fn shown(running: &RunningEmulator, ctx: &UserContext) -> Vec<BotCommand> {
    running.emulator.effective(&ctx.viewer()).1
}

fn names(commands: &[BotCommand]) -> Vec<&str> {
    commands.iter().map(|c| c.command.as_str()).collect()
}

#[tokio::test]
async fn setup_all_applies_every_list_and_the_menu_button() {
    let running = emulator().await;
    let m = manager(&running);
    let report = m.setup_all().await;
    assert!(report.is_complete(), "{report:?}");
    // 4 scopes x (3 languages + 1 language-free list).
    assert_eq!(report.lists.len(), 16);
    let stored = running.emulator.lists();
    assert_eq!(stored.len(), 16);
    for planned in &m.plan().lists {
        assert_eq!(
            running.emulator.list(&planned.key).unwrap()[..],
            planned.commands[..],
            "{}",
            planned.key
        );
    }
    // The language-free list is in the fallback language; es comes from the catalog.
    let any = running
        .emulator
        .list(&ListKey::new(Scope::AllPrivateChats, None))
        .unwrap();
    assert_eq!(any[0].description, "Start the bot");
    let es = running
        .emulator
        .list(&ListKey::new(Scope::AllPrivateChats, Lang::parse("es")))
        .unwrap();
    assert_eq!(es[0].description, "Iniciar el bot");
    assert_eq!(
        running.emulator.default_menu_button().unwrap()["type"],
        "commands"
    );
    assert_eq!(running.emulator.calls().total, 17);

    // Nothing changed: nothing is sent again, the menu button included.
    let again = m.setup_all().await;
    assert!(again.lists.iter().all(|l| l.status == Status::Unchanged));
    assert_eq!(again.menu_button, Status::Unchanged);
    assert_eq!(running.emulator.calls().total, 17);
}

#[tokio::test]
async fn one_failing_list_does_not_stop_the_rest() {
    let running = emulator().await;
    let m = manager(&running);
    running.emulator.inject(Fault {
        status: Some(400),
        retry_after: None,
        delay_ms: None,
        count: 1,
    });
    let report = m.setup_all().await;
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    match &failures[0].status {
        Status::Failed(ApiError::Api { code, description }) => {
            assert_eq!(*code, Some(400));
            assert_eq!(description, "Bad Request");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(running.emulator.lists().len(), 15);
    // The failed list is not recorded as applied, so the next run sends exactly it.
    let retry = m.setup_all().await;
    assert!(retry.is_complete());
    let sent: Vec<_> = retry
        .lists
        .iter()
        .filter(|l| l.status == Status::Set)
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].key, failures[0].key);
    assert_eq!(running.emulator.lists().len(), 16);
}

#[tokio::test]
async fn overrides_only_where_the_menu_differs() {
    let running = emulator().await;
    let m = manager(&running);
    assert!(m.setup_all().await.is_complete());
    let before = running.emulator.calls().total;

    // A guest sees exactly the inherited all_private_chats menu: no call at all.
    let guest = UserContext::private(10).language("en");
    let out = m.update_user(&guest).await;
    assert_eq!(out.status, Status::Unchanged);
    assert!(!out.has_override);
    assert_eq!(running.emulator.calls().total, before);
    assert_eq!(
        names(&shown(&running, &guest)),
        ["start", "help", "catalog"]
    );

    // Registered: an override at the private chat, without a language.
    let user = guest.clone().flag("registered", true);
    let out = m.update_user(&user).await;
    assert_eq!(out.status, Status::Set);
    assert_eq!(
        out.key,
        ListKey::new(
            Scope::Chat {
                chat_id: ChatRef::Id(10)
            },
            None
        )
    );
    assert_eq!(shown(&running, &user), out.menu[..]);
    assert_eq!(
        names(&shown(&running, &user)),
        ["start", "help", "catalog", "cart", "orders", "profile"]
    );

    // Same again: nothing sent.
    assert_eq!(m.update_user(&user).await.status, Status::Unchanged);
    assert_eq!(running.emulator.calls().total, before + 1);

    // Back to guest: the override is deleted and the inherited menu shows again.
    let out = m.update_user(&guest).await;
    assert_eq!(out.status, Status::Deleted);
    assert!(running.emulator.list(&out.key).is_none());
    assert_eq!(
        names(&shown(&running, &guest)),
        ["start", "help", "catalog"]
    );
    assert_eq!(running.emulator.calls().total, before + 2);
}

#[tokio::test]
async fn the_override_survives_a_client_language_switch() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    let ru = UserContext::private(20)
        .language("ru")
        .flag("premium", true);
    m.update_user(&ru).await;
    assert_eq!(shown(&running, &ru)[0].description, "Запустить бота");
    // The user switches Telegram to Spanish before the bot hears from them again:
    // still their premium menu (in the language it was built in), never the guest menu.
    let es = UserContext::private(20).language("es");
    assert!(names(&shown(&running, &es)).contains(&"deals"));
    // The next update rebuilds it in Spanish.
    m.update_user(&es.clone().flag("premium", true)).await;
    assert_eq!(shown(&running, &es)[0].description, "Iniciar el bot");
}

#[tokio::test]
async fn unconfigured_languages_get_the_fallback_menu() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    let pt = UserContext::private(30).language("pt-br");
    assert_eq!(m.update_user(&pt).await.status, Status::Unchanged);
    assert_eq!(shown(&running, &pt)[0].description, "Start the bot");
    let admin = pt.flag("admin", true);
    m.update_user(&admin).await;
    let menu = shown(&running, &admin);
    assert!(names(&menu).contains(&"ban"));
    assert_eq!(menu[0].description, "Start the bot");
}

#[tokio::test]
async fn group_members_get_chat_member_overrides() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    let banned = UserContext::in_group(40, -700)
        .language("ru")
        .flag("banned", true);
    let out = m.update_user(&banned).await;
    assert_eq!(
        out.key.scope,
        Scope::ChatMember {
            chat_id: ChatRef::Id(-700),
            user_id: 40
        }
    );
    assert_eq!(names(&shown(&running, &banned)), ["appeal", "help"]);
    // Another member of the same group still sees the group menu.
    let other = UserContext::in_group(41, -700).language("ru");
    assert_eq!(
        names(&shown(&running, &other)),
        ["start", "help", "catalog"]
    );
    // A chat admin with the admin flag inherits all_chat_administrators: no override.
    let admin = UserContext::in_group(42, -700)
        .language("ru")
        .admin(true)
        .flag("admin", true);
    assert_eq!(m.update_user(&admin).await.status, Status::Unchanged);
    assert!(names(&shown(&running, &admin)).contains(&"ban"));
    // The same user in their private chat is unaffected.
    assert_eq!(
        names(&shown(&running, &UserContext::private(40))),
        ["start", "help", "catalog"]
    );
}

#[tokio::test]
async fn clear_user_removes_every_language() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    let ctx = UserContext::private(50).language("ru").flag("admin", true);
    m.update_user(&ctx).await;
    // A per-language list at the user's chat, e.g. left by an older tool.
    let api = api(&running);
    let ru_key = ListKey::new(
        Scope::Chat {
            chat_id: ChatRef::Id(50),
        },
        Lang::parse("ru"),
    );
    api.set_my_commands(
        &ru_key,
        &[BotCommand {
            command: "old".into(),
            description: "Old".into(),
        }],
    )
    .await
    .unwrap();
    let outcomes = m.clear_user(&ctx).await;
    assert_eq!(outcomes.len(), 4, "no language + en, ru, es");
    assert!(
        outcomes.iter().all(|o| o.status == Status::Deleted),
        "{outcomes:?}"
    );
    assert!(
        running
            .emulator
            .lists()
            .iter()
            .all(|(k, _)| !matches!(k.scope, Scope::Chat { .. }))
    );
    assert_eq!(names(&shown(&running, &ctx)), ["start", "help", "catalog"]);
    // The manager knows the override is gone: updating as a guest sends nothing.
    let guest = UserContext::private(50).language("ru");
    assert_eq!(m.update_user(&guest).await.status, Status::Unchanged);
}

#[tokio::test]
async fn resolver_failures_fall_back_to_the_default_profile() {
    let running = emulator().await;
    let failing = FnResolver::new("flaky", |ctx: &UserContext| match ctx.user_id {
        1 => Err(ResolveError::Rejected("database down".into())),
        2 => Ok("superuser".into()),
        _ => Ok("admin".into()),
    });
    let m = CommandManager::builder(shop_config())
        .resolver(Arc::new(failing))
        .build(api(&running));
    m.setup_all().await;
    let out = m.update_user(&UserContext::private(1)).await;
    assert_eq!(out.resolution.profile, "guest");
    assert_eq!(out.resolution.source, "flaky");
    assert_eq!(
        out.resolution.error,
        Some(ResolveError::Rejected("database down".into()))
    );
    assert_eq!(out.status, Status::Unchanged);
    let out = m.update_user(&UserContext::private(2)).await;
    assert_eq!(out.resolution.profile, "guest");
    assert_eq!(
        out.resolution.error,
        Some(ResolveError::UnknownProfile("superuser".into()))
    );
    let out = m.update_user(&UserContext::private(3)).await;
    assert_eq!(
        (out.resolution.profile.as_str(), &out.resolution.error),
        ("admin", &None)
    );
    assert_eq!(out.status, Status::Set);
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_update_lands() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    running.emulator.inject(Fault {
        status: Some(429),
        retry_after: Some(1),
        delay_ms: None,
        count: 1,
    });
    let ctx = UserContext::private(60).flag("registered", true);
    let started = std::time::Instant::now();
    let out = m.update_user(&ctx).await;
    assert_eq!(out.status, Status::Set);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "retry_after honoured"
    );
    assert_eq!(shown(&running, &ctx), out.menu[..]);
    let stats = m.delivery_stats();
    assert_eq!((stats.rate_limited, stats.retries, stats.failed), (1, 1, 0));
}

#[tokio::test]
async fn a_refused_update_is_reported_and_sent_again_next_time() {
    let running = emulator().await;
    let m = manager(&running);
    m.setup_all().await;
    running.emulator.inject(Fault {
        status: Some(403),
        retry_after: None,
        delay_ms: None,
        count: 1,
    });
    let ctx = UserContext::private(61).flag("registered", true);
    let out = m.update_user(&ctx).await;
    assert!(
        matches!(
            &out.status,
            Status::Failed(ApiError::Api {
                code: Some(403),
                ..
            })
        ),
        "{:?}",
        out.status
    );
    assert_eq!(names(&shown(&running, &ctx)), ["start", "help", "catalog"]);
    let out = m.update_user(&ctx).await;
    assert_eq!(out.status, Status::Set);
    assert_eq!(shown(&running, &ctx), out.menu[..]);
}

#[tokio::test]
async fn setup_all_deletes_lists_of_scopes_the_config_no_longer_has() {
    let running = emulator().await;
    let store: Arc<dyn cmdscope::state::StateStore> = Arc::new(cmdscope::state::MemoryStore::new());
    let (resolver, translator) = shop_plugins();
    let first = CommandManager::builder(shop_config())
        .resolver(resolver.clone())
        .translator(translator.clone())
        .build(api(&running))
        .with_store(store.clone());
    assert!(first.setup_all().await.is_complete());
    let admin_key = ListKey::new(Scope::AllChatAdministrators, None);
    assert!(running.emulator.list(&admin_key).is_some());
    // A user override must survive the cleanup.
    let ctx = UserContext::private(77).flag("admin", true);
    assert_eq!(first.update_user(&ctx).await.status, Status::Set);

    let mut config = shop_config();
    config
        .scopes
        .retain(|s| s.scope != Scope::AllChatAdministrators);
    let second = CommandManager::builder(config)
        .resolver(resolver)
        .translator(translator)
        .build(api(&running))
        .with_store(store);
    let report = second.setup_all().await;
    assert!(report.is_complete(), "{report:?}");
    let deleted: Vec<&ListKey> = report
        .lists
        .iter()
        .filter(|l| l.status == Status::Deleted)
        .map(|l| &l.key)
        .collect();
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert!(
        deleted
            .iter()
            .all(|k| k.scope == Scope::AllChatAdministrators)
    );
    assert!(running.emulator.list(&admin_key).is_none());
    assert_eq!(
        shown(&running, &ctx),
        second.engine().menu_of("admin", &ctx)[..]
    );
}
