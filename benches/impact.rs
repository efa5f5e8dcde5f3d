//! Impact before a change: what `cmdscope impact` and `POST /v1/impact` cost over 10,000
//! known users (resolver version 2 against version 1, the shop example), per store.
//!
//! `cargo bench --bench impact`. Each iteration walks every known user, resolves each page
//! with both versions in the sandbox (one `resolve-batch` crossing per 128 users), builds
//! both menus and reads the page's lists from the store. The bound: under 2 s.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

use cmdscope::UserContext;
use cmdscope::config::{Config, Format};
use cmdscope::impact::{Options, candidate_engine, impact};
use cmdscope::plugin::{PluginHost, PluginSet, PluginSettings, SandboxLimits};
use cmdscope::sources::PluginLookup;
use cmdscope::state::{FileStore, MemoryStore, StateStore};

const USERS: i64 = 10_000;

fn context(id: i64) -> UserContext {
    let base = UserContext::private(id);
    match id % 100 {
        0 => base
            .language("en")
            .flag("registered", true)
            .flag("orders", 12),
        50 => base
            .language("ru")
            .flag("registered", true)
            .flag("orders", 1),
        n if n % 3 == 0 => base.language("es"),
        _ => base,
    }
}

async fn remember_all(store: &dyn StateStore) {
    let known = store.known_users().expect("the store keeps known users");
    for id in 1..=USERS {
        known.remember(&context(id), 1).await.unwrap();
    }
    known.flush().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = Config::parse(
        include_str!("../examples/shop.toml"),
        Format::Toml,
        "examples/shop.toml",
    )
    .unwrap()
    .config;
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let dir = Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
    let load = |file: &str| {
        host.load_file(&dir.join(file), &PluginSettings::new())
            .unwrap()
    };
    let set = PluginSet {
        loaded: vec![load("tiered_resolver.wasm"), load("shop_translator.wasm")],
        rejected: Vec::new(),
    };
    let candidate = load("tiered_resolver_v2.wasm");
    let lookup = &set as &dyn PluginLookup;
    let (now, _) = cmdscope::sources::engine(config.clone(), Some(lookup), None).unwrap();
    let after =
        candidate_engine(config, Some(lookup), &set.loaded, Some(&candidate), None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn StateStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "redb",
            Arc::new(FileStore::open(&tmp.path().join("bench.redb")).unwrap()),
        ),
    ];
    let mut group = c.benchmark_group("impact");
    group.sample_size(10);
    for (name, store) in &stores {
        runtime.block_on(remember_all(store.as_ref()));
        let report = runtime
            .block_on(impact(
                &now,
                &after,
                store.as_ref(),
                Vec::new(),
                &Options::default(),
            ))
            .unwrap();
        assert_eq!(report.users_examined, USERS as u64);
        assert_eq!(report.users_changed, USERS as u64 / 100);
        group.bench_function(format!("10000_users_{name}"), |b| {
            b.iter(|| {
                runtime
                    .block_on(impact(
                        &now,
                        &after,
                        store.as_ref(),
                        Vec::new(),
                        &Options::default(),
                    ))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
