//! Python and JavaScript guests, for `build.rs`.
//!
//! A guest is a folder: Python, `app.py` beside a `pyproject.toml` whose `[tool.cmdscope]`
//! names the world; JavaScript, a `package.json` whose `"cmdscope"` names the world and the
//! entry module. The toolchains are pinned in the repository and installed into
//! `<target>/guest-toolchains/{python,js}` the first time (and again when the pins change).
//! Neither build stubs WASI out (componentize-py's `--stub-wasi` and jco's
//! `--backend-qjs-stub-wasi` would freeze the random seed drawn at build time into the
//! component): the host links every WASI import with an implementation that grants nothing
//! real (no files, a fixed clock, an empty environment, sockets that trap) and decides the
//! randomness itself, seeded per call.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How guests are built; part of every guest's stamp, so changing it rebuilds them.
const PYTHON_RECIPE: &str = "componentize-py componentize app (no --stub-wasi)";
const JS_RECIPE: &str = "jco componentize --backend quickjs --backend-qjs-disable-async";

/// Where guests of each language live, relative to the crate.
const PYTHON_ROOTS: [&str; 2] = ["plugins/python", "tests/plugins/python"];
const JS_ROOTS: [&str; 2] = ["plugins/js", "tests/plugins/js"];

/// Why a language's guests were not built, written where the tests look for it.
pub fn skipped_note(out: &Path, lang: &str) -> PathBuf {
    out.join(format!("{lang}-guests-skipped.txt"))
}

pub fn build_all(crate_dir: &Path, target_root: &Path, out: &Path) {
    let wit = crate_dir.join("wit/plugin.wit");
    let tools = target_root.join("guest-toolchains");
    // Where tests find componentize-py (`python/bin`) and jco (`js/node_modules/.bin`).
    println!(
        "cargo:rustc-env=CMDSCOPE_GUEST_TOOLCHAINS={}",
        tools.display()
    );
    let python: Vec<PathBuf> = guests(crate_dir, &PYTHON_ROOTS, "pyproject.toml");
    if !python.is_empty() {
        let built = python_toolchain(crate_dir, &tools.join("python")).and_then(|tool| {
            python
                .iter()
                .try_for_each(|guest| build_python(&tool, guest, &wit, out))
        });
        note(out, "python", built);
    }
    let js: Vec<PathBuf> = guests(crate_dir, &JS_ROOTS, "package.json");
    if !js.is_empty() {
        let built = js_toolchain(crate_dir, &tools.join("js")).and_then(|tool| {
            js.iter()
                .try_for_each(|guest| build_js(&tool, guest, &wit, out))
        });
        note(out, "js", built);
    }
}

/// Records (or clears) why a language's guests are missing, and warns.
fn note(out: &Path, lang: &str, built: Result<(), String>) {
    let path = skipped_note(out, lang);
    match built {
        Ok(()) => {
            let _ = std::fs::remove_file(path);
        }
        Err(why) => {
            for line in why.lines().take(20) {
                println!("cargo:warning={lang} plugins not built: {line}");
            }
            let _ = std::fs::create_dir_all(out);
            let _ = std::fs::write(path, why);
        }
    }
}

/// Folders under `roots` holding `marker` (each one guest), sorted.
fn guests(crate_dir: &Path, roots: &[&str], marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(crate_dir.join(root)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join(marker).is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Runs `cmd`; the error carries what it printed.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let output = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        output.status,
        tail.join("\n")
    ))
}

/// A digest of `files` (names and contents), and of `extra`.
fn digest(files: &[PathBuf], extra: &str) -> String {
    let mut hasher = DefaultHasher::new();
    extra.hash(&mut hasher);
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(file).unwrap_or_default().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// Every source file of a guest, sorted (caches and installed packages left out).
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "__pycache__" || name == "node_modules" || name == ".pytest_cache" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Whether `output` was built from `stamp` (kept next to it).
fn fresh(output: &Path, stamp: &str) -> bool {
    output.is_file()
        && std::fs::read_to_string(output.with_extension("stamp")).is_ok_and(|s| s == stamp)
}

fn stamp_done(output: &Path, stamp: &str) {
    let _ = std::fs::write(output.with_extension("stamp"), stamp);
}

/// A string field of a guest's manifest: `key = "..."` (pyproject.toml) or `"key": "..."`
/// (package.json).
fn field(manifest: &Path, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| format!("{}: cannot read: {e}", manifest.display()))?;
    for pattern in [format!("\"{key}\""), key.to_string()] {
        let mut from = 0;
        while let Some(at) = text[from..].find(&pattern) {
            from += at + pattern.len();
            let value = text[from..]
                .trim_start()
                .strip_prefix([':', '='])
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix('"'))
                .and_then(|r| r.split('"').next());
            if let Some(value) = value {
                return Ok(value.to_string());
            }
        }
    }
    Err(format!(
        "{}: no `{key}` for cmdscope (see docs/plugins.md)",
        manifest.display()
    ))
}

