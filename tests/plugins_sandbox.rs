//! Real components built from `plugins/` and `tests/plugins/`, run in the sandbox. Each hostile
//! plugin is contained: the host gives up in time, reports why, falls back, and serves the next
//! call.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmdscope::plugin::{
    FIXED_WALL_CLOCK_SECS, LoadError, Plugin, PluginHost, PluginSettings, SandboxLimits, World,
};
use cmdscope::resolve::ResolveError;
use cmdscope::{Lang, Resolver, Translator, UserContext};

use common::{guest_admin_config, plugin_bytes, plugin_path};

fn host() -> PluginHost {
    PluginHost::new(SandboxLimits::default()).unwrap()
}

fn resolver(host: &PluginHost, name: &str) -> Arc<cmdscope::plugin::WasmResolver> {
    resolver_with(host, name, &PluginSettings::new())
}

fn resolver_with(
    host: &PluginHost,
    name: &str,
    settings: &PluginSettings,
) -> Arc<cmdscope::plugin::WasmResolver> {
    match host.load_file(&plugin_path(name), settings).unwrap() {
        Plugin::Resolver(r) => r,
        other => panic!("{name} is not a resolver: {other:?}"),
    }
}

/// The user id that makes every hostile test plugin misbehave.
fn hostile() -> UserContext {
    UserContext::private(666)
}

fn failed(result: Result<String, ResolveError>) -> String {
    match result {
        Err(ResolveError::Failed(why)) => why,
        other => panic!("expected a contained failure, got {other:?}"),
    }
}

/// The host gave up, and then answers the next call normally.
fn assert_contained(r: &dyn Resolver, needle: &str) {
    let started = Instant::now();
    let why = failed(r.resolve(&hostile()));
    let took = started.elapsed();
    assert!(why.contains(needle), "`{why}` lacks `{needle}`");
    // Behavioural bound (not a benchmark): the default 20 ms deadline must stop it long before this.
    assert!(took < Duration::from_secs(5), "took {took:?} to give up");
    assert_eq!(
        r.resolve(&UserContext::private(1)).unwrap(),
        "guest",
        "host serves the next call"
    );
    assert_eq!(r.resolve(&UserContext::private(2)).unwrap(), "guest");
}

#[test]
fn tiered_resolver_reports_its_info_and_follows_the_spec() {
    let host = host();
    let r = resolver(&host, "tiered-resolver");
    let info = r.info();
    assert_eq!(info.name, "tiered-resolver");
    assert_eq!(info.world, World::Resolver);
    assert_eq!(info.version, "0.1.0");
    assert_eq!(
        info.profiles,
        ["banned", "admin", "premium", "user", "guest"]
    );
    assert_eq!(info.file, "tiered_resolver.wasm");
    assert_eq!(info.sha256.len(), 64);
    let base = UserContext::private(1);
    let cases = [
        (base.clone(), "guest"),
        (base.clone().flag("registered", true), "user"),
        (
            base.clone().flag("registered", true).flag("premium", true),
            "premium",
        ),
        (
            base.clone().flag("premium", true).flag("admin", true),
            "admin",
        ),
        (
            base.clone().flag("admin", true).flag("banned", true),
            "banned",
        ),
        (base.clone().flag("admin", 1), "guest"),
        (
            base.clone().flag("banned", false).flag("registered", true),
            "user",
        ),
        (
            UserContext::in_group(5, -100).flag("premium", true),
            "premium",
        ),
    ];
    for (ctx, expected) in cases {
        assert_eq!(r.resolve(&ctx).unwrap(), expected, "{ctx:?}");
    }
}

#[test]
fn fresh_instances_give_the_same_answers() {
    let host = PluginHost::new(SandboxLimits {
        reuse_instances: false,
        ..SandboxLimits::default()
    })
    .unwrap();
    let r = resolver(&host, "tiered-resolver");
    for _ in 0..3 {
        assert_eq!(
            r.resolve(&UserContext::private(1).flag("admin", true))
                .unwrap(),
            "admin"
        );
    }
    assert_contained(resolver(&host, "panicking").as_ref(), "panicked");
}

