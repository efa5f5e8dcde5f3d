//! Resolution and translation through the sandbox, against the native baseline.
//!
//! `cargo bench --bench resolve`. Figures are in the README.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

use cmdscope::output_cache::{CacheSettings, CachedResolver};
use cmdscope::plugin::{Plugin, PluginHost, PluginSettings, SandboxLimits};
use cmdscope::resolve::FlagRules;
use cmdscope::{Lang, Resolver, Translator, UserContext};

fn plugin(host: &PluginHost, file: &str) -> Plugin {
    let path = Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join(file);
    host.load_file(&path, &PluginSettings::new())
        .expect("the build script built the example plugins")
}

fn resolver(host: &PluginHost) -> std::sync::Arc<cmdscope::plugin::WasmResolver> {
    match plugin(host, "tiered_resolver.wasm") {
        Plugin::Resolver(r) => r,
        Plugin::Translator(_) => unreachable!("tiered-resolver is a resolver"),
    }
}

fn resolve(c: &mut Criterion) {
    let ctx = UserContext::private(42)
        .language("en")
        .flag("registered", true)
        .flag("premium", true);
    let mut group = c.benchmark_group("resolve");

    let native = FlagRules::tiered();
    group.bench_function("native", |b| {
        b.iter(|| native.resolve(black_box(&ctx)).unwrap())
    });

    let reused = resolver(&PluginHost::new(SandboxLimits::default()).unwrap());
    assert_eq!(reused.resolve(&ctx).unwrap(), "premium");
    group.bench_function("wasm_reused_instance", |b| {
        b.iter(|| reused.resolve(black_box(&ctx)).unwrap())
    });

    // One sandbox crossing for a page of 128 users (WIT 0.2 `resolve-batch`): the time per
    // batch; divide by 128 for the time per user.
    let page: Vec<UserContext> = (0..128)
        .map(|id| {
            UserContext::private(id)
                .language("en")
                .flag("registered", id % 3 == 0)
        })
        .collect();
    let refs: Vec<&UserContext> = page.iter().collect();
    assert!(reused.resolve_batch(&refs).iter().all(Result::is_ok));
    group.bench_function("wasm_batch_128_users", |b| {
        b.iter(|| reused.resolve_batch(black_box(&refs)))
    });

    let fresh_host = PluginHost::new(SandboxLimits {
        reuse_instances: false,
        ..SandboxLimits::default()
    })
    .unwrap();
    let fresh = resolver(&fresh_host);
    group.bench_function("wasm_fresh_instance", |b| {
        b.iter(|| fresh.resolve(black_box(&ctx)).unwrap())
    });

    // The output cache in front of the wasm resolver.
    let cached = CachedResolver::new(reused.clone(), &CacheSettings::default());
    cached.resolve(&ctx).unwrap();
    group.bench_function("cached_hit", |b| {
        b.iter(|| cached.resolve(black_box(&ctx)).unwrap())
    });
    let mut user = 1_000_000;
    group.bench_function("cached_miss", |b| {
        b.iter(|| {
            user += 1;
            cached
                .resolve(&UserContext::private(user).flag("registered", true))
                .unwrap()
        })
    });
    // What a hit is made of: hashing the context (the cache uses foldhash), one cache lookup.
    group.bench_function("cost_hash_context_xxh3", |b| {
        b.iter(|| {
            use std::hash::{Hash, Hasher};
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            black_box(&ctx).hash(&mut h);
            h.finish()
        })
    });
    let state = foldhash::fast::RandomState::default();
    group.bench_function("cost_hash_context_foldhash", |b| {
        b.iter(|| std::hash::BuildHasher::hash_one(&state, black_box(&ctx)))
    });
    let quick: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::new(1000);
    quick.insert(7, 7);
    group.bench_function("cost_cache_get", |b| b.iter(|| quick.get(black_box(&7))));
    // The engine's hit path: the cached profile (shared, no allocation) checked against the
    // config, as an update reads it.
    let engine = cmdscope::Engine::builder(
        cmdscope::Config::parse(
            include_str!("../examples/shop.toml"),
            cmdscope::config::Format::Toml,
            "shop.toml",
        )
        .unwrap()
        .config,
    )
    .resolver(reused.clone())
    .engine();
    engine.resolve(&ctx);
    group.bench_function("engine_cached_hit", |b| {
        b.iter(|| engine.resolve(black_box(&ctx)).profile)
    });
    group.finish();
}

fn translate(c: &mut Criterion) {
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let Plugin::Translator(shop) = plugin(&host, "shop_translator.wasm") else {
        unreachable!("shop-translator is a translator")
    };
    let ru = Lang::parse("ru").unwrap();
    let keys = [
        "shop.start.desc",
        "shop.help.desc",
        "shop.catalog.desc",
        "shop.cart.desc",
        "shop.orders.desc",
        "shop.profile.desc",
        "shop.deals.desc",
        "shop.stats.desc",
        "shop.broadcast.desc",
        "shop.ban.desc",
        "shop.appeal.desc",
    ];
    assert!(shop.translate_batch(&keys, ru).iter().all(Option::is_some));
    let mut group = c.benchmark_group("translate");
    group.bench_function("wasm_one_key", |b| {
        b.iter(|| shop.translate(black_box("shop.cart.desc"), ru))
    });
    group.bench_function("wasm_batch_11_keys", |b| {
        b.iter(|| shop.translate_batch(black_box(&keys), ru))
    });
    group.bench_function("wasm_11_single_calls", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| shop.translate(black_box(k), ru))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, resolve, translate);
criterion_main!(benches);
