//! `cmdscope new-plugin NAME --lang rust|python|js --kind resolver|translator [--dir DIR]`:
//! a ready project, with the WIT it targets, the build command, a natively tested decision,
//! golden cases for `cmdscope plugins test`, and a README of three steps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

/// The interface the scaffold targets: the one this binary speaks.
const WIT: &str = include_str!("../../../wit/plugin.wit");

/// Pinned like the repository's own guests (plugins/python/requirements.txt,
/// plugins/js/package.json).
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
const JCO: &str = "1.35.0";
const PREVIEW2_SHIM: &str = "0.25.0";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    Resolver,
    Translator,
}

#[derive(Args)]
pub(crate) struct NewPluginArgs {
    /// The plugin's name, as the config names it (`resolver = "NAME"`): lowercase letters,
    /// digits and dashes.
    name: String,
    #[arg(long, value_enum)]
    lang: Lang,
    #[arg(long, value_enum, default_value_t = Kind::Resolver)]
    kind: Kind,
    /// Where to write the project (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// (path in the project, template)
fn templates(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    macro_rules! t {
        ($dir:literal, $($file:literal),*) => {
            vec![$(($file, include_str!(concat!("templates/", $dir, "/", $file)))),*]
        };
    }
    match (lang, kind) {
        (Lang::Rust, Kind::Resolver) => {
            t!("rust-resolver", "Cargo.toml", "src/lib.rs", "src/rules.rs")
        }
        (Lang::Rust, Kind::Translator) => {
            t!(
                "rust-translator",
                "Cargo.toml",
                "src/lib.rs",
                "src/texts.rs"
            )
        }
        (Lang::Python, Kind::Resolver) => {
            t!("python-resolver", "app.py", "rules.py", "test_rules.py")
        }
        (Lang::Python, Kind::Translator) => {
            t!("python-translator", "app.py", "texts.py", "test_texts.py")
        }
        (Lang::Js, Kind::Resolver) => t!("js-resolver", "plugin.js", "rules.js", "rules.test.js"),
        (Lang::Js, Kind::Translator) => {
            t!("js-translator", "plugin.js", "texts.js", "texts.test.js")
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(crate) fn run(args: NewPluginArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.as_str();
    if !valid_name(name) {
        anyhow::bail!(
            "`{name}` is not a plugin name: use lowercase letters, digits and single dashes, starting with a letter (e.g. `vip-rules`)"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let world = match args.kind {
        Kind::Resolver => "resolver-plugin",
        Kind::Translator => "translator-plugin",
    };
    let fill = |text: &str| text.replace("{{name}}", name);
    let mut files: Vec<(String, String)> = templates(args.lang, args.kind)
        .into_iter()
        .map(|(path, text)| (path.to_string(), fill(text)))
        .collect();
    files.push(("wit/plugin.wit".into(), WIT.into()));
    files.push(("cases.jsonl".into(), cases(args.kind).into()));
    files.push((
        "README.md".into(),
        readme(name, args.lang, args.kind, world),
    ));
    files.push((".gitignore".into(), gitignore(args.lang).into()));
    match args.lang {
        Lang::Python => files.push(("requirements.txt".into(), format!("{COMPONENTIZE_PY}\n"))),
        Lang::Js => files.push(("package.json".into(), package_json(name, world))),
        Lang::Rust => {}
    }
    for (path, text) in &files {
        write(&dir.join(path), text)?;
    }
    println!("created {} ({} files)", dir.display(), files.len());
    println!("next: see {}", dir.join("README.md").display());
    for step in steps(name, args.lang, world) {
        println!("  {step}");
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn cases(kind: Kind) -> &'static str {
    match kind {
        Kind::Resolver => concat!(
            r#"{"context": {"user_id": 1}, "profile": "guest"}"#,
            "\n",
            r#"{"context": {"user_id": 2, "language_code": "en", "flags": {"registered": true}}, "profile": "user"}"#,
            "\n",
            r#"{"context": {"user_id": 3, "chat_id": -100123, "chat_type": "group", "flags": {"registered": true, "admin": true}}, "profile": "admin"}"#,
            "\n",
            r#"{"context": {"user_id": 4, "flags": {"registered": "yes"}}, "profile": "guest"}"#,
            "\n",
        ),
        Kind::Translator => concat!(
            r#"{"key": "cmd.start.desc", "locale": "en", "text": "Start the bot"}"#,
            "\n",
            r#"{"key": "cmd.help.desc", "locale": "ru", "text": "Как это работает"}"#,
            "\n",
            r#"{"key": "cmd.start.desc", "locale": "de", "text": null}"#,
            "\n",
        ),
    }
}

fn gitignore(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "target/\n*.wasm\n",
        Lang::Python => "__pycache__/\n*.wasm\n.venv/\n",
        Lang::Js => "node_modules/\n*.wasm\n",
    }
}

fn package_json(name: &str, world: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "jco componentize plugin.js --wit wit/plugin.wit -n {world} --backend quickjs --backend-qjs-disable-async -o {name}.wasm",
    "test": "node --test"
  }},
  "devDependencies": {{
    "@bytecodealliance/jco": "{JCO}",
    "@bytecodealliance/preview2-shim": "{PREVIEW2_SHIM}"
  }},
  "overrides": {{
    "@bytecodealliance/preview2-shim": "$@bytecodealliance/preview2-shim"
  }}
}}
"#
    )
}

/// Build, test, deploy: the commands of each language.
fn steps(name: &str, lang: Lang, world: &str) -> [String; 3] {
    let crate_name = name.replace('-', "_");
    match lang {
        Lang::Rust => [
            format!(
                "build:  rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2 && cp target/wasm32-wasip2/release/{crate_name}.wasm {name}.wasm"
            ),
            format!(
                "test:   cargo test --lib && cmdscope plugins test {name}.wasm --cases cases.jsonl"
            ),
            format!(
                "deploy: cp {name}.wasm /path/to/plugins/.{name}.partial && mv /path/to/plugins/.{name}.partial /path/to/plugins/{name}.wasm"
            ),
        ],
        Lang::Python => [
            format!(
                "build:  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/componentize-py -d wit/plugin.wit -w {world} componentize app -o {name}.wasm"
            ),
            format!(
                "test:   python3 -m unittest && cmdscope plugins test {name}.wasm --cases cases.jsonl"
            ),
            format!(
                "deploy: cp {name}.wasm /path/to/plugins/.{name}.partial && mv /path/to/plugins/.{name}.partial /path/to/plugins/{name}.wasm"
            ),
        ],
        Lang::Js => [
            "build:  npm install && npm run build".to_string(),
            format!("test:   npm test && cmdscope plugins test {name}.wasm --cases cases.jsonl"),
            format!(
                "deploy: cp {name}.wasm /path/to/plugins/.{name}.partial && mv /path/to/plugins/.{name}.partial /path/to/plugins/{name}.wasm"
            ),
        ],
    }
}

fn readme(name: &str, lang: Lang, kind: Kind, world: &str) -> String {
    let (what, logic, config_line) = match (lang, kind) {
        (_, Kind::Resolver) => (
            "a resolver (a user's context in, the name of their profile out)",
            match lang {
                Lang::Rust => "`src/rules.rs`",
                Lang::Python => "`rules.py`",
                Lang::Js => "`rules.js`",
            },
            format!("resolver = \"{name}\""),
        ),
        (_, Kind::Translator) => (
            "a translator (a key and a locale in, a description out)",
            match lang {
                Lang::Rust => "`src/texts.rs`",
                Lang::Python => "`texts.py`",
                Lang::Js => "`texts.js`",
            },
            format!("translators = [\"{name}\"]"),
        ),
    };
    let [build, test, deploy] = steps(name, lang, world);
    let pitfalls = match lang {
        Lang::Rust => {
            "- Build for `wasm32-wasip2` (a component), not `wasm32-unknown-unknown` or `wasm32-wasip1`.\n- `cargo test --lib` runs the rules natively; a plain `cargo test` also tries to link the\n  component's exports natively.\n"
        }
        Lang::Python => {
            "- The component is about 18 MB (the interpreter is inside it) and takes seconds to compile\n  when first loaded (8-17 s of CPU, about 4 s on 2 idle cores, within the default\n  `[sandbox] compile_timeout_s` of 30 s of CPU, busy machine or not); the host caches the\n  compiled code and keeps the old version serving meanwhile.\n- Only the standard library that needs no capability works: no files, no network (there is\n  no `socket` module), the clock is fixed at 2024-01-01, the environment is empty.\n- `random` is seeded by the host when an instance starts and advances with each call: an\n  answer that depends on it is not a function of the user, and the host caches answers.\n  Derive any split from the context (e.g. `zlib.crc32(str(ctx.user_id).encode()) % 100`).\n- An uncaught exception is a crash (the user gets `default_profile`); raise\n  `componentize_py_types.Err(\"why\")` from `resolve` to report a reason instead.\n"
        }
        Lang::Js => {
            "- Built with jco's QuickJS backend: about 1.6 MB, a fast call. `fetch`, `process` and Node\n  modules do not exist in the sandbox; `Date.now()` is fixed at 2024-01-01; `Math.random` is\n  seeded by the host.\n- `s64` values (user and chat ids, integer flags) arrive as `BigInt`: compare with `1n`,\n  not `1`.\n- A thrown value from `resolve` is the error the host reports; return plain strings.\n"
        }
    };
    format!(
        "# {name}\n\nA cmdscope plugin: {what}. It implements the `{world}` world of `wit/plugin.wit`\n(cmdscope plugin interface 0.2). The decision lives in {logic}, tested natively; the other\nsource file is the component glue.\n\n## Three steps\n\n1. **Build** the component:\n\n   ```sh\n   {}\n   ```\n\n2. **Test** the logic natively, then the component against the golden cases in\n   `cases.jsonl` (add a line per rule you care about):\n\n   ```sh\n   {}\n   ```\n\n   Before replacing a version that serves, compare them: `cmdscope plugins test {name}.wasm\n   --cases cases.jsonl --compare old.wasm` lists every case whose answer changes, and\n   `--config cmdscope.toml` checks the profiles against the config.\n\n3. **Deploy**: rename the file into the host's plugin folder (write it elsewhere first, so\n   the host never sees half a file), and name it in the config:\n\n   ```sh\n   {}\n   ```\n\n   ```toml\n   {config_line}\n   ```\n\n   A running host (`cmdscope serve`) loads it without a restart, and every known user whose\n   menu it changes gets the new one. A broken file is rejected with the reason and the last\n   good version keeps serving.\n\n## Pitfalls\n\n{pitfalls}",
        build.trim_start_matches("build:").trim(),
        test.trim_start_matches("test:").trim(),
        deploy.trim_start_matches("deploy:").trim(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_a_config_and_every_toolchain_accept() {
        for good in ["vip-rules", "a", "shop2-de"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Vip",
            "vip_rules",
            "-vip",
            "vip-",
            "vip--rules",
            "2fa",
            "vip rules",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