#[test]
fn shop_translator_translates_one_key_and_a_batch() {
    let host = host();
    let Plugin::Translator(t) = host
        .load_file(&plugin_path("shop-translator"), &PluginSettings::new())
        .unwrap()
    else {
        panic!("not a translator")
    };
    assert_eq!(t.info().world, World::Translator);
    assert_eq!(t.info().locales, ["en", "ru", "es"]);
    let es = Lang::parse("es").unwrap();
    assert_eq!(
        t.translate("shop.cart.desc", es).as_deref(),
        Some("Tu carrito")
    );
    assert_eq!(t.translate("nope", es), None);
    assert_eq!(
        t.translate_batch(
            &["shop.start.desc", "nope", "shop.ban.desc"],
            Lang::parse("ru").unwrap()
        ),
        vec![
            Some("Запустить бота".to_string()),
            None,
            Some("Заблокировать пользователя".to_string())
        ]
    );
    assert_eq!(
        t.translate("shop.start.desc", Lang::parse("de").unwrap()),
        None
    );
}

#[test]
fn infinite_loop_is_interrupted_at_the_deadline() {
    assert_contained(resolver(&host(), "spin").as_ref(), "timed out");
}

#[test]
fn memory_bomb_hits_the_cap() {
    assert_contained(resolver(&host(), "memory-bomb").as_ref(), "memory cap");
}

#[test]
fn deep_recursion_overflows_the_stack_and_traps() {
    assert_contained(
        resolver(&host(), "deep-recursion").as_ref(),
        "stack overflow",
    );
}

#[test]
fn panic_traps() {
    assert_contained(resolver(&host(), "panicking").as_ref(), "panicked");
}

#[test]
fn oversized_output_is_refused() {
    assert_contained(
        resolver(&host(), "huge-output").as_ref(),
        "1048576 bytes, over the 65536-byte cap",
    );
}

#[test]
fn reading_a_file_fails_because_nothing_is_preopened() {
    let r = resolver(&host(), "read-passwd");
    match r.resolve(&UserContext::private(1)) {
        Err(ResolveError::Rejected(why)) => {
            assert!(why.starts_with("cannot read /etc/passwd"), "{why}")
        }
        other => panic!("the plugin must not read /etc/passwd: {other:?}"),
    }
}

