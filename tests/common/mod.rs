//! Shared test helpers: an emulator on loopback and a teloxide client pointed at it.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

pub mod chat;
pub mod process;
pub mod redis;
pub mod serve;
pub mod users;
pub mod variant;
pub mod wat;

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

/// The shop example as an operator lays it out in `dir`: `cmdscope.toml` and a `plugins/`
/// folder with its two plugins (resolver version 1). Returns the config and the folder.
pub fn shop_folder(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = dir.join("cmdscope.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml"),
        &config,
    )
    .unwrap();
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("tiered.wasm"), plugin_bytes("tiered-resolver")).unwrap();
    std::fs::write(plugins.join("shop.wasm"), plugin_bytes("shop-translator")).unwrap();
    (config, plugins)
}

/// The example plugins, loaded into a sandbox: `tiered-resolver` and `shop-translator`.
pub fn shop_plugins() -> (Arc<dyn cmdscope::Resolver>, Arc<dyn cmdscope::Translator>) {
    use cmdscope::plugin::{Plugin, PluginHost, PluginSettings, SandboxLimits};
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let settings = PluginSettings::new();
    let Plugin::Resolver(resolver) = host
        .load_file(&plugin_path("tiered-resolver"), &settings)
        .unwrap()
    else {
        panic!("tiered-resolver is a resolver")
    };
    let Plugin::Translator(translator) = host
        .load_file(&plugin_path("shop-translator"), &settings)
        .unwrap()
    else {
        panic!("shop-translator is a translator")
    };
    (resolver, translator)
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

/// A plugin built by the build script (`plugins/` and `tests/plugins/`), by crate name; a
/// Python or JavaScript guest by its folder name and `-py` / `-js` (`tiered-resolver-py`).
pub fn plugin_path(crate_name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CMDSCOPE_PLUGIN_DIR"))
        .join(format!("{}.wasm", crate_name.replace('-', "_")))
}

pub fn plugin_bytes(crate_name: &str) -> Vec<u8> {
    let path = plugin_path(crate_name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            // A Python or JavaScript guest the build script could not build says why.
            let dir = std::path::Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
            let why = ["python", "js"]
                .iter()
                .filter_map(|l| {
                    std::fs::read_to_string(dir.join(format!("{l}-guests-skipped.txt"))).ok()
                })
                .collect::<Vec<_>>()
                .join("\n");
            panic!("{} was not built ({e}). {why}", path.display())
        }
    }
}

#[allow(unused_imports)] // Not every test file swaps versions.
pub use variant::variant;

/// A small config with profiles `guest` and `admin` that names `resolver` as its resolver plugin.
pub fn guest_admin_config(resolver: &str) -> String {
    format!(
        r#"
default_profile = "guest"
resolver = "{resolver}"
[commands.start]
[commands.admin]
[profiles.guest]
include = ["start"]
[profiles.admin]
include = ["start", "admin"]
[[scopes]]
scope = "default"
profile = "guest"
"#
    )
}

/// Our own Bot API client pointed at the emulator.
pub fn http_api(running: &RunningEmulator) -> Arc<cmdscope::deliver::HttpBotApi> {
    Arc::new(cmdscope::deliver::HttpBotApi::new(TOKEN, &running.url()).unwrap())
}
