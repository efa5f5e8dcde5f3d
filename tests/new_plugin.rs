//! `cmdscope new-plugin` for every language and kind, the way an author uses it: generate,
//! run the project's native tests, build the component with the command its README gives,
//! `cmdscope plugins test` its golden cases, and load it into a host next to a config.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cmdscope");
const TOOLS: &str = env!("CMDSCOPE_GUEST_TOOLCHAINS");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn generate(root: &Path, name: &str, lang: &str, kind: &str) -> PathBuf {
    let out = run(Command::new(BIN)
        .args(["new-plugin", name, "--lang", lang, "--kind", kind])
        .current_dir(root));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("created {name}")), "{text}");
    let dir = root.join(name);
    for file in ["README.md", "cases.jsonl", "wit/plugin.wit"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    dir
}

/// The build command the project documents, run with the toolchains the build script
/// installed (the same pinned versions the project's own files name).
fn build(dir: &Path, name: &str, lang: &str, kind: &str) -> PathBuf {
    let world = format!("{kind}-plugin");
    let wasm = dir.join(format!("{name}.wasm"));
    match lang {
        "rust" => {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-plugin-rust");
            let mut cargo = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
            for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
                cargo.env_remove(var);
            }
            run(cargo
                .args(["test", "--lib", "-q"])
                .env("CARGO_TARGET_DIR", target.join("native"))
                .current_dir(dir));
            let mut cargo = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
            for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET"] {
                cargo.env_remove(var);
            }
            run(cargo
                .args(["build", "--release", "--target", "wasm32-wasip2", "-q"])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(dir));
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(built, &wasm).unwrap();
        }
        "python" => {
            run(Command::new("python3")
                .args(["-m", "unittest", "-q"])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(dir));
            let requirements = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
            assert_eq!(requirements.trim(), "componentize-py==0.25.1");
            run(
                Command::new(Path::new(TOOLS).join("python/bin/componentize-py"))
                    .args([
                        "-d",
                        "wit/plugin.wit",
                        "-w",
                        &world,
                        "componentize",
                        "app",
                        "-o",
                    ])
                    .arg(&wasm)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .current_dir(dir),
            );
        }
        "js" => {
            run(Command::new("node").arg("--test").current_dir(dir));
            let package: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap())
                    .unwrap();
            assert_eq!(
                package["devDependencies"]["@bytecodealliance/jco"],
                "1.35.0"
            );
            // `npm run build` is its script with node_modules/.bin on the PATH.
            let script = package["scripts"]["build"].as_str().unwrap();
            let bin = Path::new(TOOLS).join("js/node_modules/.bin");
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
            run(Command::new("sh")
                .args(["-c", script])
                .env("PATH", path)
                .current_dir(dir));
        }
        other => unreachable!("{other}"),
    }
    assert!(wasm.is_file(), "{} built", wasm.display());
    wasm
}

/// A config with the scaffold's profiles and the keys its translator knows, naming it.
fn config(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let names = match kind {
        "resolver" => format!("resolver = \"{name}\""),
        _ => format!("translators = [\"{name}\"]\ni18n_key_prefix = \"cmd\""),
    };
    let path = dir.join("bot.toml");
    std::fs::write(
        &path,
        format!(
            r#"
languages = ["en", "ru"]
default_profile = "guest"
{names}
[commands.start]
[commands.help]
[commands.admin]
descriptions = {{ en = "Admin tools", ru = "Админка" }}
[profiles.guest]
include = ["start"]
[profiles.user]
include = ["start", "help"]
[profiles.admin]
include = ["start", "help", "admin"]
[[scopes]]
scope = "default"
profile = "user"
[sandbox]
compile_timeout_s = 120
"#
        ),
    )
    .unwrap();
    path
}

