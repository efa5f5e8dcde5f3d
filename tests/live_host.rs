//! The live host end to end: files renamed into a watched folder, a config rewritten on disk,
//! HTTP to the emulator. Each change must reach Telegram, exactly where it changes a menu.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::Receiver;

use cmdscope::emulator::RunningEmulator;
use cmdscope::host::{HostEvent, ReconcileOptions, ReconcileReport, Trigger};
use cmdscope::plugin::WatchOptions;
use cmdscope::resolve::FnResolver;
use cmdscope::scope::ChatRef;
use cmdscope::{Host, Lang, ListKey, Scope, Status, UserContext};

use common::{emulator, http_api, plugin_bytes, shop_folder};

const LIMIT: Duration = Duration::from_secs(60);

/// Writes next to `path` and renames into place, as deploy tools do.
fn deploy(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("incoming");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn fast() -> (WatchOptions, ReconcileOptions) {
    (
        WatchOptions {
            debounce: Duration::from_millis(50),
            rescan: Duration::from_millis(500),
        },
        ReconcileOptions {
            settle: Duration::from_millis(100),
            retry_after: Duration::from_millis(500),
            ..ReconcileOptions::default()
        },
    )
}

async fn host(config: &Path, plugins: Option<&Path>) -> Host {
    let (watch, reconcile) = fast();
    let mut builder = Host::builder(config)
        .watch_options(watch)
        .reconcile_options(reconcile);
    if let Some(dir) = plugins {
        builder = builder.plugins(dir);
    }
    builder.build().await.expect("the host builds")
}

/// The next event matching `want`; panics after a minute.
async fn next(events: &mut Receiver<HostEvent>, want: impl Fn(&HostEvent) -> bool) -> HostEvent {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if want(&event) => return event,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("no matching event within {LIMIT:?}"),
        }
    }
}

/// The report of the run a trigger `want` accepts started, once complete: when that run left
/// users behind (deferred to a live update), the retries that follow finish it.
async fn reconciled(
    events: &mut Receiver<HostEvent>,
    want: impl Fn(&Trigger) -> bool,
) -> ReconcileReport {
    let mut started = false;
    loop {
        let HostEvent::Reconciled(report) =
            next(events, |e| matches!(e, HostEvent::Reconciled(_))).await
        else {
            unreachable!()
        };
        started |= report.trigger.iter().any(&want);
        if started && report.complete {
            return report;
        }
    }
}

/// Shop users: every tier, orders from 0 to 19, English and Russian.
fn shoppers(n: i64) -> Vec<UserContext> {
    (1..=n)
        .map(|id| {
            UserContext::private(id)
                .language(if id % 3 == 0 { "ru" } else { "en" })
                .flag("registered", id % 4 != 0)
                .flag("premium", id % 17 == 0)
                .flag("admin", id % 53 == 0)
                .flag("banned", id % 71 == 0)
                .flag("orders", id % 20)
        })
        .collect()
}

/// The lists set or deleted since the `from`th call, in order.
fn calls_since(running: &RunningEmulator, from: usize) -> Vec<ListKey> {
    running.emulator.call_log()[from..]
        .iter()
        .filter(|c| {
            c.method.eq_ignore_ascii_case("setMyCommands")
                || c.method.eq_ignore_ascii_case("deleteMyCommands")
        })
        .filter_map(|c| ListKey::from_storage_key(c.key.as_deref()?))
        .collect()
}

