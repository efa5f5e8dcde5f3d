//! Memory of 100 managers, each with a config of 3 languages x 10 commands x 1 profile x
//! 1 scope (peer: 1.11 MB of RSS growth for aiogram-cmds), measured with a counting global
//! allocator: the bytes still allocated after building them, minus before.
//!
//! `cargo bench --bench memory`. Prints one line per figure; the figures are in BENCHMARKS.md.

#[path = "common/counting.rs"]
mod counting;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cmdscope::CommandManager;
use cmdscope::config::{Config, Format};
use cmdscope::deliver::HttpBotApi;
use counting::{ALLOCATIONS, LIVE};

fn config(i: usize) -> Config {
    let mut text =
        String::from("languages = [\"en\", \"ru\", \"es\"]\ndefault_profile = \"all\"\n");
    let names: Vec<String> = (0..10).map(|c| format!("cmd{c}")).collect();
    for name in &names {
        text.push_str(&format!(
            "[commands.{name}]\ndescriptions = {{ en = \"{name} of bot {i}\", ru = \"{name} бота {i}\", es = \"{name} del bot {i}\" }}\n"
        ));
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    text.push_str(&format!(
        "[profiles.all]\ninclude = [{}]\n",
        quoted.join(", ")
    ));
    text.push_str("[[scopes]]\nscope = \"default\"\nprofile = \"all\"\n");
    Config::parse(&text, Format::Toml, "memory.toml")
        .unwrap()
        .config
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it too: both just measure.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let api = Arc::new(HttpBotApi::new("1:memory", "http://127.0.0.1:9/").unwrap());
    let before = LIVE.load(Ordering::Relaxed);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    // Parsing each config is part of a manager's cost, as it is in the peer's figure.
    let managers: Vec<CommandManager> = (0..100)
        .map(|i| CommandManager::builder(config(i)).build(api.clone()))
        .collect();
    let grown = LIVE.load(Ordering::Relaxed) - before;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    println!(
        "memory/100_managers_3x10x1x1: {grown} bytes live ({:.1} KiB per manager, {allocations} allocations); peer 1.11 MB of RSS growth",
        grown as f64 / 100.0 / 1024.0
    );
    drop(managers);
}