fn scaffold_round_trip(lang: &str, kind: &str) {
    let root = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-{kind}");
    let dir = generate(root.path(), &name, lang, kind);
    let wasm = build(&dir, &name, lang, kind);
    let cfg = config(root.path(), &name, kind);

    let out = run(Command::new(BIN)
        .args(["plugins", "test"])
        .arg(&wasm)
        .arg("--cases")
        .arg(dir.join("cases.jsonl"))
        .arg("--config")
        .arg(&cfg));
    let summary = String::from_utf8_lossy(&out.stdout);
    let cases = std::fs::read_to_string(dir.join("cases.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        summary.contains(&format!("{cases} cases, {cases} passed, 0 failed")),
        "{summary}"
    );

    // Into a host: the folder as `serve` would load it, checked against the config.
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join(format!("{name}.wasm"))).unwrap();
    let out = run(Command::new(BIN)
        .args(["plugins", "check"])
        .arg(&plugins)
        .arg("--config")
        .arg(&cfg));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(": ok  {name} {kind} 0.1.0")),
        "{text}"
    );
    // And it decides: a profile for a user, texts for the lists.
    let (args, expected): (&[&str], &str) = match kind {
        "resolver" => (
            &["resolve", "--user-id", "7", "--flag=admin=true"],
            "\"profile\":\"admin\"",
        ),
        _ => (&["plan", "--format", "json"], "Запустить бота"),
    };
    let out = run(Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&cfg)
        .arg("--plugins")
        .arg(&plugins));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains(expected), "{answer}");
}

#[test]
fn a_rust_resolver_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("rust", "resolver");
}

#[test]
fn a_rust_translator_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("rust", "translator");
}

#[test]
fn a_python_resolver_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("python", "resolver");
}

#[test]
fn a_python_translator_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("python", "translator");
}

#[test]
fn a_javascript_resolver_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("js", "resolver");
}

#[test]
fn a_javascript_translator_scaffold_builds_passes_its_cases_and_loads() {
    scaffold_round_trip("js", "translator");
}

#[test]
fn new_plugin_refuses_a_bad_name_and_a_folder_in_use() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["new-plugin", "Bad_Name", "--lang", "rust"])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a plugin name"),
        "{out:?}"
    );
    std::fs::create_dir(root.path().join("taken")).unwrap();
    std::fs::write(root.path().join("taken/keep.txt"), "mine").unwrap();
    let out = Command::new(BIN)
        .args(["new-plugin", "taken", "--lang", "python"])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn plugins_test_reports_failures_bad_lines_and_what_a_new_version_changes() {
    let dir = Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
    let root = tempfile::tempdir().unwrap();
    let cases = root.path().join("cases.jsonl");
    let compiled = root.path().join("compiled");
    std::fs::write(
        &cases,
        r#"{"context": {"user_id": 1}, "profile": "guest"}
{"context": {"user_id": 2, "flags": {"registered": true, "orders": 12}}, "profile": "user"}
{"user_id": 3, "flags": {"registered": true, "orders": 3}}
{"context": {"user_id": "x"}}
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["plugins", "test"])
        .arg(dir.join("tiered_resolver_v2.wasm"))
        .arg("--cases")
        .arg(&cases)
        .arg("--compare")
        .arg(dir.join("tiered_resolver.wasm"))
        .args(["--format", "json"])
        .arg("--compiled-cache")
        .arg(&compiled)
        .output()
        .unwrap();
    // Both versions compiled into the cache a host would use: a deploy after the test is a hit.
    let cached = std::fs::read_dir(&compiled).unwrap().count();
    assert_eq!(cached, 2, "compiled versions in the cache");
    assert_eq!(out.status.code(), Some(1), "a failed case fails the run");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["plugin"]["version"], "2.0.0");
    assert_eq!(
        (report["cases"].as_u64(), report["passed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(report["unchecked"], 1);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["line"], 2);
    assert_eq!(failed[0]["expected"]["profile"], "user");
    assert_eq!(failed[0]["got"]["profile"], "premium");
    assert_eq!(report["bad_lines"][0]["line"], 4);
    assert!(
        report["bad_lines"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("context: user_id:")
    );
    // Only the loyal registered user changes: 12 orders, not 3.
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["line"], 2);
    assert_eq!(
        (
            changed[0]["old"]["profile"].as_str(),
            changed[0]["new"]["profile"].as_str()
        ),
        (Some("user"), Some("premium"))
    );
}
