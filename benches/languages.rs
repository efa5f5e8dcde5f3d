//! The same resolver (the tiered rules) in Rust, Python (componentize-py) and JavaScript (jco,
//! QuickJS): what each language costs the host.
//!
//! `cargo bench --bench languages` (add paths of other components to measure them too, e.g. a
//! StarlingMonkey build of the JavaScript resolver; see BENCHMARKS.md). Per component: its
//! size; a load that compiles (median of 3 versions), a load from the compiled cache; a call
//! on a reused instance and a `resolve-batch` of 128 users per user (medians); the linear
//! memory an idle instance holds after those calls; and a hot reload, rename of a new version
//! -> serving, p50 and p95 (every version is new bytes, so it compiles).

#[path = "../tests/common/variant.rs"]
mod variant;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmdscope::config::{Config, Format};
use cmdscope::plugin::{
    CompiledCache, LivePlugins, Plugin, PluginHost, PluginSettings, ReloadKind, WatchOptions,
};
use cmdscope::{Resolver, UserContext};
use variant::variant;

fn config() -> Config {
    Config::parse(
        r#"
default_profile = "guest"
[commands.start]
[profiles.guest]
include = ["start"]
[profiles.user]
include = ["start"]
[profiles.premium]
include = ["start"]
[profiles.admin]
include = ["start"]
[profiles.banned]
include = ["start"]
[sandbox]
compile_timeout_s = 300
timeout_ms = 1000
# Room to see what a runtime takes (the default is 16 MiB).
memory_mib = 256
"#,
        Format::Toml,
        "languages.toml",
    )
    .unwrap()
    .config
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn percentile(mut xs: Vec<Duration>, p: f64) -> Duration {
    xs.sort();
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn resolver(plugin: &Plugin) -> Arc<cmdscope::plugin::WasmResolver> {
    match plugin {
        Plugin::Resolver(r) => r.clone(),
        Plugin::Translator(_) => panic!("a resolver is measured"),
    }
}

/// Calls of `f` per sample, samples: the median time of one call.
fn time_per_call(calls: u32, samples: usize, mut f: impl FnMut()) -> Duration {
    let xs = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed() / calls
        })
        .collect();
    median(xs)
}

struct Row {
    file: String,
    size: u64,
    compile: Duration,
    cached: Duration,
    call: Duration,
    batch_per_user: Duration,
    memory: usize,
    reload_p50: Duration,
    reload_p95: Duration,
}

fn measure(path: &Path, reloads: usize) -> Row {
    let config = config();
    let bytes = std::fs::read(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let settings = PluginSettings::new();
    // Loads that compile: three versions nobody compiled before.
    let plain = PluginHost::new(config.sandbox.clone()).unwrap();
    let compile = median(
        (0..3)
            .map(|i| {
                let start = Instant::now();
                plain
                    .load_bytes(&variant(&bytes, 1000 + i), &file, &settings)
                    .unwrap();
                start.elapsed()
            })
            .collect(),
    );
    let cache_dir = tempfile::tempdir().unwrap();
    let cached_host = PluginHost::new(config.sandbox.clone())
        .unwrap()
        .with_compiled_cache(CompiledCache::open(cache_dir.path()).unwrap());
    let plugin = cached_host.load_bytes(&bytes, &file, &settings).unwrap();
    let cached = median(
        (0..5)
            .map(|_| {
                let start = Instant::now();
                cached_host.load_bytes(&bytes, &file, &settings).unwrap();
                start.elapsed()
            })
            .collect(),
    );
    let r = resolver(&plugin);
    let ctx = UserContext::private(42)
        .language("en")
        .flag("registered", true)
        .flag("premium", true);
    assert_eq!(r.resolve(&ctx).unwrap(), "premium");
    let call = time_per_call(200, 15, || {
        r.resolve(std::hint::black_box(&ctx)).unwrap();
    });
    let page: Vec<UserContext> = (0..128)
        .map(|id| UserContext::private(id).flag("registered", id % 3 == 0))
        .collect();
    let refs: Vec<&UserContext> = page.iter().collect();
    let batch_per_user = time_per_call(5, 15, || {
        r.resolve_batch(std::hint::black_box(&refs));
    }) / 128;
    // After thousands of calls: a runtime whose heap grows shows it here.
    let memory = plugin.instance_memory().unwrap_or(0);

    let (reload_p50, reload_p95) = hot_reload(&config, &bytes, &file, reloads);
    Row {
        file,
        size: bytes.len() as u64,
        compile,
        cached,
        call,
        batch_per_user,
        memory,
        reload_p50,
        reload_p95,
    }
}

/// Renames `reloads` new versions into a watched folder: the time from each rename to its
/// `reloaded` event.
fn hot_reload(config: &Config, bytes: &[u8], file: &str, reloads: usize) -> (Duration, Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(file);
        std::fs::write(&target, bytes).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let host = PluginHost::new(config.sandbox.clone())
            .unwrap()
            .with_compiled_cache(CompiledCache::open(cache.path()).unwrap());
        let live = LivePlugins::new(host, dir.path(), Arc::new(config.clone())).unwrap();
        let mut events = live.subscribe();
        live.rescan();
        let first = events.recv().await.unwrap();
        assert_eq!(first.event, ReloadKind::Loaded, "{first:?}");
        let _watch = live.watch(WatchOptions::default()).unwrap();
        let mut times = Vec::new();
        for i in 0..reloads {
            let incoming: PathBuf = dir.path().join(".incoming");
            std::fs::write(&incoming, variant(bytes, i as u32)).unwrap();
            let start = Instant::now();
            std::fs::rename(&incoming, &target).unwrap();
            loop {
                let event = tokio::time::timeout(Duration::from_secs(600), events.recv())
                    .await
                    .expect("a reload within 10 minutes")
                    .unwrap();
                match event.event {
                    ReloadKind::Reloaded => break,
                    ReloadKind::Rejected => panic!("{event:?}"),
                    _ => {}
                }
            }
            times.push(start.elapsed());
        }
        (percentile(times.clone(), 0.5), percentile(times, 0.95))
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    if d < Duration::from_micros(10) {
        format!("{:.2} us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    }
}

fn main() {
    let built = Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
    let mut files: Vec<(PathBuf, usize)> = [
        ("tiered_resolver.wasm", 10),
        ("tiered_resolver_py.wasm", 6),
        ("tiered_resolver_js.wasm", 10),
    ]
    .iter()
    .map(|(f, n)| (built.join(f), *n))
    .collect();
    // `cargo bench` passes `--bench`; other arguments are components to measure as well.
    files.extend(
        std::env::args()
            .skip(1)
            .filter(|a| a.ends_with(".wasm"))
            .map(|a| (PathBuf::from(a), 6)),
    );
    println!(
        "| component | size | load, compiling | load, compiled cache | call (reused instance) | per user in a batch of 128 | memory per instance | hot reload p50 / p95 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (path, reloads) in files {
        let row = measure(&path, reloads);
        println!(
            "| {} | {:.1} MB | {} | {} | {} | {} | {:.1} MiB | {} / {} |",
            row.file,
            row.size as f64 / 1e6,
            ms(row.compile),
            ms(row.cached),
            us(row.call),
            us(row.batch_per_user),
            row.memory as f64 / (1 << 20) as f64,
            ms(row.reload_p50),
            ms(row.reload_p95),
        );
    }
}
