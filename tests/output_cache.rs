//! The resolver output cache: exact (a reload or an invalidation is seen at once), single
//! flight, never caching errors, bounded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmdscope::config::{Config, Format};
use cmdscope::output_cache::{CacheSettings, CachedResolver, CachedTranslator};
use cmdscope::plugin::{LivePlugins, PluginHost, ReloadKind, SandboxLimits};
use cmdscope::resolve::{FnResolver, ResolveError, TranslatorChain};
use cmdscope::{Engine, Resolver, Translator, UserContext};

use common::{guest_admin_config, plugin_bytes};

/// A pure resolver that counts its calls and can be slowed down or made to fail.
struct Counting {
    calls: AtomicUsize,
    delay: Duration,
    fail_first: usize,
}

impl Counting {
    fn new() -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            delay: Duration::ZERO,
            fail_first: 0,
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Resolver for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if n < self.fail_first {
            return Err(ResolveError::Failed("flaky".into()));
        }
        Ok(if ctx.is("admin") { "admin" } else { "guest" }.into())
    }
    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from("counting-v1"))
    }
    /// It sleeps `delay`: as a plugin, it may block (and an engine caches it).
    fn may_block(&self) -> bool {
        true
    }
}

fn cached(inner: Arc<dyn Resolver>) -> CachedResolver {
    CachedResolver::new(inner, &CacheSettings::default())
}

#[test]
fn the_same_context_is_answered_from_the_cache() {
    let counting = Counting::new();
    let cache = cached(counting.clone());
    let alice = UserContext::private(1).language("en").flag("admin", true);
    assert_eq!(cache.resolve(&alice).unwrap(), "admin");
    assert_eq!(cache.resolve(&alice).unwrap(), "admin");
    assert_eq!(counting.calls(), 1);
    // Any difference in the context is another key: flags, language, chat.
    for other in [
        alice.clone().flag("admin", false),
        alice.clone().language("ru"),
        UserContext::in_group(1, -5).flag("admin", true),
    ] {
        cache.resolve(&other).unwrap();
    }
    assert_eq!(counting.calls(), 4);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 4, 4));
}

#[test]
fn concurrent_misses_make_one_call() {
    let counting = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        delay: Duration::from_millis(200),
        fail_first: 0,
    });
    let cache = Arc::new(cached(counting.clone()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || cache.resolve(&UserContext::private(7)).unwrap())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "guest");
    }
    assert_eq!(counting.calls(), 1, "single flight");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (1, 7));
}

#[test]
fn errors_are_never_cached() {
    let counting = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        delay: Duration::ZERO,
        fail_first: 2,
    });
    let cache = cached(counting.clone());
    let ctx = UserContext::private(3);
    assert!(cache.resolve(&ctx).is_err());
    assert!(cache.resolve(&ctx).is_err());
    assert_eq!(cache.resolve(&ctx).unwrap(), "guest");
    assert_eq!(cache.resolve(&ctx).unwrap(), "guest");
    assert_eq!(counting.calls(), 3);
}

#[test]
fn invalidating_a_user_forgets_only_them() {
    let counting = Counting::new();
    let cache = cached(counting.clone());
    let (one, two) = (UserContext::private(1), UserContext::private(2));
    cache.resolve(&one).unwrap();
    cache.resolve(&two).unwrap();
    cache.resolve(&UserContext::in_group(1, -9)).unwrap();
    cache.invalidate_user(1);
    cache.resolve(&two).unwrap();
    assert_eq!(counting.calls(), 3, "user 2 still cached");
    cache.resolve(&one).unwrap();
    cache.resolve(&UserContext::in_group(1, -9)).unwrap();
    assert_eq!(
        counting.calls(),
        5,
        "both of user 1's contexts were dropped"
    );
    cache.invalidate_all();
    cache.resolve(&two).unwrap();
    assert_eq!(counting.calls(), 6);
}

#[test]
fn resolvers_without_an_identity_are_never_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let impure = FnResolver::new("db", move |_: &UserContext| {
        seen.fetch_add(1, Ordering::SeqCst);
        Ok("guest".to_string())
    });
    let cache = cached(Arc::new(impure));
    for _ in 0..3 {
        cache.resolve(&UserContext::private(1)).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(cache.stats().bypassed, 3);
}

#[test]
fn the_cache_is_bounded() {
    let counting = Counting::new();
    let cache = CachedResolver::new(
        counting.clone(),
        &CacheSettings {
            capacity: 10,
            ttl: None,
        },
    );
    for user in 0..200 {
        cache.resolve(&UserContext::private(user)).unwrap();
    }
    let stats = cache.stats();
    assert!(stats.entries <= 10, "{stats:?}");
    assert!(stats.evictions >= 190, "{stats:?}");
}

