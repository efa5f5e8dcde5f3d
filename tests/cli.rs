//! The `cmdscope` binary as an operator runs it: exit codes, output shapes, and a real
//! emulator process on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::guest_admin_config;

const BIN: &str = env!("CARGO_BIN_EXE_cmdscope");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("CMDSCOPE_BOT_TOKEN")
        .output()
        .expect("cmdscope runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cmdscope emulator` on a free port; killed on drop.
struct EmulatorProcess {
    child: Child,
    url: String,
}

impl EmulatorProcess {
    fn start(extra: &[&str]) -> EmulatorProcess {
        let mut child = Command::new(BIN)
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        EmulatorProcess { child, url }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_accepts_the_example() {
    let out = run(&["check", "--config", EXAMPLE]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok (11 commands, 5 profiles, 4 scopes"));
}

#[test]
fn check_prints_one_error_per_line_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
languages = ["en", "english"]
default_profile = "guest"
[commands.Start]
descriptions = { en = "Start" }
[commands.help]
descriptions = { en = "" }
[profiles.guest]
include = ["help", "stat"]
[[scopes]]
scope = "chat"
profile = "guest"
"#,
    )
    .unwrap();
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    for path_expected in [
        "languages[1]",
        "commands.Start",
        "commands.help.descriptions.en",
        "profiles.guest.include[1]",
        "scopes[0].chat_id",
    ] {
        let hits = lines
            .iter()
            .filter(|l| l.contains(&format!(": {path_expected}: ")))
            .count();
        assert_eq!(hits, 1, "{path_expected} in:\n{text}");
    }
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("error: ") && l.contains("bad.toml")),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.contains("(fix: ")), "{text}");

    let missing = run(&["check", "--config", "/nonexistent/bot.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stdout(&missing).contains("cannot read the file"));
}

#[test]
fn plan_json_has_the_bot_api_shape() {
    let out = run(&["plan", "--config", EXAMPLE, "--format", "json"]);
    assert!(out.status.success());
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let lists = plan["lists"].as_array().unwrap();
    assert_eq!(lists.len(), 16);
    assert_eq!(plan["menu_button"], serde_json::json!({"type": "commands"}));
    let first = &lists[0];
    assert_eq!(first["scope"], serde_json::json!({"type": "default"}));
    assert_eq!(first["language_code"], "en");
    assert_eq!(
        first["commands"][0],
        serde_json::json!({"command": "start", "description": "Start the bot"})
    );
    assert_eq!(lists[3]["language_code"], Value::Null);
    let table = run(&["plan", "--config", EXAMPLE]);
    assert!(stdout(&table).contains("all_chat_administrators [ru]  (profile admin)"));
}

#[test]
fn apply_sets_every_list_on_an_emulator_process() {
    let emulator = EmulatorProcess::start(&[]);
    let out = run(&[
        "apply",
        "--config",
        EXAMPLE,
        "--token",
        "99:secret-token",
        "--api-url",
        &emulator.url,
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("16 lists: 16 set, 0 unchanged, 0 failed; menu button set"),
        "{text}"
    );
    assert_eq!(
        emulator.get("_emulator/lists")["lists"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(emulator.get("_emulator/calls")["total"], 17);
    let shown = emulator.get(
        "_emulator/effective?chat_type=group&chat_id=-1&user_id=3&is_admin=true&language_code=ru",
    );
    assert_eq!(shown["commands"][7]["command"], "stats");

    let dry = run(&["apply", "--config", EXAMPLE, "--dry-run"]);
    assert!(dry.status.success());
    assert!(stdout(&dry).contains("dry run: no Bot API call made"));
    assert_eq!(emulator.get("_emulator/calls")["total"], 17);
}

#[test]
fn apply_reports_failures_without_leaking_the_token() {
    let emulator = EmulatorProcess::start(&["--token", "1:expected"]);
    let out = run(&[
        "apply",
        "--config",
        EXAMPLE,
        "--token",
        "2:wrong-secret",
        "--api-url",
        &emulator.url,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("Unauthorized"), "{all}");
    assert!(
        all.contains("16 lists: 0 set, 0 unchanged, 16 failed; menu button failed"),
        "{all}"
    );
    assert!(!all.contains("wrong-secret"), "token leaked:\n{all}");

    let no_token = run(&["apply", "--config", EXAMPLE, "--api-url", &emulator.url]);
    assert_eq!(no_token.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("--token"));
}

#[test]
fn demo_runs_with_nothing_but_the_binary() {
    let out = run(&["demo"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("same users again: 0 Bot API calls"), "{text}");
    assert!(!text.contains("MISMATCH"), "{text}");
    assert!(text.contains("/appeal"), "{text}");
}

/// A folder with copies of the named built plugins.
fn plugin_folder(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let built = std::path::Path::new(env!("CMDSCOPE_PLUGIN_DIR"))
            .join(format!("{}.wasm", name.replace('-', "_")));
        std::fs::copy(built, dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

#[test]
fn plugins_check_lists_each_file_or_why_it_was_rejected() {
    let dir = plugin_folder(&["tiered-resolver", "shop-translator", "http-importer"]);
    std::fs::write(
        dir.path().join("garbage.wasm"),
        b"\0asm but not really a component",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a plugin, not looked at").unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&["plugins", "check", d, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected file fails the check"
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let plugins = report["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 4);
    let by_file = |f: &str| plugins.iter().find(|p| p["file"] == f).unwrap().clone();
    let tiered = by_file("tiered-resolver.wasm");
    assert_eq!(tiered["status"], "ok");
    assert_eq!(tiered["name"], "tiered-resolver");
    assert_eq!(tiered["world"], "resolver");
    assert_eq!(tiered["version"], "0.1.0");
    assert_eq!(
        tiered["profiles"],
        serde_json::json!(["banned", "admin", "premium", "user", "guest"])
    );
    let shop = by_file("shop-translator.wasm");
    assert_eq!(
        (shop["world"].as_str(), shop["locales"].clone()),
        (Some("translator"), serde_json::json!(["en", "ru", "es"]))
    );
    let http = by_file("http-importer.wasm");
    assert_eq!(http["status"], "rejected");
    assert!(
        http["error"].as_str().unwrap().contains("`wasi:http/"),
        "{http}"
    );
    assert!(
        by_file("garbage.wasm")["error"]
            .as_str()
            .unwrap()
            .starts_with("not a valid WebAssembly component")
    );

    let table = run(&["plugins", "check", d]);
    let text = stdout(&table);
    assert!(text.contains("tiered-resolver.wasm: ok  tiered-resolver resolver 0.1.0  profiles: banned, admin, premium, user, guest"), "{text}");
    assert!(
        text.contains("http-importer.wasm: rejected: imports `wasi:http/"),
        "{text}"
    );

    // Against a config without `banned`: the resolver is reported too.
    let cfg = dir.path().join("small.toml");
    std::fs::write(&cfg, guest_admin_config("tiered-resolver")).unwrap();
    let out = run(&["plugins", "check", d, "--config", cfg.to_str().unwrap()]);
    assert!(stdout(&out).contains("tiered-resolver.wasm: rejected: may return profiles the config does not define: `banned`, `premium`, `user`"), "{}", stdout(&out));
}

#[test]
fn resolve_prints_profile_source_and_menu() {
    let dir = plugin_folder(&["tiered-resolver", "shop-translator"]);
    let out = run(&[
        "resolve",
        "--config",
        EXAMPLE,
        "--plugins",
        dir.path().to_str().unwrap(),
        "--user-id",
        "5",
        "--language-code",
        "es",
        "--flag",
        "registered=true",
        "--flag",
        "premium=true",
        "--flag",
        "level=3",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["profile"], "premium");
    assert_eq!(answer["source"], "tiered-resolver");
    assert!(answer.get("error").is_none());
    let commands = answer["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 7);
    assert_eq!(
        commands[6],
        serde_json::json!({"command": "deals", "description": "Ofertas para miembros"})
    );
    // `true` is a boolean: "registered=yes" is text and does not count.
    let out = run(&[
        "resolve",
        "--config",
        EXAMPLE,
        "--plugins",
        dir.path().to_str().unwrap(),
        "--user-id",
        "5",
        "--flag",
        "registered=yes",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["profile"],
        "guest"
    );
}

#[test]
fn resolve_reports_a_failing_plugin_and_still_answers() {
    let dir = plugin_folder(&["panicking"]);
    let cfg = dir.path().join("bot.toml");
    std::fs::write(&cfg, guest_admin_config("panicking")).unwrap();
    let out = run(&[
        "resolve",
        "--config",
        cfg.to_str().unwrap(),
        "--plugins",
        dir.path().to_str().unwrap(),
        "--user-id",
        "666",
    ]);
    assert!(out.status.success());
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["profile"], "guest");
    assert_eq!(answer["source"], "panicking");
    assert!(
        answer["error"].as_str().unwrap().contains("panicked"),
        "{answer}"
    );
    assert_eq!(
        answer["commands"],
        serde_json::json!([{"command": "start", "description": "Start"}])
    );
}

#[test]
fn watch_prints_json_lines_and_exits_on_sigterm() {
    let dir = plugin_folder(&["swap-guest"]);
    let cfg = dir.path().join("bot.toml");
    std::fs::write(&cfg, guest_admin_config("swappable")).unwrap();
    let cache = dir.path().join("cache");
    let mut child = Command::new(BIN)
        .args([
            "watch",
            "--config",
            cfg.to_str().unwrap(),
            "--plugins",
            dir.path().to_str().unwrap(),
        ])
        .arg("--compiled-cache")
        .arg(&cache)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let loaded = next();
    assert_eq!(loaded["event"], "loaded");
    assert_eq!(loaded["plugin"], "swappable");
    assert_eq!(loaded["file"], "swap-guest.wasm");
    assert_eq!(loaded["generation"], 1);
    assert!(loaded["ms"].as_f64().is_some());
    // Replace it by renaming a new version into place.
    let admin = std::path::Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join("swap_admin.wasm");
    let tmp = dir.path().join("incoming.tmp");
    std::fs::copy(admin, &tmp).unwrap();
    std::fs::rename(&tmp, dir.path().join("swap-guest.wasm")).unwrap();
    let reloaded = next();
    assert_eq!(reloaded["event"], "reloaded", "{reloaded}");
    assert_eq!(reloaded["generation"], 2);
    assert_ne!(reloaded["sha256"], loaded["sha256"]);
    // A broken file: rejected, with the reason.
    std::fs::write(dir.path().join("broken.wasm"), b"garbage").unwrap();
    let rejected = next();
    assert_eq!(rejected["event"], "rejected");
    assert_eq!(rejected["file"], "broken.wasm");
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component")
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "exits cleanly on SIGTERM");
    assert!(cache.is_dir(), "compiled cache created");
}

#[test]
fn catalogs_from_files_fill_descriptions_in_chain_order() {
    let dir = tempfile::tempdir().unwrap();
    let locales = dir.path().join("locales");
    std::fs::create_dir(&locales).unwrap();
    std::fs::write(
        locales.join("ru.json"),
        r#"{"bot.start.desc": "Старт (json)"}"#,
    )
    .unwrap();
    std::fs::write(
        locales.join("ru.ftl"),
        "bot-start-desc = Старт (ftl)\nbot-help-desc = Помощь (ftl)\n",
    )
    .unwrap();
    let cfg = dir.path().join("bot.toml");
    let config = |translators: &str| {
        format!(
            "languages = [\"en\", \"ru\"]\ni18n_key_prefix = \"bot\"\ndefault_profile = \"guest\"\ntranslators = [{translators}]\n[commands.start]\ndescriptions = {{ en = \"Start\" }}\n[commands.help]\ndescriptions = {{ en = \"Help\" }}\n[profiles.guest]\ninclude = [\"start\", \"help\"]\n[[scopes]]\nscope = \"default\"\nprofile = \"guest\"\nlanguages = [\"ru\"]\n"
        )
    };
    // Relative folders are taken from the config file's folder, whatever the working directory.
    std::fs::write(&cfg, config("\"json:locales\", \"fluent:locales\"")).unwrap();
    let out = run(&[
        "plan",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ru = &plan["lists"][0]["commands"];
    assert_eq!(ru[0]["description"], "Старт (json)", "first answer wins");
    assert_eq!(
        ru[1]["description"], "Помощь (ftl)",
        "missing keys fall through the chain"
    );

    std::fs::write(
        locales.join("ru.json"),
        "{\n\"bot.start.desc\": \"x\",\n oops\n}",
    )
    .unwrap();
    let out = run(&["plan", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ru.json:3: "), "{err}");

    std::fs::write(&cfg, config("\"yaml:locales\"")).unwrap();
    let out = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("translators[0]: unknown catalog format `yaml`"),
        "{}",
        stdout(&out)
    );
}
