//! `cmdscope watch --http` loaded in a real headless browser (Debian's chromium,
//! `--dump-dom`): the plugins table, a rejected file, and a menu preview.
//!
//! Without chromium the test fails when `CI` or `CMDSCOPE_REQUIRE_BROWSER` is set (`.ci/run`
//! installs it) and is skipped, saying so, otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use common::process::{BIN, Killed};
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml");

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        let required = std::env::var_os("CI").is_some()
            || std::env::var_os("CMDSCOPE_REQUIRE_BROWSER").is_some();
        assert!(
            !required,
            "no chromium: install Debian's chromium (.ci/run does)"
        );
        eprintln!("SKIPPED: no chromium on this machine");
    }
    found
}

/// The page as the browser renders it.
fn dump_dom(browser: &str, url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_shows_plugins_rejections_and_a_menu_preview_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiered-resolver", "shop-translator"] {
        std::fs::copy(
            common::plugin_path(name),
            dir.path().join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("broken.wasm"), b"not a component").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "watch",
            "--config",
            EXAMPLE,
            "--no-compiled-cache",
            "--plugins",
        ])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let watch = Killed(child);
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "watch exited");
        if let Some(url) = line.trim().strip_prefix("status page on ") {
            break url.to_string();
        }
    };
    // Keep reading stderr so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});

    let dom = dump_dom(
        browser,
        &format!("{url}?user_id=5&language_code=es&flags=registered,premium"),
    );
    let sha = |name: &str| {
        let bytes = common::plugin_bytes(name);
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for name in ["tiered-resolver", "shop-translator"] {
        assert!(
            dom.contains(&format!("data-name=\"{name}\"")),
            "{name} row missing:\n{dom}"
        );
        assert!(dom.contains(&sha(name)[..12]), "{name} sha256 missing");
    }
    assert!(dom.contains("<table id=\"plugins\">"), "{dom}");
    assert!(dom.contains("broken.wasm"), "the rejected file is listed");
    assert!(
        dom.contains("not a valid WebAssembly component"),
        "with its reason: {dom}"
    );
    assert!(dom.contains("<b id=\"profile\">premium</b>"), "{dom}");
    assert!(
        dom.contains("<code>/deals</code> Ofertas para miembros"),
        "{dom}"
    );

    // A user without flags: the guest menu, in the fallback language for an unknown one.
    let dom = dump_dom(browser, &format!("{url}?user_id=6&language_code=de"));
    assert!(dom.contains("<b id=\"profile\">guest</b>"), "{dom}");
    assert!(dom.contains("<code>/start</code> Start the bot"), "{dom}");
    assert!(!dom.contains("/deals"));
    drop(watch);
}
