//! The HTTP API mounted from the library with a short request timeout: a request answered 503
//! because Telegram is slow leaves its updates running, as the answer says, and every user of
//! the list ends with their menu (none is dropped halfway).

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cmdscope::emulator::Fault;
use cmdscope::host::http::{HttpOptions, serve};
use cmdscope::{Host, UserContext};
use common::{emulator, http_api, shop_folder};

const KEY: &str = "timeout-key";

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_list_is_answered_503_and_every_user_still_gets_their_menu() {
    let running = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, plugins) = shop_folder(dir.path());
    let host = Host::builder(&config)
        .plugins(&plugins)
        .build()
        .await
        .unwrap();
    host.start(http_api(&running)).await.unwrap();
    let (addr, _server) = serve(
        &host,
        "127.0.0.1:0".parse().unwrap(),
        HttpOptions {
            api_key: Some(KEY.into()),
            request_timeout: Some(Duration::from_millis(300)),
            metrics: false,
        },
        std::future::pending(),
    )
    .await
    .unwrap();

    // Every call waits 200 ms: 40 premium users (a list of their own each) take seconds.
    running.emulator.inject(Fault {
        status: None,
        retry_after: None,
        delay_ms: Some(200),
        count: 1_000,
    });
    let users: Vec<Value> = (1..=40)
        .map(|id| json!({"user_id": 500 + id, "flags": {"registered": true, "premium": true}}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/users"))
        .bearer_auth(KEY)
        .json(&users)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("go on"),
        "{answer}"
    );

    let shows_deals = |id: i64| {
        running
            .emulator
            .effective(&UserContext::private(id).viewer())
            .1
            .iter()
            .any(|c| c.command == "deals")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(501..=540).all(shows_deals) {
        assert!(
            Instant::now() < deadline,
            "users still without their menu: {:?}",
            (501..=540)
                .filter(|id| !shows_deals(*id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.shutdown().await;
}