#[test]
fn entries_expire_after_the_ttl() {
    let counting = Counting::new();
    let cache = CachedResolver::new(
        counting.clone(),
        &CacheSettings {
            capacity: 100,
            ttl: Some(Duration::from_millis(100)),
        },
    );
    cache.resolve(&UserContext::private(1)).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    cache.resolve(&UserContext::private(1)).unwrap();
    assert_eq!(counting.calls(), 2);
}

/// Through the engine with a hot-reloaded wasm plugin: the reload is seen at once, and only the
/// replaced plugin's entries go.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_invalidates_exactly_the_replaced_plugins_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("swap.wasm"), plugin_bytes("swap-guest")).unwrap();
    std::fs::write(
        dir.path().join("other.wasm"),
        plugin_bytes("unknown-profile"),
    )
    .unwrap();
    let config = Config::parse(&guest_admin_config("swappable"), Format::Toml, "c.toml")
        .unwrap()
        .config;
    let live = LivePlugins::new(
        PluginHost::new(SandboxLimits::default()).unwrap(),
        dir.path(),
        Arc::new(config.clone()),
    )
    .unwrap();
    live.rescan();
    let engine = Engine::builder(config.clone())
        .resolver(Arc::new(live.resolver("swappable").unwrap()))
        .engine();
    let other = Engine::builder(config)
        .resolver(Arc::new(live.resolver("unknown-profile").unwrap()))
        .engine();
    for e in [&engine, &other] {
        let c = e.output_cache().expect("plugins are cacheable").clone();
        live.on_swap(move |_| c.invalidate_stale());
    }
    let user = UserContext::private(1);
    assert_eq!(engine.resolve_async(&user).await.profile, "guest");
    assert_eq!(other.resolve_async(&user).await.profile, "guest");
    assert_eq!(engine.resolve_async(&user).await.profile, "guest");
    assert_eq!(engine.cache_stats().unwrap().hits, 1);

    let mut events = live.subscribe();
    let tmp = dir.path().join("incoming.tmp");
    std::fs::write(&tmp, plugin_bytes("swap-admin")).unwrap();
    std::fs::rename(&tmp, dir.path().join("swap.wasm")).unwrap();
    live.rescan();
    let event = events.recv().await.unwrap();
    assert_eq!(event.event, ReloadKind::Reloaded);
    // Seen at once: the very next call answers from the new version.
    assert_eq!(engine.resolve_async(&user).await.profile, "admin");
    let stats = engine.cache_stats().unwrap();
    assert_eq!(
        (stats.misses, stats.entries),
        (2, 1),
        "the old version's entry is gone: {stats:?}"
    );
    // The other plugin's answers are untouched.
    let before = other.cache_stats().unwrap();
    assert_eq!(other.resolve_async(&user).await.profile, "guest");
    let after = other.cache_stats().unwrap();
    assert_eq!(
        (after.hits - before.hits, after.misses - before.misses),
        (1, 0)
    );
}

/// A translator swap rebuilds the engine's menus before the reload event goes out; the other
/// translator of the chain answers the rebuild from its output cache, without a plugin call.
#[tokio::test(flavor = "multi_thread")]
async fn a_translator_swap_rebuilds_menus_and_only_the_swapped_translator_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.wasm"), plugin_bytes("words-v1")).unwrap();
    std::fs::write(
        dir.path().join("shop.wasm"),
        plugin_bytes("shop-translator"),
    )
    .unwrap();
    let text = r#"