/// `<folder name with _>_<suffix>.wasm`.
fn output_for(guest: &Path, out: &Path, suffix: &str) -> PathBuf {
    let name = guest
        .file_name()
        .map(|n| n.to_string_lossy().replace('-', "_"))
        .unwrap_or_default();
    out.join(format!("{name}_{suffix}.wasm"))
}

// ---- Python ----

struct Tool {
    program: PathBuf,
    stamp: String,
}

fn python_toolchain(crate_dir: &Path, dir: &Path) -> Result<Tool, String> {
    let requirements = crate_dir.join("plugins/python/requirements.txt");
    let stamp = digest(std::slice::from_ref(&requirements), "python");
    let program = dir.join("bin/componentize-py");
    if !fresh(&program, &stamp) {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let _ = std::fs::remove_dir_all(dir);
        run(
            Command::new(&python).args(["-m", "venv"]).arg(dir),
            "creating the Python toolchain's virtualenv (python3 -m venv)",
        )?;
        run(
            Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements),
            "installing componentize-py (pip install -r plugins/python/requirements.txt)",
        )?;
        stamp_done(&program, &stamp);
    }
    Ok(Tool { program, stamp })
}

fn build_python(tool: &Tool, guest: &Path, wit: &Path, out: &Path) -> Result<(), String> {
    let world = field(&guest.join("pyproject.toml"), "world")?;
    let output = output_for(guest, out, "py");
    let mut files = sources(guest);
    files.push(wit.to_path_buf());
    let stamp = digest(&files, &format!("{}{world}{PYTHON_RECIPE}", tool.stamp));
    if fresh(&output, &stamp) {
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    // A guest that does not build is a bug to fix, not a toolchain to skip.
    let built = run(
        Command::new(&tool.program)
            .arg("-d")
            .arg(wit)
            .args(["-w", &world, "componentize", "app", "-p"])
            .arg(guest)
            .arg("-o")
            .arg(&output)
            // Leave no bytecode caches in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &format!("componentize-py for {}", guest.display()),
    );
    if let Err(e) = built {
        panic!("{e}");
    }
    stamp_done(&output, &stamp);
    Ok(())
}

// ---- JavaScript ----

fn js_toolchain(crate_dir: &Path, dir: &Path) -> Result<Tool, String> {
    let manifest = crate_dir.join("plugins/js/package.json");
    let lock = crate_dir.join("plugins/js/package-lock.json");
    let stamp = digest(&[manifest.clone(), lock.clone()], "js");
    let program = dir.join("node_modules/.bin/jco");
    if !fresh(&program, &stamp) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for file in [&manifest, &lock] {
            std::fs::copy(file, dir.join(file.file_name().unwrap())).map_err(|e| e.to_string())?;
        }
        run(
            Command::new("npm")
                .args(["ci", "--silent", "--no-audit", "--no-fund"])
                .current_dir(dir),
            "installing jco (npm ci with plugins/js/package-lock.json)",
        )?;
        stamp_done(&program, &stamp);
    }
    Ok(Tool { program, stamp })
}

fn build_js(tool: &Tool, guest: &Path, wit: &Path, out: &Path) -> Result<(), String> {
    let manifest = guest.join("package.json");
    let world = field(&manifest, "world")?;
    let entry = field(&manifest, "entry")?;
    let output = output_for(guest, out, "js");
    let mut files = sources(guest);
    files.push(wit.to_path_buf());
    let stamp = digest(&files, &format!("{}{world}{entry}{JS_RECIPE}", tool.stamp));
    if fresh(&output, &stamp) {
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let built = run(
        Command::new(&tool.program)
            .args(["componentize", &entry, "--wit"])
            .arg(wit)
            .args(["-n", &world, "--backend", "quickjs"])
            // Synchronous exports: the host does not run the component model's async ABI.
            .args(["--backend-qjs-disable-async", "-o"])
            .arg(&output)
            .current_dir(guest),
        &format!("jco componentize for {}", guest.display()),
    );
    if let Err(e) = built {
        panic!("{e}");
    }
    stamp_done(&output, &stamp);
    Ok(())
}
