//! Building menus with the wasm translator, and what an update costs once they are built.
//!
//! `cargo bench --bench menus`. Figures are in the README.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

use cmdscope::config::{Config, Format};
use cmdscope::menu::MenuTable;
use cmdscope::output_cache::{CacheSettings, CachedTranslator};
use cmdscope::plan::Plan;
use cmdscope::plugin::{Plugin, PluginHost, PluginSettings, SandboxLimits};
use cmdscope::{Engine, Translator, UserContext};

fn translator() -> Arc<dyn Translator> {
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let path = Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join("shop_translator.wasm");
    match host.load_file(&path, &PluginSettings::new()).unwrap() {
        Plugin::Translator(t) => t,
        Plugin::Resolver(_) => unreachable!("shop-translator is a translator"),
    }
}

const SHOP_COMMANDS: [&str; 11] = [
    "start",
    "help",
    "catalog",
    "cart",
    "orders",
    "profile",
    "deals",
    "stats",
    "broadcast",
    "ban",
    "appeal",
];

/// `n` commands (the shop's 11, then generated ones), descriptions from the translator only.
fn config(n: usize, languages: &[&str], scopes: &[&str]) -> Config {
    let mut text = format!(
        "languages = [{}]\ni18n_key_prefix = \"shop\"\ndefault_profile = \"all\"\n",
        languages
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let names: Vec<String> = (0..n)
        .map(|i| {
            SHOP_COMMANDS
                .get(i)
                .map(|s| s.to_string())
                .unwrap_or(format!("cmd{i}"))
        })
        .collect();
    for name in &names {
        text.push_str(&format!("[commands.{name}]\n"));
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    text.push_str(&format!(
        "[profiles.all]\ninclude = [{}]\n",
        quoted.join(", ")
    ));
    for scope in scopes {
        text.push_str(&format!(
            "[[scopes]]\nscope = \"{scope}\"\nprofile = \"all\"\n"
        ));
    }
    Config::parse(&text, Format::Toml, "bench.toml")
        .unwrap()
        .config
}

fn build(c: &mut Criterion) {
    let translator = translator();
    let mut group = c.benchmark_group("build");
    // One 5-command list in one language, every description from the wasm translator.
    let five = config(5, &["ru"], &["default"]);
    group.bench_function("list_5_commands_wasm_translator", |b| {
        b.iter(|| MenuTable::build(black_box(&five), translator.as_ref()))
    });
    // A whole config: 66 commands, 3 languages, 4 scopes -> 16 lists (12 with a language).
    let whole = config(
        66,
        &["en", "ru", "es"],
        &[
            "default",
            "all_private_chats",
            "all_group_chats",
            "all_chat_administrators",
        ],
    );
    group.bench_function("config_66_commands_4_scopes_3_languages", |b| {
        b.iter(|| {
            let menus = MenuTable::build(black_box(&whole), translator.as_ref());
            Plan::build(&whole, &menus)
        })
    });
    // The same rebuilds behind the translator output cache, warm (as after a config change or
    // another translator's swap): no sandbox crossing at all.
    let cached: Arc<dyn Translator> = Arc::new(CachedTranslator::new(
        translator.clone(),
        &CacheSettings::default(),
    ));
    MenuTable::build(&five, cached.as_ref());
    MenuTable::build(&whole, cached.as_ref());
    group.bench_function("list_5_commands_cached_translator", |b| {
        b.iter(|| MenuTable::build(black_box(&five), cached.as_ref()))
    });
    group.bench_function("config_66_commands_cached_translator", |b| {
        b.iter(|| {
            let menus = MenuTable::build(black_box(&whole), cached.as_ref());
            Plan::build(&whole, &menus)
        })
    });
    group.finish();

    // Once built, a user's menu is a lookup.
    let engine = Engine::builder(config(11, &["en", "ru", "es"], &["default"]))
        .translator(translator)
        .engine();
    let user = UserContext::private(1).language("ru");
    c.bench_function("menu_of_user_lookup", |b| {
        b.iter(|| engine.menu_of(black_box("all"), &user))
    });
}

criterion_group!(benches, build);
criterion_main!(benches);
