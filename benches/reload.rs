//! Hot reload and start-up: time from a rename to the new version serving, and host start with
//! N plugins compiled cold versus loaded from the compiled cache.
//!
//! `cargo bench --bench reload`. Besides criterion's means, the reload latency's p50 and p95
//! over the measured swaps are printed. Figures are in the README.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use cmdscope::config::{Config, Format};
use cmdscope::plugin::{
    CompiledCache, LivePlugins, PluginHost, PluginSettings, SandboxLimits, WatchOptions,
};
use cmdscope::{Resolver, UserContext};

const CONFIG: &str = r#"
default_profile = "guest"
resolver = "swappable"
[commands.start]
[profiles.guest]
include = ["start"]
[profiles.admin]
include = ["start"]
"#;

fn bytes(crate_name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CMDSCOPE_PLUGIN_DIR"))
            .join(format!("{}.wasm", crate_name.replace('-', "_"))),
    )
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rename_to_serving(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let versions = [bytes("swap-guest"), bytes("swap-admin")];
    let answers = ["guest", "admin"];
    std::fs::write(dir.path().join("resolver.wasm"), &versions[0]).unwrap();
    let config = Arc::new(
        Config::parse(CONFIG, Format::Toml, "bench.toml")
            .unwrap()
            .config,
    );
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(SandboxLimits::default())
        .unwrap()
        .with_compiled_cache(CompiledCache::open(cache.path()).unwrap());
    let live = LivePlugins::new(host, dir.path(), config).unwrap();
    live.rescan();
    let _watch = live.watch(WatchOptions::default()).unwrap();
    let resolver = live.resolver("swappable").unwrap();
    let user = UserContext::private(1);
    let mut next = 1;
    let mut samples = Vec::new();
    let mut swap = |samples: &mut Vec<Duration>| {
        let tmp = dir.path().join("incoming.tmp");
        std::fs::write(&tmp, &versions[next]).unwrap();
        let started = Instant::now();
        std::fs::rename(&tmp, dir.path().join("resolver.wasm")).unwrap();
        while resolver.resolve(&user).unwrap() != answers[next] {
            std::thread::sleep(Duration::from_micros(200));
        }
        let took = started.elapsed();
        samples.push(took);
        next = 1 - next;
        took
    };
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.bench_function("rename_to_serving_debounce_100ms", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| swap(&mut samples)).sum())
    });
    group.finish();
    samples.sort();
    println!(
        "reload/rename_to_serving: {} swaps, p50 {:.1} ms, p95 {:.1} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3
    );
}

/// Start-up: a new host (new engine, as after a restart) loading N plugins.
fn host_start(c: &mut Criterion) {
    const N: usize = 8;
    let plugins: Vec<Vec<u8>> = [
        "tiered-resolver",
        "shop-translator",
        "swap-guest",
        "swap-admin",
        "spin",
        "panicking",
        "huge-output",
        "settings-echo",
    ]
    .iter()
    .map(|n| bytes(n))
    .collect();
    assert_eq!(plugins.len(), N);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(cache_dir.path()).unwrap();
    let start = |cache: Option<&CompiledCache>| {
        let mut host = PluginHost::new(SandboxLimits::default()).unwrap();
        if let Some(c) = cache {
            host = host.with_compiled_cache(c.clone());
        }
        for (i, p) in plugins.iter().enumerate() {
            host.load_bytes(p, &format!("{i}.wasm"), &PluginSettings::new())
                .unwrap();
        }
    };
    start(Some(&cache)); // warm the cache
    let mut group = c.benchmark_group("host_start_8_plugins");
    group.sample_size(10);
    group.bench_function("cold_compile", |b| b.iter(|| start(None)));
    group.bench_function("compiled_cache", |b| b.iter(|| start(Some(&cache))));
    group.finish();
}

criterion_group!(benches, rename_to_serving, host_start);
criterion_main!(benches);
