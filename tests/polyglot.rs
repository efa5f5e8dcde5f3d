//! Plugins in Rust, Python (componentize-py) and JavaScript (jco, QuickJS), all in one host
//! under one sandbox: the same rules give the same answers, no language gets anything real
//! from the outside, and a large component's compile never interrupts the version serving.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cmdscope::config::{Config, Format};
use cmdscope::plugin::{
    CompiledCache, LivePlugins, LoadError, Plugin, PluginHost, PluginSet, PluginSettings,
    ReloadKind, WatchOptions,
};
use cmdscope::resolve::{FlagValue, ResolveError};
use cmdscope::scope::ChatType;
use cmdscope::{Lang, Resolver, Translator, UserContext};

use common::{plugin_bytes, variant};

const TIERED: [&str; 3] = [
    "tiered-resolver",
    "tiered-resolver-py",
    "tiered-resolver-js",
];

/// Profiles of the tiered rules, and room for the Python and JavaScript runtimes.
fn tiered_config(extra: &str) -> Config {
    let text = format!(
        r#"
default_profile = "guest"
[commands.start]
[commands.cart]
[commands.deals]
[commands.stats]
[commands.appeal]
[profiles.guest]
include = ["start"]
[profiles.user]
include = ["start", "cart"]
[profiles.premium]
include = ["start", "cart", "deals"]
[profiles.admin]
include = ["start", "cart", "deals", "stats"]
[profiles.banned]
include = ["appeal"]
[sandbox]
compile_timeout_s = 120
{extra}
"#
    );
    Config::parse(&text, Format::Toml, "polyglot.toml")
        .unwrap_or_else(|e| panic!("{e:?}"))
        .config
}

/// Compiled code shared by this file's tests and runs: an 18 MB Python component takes
/// seconds to compile.
fn host(config: &Config) -> PluginHost {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-compiled");
    PluginHost::new(config.sandbox.clone())
        .unwrap()
        .with_compiled_cache(CompiledCache::open(&cache).unwrap())
}

fn folder(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in files {
        std::fs::write(dir.path().join(format!("{name}.wasm")), plugin_bytes(name)).unwrap();
    }
    dir
}

/// A deterministic generator, so a failure names a context that can be rebuilt.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Contexts with flags of every type (the deciding names with booleans, integers and text,
/// and others), languages or none, private chats, groups and supergroups, admins.
fn corpus(n: usize) -> Vec<UserContext> {
    let mut rng = Lcg(7);
    let names = [
        "banned",
        "admin",
        "premium",
        "registered",
        "orders",
        "tier",
        "beta",
    ];
    (0..n)
        .map(|i| {
            let user_id = 1 + rng.next(1 << 40) as i64 * if i % 7 == 0 { -1 } else { 1 };
            let mut ctx = match rng.next(3) {
                0 => UserContext::private(user_id),
                1 => UserContext::in_group(user_id, -100 - rng.next(1000) as i64),
                _ => {
                    let mut c = UserContext::in_group(user_id, -1_000_000 - rng.next(1000) as i64);
                    c.chat_type = ChatType::Supergroup;
                    c
                }
            };
            ctx.is_chat_admin = ctx.chat_type != ChatType::Private && rng.next(4) == 0;
            ctx.language_code = match rng.next(4) {
                0 => None,
                1 => Some("en".into()),
                2 => Some("pt-br".into()),
                _ => Some("ru".into()),
            };
            for name in names {
                let value = match rng.next(6) {
                    0 | 1 => continue,
                    2 => FlagValue::Bool(true),
                    3 => FlagValue::Bool(false),
                    4 => FlagValue::Int(rng.next(30) as i64 - 5),
                    _ => {
                        FlagValue::Text(["true", "yes", "", "ünïcödé"][rng.next(4) as usize].into())
                    }
                };
                ctx.flags.insert(name.to_string(), value);
            }
            ctx
        })
        .collect()
}