#[test]
fn the_clock_is_fixed() {
    let r = resolver(&host(), "clock-reader");
    let fixed = u128::from(FIXED_WALL_CLOCK_SECS) * 1_000_000_000;
    for _ in 0..2 {
        match r.resolve(&UserContext::private(1)) {
            Err(ResolveError::Rejected(why)) => assert_eq!(why, format!("clock {fixed} {fixed}")),
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_plugin_importing_http_is_refused_at_load() {
    match host().load_file(&plugin_path("http-importer"), &PluginSettings::new()) {
        Err(LoadError::ForbiddenImport(imports)) => {
            assert!(
                imports.iter().any(|i| i.starts_with("wasi:http/")),
                "{imports:?}"
            );
            assert!(
                !imports.iter().any(|i| i.starts_with("wasi:sockets/")),
                "sockets are linked, denied: {imports:?}"
            );
            let message = LoadError::ForbiddenImport(imports).to_string();
            assert!(message.contains("`wasi:http/"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_plugin_opening_a_socket_loads_and_its_call_is_denied() {
    let r = resolver(&host(), "socket-importer");
    match r.resolve(&UserContext::private(1)) {
        Err(ResolveError::Failed(why)) => {
            assert!(why.contains("`wasi:sockets/"), "{why}");
            assert!(why.contains("denied: plugins get no network"), "{why}");
        }
        other => panic!("expected the call to fail, got {other:?}"),
    }
}

#[test]
fn garbage_and_truncated_files_are_refused() {
    let host = host();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(matches!(
        host.load_bytes(&garbage, "garbage.wasm", &PluginSettings::new()),
        Err(LoadError::Compile(_))
    ));
    let good = plugin_bytes("tiered-resolver");
    let truncated = &good[..good.len() / 2];
    match host.load_bytes(truncated, "truncated.wasm", &PluginSettings::new()) {
        Err(LoadError::Compile(why)) => assert!(!why.is_empty()),
        other => panic!("{other:?}"),
    }
    // The host is unaffected.
    assert!(
        host.load_bytes(&good, "tiered.wasm", &PluginSettings::new())
            .is_ok()
    );
}

#[test]
fn settings_and_logs_reach_the_plugin() {
    let host = host();
    let mut settings = PluginSettings::new();
    settings.insert(
        "settings-echo".into(),
        BTreeMap::from([("profile".to_string(), "admin".to_string())]),
    );
    let r = resolver_with(&host, "settings-echo", &settings);
    assert_eq!(r.resolve(&UserContext::private(1)).unwrap(), "admin");
    let without = resolver(&host, "settings-echo");
    assert_eq!(
        without.resolve(&UserContext::private(1)),
        Err(ResolveError::Rejected("no `profile` setting".into()))
    );
}

#[test]
fn a_plugin_that_keeps_crashing_is_quarantined_then_probed() {
    let host = PluginHost::new(SandboxLimits {
        failure_threshold: 2,
        cooldown: Duration::from_millis(300),
        ..SandboxLimits::default()
    })
    .unwrap();
    let r = resolver(&host, "panicking");
    for _ in 0..2 {
        assert!(failed(r.resolve(&hostile())).contains("panicked"));
    }
    assert!(r.is_quarantined());
    // Quarantined: even a good request is refused without running the plugin.
    assert!(failed(r.resolve(&UserContext::private(1))).contains("quarantined"));
    std::thread::sleep(Duration::from_millis(350));
    // After the cooldown a probe runs; it succeeds, so the plugin serves again.
    assert_eq!(r.resolve(&UserContext::private(1)).unwrap(), "guest");
    assert!(!r.is_quarantined());
}

fn config(text: &str) -> cmdscope::Config {
    cmdscope::Config::parse(text, cmdscope::config::Format::Toml, "test.toml")
        .unwrap()
        .config
}

/// A folder holding copies of the named plugins, as an operator would lay it out.
fn plugin_folder(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(plugin_path(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

#[tokio::test]
async fn an_unknown_profile_falls_back_to_the_default_profile() {
    let config = config(&guest_admin_config("unknown-profile"));
    let dir = plugin_folder(&["unknown-profile"]);
    let host = PluginHost::new(config.sandbox.clone()).unwrap();
    let set = cmdscope::plugin::PluginSet::load(&host, dir.path(), &config).unwrap();
    let selected =
        cmdscope::sources::assemble(&config, Some(&set as &dyn cmdscope::sources::PluginLookup))
            .unwrap();
    let engine = cmdscope::Engine::builder(config)
        .resolver(selected.resolver.unwrap())
        .engine();
    let r = engine.resolve_async(&hostile()).await;
    assert_eq!(r.profile, "guest");
    assert_eq!(r.source, "unknown-profile");
    assert_eq!(
        r.error,
        Some(ResolveError::UnknownProfile("superuser".into()))
    );
    let next = engine.resolve_async(&UserContext::private(1)).await;
    assert_eq!((next.profile.as_str(), next.error), ("guest", None));
}

#[test]
fn a_resolver_that_may_return_undefined_profiles_is_rejected_at_load() {
    // The tiered resolver declares banned, admin, premium, user and guest; this config has two.
    let config = config(&guest_admin_config("tiered-resolver"));
    let dir = plugin_folder(&["tiered-resolver", "http-importer"]);
    let host = PluginHost::new(config.sandbox.clone()).unwrap();
    let set = cmdscope::plugin::PluginSet::load(&host, dir.path(), &config).unwrap();
    assert!(set.loaded.is_empty());
    assert_eq!(set.rejected.len(), 2);
    let tiered = set
        .rejected
        .iter()
        .find(|r| r.file == "tiered-resolver.wasm")
        .unwrap();
    assert_eq!(
        tiered.error,
        LoadError::UnknownProfiles(vec!["banned".into(), "premium".into(), "user".into()])
    );
    let message =
        cmdscope::sources::assemble(&config, Some(&set as &dyn cmdscope::sources::PluginLookup))
            .err()
            .unwrap();
    assert!(
        message.contains("resolver `tiered-resolver` named in test.toml is not loaded"),
        "{message}"
    );
    assert!(
        message.contains(
            "may return profiles the config does not define: `banned`, `premium`, `user`"
        ),
        "{message}"
    );
    assert!(
        message.contains("http-importer.wasm: imports `wasi:http/"),
        "{message}"
    );
}

#[test]
fn two_plugins_with_one_name_keep_the_first() {
    let config = config(&guest_admin_config("unknown-profile"));
    let dir = plugin_folder(&["unknown-profile"]);
    std::fs::copy(
        plugin_path("unknown-profile"),
        dir.path().join("z-copy.wasm"),
    )
    .unwrap();
    let host = PluginHost::new(config.sandbox.clone()).unwrap();
    let set = cmdscope::plugin::PluginSet::load(&host, dir.path(), &config).unwrap();
    assert_eq!(set.loaded.len(), 1);
    assert_eq!(
        set.rejected[0].error,
        LoadError::DuplicateName("unknown-profile".into(), "unknown-profile.wasm".into())
    );
}

#[test]
fn config_sandbox_limits_reach_the_host() {
    let config = config(&format!(
        "{}\n[sandbox]\ntimeout_ms = 5\nmemory_mib = 4\n",
        guest_admin_config("spin")
    ));
    assert_eq!(config.sandbox.timeout, Duration::from_millis(5));
    let host = PluginHost::new(config.sandbox.clone()).unwrap();
    let Plugin::Resolver(spin) = host
        .load_file(&plugin_path("spin"), &PluginSettings::new())
        .unwrap()
    else {
        panic!()
    };
    assert!(failed(spin.resolve(&hostile())).contains("after its 5 ms deadline"));
    let Plugin::Resolver(bomb) = host
        .load_file(&plugin_path("memory-bomb"), &PluginSettings::new())
        .unwrap()
    else {
        panic!()
    };
    assert!(failed(bomb.resolve(&hostile())).contains("4 MiB memory cap"));
}

#[test]
fn in_process_a_compile_over_budget_is_abandoned_and_the_load_ends() {
    use common::wat::{Hostile, slow_to_compile_fields};
    let slow = common::wat::resolver(&Hostile {
        name: "slow",
        fields: &slow_to_compile_fields(4_000),
        ..Default::default()
    });
    let limits = SandboxLimits {
        compile_timeout: Duration::from_secs(1),
        ..SandboxLimits::default()
    };
    let host = PluginHost::new(limits).unwrap();
    let error = host
        .load_bytes(&slow, "slow.wasm", &PluginSettings::new())
        .expect_err("rejected");
    assert_eq!(error, LoadError::CompileBudget(Duration::from_secs(1)));
    assert!(
        error
            .to_string()
            .contains("took longer than 1 s to compile")
    );
    assert!(cmdscope::plugin::abandoned_compiles() >= 1);
    // The abandoned compile runs on to its end in the background, then is forgotten.
    let deadline = Instant::now() + Duration::from_secs(300);
    while cmdscope::plugin::abandoned_compiles() > 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned compile never ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Meanwhile and after, other plugins load as ever.
    resolver(&host, "tiered-resolver");
}

#[test]
fn randomness_is_the_same_in_every_call_so_answers_stay_cacheable() {
    // wasi-hog answers `r<random u64>` for user 9: the host reseeds the stream at every call,
    // so the same instance twice and a fresh instance all agree.
    let host = host();
    let r = resolver(&host, "wasi-hog");
    let first = r.resolve(&UserContext::private(9)).unwrap();
    assert!(first.starts_with('r') && first.len() > 5, "{first}");
    assert_eq!(r.resolve(&UserContext::private(9)).unwrap(), first);
    let fresh = resolver(&host, "wasi-hog");
    assert_eq!(fresh.resolve(&UserContext::private(9)).unwrap(), first);
}

/// Contexts of every shape: each flag boolean, integer or text, missing languages, groups,
/// admins.
fn corpus(n: i64) -> Vec<UserContext> {
    let flags = ["banned", "admin", "premium", "registered"];
    (0..n)
        .map(|id| {
            let mut ctx = if id % 4 == 0 {
                UserContext::in_group(id, -1000 - id % 7)
            } else {
                UserContext::private(id)
            };
            ctx.is_chat_admin = id % 8 == 0;
            if id % 5 != 0 {
                ctx = ctx.language(["en", "ru", "pt-br", "es"][id as usize % 4]);
            }
            for (i, flag) in flags.iter().enumerate() {
                let pick = (id >> (2 * i)) % 4;
                ctx = match pick {
                    0 => ctx,
                    1 => ctx.flag(flag, true),
                    2 => ctx.flag(flag, id % 3 == 0),
                    _ => ctx.flag(
                        flag,
                        if id % 2 == 0 {
                            cmdscope::FlagValue::Int(1)
                        } else {
                            cmdscope::FlagValue::Text("yes".into())
                        },
                    ),
                };
            }
            ctx.flag("orders", id % 20)
        })
        .collect()
}

#[test]
fn plugins_of_interface_0_1_and_0_2_answer_alike_in_one_host() {
    let host = host();
    let new = resolver(&host, "tiered-resolver");
    let old = resolver(&host, "tiered-resolver-v01");
    assert_eq!(new.info().interface, "0.2");
    assert_eq!(old.info().interface, "0.1");
    let users = corpus(1000);
    let refs: Vec<&UserContext> = users.iter().collect();
    let batch_new = new.resolve_batch(&refs);
    let batch_old = old.resolve_batch(&refs);
    for (i, u) in users.iter().enumerate() {
        let one = new.resolve(u);
        assert_eq!(one, old.resolve(u), "user {i}: {u:?}");
        assert_eq!(batch_new[i], one, "0.2's resolve-batch agrees with resolve");
        assert_eq!(batch_old[i], one, "0.1, asked one by one, agrees");
    }
    let profiles: std::collections::BTreeSet<String> =
        batch_new.iter().map(|r| r.clone().unwrap()).collect();
    assert_eq!(
        profiles.len(),
        5,
        "the corpus reaches every profile: {profiles:?}"
    );

    let Plugin::Translator(t_new) = host
        .load_file(&plugin_path("shop-translator"), &PluginSettings::new())
        .unwrap()
    else {
        panic!()
    };
    let Plugin::Translator(t_old) = host
        .load_file(&plugin_path("shop-translator-v01"), &PluginSettings::new())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(t_old.info().interface, "0.1");
    let keys = ["shop.start.desc", "shop.deals.desc", "shop.nope.desc"];
    for lang in ["en", "ru", "es", "de"] {
        let lang = Lang::parse(lang).unwrap();
        assert_eq!(
            t_new.translate_batch(&keys, lang),
            t_old.translate_batch(&keys, lang)
        );
    }
}

#[test]
fn a_batch_that_traps_is_asked_again_user_by_user() {
    let host = host();
    let r = resolver(&host, "panicking");
    let users: Vec<UserContext> = [1, 2, 666, 3].map(UserContext::private).to_vec();
    let refs: Vec<&UserContext> = users.iter().collect();
    let answers = r.resolve_batch(&refs);
    assert_eq!(answers.len(), 4);
    for (u, answer) in users.iter().zip(&answers) {
        if u.user_id == 666 {
            assert!(failed(answer.clone()).contains("panicked"), "{answer:?}");
        } else {
            assert_eq!(answer.as_deref(), Ok("guest"), "user {}", u.user_id);
        }
    }
}

#[test]
fn a_trap_in_a_batch_names_the_function_and_costs_only_that_user() {
    let host = host();
    let r = resolver(&host, "panicking");
    let sha = r.info().sha256[..12].to_string();
    let users = [UserContext::private(1), hostile(), UserContext::private(2)];
    let refs: Vec<&UserContext> = users.iter().collect();
    let answers = r.resolve_batch(&refs);
    assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
    let why = failed(answers[1].clone());
    assert!(
        why.starts_with(&format!("panicking 0.1.0 ({sha}) `resolve`: trapped")),
        "{why}"
    );
}
