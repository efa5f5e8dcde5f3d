//! The shop's users as the fleet and release tests post and check them: registered when even,
//! 12 orders when a multiple of four (version 2 of the resolver makes those premium), and what
//! the emulator shows each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cmdscope::UserContext;
use cmdscope::emulator::RunningEmulator;

use super::serve::{KEY, post};

/// A user of the shop, as the bot posts them.
pub fn context(id: i64) -> Value {
    json!({
        "user_id": id,
        "language_code": "en",
        "flags": {"registered": id % 2 == 0, "orders": if id % 4 == 0 { 12 } else { 1 }},
    })
}

/// Whether version 2's rules make the user premium (the only change from version 1).
pub fn premium_in_v2(id: i64) -> bool {
    id % 4 == 0
}

fn sees_deals(running: &RunningEmulator, id: i64) -> bool {
    let viewer = UserContext::private(id).language("en").viewer();
    running
        .emulator
        .effective(&viewer)
        .1
        .iter()
        .any(|c| c.command == "deals")
}

/// Waits up to `limit` for every user to see `/deals` exactly when `premium` says so;
/// answers the users still wrong.
pub async fn wrong_after(
    running: &RunningEmulator,
    users: &[i64],
    limit: Duration,
    premium: impl Fn(i64) -> bool,
) -> Vec<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let wrong: Vec<i64> = users
            .iter()
            .copied()
            .filter(|&id| sees_deals(running, id) != premium(id))
            .collect();
        if wrong.is_empty() || Instant::now() > deadline {
            return wrong;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /v1/users` of `users`, answered 200.
pub async fn post_users(client: &reqwest::Client, url: &str, users: &[Value]) {
    let response = post(client, url, "/v1/users", Some(KEY))
        .json(&users)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The bot's traffic: ten random users posted to a random worker every 30 ms until `stop`;
/// answers how many contexts were posted.
pub fn traffic(
    urls: Vec<String>,
    users: Vec<i64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut posted = 0;
        while !stop.load(Ordering::SeqCst) {
            let url = &urls[fastrand::usize(..urls.len())];
            let batch: Vec<Value> = (0..10)
                .map(|_| context(users[fastrand::usize(..users.len())]))
                .collect();
            post_users(&client, url, &batch).await;
            posted += batch.len() as u64;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        posted
    })
}
