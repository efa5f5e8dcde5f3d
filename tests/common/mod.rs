//! Shared test helpers: an emulator on loopback and a teloxide client pointed at it.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use cmdscope::config::{Config, Format};
use cmdscope::deliver::TeloxideApi;
use cmdscope::emulator::{Emulator, RunningEmulator};

pub const TOKEN: &str = "4242:test-token";

pub async fn emulator() -> RunningEmulator {
    Emulator::new()
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator binds a loopback port")
}

pub fn api(running: &RunningEmulator) -> Arc<TeloxideApi> {
    Arc::new(TeloxideApi::with_api_url(TOKEN, &running.url()).unwrap())
}

pub fn bot(running: &RunningEmulator) -> teloxide_core::Bot {
    api(running).bot().clone()
}

/// The example shop config shipped in `examples/`.
pub fn shop_config() -> Config {
    Config::parse(
        include_str!("../../examples/shop.toml"),
        Format::Toml,
        "examples/shop.toml",
    )
    .unwrap()
    .config
}

pub fn shop_catalog() -> cmdscope::resolve::Catalog {
    cmdscope::resolve::Catalog::from_json(include_str!("../../examples/shop.i18n.json")).unwrap()
}

/// `GET` a control endpoint and parse its JSON.
pub async fn get_json(running: &RunningEmulator, path: &str) -> serde_json::Value {
    reqwest::get(format!("{}{}", running.url(), path.trim_start_matches('/')))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