fn own_list(user_id: i64) -> ListKey {
    ListKey::new(
        Scope::Chat {
            chat_id: ChatRef::Id(user_id),
        },
        None,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolver_swap_reaches_every_affected_known_user_and_only_them() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let running = emulator().await;
    let host = host(&config, Some(&plugins)).await;
    let mut events = host.subscribe();
    assert!(host.start(http_api(&running)).await.unwrap().is_complete());
    assert!(host.is_ready());
    let users = shoppers(300);
    for outcome in host.update_users(users.clone(), 16).await {
        assert!(!outcome.status.is_failed(), "{outcome:?}");
    }
    // The first run after start: nothing behind.
    reconciled(&mut events, |t| *t == Trigger::Start).await;
    let mut before = Vec::new();
    for u in &users {
        before.push(host.preview(u).await.1);
    }
    let log_before = running.emulator.call_log().len();

    deploy(
        &plugins.join("tiered.wasm"),
        &plugin_bytes("tiered-resolver-v2"),
    );
    let report = reconciled(
        &mut events,
        |t| matches!(t, Trigger::Plugin { name, .. } if name == "tiered-resolver"),
    )
    .await;

    // Version 2 makes registered users with 10+ orders premium: exactly those changed.
    let mut affected = BTreeSet::new();
    for (u, old) in users.iter().zip(&before) {
        let (resolution, new) = host.preview(u).await;
        let loyal = u.is("registered")
            && !u.is("premium")
            && !u.is("admin")
            && !u.is("banned")
            && matches!(u.flags.get("orders"), Some(cmdscope::FlagValue::Int(n)) if *n >= 10);
        assert_eq!(
            new[..] != old[..],
            loyal,
            "user {}: {}",
            u.user_id,
            resolution.profile
        );
        if loyal {
            affected.insert(own_list(u.user_id));
        }
        let shown = running.emulator.effective(&u.viewer()).1;
        assert_eq!(
            shown[..],
            new[..],
            "user {} sees the new rules' menu",
            u.user_id
        );
    }
    assert!(affected.len() > 50, "{}", affected.len());
    let sent = calls_since(&running, log_before);
    let sent_keys: BTreeSet<ListKey> = sent.iter().cloned().collect();
    assert_eq!(sent.len(), sent_keys.len(), "no list sent twice: {sent:?}");
    assert_eq!(sent_keys, affected, "calls only for affected users");
    assert_eq!(report.users_examined, 300);
    assert_eq!(
        report.calls.get("setMyCommands").copied().unwrap_or(0),
        affected.len() as u64
    );
    assert_eq!(report.failed, 0);
    assert!(report.complete);
    let json = serde_json::to_value(HostEvent::Reconciled(report)).unwrap();
    assert_eq!(json["event"], "reconciled");
    assert_eq!(json["trigger"][0]["kind"], "plugin");
    assert_eq!(json["trigger"][0]["sha256"].as_str().unwrap().len(), 64);
    host.shutdown().await;
}

/// A config whose `help` and `faq` descriptions come from the `words` translator plugin;
/// native rules pick the profile.
fn words_config(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("cmdscope.toml");
    std::fs::write(
        &config,
        r#"
languages = ["en"]
default_profile = "member"
i18n_key_prefix = "words"
translators = ["words"]
[commands.start]
descriptions = { en = "Start" }
[commands.help]
[commands.vip]
descriptions = { en = "VIP lounge" }
[commands.faq]
[profiles.guest]
include = ["start"]
[profiles.member]
include = ["start", "help"]
[profiles.vip]
include = ["start", "vip"]
[profiles.expert]
include = ["start", "faq"]
[[scopes]]
scope = "default"
profile = "guest"
[[scopes]]
scope = "all_private_chats"
profile = "member"
"#,
    )
    .unwrap();
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(plugins.join("words.wasm"), plugin_bytes("words-v1")).unwrap();
    (config, plugins)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_translator_swap_resends_exactly_the_lists_whose_text_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = words_config(dir.path());
    let running = emulator().await;
    let (watch, reconcile) = fast();
    let rules = FnResolver::new("rules", |ctx: &UserContext| {
        Ok(if ctx.is("vip") {
            "vip"
        } else if ctx.is("expert") {
            "expert"
        } else {
            "member"
        }
        .to_string())
    });
    let host = Host::builder(&config)
        .plugins(&plugins)
        .resolver(Arc::new(rules))
        .watch_options(watch)
        .reconcile_options(reconcile)
        .build()
        .await
        .unwrap();
    let mut events = host.subscribe();
    host.start(http_api(&running)).await.unwrap();
    let users: Vec<UserContext> = (1..=15)
        .map(|id| match id % 3 {
            0 => UserContext::private(id).flag("vip", true),
            1 => UserContext::private(id).flag("expert", true),
            _ => UserContext::private(id),
        })
        .collect();
    host.update_users(users.clone(), 4).await;
    reconciled(&mut events, |t| *t == Trigger::Start).await;
    let log_before = running.emulator.call_log().len();

    deploy(&plugins.join("words.wasm"), &plugin_bytes("words-v2"));
    let report = reconciled(
        &mut events,
        |t| matches!(t, Trigger::Plugin { name, .. } if name == "words"),
    )
    .await;

    let sent = calls_since(&running, log_before);
    let en = Lang::parse("en");
    let mut want: BTreeSet<ListKey> = [
        ListKey::new(Scope::AllPrivateChats, en),
        ListKey::new(Scope::AllPrivateChats, None),
    ]
    .into();
    // Experts' own lists show /faq; the vips' (inline texts only) and the default scope's do not.
    for u in users.iter().filter(|u| u.is("expert")) {
        want.insert(own_list(u.user_id));
    }
    assert_eq!(sent.len(), want.len(), "sent: {sent:?}");
    assert_eq!(sent.into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(report.lists_applied, 2);
    for u in &users {
        let (_, menu) = host.preview(u).await;
        assert_eq!(running.emulator.effective(&u.viewer()).1[..], menu[..]);
        if u.is("expert") {
            assert!(menu.iter().any(|c| c.description == "faq v2"), "{menu:?}");
        }
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_config_is_rejected_and_the_last_good_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let running = emulator().await;
    let host = host(&config, Some(&plugins)).await;
    let mut events = host.subscribe();
    host.start(http_api(&running)).await.unwrap();
    let guest = UserContext::private(5);
    let (_, menu) = host.preview(&guest).await;

    let good = std::fs::read_to_string(&config).unwrap();
    let broken = good.replace(
        "[profiles.user]\nextends = [\"guest\"]\ninclude = [\"cart\", \"orders\", \"profile\"]",
        "[profiles.user]\nextends = [\"guest\"]\ninclude = [\"cart\", \"oders\", \"profile\"]",
    );
    assert_ne!(broken, good);
    deploy(&config, broken.as_bytes());
    let HostEvent::ConfigRejected { file, errors } = next(&mut events, |e| {
        matches!(e, HostEvent::ConfigRejected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(file.ends_with("cmdscope.toml"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("profiles.user.include[1]") && e.contains("orders")),
        "the error names the path and the fix: {errors:?}"
    );
    assert_eq!(
        host.preview(&guest).await.1[..],
        menu[..],
        "the last good config serves"
    );
    let json = serde_json::to_value(HostEvent::ConfigRejected {
        file: "f".into(),
        errors: vec!["e".into()],
    })
    .unwrap();
    assert_eq!(json["event"], "config_rejected");

    // A valid change: guests get /orders too. New and changed lists are sent, nothing else.
    let log_before = running.emulator.call_log().len();
    let better = good.replace(
        "[profiles.guest]\ninclude = [\"start\", \"help\", \"catalog\"]",
        "[profiles.guest]\ninclude = [\"start\", \"help\", \"catalog\", \"orders\"]",
    );
    assert_ne!(better, good);
    deploy(&config, better.as_bytes());
    next(&mut events, |e| {
        matches!(e, HostEvent::ConfigReloaded { .. })
    })
    .await;
    let report = reconciled(&mut events, |t| matches!(t, Trigger::Config { .. })).await;
    let (_, now) = host.preview(&guest).await;
    assert!(now.iter().any(|c| c.command == "orders"));
    assert_eq!(running.emulator.effective(&guest.viewer()).1[..], now[..]);
    let sent = calls_since(&running, log_before);
    // Every scope's profile extends `guest`: each list, in en, ru, es and without a language.
    assert_eq!(sent.len(), 16, "{sent:?}");
    assert_eq!(report.lists_applied, 16);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_updates_win_over_the_reconciliation_and_are_not_starved() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let running = emulator().await;
    let (watch, reconcile) = fast();
    let host = Host::builder(&config)
        .plugins(&plugins)
        .watch_options(watch)
        .reconcile_options(reconcile)
        .delivery(cmdscope::deliver::DeliveryOptions {
            pace: 40.0,
            burst: 1,
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let mut events = host.subscribe();
    host.start(http_api(&running)).await.unwrap();
    // 200 loyal users: version 2 changes every one of them.
    let users: Vec<UserContext> = (1..=200)
        .map(|id| {
            UserContext::private(id)
                .flag("registered", true)
                .flag("orders", 12)
        })
        .collect();
    host.update_users(users, 16).await;
    reconciled(&mut events, |t| *t == Trigger::Start).await;

    deploy(
        &plugins.join("tiered.wasm"),
        &plugin_bytes("tiered-resolver-v2"),
    );
    // Wait until the reconciliation is under way.
    let start = running.emulator.call_log().len();
    while running.emulator.call_log().len() < start + 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A user the reconciler has not reached yet writes: banned now. Their update goes out
    // within a few slots of the pace, not after the 180 left.
    let writer = UserContext::private(190)
        .flag("registered", true)
        .flag("orders", 12)
        .flag("banned", true);
    let calls_before = running.emulator.call_log().len();
    let outcome = host.update_user(&writer).await;
    assert_eq!(outcome.status, Status::Set);
    let waited = running.emulator.call_log().len() - calls_before;
    assert!(
        waited <= cmdscope::deliver::BACKGROUND_SHARE as usize + 3,
        "the live update waited behind {waited} reconciliation calls"
    );
    let report = reconciled(&mut events, |t| matches!(t, Trigger::Plugin { .. })).await;
    assert!(report.complete);
    // The live update's menu stands: the reconciler never overwrote it with the old context.
    let (_, banned_menu) = host.preview(&writer).await;
    assert!(banned_menu.iter().any(|c| c.command == "appeal"));
    assert_eq!(
        running.emulator.effective(&writer.viewer()).1[..],
        banned_menu[..]
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_in_flight_updates_finish_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let running = emulator().await;
    let host = host(&config, Some(&plugins)).await;
    host.start(http_api(&running)).await.unwrap();
    // Each call takes 300 ms at the emulator.
    running.emulator.inject(cmdscope::emulator::Fault {
        status: None,
        retry_after: None,
        delay_ms: Some(300),
        count: 100,
    });
    let users: Vec<UserContext> = (1..=5)
        .map(|id| UserContext::private(id).flag("registered", true))
        .collect();
    let in_flight = {
        let host = host.clone();
        let users = users.clone();
        tokio::spawn(async move { host.update_users(users, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    host.shutdown().await;
    let outcomes = in_flight.await.unwrap();
    assert!(
        outcomes.iter().all(|o| o.status == Status::Set),
        "{outcomes:?}"
    );
    let late = host
        .update_user(&UserContext::private(99).flag("registered", true))
        .await;
    assert!(late.status.is_failed(), "{late:?}");
    assert!(late.status.to_string().contains("shutting down"));
    for u in &users {
        assert!(
            running
                .emulator
                .effective(&u.viewer())
                .1
                .iter()
                .any(|c| c.command == "cart")
        );
    }
}
