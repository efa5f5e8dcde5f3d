//! Builds the WebAssembly plugins (the examples in `plugins/` and the test plugins in
//! `tests/plugins/`) for `wasm32-wasip2`, so a fresh clone's `cargo run` and `cargo test` need
//! nothing else. Like wasmtime's own test-programs, it runs a nested cargo with its own target
//! directory, and adds the wasm target with rustup when it is missing (a `rust-toolchain.toml`
//! alone does not install it on a plain `cargo` call).
//!
//! Python and JavaScript guests (`plugins/python/*`, `plugins/js/*` and the same under
//! `tests/plugins/`) are built with their pinned toolchains (componentize-py from
//! `plugins/python/requirements.txt`, jco from `plugins/js/package-lock.json`), installed once
//! into `<target>/guest-toolchains`. Each guest is rebuilt only when its files, the WIT or the
//! toolchain change. Without `python3` or `node`, or without the package registries, those
//! guests are skipped with a warning, and the tests that need them say why.
//!
//! Outputs: `CMDSCOPE_PLUGIN_DIR`, the directory holding every built `<crate_name>.wasm`, and
//! `<name>_py.wasm` / `<name>_js.wasm` for the Python and JavaScript guests.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const WORKSPACES: [&str; 2] = ["plugins", "tests/plugins"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    for dir in WORKSPACES
        .iter()
        .map(|w| manifest_dir.join(w))
        .chain([manifest_dir.join("wit")])
    {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    println!("cargo:rerun-if-env-changed=CMDSCOPE_SKIP_PLUGINS");
    // A packaged crate has no plugin sources: nothing to build.
    if !manifest_dir.join("plugins/Cargo.toml").exists()
        || std::env::var_os("CMDSCOPE_SKIP_PLUGINS").is_some()
    {
        return;
    }
    ensure_target();

    // Shared by every profile of the host build: <target>/wasm-plugins.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_root = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>/out");
    let plugin_target = target_root.join("wasm-plugins");
    for workspace in WORKSPACES {
        build_workspace(
            &manifest_dir.join(workspace).join("Cargo.toml"),
            &plugin_target,
        );
    }
    let built = plugin_target.join(TARGET).join("release");
    polyglot::build_all(&manifest_dir, target_root, &built);
    println!("cargo:rustc-env=CMDSCOPE_PLUGIN_DIR={}", built.display());
}

#[path = "build/polyglot.rs"]
mod polyglot;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The outer build's flags are for the host target, not for wasm guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} target is missing: adding it with `rustup target add {TARGET}`"
    );
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "cannot add the {TARGET} target ({other:?}); run `rustup target add {TARGET}` and build again"
        ),
    }
}

fn build_workspace(manifest: &Path, target_dir: &Path) {
    let output = cargo()
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("run cargo for the plugins");
    if !output.status.success() {
        panic!(
            "building the plugins in {} failed:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