languages = ["en"]
default_profile = "all"
translators = ["words", "shop-translator"]
[commands.start]
i18n_key = "words.start.desc"
[commands.help]
i18n_key = "shop.help.desc"
[profiles.all]
include = ["start", "help"]
[[scopes]]
scope = "default"
profile = "all"
"#;
    let config = Config::parse(text, Format::Toml, "c.toml").unwrap().config;
    let live = LivePlugins::new(
        PluginHost::new(SandboxLimits::default()).unwrap(),
        dir.path(),
        Arc::new(config.clone()),
    )
    .unwrap();
    live.rescan();
    let cached = |name: &str| {
        Arc::new(CachedTranslator::new(
            Arc::new(live.translator(name).unwrap()),
            &config.cache,
        ))
    };
    let (words, shop) = (cached("words"), cached("shop-translator"));
    let chain = TranslatorChain(vec![
        words.clone() as Arc<dyn Translator>,
        shop.clone() as Arc<dyn Translator>,
    ]);
    let engine = Arc::new(
        Engine::builder(config)
            .translator(Arc::new(chain))
            .translation_caches(vec![words.clone(), shop.clone()])
            .engine(),
    );
    // What a host does: the swap reaches the engine before it is announced.
    let weak = Arc::downgrade(&engine);
    live.on_swap(move |name| {
        if let Some(engine) = weak.upgrade() {
            engine.on_plugin_swap(name);
        }
    });
    let user = UserContext::private(1).language("en");
    let descriptions = |e: &Engine| -> Vec<String> {
        e.menu_of("all", &user)
            .iter()
            .map(|c| c.description.clone())
            .collect()
    };
    assert_eq!(descriptions(&engine), ["start v1", "How to use the shop"]);
    let shop_before = shop.stats();

    let mut events = live.subscribe();
    let tmp = dir.path().join("incoming.tmp");
    std::fs::write(&tmp, plugin_bytes("words-v2")).unwrap();
    std::fs::rename(&tmp, dir.path().join("words.wasm")).unwrap();
    live.rescan();
    let event = events.recv().await.unwrap();
    assert_eq!(event.event, ReloadKind::Reloaded);
    // Rebuilt before the event went out.
    assert_eq!(descriptions(&engine), ["start v2", "How to use the shop"]);
    assert_eq!(engine.plan().lists[0].commands[0].description, "start v2");
    // The unchanged translator answered the rebuild from its cache.
    let shop_after = shop.stats();
    assert_eq!(shop_after.misses, shop_before.misses, "{shop_after:?}");
    assert!(shop_after.hits > shop_before.hits, "{shop_after:?}");
    // The swapped one was asked again, and its old version's answers are gone.
    let words_stats = words.stats();
    assert_eq!(
        words_stats.entries,
        words_stats.misses / 2,
        "{words_stats:?}"
    );
}

/// A pure native translator with an identity, counting the keys it is asked and failing on
/// demand.
struct CountingTranslator {
    asked: AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

impl Translator for CountingTranslator {
    fn translate(&self, key: &str, _: cmdscope::Lang) -> Option<String> {
        Some(key.to_uppercase())
    }

    fn try_translate_batch(
        &self,
        keys: &[&str],
        language: cmdscope::Lang,
    ) -> Option<Vec<Option<String>>> {
        self.asked.fetch_add(keys.len(), Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return None;
        }
        Some(keys.iter().map(|k| self.translate(k, language)).collect())
    }

    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from("counting-v1"))
    }
}

#[test]
fn translations_are_cached_per_key_and_failed_calls_never() {
    let inner = Arc::new(CountingTranslator {
        asked: AtomicUsize::new(0),
        failing: true.into(),
    });
    let cache = CachedTranslator::new(inner.clone(), &CacheSettings::default());
    let en = cmdscope::Lang::parse("en").unwrap();
    // A failed call: "no translation" for now, and nothing remembered.
    assert_eq!(cache.translate_batch(&["a", "b"], en), [None, None]);
    inner.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        cache.translate_batch(&["a", "b"], en),
        [Some("A".to_string()), Some("B".to_string())]
    );
    assert_eq!(inner.asked.load(Ordering::SeqCst), 4);
    // Only the new key is asked, in the same batch call.
    assert_eq!(
        cache.translate_batch(&["b", "c", "a"], en),
        [Some("B".into()), Some("C".into()), Some("A".into())]
    );
    assert_eq!(inner.asked.load(Ordering::SeqCst), 5);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 5, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_few_users_are_filed_in_the_cache_and_a_bulk_page_is_not() {
    let counting = Counting::new();
    let config = Config::parse(&guest_admin_config("counting"), Format::Toml, "c.toml")
        .unwrap()
        .config;
    let engine = Engine::builder(config).resolver(counting.clone()).engine();
    // Live traffic (a bot posting its users' messages): asked once, then hits, which are
    // answered without leaving the async thread.
    let few: Vec<UserContext> = (1..=3).map(UserContext::private).collect();
    engine.resolve_many(&few).await;
    assert_eq!(counting.calls(), 3);
    engine.resolve_many(&few).await;
    assert_eq!(counting.calls(), 3, "the next message of each is a hit");
    // A bulk page (a reconciliation): one batch, not filed, so it evicts nothing.
    let page: Vec<UserContext> = (100..400).map(UserContext::private).collect();
    engine.resolve_many(&page).await;
    engine.resolve_many(&page).await;
    assert_eq!(counting.calls(), 603);
    // A page mixing both: only the users the cache lacks are asked.
    let mixed: Vec<UserContext> = few
        .iter()
        .cloned()
        .chain((500..510).map(UserContext::private))
        .collect();
    let resolved = engine.resolve_many(&mixed).await;
    assert_eq!(counting.calls(), 613);
    assert!(resolved.iter().all(|r| r.profile.as_ref() == "guest"));
}
