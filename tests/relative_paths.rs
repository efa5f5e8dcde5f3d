//! Every path the host reads or watches, given the way operators type them: relative, from
//! another working directory, with `./` and `..`, through a symlinked folder, and swapped the
//! way Kubernetes updates a mounted ConfigMap. One file is one file however it was named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use cmdscope::config::{Config, Format};
use cmdscope::plugin::{LivePlugins, PluginHost, ReloadKind, SandboxLimits, WatchOptions};
use cmdscope::{Resolver, UserContext};
use common::process::{BIN, Watch, is};
use common::{guest_admin_config, plugin_bytes};

const LIMIT: Duration = Duration::from_secs(60);

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A distinct, valid version of a plugin: its bytes with a custom section appended.
fn version(crate_name: &str, n: u32) -> Vec<u8> {
    let mut bytes = plugin_bytes(crate_name);
    let payload = n.to_le_bytes();
    bytes.extend_from_slice(&[0, 2 + payload.len() as u8, 1, b'v']);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Writes next to `path` and renames into place, as deploy tools do.
fn deploy(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.incoming",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `root/bot/{cmdscope.toml, plugins/}` and an unrelated `root/elsewhere/` to run from.
fn bot(root: &Path) -> (PathBuf, PathBuf) {
    let bot = root.join("bot");
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(bot.join("plugins")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(bot.join("cmdscope.toml"), guest_admin_config("swappable")).unwrap();
    (bot, elsewhere)
}

fn no_rejection(watch: &Watch) {
    let rejected: Vec<_> = watch
        .drain(Duration::from_millis(300))
        .into_iter()
        .filter(|e| e["event"] == "rejected")
        .collect();
    assert!(rejected.is_empty(), "good files rejected: {rejected:?}");
}

#[test]
fn watch_from_another_directory_with_a_relative_folder_serves_every_deploy() {
    let root = tempfile::tempdir().unwrap();
    let (bot, elsewhere) = bot(root.path());
    let plugin = bot.join("plugins/tiered.wasm");
    std::fs::write(&plugin, version("swap-guest", 0)).unwrap();
    let watch = Watch::start(
        &elsewhere,
        &[
            "--config",
            "../bot/cmdscope.toml",
            "--plugins",
            "./../bot/plugins/../plugins",
            "--compiled-cache",
            "cache",
        ],
    );
    watch.wait_for(LIMIT, is("loaded", "tiered.wasm"));

    // Before the periodic rescan (every 2 s) has run even once.
    let v1 = version("swap-admin", 1);
    deploy(&plugin, &v1);
    let event = watch.wait_for(LIMIT, is("reloaded", "tiered.wasm"));
    assert_eq!(event["sha256"], sha(&v1));

    // After it.
    std::thread::sleep(Duration::from_millis(2500));
    let v2 = version("swap-guest", 2);
    deploy(&plugin, &v2);
    let event = watch.wait_for(LIMIT, is("reloaded", "tiered.wasm"));
    assert_eq!(event["sha256"], sha(&v2));

    // Deploys in quick succession end on the last one written.
    let mut last = String::new();
    for n in 3..23 {
        let bytes = version(
            if n % 2 == 0 {
                "swap-guest"
            } else {
                "swap-admin"
            },
            n,
        );
        deploy(&plugin, &bytes);
        std::thread::sleep(Duration::from_millis(40));
        last = sha(&bytes);
    }
    watch.wait_for(LIMIT, |e| e["event"] == "reloaded" && e["sha256"] == last);
    no_rejection(&watch);

    // The compiled cache is where it was named: relative to the working directory.
    let cached = std::fs::read_dir(elsewhere.join("cache")).unwrap().count();
    assert!(cached >= 1, "no compiled cache entries in elsewhere/cache");
}

#[test]
fn a_folder_swapped_like_a_kubernetes_configmap_reloads() {
    let root = tempfile::tempdir().unwrap();
    let (bot, elsewhere) = bot(root.path());
    let plugins = bot.join("plugins");
    // What the kubelet writes: a timestamped folder, `..data` pointing at it, and each file a
    // symlink through `..data`.
    std::fs::create_dir(plugins.join("..2026_11_30_10_00_00.1")).unwrap();
    std::fs::write(
        plugins.join("..2026_11_30_10_00_00.1/tiered.wasm"),
        version("swap-guest", 0),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_30_10_00_00.1", plugins.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tiered.wasm", plugins.join("tiered.wasm")).unwrap();
    let watch = Watch::start(
        &elsewhere,
        &[
            "--config",
            "../bot/cmdscope.toml",
            "--plugins",
            "../bot/plugins",
            "--no-compiled-cache",
        ],
    );
    watch.wait_for(LIMIT, is("loaded", "tiered.wasm"));

    // The update: a new timestamped folder, then `..data` swapped atomically by a rename.
    let v1 = version("swap-admin", 1);
    std::fs::create_dir(plugins.join("..2026_11_30_10_05_00.2")).unwrap();
    std::fs::write(plugins.join("..2026_11_30_10_05_00.2/tiered.wasm"), &v1).unwrap();
    std::os::unix::fs::symlink("..2026_11_30_10_05_00.2", plugins.join("..data_tmp")).unwrap();
    std::fs::rename(plugins.join("..data_tmp"), plugins.join("..data")).unwrap();
    std::fs::remove_dir_all(plugins.join("..2026_11_30_10_00_00.1")).unwrap();
    let event = watch.wait_for(LIMIT, is("reloaded", "tiered.wasm"));
    assert_eq!(event["sha256"], sha(&v1));
    no_rejection(&watch);
}

#[test]
fn a_symlinked_plugin_folder_follows_deploys_into_its_target() {
    let root = tempfile::tempdir().unwrap();
    let (bot, elsewhere) = bot(root.path());
    std::fs::write(bot.join("plugins/tiered.wasm"), version("swap-guest", 0)).unwrap();
    std::os::unix::fs::symlink("plugins", bot.join("current")).unwrap();
    let watch = Watch::start(
        &elsewhere,
        &[
            "--config",
            "../bot/cmdscope.toml",
            "--plugins",
            "../bot/current/",
            "--no-compiled-cache",
        ],
    );
    watch.wait_for(LIMIT, is("loaded", "tiered.wasm"));
    let v1 = version("swap-admin", 1);
    deploy(&bot.join("plugins/tiered.wasm"), &v1);
    let event = watch.wait_for(LIMIT, is("reloaded", "tiered.wasm"));
    assert_eq!(event["sha256"], sha(&v1));
    no_rejection(&watch);
}

/// The library's live folder, given a relative path (from the test's working directory).
#[tokio::test(flavor = "multi_thread")]
async fn live_plugins_with_a_relative_folder_take_every_rename() {
    let cwd = std::env::current_dir().unwrap();
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let Ok(relative) = root.path().strip_prefix(&cwd) else {
        panic!("{} is not under {}", root.path().display(), cwd.display());
    };
    std::fs::create_dir(root.path().join("plugins")).unwrap();
    let plugin = root.path().join("plugins/resolver.wasm");
    std::fs::write(&plugin, version("swap-guest", 0)).unwrap();
    let folder = Path::new(".").join(relative).join("plugins/../plugins");
    let config = Config::parse(&guest_admin_config("swappable"), Format::Toml, "t.toml")
        .unwrap()
        .config;
    let host = PluginHost::new(SandboxLimits::default()).unwrap();
    let live = LivePlugins::new(host, &folder, std::sync::Arc::new(config)).unwrap();
    assert!(live.dir().is_absolute());
    let mut events = live.subscribe();
    live.rescan();
    let _watch = live
        .watch(WatchOptions {
            debounce: Duration::from_millis(50),
            rescan: Duration::from_millis(400),
        })
        .unwrap();
    let resolver = live.resolver("swappable").expect("loaded");
    let user = UserContext::private(1);
    for n in 1..=6 {
        if n == 4 {
            // Let a periodic rescan run between deploys too.
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        let (bytes, want) = if n % 2 == 0 {
            (version("swap-guest", n), "guest")
        } else {
            (version("swap-admin", n), "admin")
        };
        deploy(&plugin, &bytes);
        let event = loop {
            let e = tokio::time::timeout(LIMIT, events.recv())
                .await
                .expect("a reload event")
                .unwrap();
            assert_ne!(e.event, ReloadKind::Rejected, "{e:?}");
            if e.event == ReloadKind::Reloaded && e.sha256.as_deref() == Some(&sha(&bytes)) {
                break e;
            }
        };
        assert_eq!(event.file, "resolver.wasm");
        assert_eq!(resolver.resolve(&user).unwrap(), want);
    }
}

#[test]
fn config_catalogs_and_state_given_relative_are_found_from_another_directory() {
    let root = tempfile::tempdir().unwrap();
    let bot = root.path().join("bot");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(bot.join("locales")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        bot.join("locales/en.json"),
        r#"{"cmd.start.desc": "Start, from the catalog"}"#,
    )
    .unwrap();
    std::fs::write(
        bot.join("cmdscope.toml"),
        r#"
translators = ["json:locales"]
default_profile = "guest"
[commands.start]
[profiles.guest]
include = ["start"]
[[scopes]]
scope = "default"
profile = "guest"
[state]
backend = "file"
path = "state/applied.redb"
"#,
    )
    .unwrap();
    std::fs::create_dir(bot.join("state")).unwrap();
    let plan = Command::new(BIN)
        .args(["plan", "--config", "../bot/cmdscope.toml"])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{text}");
    assert!(text.contains("Start, from the catalog"), "{text}");

    // `[state] path` is relative to the config file; `--state` to the working directory.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(common::emulator());
    let apply = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["apply", "--config", "../bot/cmdscope.toml"])
            .args(["--token", common::TOKEN, "--api-url", &running.url()])
            .args(extra)
            .current_dir(&elsewhere)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(apply(&[]).contains("2 set"), "first run sets both lists");
    assert!(bot.join("state/applied.redb").exists());
    assert!(
        apply(&[]).contains("0 set, 2 unchanged"),
        "second run sends nothing"
    );
    assert!(apply(&["--state", "here.redb"]).contains("2 set"));
    assert!(elsewhere.join("here.redb").exists());
    assert!(apply(&["--state", "./here.redb"]).contains("0 set, 2 unchanged"));
}
