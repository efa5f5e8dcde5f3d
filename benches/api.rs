//! The JSON API's own work per request, in process: the router `cmdscope serve` runs, called
//! without a socket (`tower::ServiceExt::oneshot`), over a `Host` with the shop example, the
//! wasm resolver and the memory store. What `benches/serve_http.rs` measures minus the
//! kernel's and hyper's share: the part of a request cmdscope's code decides.
//!
//! `cargo bench --bench api`. Users are known and unchanged, as most messages of a bot.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower::ServiceExt;

use cmdscope::Host;
use cmdscope::config::StateBackend;
use cmdscope::deliver::{DeliveryOptions, HttpBotApi};
use cmdscope::emulator::Emulator;
use cmdscope::host::http::{HttpOptions, router};

const TOKEN: &str = "4242:bench";
const KEY: &str = "bench-key";

fn plugin(name: &str) -> std::path::PathBuf {
    Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join(format!("{name}.wasm"))
}

fn bench(c: &mut Criterion) {
    // As in `cmdscope serve`: the host on a multi-threaded runtime, the requests on a
    // single-threaded one of their own.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin("tiered_resolver"), plugins.join("tiered.wasm")).unwrap();
    std::fs::copy(plugin("shop_translator"), plugins.join("shop.wasm")).unwrap();
    let config = dir.path().join("cmdscope.toml");
    std::fs::write(&config, include_str!("../examples/shop.toml")).unwrap();

    let (_emulator, app) = runtime.block_on(async {
        let emulator = Emulator::new()
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let host = Host::builder(&config)
            .plugins(&plugins)
            .state(StateBackend::Memory)
            .delivery(DeliveryOptions {
                pace: 1e9,
                burst: 1_000_000,
                ..DeliveryOptions::default()
            })
            .build()
            .await
            .expect("the host builds");
        let api = Arc::new(HttpBotApi::new(TOKEN, &emulator.url()).unwrap());
        assert!(host.start(api).await.unwrap().is_complete());
        let app = router(
            &host,
            HttpOptions {
                api_key: Some(KEY.into()),
                request_timeout: Some(Duration::from_secs(60)),
                metrics: false,
            },
        );
        (emulator, app)
    });

    let post = |body: &Value| {
        let body = serde_json::to_vec(body).unwrap();
        move || {
            Request::post("/v1/users")
                .header("authorization", format!("Bearer {KEY}"))
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap()
        }
    };
    let get = |uri: &'static str| move || Request::get(uri).body(Body::empty()).unwrap();
    let call = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        }
    };

    let user = json!({"user_id": 7, "language_code": "en", "flags": {"registered": true}});
    let page: Value = (1..=1_000)
        .map(|id| json!({"user_id": id, "language_code": "es"}))
        .collect();
    // Known and unchanged before anything is measured.
    http.block_on(call(post(&user)()));
    http.block_on(call(post(&page)()));

    let mut group = c.benchmark_group("api");
    let healthz = get("/healthz");
    group.bench_function("healthz", |b| b.iter(|| http.block_on(call(healthz()))));
    let preview = get("/v1/preview?user_id=7&language_code=en&flags=registered");
    group.bench_function("preview", |b| b.iter(|| http.block_on(call(preview()))));
    let one = post(&user);
    group.bench_function("users_one_unchanged", |b| {
        b.iter(|| http.block_on(call(one())))
    });
    let thousand = post(&page);
    group.sample_size(20);
    group.bench_function("users_1000_unchanged", |b| {
        b.iter(|| http.block_on(call(thousand())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