#[test]
fn rust_python_and_javascript_resolvers_agree_on_a_thousand_contexts() {
    let config = tiered_config("");
    let dir = folder(&TIERED);
    let set = PluginSet::load(&host(&config), dir.path(), &config).unwrap();
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let resolvers: Vec<_> = TIERED
        .iter()
        .map(|name| {
            set.resolver(name)
                .unwrap_or_else(|| panic!("{name} loaded"))
        })
        .collect();
    let languages: Vec<&str> = resolvers.iter().map(|r| r.info().interface).collect();
    assert_eq!(languages, ["0.2", "0.2", "0.2"]);

    let contexts = corpus(1000);
    let mut seen = std::collections::BTreeSet::new();
    let refs: Vec<&UserContext> = contexts.iter().collect();
    let batches: Vec<_> = resolvers.iter().map(|r| r.resolve_batch(&refs)).collect();
    for (i, ctx) in contexts.iter().enumerate() {
        let rust = resolvers[0].resolve(ctx).unwrap();
        for (r, batch) in resolvers.iter().zip(&batches) {
            let name = &r.info().name;
            assert_eq!(
                r.resolve(ctx).unwrap(),
                rust,
                "{name} on context {i}: {ctx:?}"
            );
            assert_eq!(
                batch[i].as_ref().unwrap(),
                &rust,
                "{name} batch, context {i}"
            );
        }
        seen.insert(rust);
    }
    // The corpus reaches every profile, so agreement is not agreement on `guest` alone.
    assert_eq!(seen.len(), 5, "{seen:?}");
}

/// The probe plugin's observation for `probe` (it answers it as its error).
fn observe(r: &dyn Resolver, probe: &str) -> String {
    match r.resolve(&UserContext::private(5).flag("probe", probe)) {
        Err(ResolveError::Rejected(seen)) => seen,
        Err(ResolveError::Failed(why)) => format!("failed: {why}"),
        other => panic!("{other:?}"),
    }
}

fn probe(config: &Config, name: &str) -> Arc<cmdscope::plugin::WasmResolver> {
    match host(config)
        .load_bytes(&plugin_bytes(name), name, &PluginSettings::new())
        .unwrap()
    {
        Plugin::Resolver(r) => r,
        Plugin::Translator(_) => unreachable!(),
    }
}

#[test]
fn a_python_plugin_gets_no_file_network_clock_or_environment_and_host_randomness() {
    let config = tiered_config("");
    let (first, second) = (probe(&config, "probe-py"), probe(&config, "probe-py"));
    // Randomness is the host's, not the machine's nor frozen at build: two hosts see the
    // same sequence (the `random` module seeded from the host when the instance starts).
    let sequence = |r: &dyn Resolver| (0..3).map(|_| observe(r, "random")).collect::<Vec<_>>();
    let (a, b) = (sequence(&*first), sequence(&*second));
    assert_eq!(a, b);
    assert_ne!(a[0], a[1], "a generator, not a constant");
    assert_eq!(observe(&*first, "file"), "no file: FileNotFoundError");
    assert_eq!(observe(&*first, "listdir"), "no dir: FileNotFoundError");
    let socket = observe(&*first, "socket");
    assert!(socket.starts_with("no socket: "), "{socket}");
    assert_eq!(observe(&*first, "clock"), "time 1704067200.0 monotonic 0.0");
    assert_eq!(observe(&*first, "env"), "env {}");
}

#[test]
fn a_javascript_plugin_gets_no_network_clock_or_environment_and_host_randomness() {
    let config = tiered_config("");
    let (first, second) = (probe(&config, "probe-js"), probe(&config, "probe-js"));
    assert_eq!(
        observe(&*first, "clock"),
        "time 1704067200000 2024-01-01T00:00:00.000Z"
    );
    assert_eq!(
        observe(&*first, "network"),
        "fetch undefined XMLHttpRequest undefined WebSocket undefined"
    );
    assert_eq!(
        observe(&*first, "env"),
        "process undefined std undefined os undefined"
    );
    assert_eq!(observe(&*first, "random"), observe(&*second, "random"));
}

#[test]
fn a_plugin_that_needs_more_memory_is_refused_until_its_own_limit_allows_it() {
    let dir = folder(&["tiered-resolver-py"]);
    let path = dir.path().join("tiered-resolver-py.wasm");
    // No plugin's limits raised: even `info` runs within 4 MiB, so the plugin cannot say its
    // name; the operator is told which key raises a plugin's limits.
    let tight = tiered_config("memory_mib = 4");
    match host(&tight).load_file(&path, &tight.plugin_settings) {
        Err(e @ LoadError::InfoOverLimits(_)) => {
            let message = e.to_string();
            assert!(message.contains("hit the 4 MiB memory cap"), "{message}");
            assert!(
                message.contains("[plugins.<its name>] memory_mib"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Another plugin's raised limit lets `info` answer; this one must still start within its
    // own 4 MiB, and is refused by name.
    let other_raised = tiered_config("memory_mib = 4\n[plugins.someone-else]\nmemory_mib = 64");
    match host(&other_raised).load_file(&path, &other_raised.plugin_settings) {
        Err(e @ LoadError::Limits { .. }) => {
            let message = e.to_string();
            assert!(message.contains("hit the 4 MiB memory cap"), "{message}");
            assert!(
                message.contains("`[plugins.tiered-resolver-py] memory_mib = ...`"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let raised = tiered_config("memory_mib = 4\n[plugins.tiered-resolver-py]\nmemory_mib = 64");
    let plugin = host(&raised)
        .load_file(&path, &raised.plugin_settings)
        .unwrap();
    assert_eq!(plugin.limits().memory_bytes, 64 << 20);
    let used = plugin.instance_memory().unwrap();
    assert!((4 << 20..=64 << 20).contains(&used), "{used}");
    let Plugin::Resolver(r) = plugin else {
        unreachable!()
    };
    assert_eq!(
        r.resolve(&UserContext::private(1).flag("admin", true))
            .unwrap(),
        "admin"
    );
}

#[test]
fn a_plugin_timeout_is_raised_for_that_plugin_only() {
    let config = tiered_config("timeout_ms = 20\n[plugins.spin]\ntimeout_ms = 60");
    let plugins = host(&config);
    let load = |name: &str| {
        plugins
            .load_file(&common::plugin_path(name), &config.plugin_settings)
            .unwrap()
    };
    let (spin, tiered) = (load("spin"), load("tiered-resolver"));
    assert_eq!(spin.limits().timeout, Duration::from_millis(60));
    assert_eq!(tiered.limits().timeout, Duration::from_millis(20));
    let Plugin::Resolver(spin) = spin else {
        unreachable!()
    };
    match spin.resolve(&UserContext::private(666)) {
        Err(ResolveError::Failed(why)) => assert!(why.contains("60 ms deadline"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_python_translator_gives_german_texts_and_falls_through_for_the_rest() {
    let config = tiered_config("");
    let translator = match host(&config)
        .load_bytes(
            &plugin_bytes("shop-german-py"),
            "shop-german.wasm",
            &PluginSettings::new(),
        )
        .unwrap()
    {
        Plugin::Translator(t) => t,
        Plugin::Resolver(_) => unreachable!(),
    };
    assert_eq!(translator.info().name, "shop-german");
    assert_eq!(translator.info().locales, ["de"]);
    let de = Lang::parse("de").unwrap();
    let en = Lang::parse("en").unwrap();
    assert_eq!(
        translator.translate("shop.cart.desc", de).as_deref(),
        Some("Dein Warenkorb")
    );
    assert_eq!(translator.translate("shop.cart.desc", en), None);
    let keys = ["shop.start.desc", "shop.nope.desc", "shop.deals.desc"];
    assert_eq!(
        translator.translate_batch(&keys, de),
        [
            Some("Bot starten".to_string()),
            None,
            Some("Angebote für Mitglieder".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_refused_over_its_limits_loads_when_the_config_raises_them() {
    let tight = tiered_config("memory_mib = 4");
    let dir = folder(&["tiered-resolver-py"]);
    let live = LivePlugins::new(host(&tight), dir.path(), Arc::new(tight)).unwrap();
    let mut events = live.subscribe();
    live.rescan();
    let next = async |events: &mut tokio::sync::broadcast::Receiver<_>| {
        tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let refused: cmdscope::plugin::ReloadEvent = next(&mut events).await;
    assert_eq!(refused.event, ReloadKind::Rejected, "{refused:?}");
    assert!(live.resolver("tiered-resolver-py").is_none());

    // The operator raises the limit the rejection named; the file itself is untouched.
    live.set_config(Arc::new(tiered_config(
        "memory_mib = 4\n[plugins.tiered-resolver-py]\nmemory_mib = 64",
    )));
    let loaded = next(&mut events).await;
    assert_eq!(loaded.event, ReloadKind::Loaded, "{loaded:?}");
    let resolver = live.resolver("tiered-resolver-py").unwrap();
    assert_eq!(
        resolver
            .resolve(&UserContext::private(1).flag("admin", true))
            .unwrap(),
        "admin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_version_compiling_never_interrupts_the_one_serving() {
    let config = Arc::new(tiered_config(""));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiered.wasm");
    let v1 = plugin_bytes("tiered-resolver-py");
    std::fs::write(&file, &v1).unwrap();
    // No compiled cache: the new version really compiles, for seconds.
    let plugins = PluginHost::new(config.sandbox.clone()).unwrap();
    let live = LivePlugins::new(plugins, dir.path(), config).unwrap();
    let mut events = live.subscribe();
    live.rescan();
    let first = tokio::time::timeout(Duration::from_secs(120), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.event, ReloadKind::Loaded, "{first:?}");
    let _watch = live
        .watch(WatchOptions {
            debounce: Duration::from_millis(50),
            rescan: Duration::from_secs(1),
        })
        .unwrap();
    let resolver = live.resolver("tiered-resolver-py").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let caller = {
        let (stop, calls, resolver) = (stop.clone(), calls.clone(), resolver.clone());
        std::thread::spawn(move || {
            let ctx = UserContext::private(9).flag("premium", true);
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(resolver.resolve(&ctx).unwrap(), "premium");
                calls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let incoming = dir.path().join("tiered.incoming");
    std::fs::write(&incoming, variant(&v1, 2)).unwrap();
    std::fs::rename(&incoming, &file).unwrap();
    let reloaded = loop {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .unwrap()
            .unwrap();
        if event.event != ReloadKind::Loaded {
            break event;
        }
    };
    stop.store(true, Ordering::Relaxed);
    caller
        .join()
        .expect("every call during the compile answered");
    assert_eq!(reloaded.event, ReloadKind::Reloaded, "{reloaded:?}");
    assert!(calls.load(Ordering::Relaxed) > 10);
    assert_eq!(
        resolver.resolve(&UserContext::private(1)).unwrap(),
        "guest",
        "the new version serves"
    );
}

#[test]
fn a_component_for_another_world_is_told_what_to_build() {
    // A valid component of someone else's world: `export run: func() -> u32`.
    let mut module =
        wat::parse_str(r#"(module (func (export "run") (result i32) i32.const 7))"#).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str(
            "other.wit",
            "package demo:other;\nworld app {\n  export run: func() -> u32;\n}\n",
        )
        .unwrap();
    let world = resolve.select_world(&[package], Some("app")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap();
    let config = tiered_config("");
    match host(&config).load_bytes(&component, "app.wasm", &PluginSettings::new()) {
        Err(e @ LoadError::NotAPlugin(_)) => {
            let message = e.to_string();
            assert!(message.contains("it exports: `run`"), "{message}");
            assert!(
                message.contains("`resolver-plugin` or `translator-plugin` world"),
                "{message}"
            );
            assert!(message.contains("cmdscope new-plugin"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
