//! Hostile plugins at the real boundary: the `cmdscope` binary (`resolve`, `plugins check`,
//! `watch`), each hole of the red team's report with a plugin written for it, and the bound
//! asserted: the call ends, the host's peak memory stays under 300 MB, reasons stay under
//! 64 KiB, the log under 1 MiB per call, a load ends (loaded or rejected) within its budget.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::{BIN, Watch, is, run_measured};
use common::wat::{Hostile, resolver, slow_to_compile_fields};
use common::{guest_admin_config, plugin_bytes};

/// Peak resident memory any hostile plugin may cost the host, in KiB.
const RSS_BOUND_KB: u64 = 300 << 10;
/// Longest reason a rejection may carry.
const REASON_BOUND: usize = 64 << 10;

fn folder(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// A config naming `resolver`, with extra `[sandbox]` lines.
fn config_in(dir: &Path, resolver: &str, sandbox: &str) -> String {
    let path = dir.join("cmdscope.toml");
    std::fs::write(
        &path,
        format!("{}\n[sandbox]\n{sandbox}\n", guest_admin_config(resolver)),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn cli(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("CMDSCOPE_LOG", "warn");
    c
}

/// `cmdscope resolve` of one user with the plugins of `dir`.
fn resolve_in(dir: &Path, config: &str, user_id: &str) -> Command {
    let mut c = cli(&["resolve", "--config", config, "--plugins"]);
    c.arg(dir).args(["--user-id", user_id]);
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `plugins check --format json` of a folder: each file's row, the peak memory and the
/// length of what was printed.
fn check_folder(dir: &Path) -> (Vec<serde_json::Value>, u64, usize) {
    check_folder_with(dir, &[])
}

fn check_folder_with(dir: &Path, extra: &[&str]) -> (Vec<serde_json::Value>, u64, usize) {
    let (out, peak) = run_measured(
        cli(&[
            "plugins",
            "check",
            dir.to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(extra),
        Duration::from_secs(120),
    );
    let stdout = text(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", text(&out.stderr)));
    (
        json["plugins"].as_array().unwrap().clone(),
        peak,
        stdout.len(),
    )
}

fn row<'a>(rows: &'a [serde_json::Value], file: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["file"] == file)
        .unwrap_or_else(|| panic!("no row for {file}: {rows:?}"))
}

fn error_of(rows: &[serde_json::Value], file: &str) -> String {
    let r = row(rows, file);
    assert_eq!(r["status"], "rejected", "{r}");
    r["error"].as_str().unwrap().to_string()
}

// ---- 1. a sleeping plugin ----

#[test]
fn a_plugin_sleeping_an_hour_answers_at_once() {
    let dir = folder(&[("sleeper.wasm", &plugin_bytes("sleeper"))]);
    let config = config_in(dir.path(), "sleeper", "");
    let (out, _) = run_measured(
        &mut resolve_in(dir.path(), &config, "1"),
        // Far beyond the 1 s wall cap: only a call that never ends gets here.
        Duration::from_secs(30),
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The sleep ended at once (the clocks are fixed), so the plugin's own answer came back.
    assert_eq!(answer["profile"], "admin", "{answer}");
    assert!(answer.get("error").is_none(), "{answer}");
}

#[test]
fn sleeping_calls_under_watch_hold_no_threads() {
    let dir = folder(&[("sleeper.wasm", &plugin_bytes("sleeper"))]);
    let config = config_in(dir.path(), "sleeper", "");
    let watch = Watch::start(
        dir.path(),
        &[
            "--config",
            &config,
            "--plugins",
            ".",
            "--no-compiled-cache",
            "--http",
            "127.0.0.1:0",
        ],
    );
    watch.wait_for(Duration::from_secs(60), is("loaded", "sleeper.wasm"));
    let url = watch.stderr_line(Duration::from_secs(60), "status page on ");
    let threads_before = watch.status_field("Threads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for user in 0..20 {
        let page = rt.block_on(async {
            reqwest::get(format!("{url}?user_id={user}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        let want = if user == 1 { "admin" } else { "guest" };
        assert!(
            page.contains(&format!("<b id=\"profile\">{want}</b>")),
            "user {user}: {page}"
        );
    }
    let threads_after = watch.status_field("Threads");
    assert!(
        threads_after < threads_before + 5,
        "20 sleeping calls left threads behind: {threads_before} -> {threads_after}"
    );
}

// ---- 2. the memory cap is the instance's, tables are capped ----

#[test]
fn memory_is_capped_across_all_memories_of_an_instance() {
    // Four memories, each grown by 8 MiB: each would pass a per-memory 16 MiB cap.
    let fields = "(memory $a 1) (memory $b 1) (memory $c 1) (memory $d 1)";
    let info = "(drop (memory.grow $a (i32.const 128))) (drop (memory.grow $b (i32.const 128)))
                (drop (memory.grow $c (i32.const 128))) (drop (memory.grow $d (i32.const 128)))";
    // Forty memories: over the count cap before any grows.
    let forty: String = (0..40).map(|i| format!("(memory $m{i} 256)")).collect();
    let dir = folder(&[
        (
            "four.wasm",
            &resolver(&Hostile {
                fields,
                info,
                ..Default::default()
            }),
        ),
        (
            "forty.wasm",
            &resolver(&Hostile {
                fields: &forty,
                ..Default::default()
            }),
        ),
    ]);
    let (rows, peak, _) = check_folder(dir.path());
    let four = error_of(&rows, "four.wasm");
    assert!(four.contains("hit the 16 MiB memory cap"), "{four}");
    let forty = error_of(&rows, "forty.wasm");
    assert!(forty.contains("memor"), "{forty}");
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} kB");

    // Another plugin given 64 MiB: `info` may then run within 64 MiB (names are not known
    // before it answers), but asked again within this plugin's own 16 MiB it is refused.
    let config = config_in(
        dir.path(),
        "hostile",
        "[plugins.someone-else]\nmemory_mib = 64",
    );
    let (rows, _, _) = check_folder_with(dir.path(), &["--config", &config]);
    let four = error_of(&rows, "four.wasm");
    assert!(
        four.contains("cannot start within its limits") && four.contains("16 MiB memory cap"),
        "{four}"
    );
}

#[test]
fn a_table_grown_to_64_mi_elements_is_refused() {
    let dir = folder(&[(
        "table.wasm",
        &resolver(&Hostile {
            fields: "(table $t 1 funcref)",
            info: "(drop (table.grow $t (ref.null func) (i32.const 67108864)))",
            ..Default::default()
        }),
    )]);
    let (rows, peak, _) = check_folder(dir.path());
    let error = error_of(&rows, "table.wasm");
    assert!(error.contains("table cap"), "{error}");
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} kB");
}

// ---- 3. what the host allocates on a plugin's behalf ----

#[test]
fn asking_for_64_mib_of_random_bytes_is_refused_before_allocating() {
    let dir = folder(&[("random.wasm", &plugin_bytes("wasi-hog"))]);
    let config = config_in(dir.path(), "wasi-hog", "");
    let (out, peak) = run_measured(
        &mut resolve_in(dir.path(), &config, "7"),
        Duration::from_secs(60),
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("a plugin may ask for at most 65536"),
        "{answer}"
    );
    assert_eq!(answer["profile"], "guest", "the default profile stands in");
    assert!(
        peak < 100 << 10,
        "peak RSS {peak} kB: the 64 MiB were allocated"
    );
}

#[test]
fn a_million_clock_subscriptions_never_dropped_hit_the_resource_cap() {
    let dir = folder(&[("hog.wasm", &plugin_bytes("wasi-hog"))]);
    let config = config_in(dir.path(), "wasi-hog", "timeout_ms = 2000");
    let (out, peak) = run_measured(
        &mut resolve_in(dir.path(), &config, "8"),
        Duration::from_secs(60),
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("resource table has no free keys"),
        "{answer}"
    );
    assert!(peak < 100 << 10, "peak RSS {peak} kB");
}

// ---- 4. files that are not plugin files ----

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn fifos_dev_zero_and_huge_files_never_stall_watch() {
    let dir = folder(&[("good.wasm", &plugin_bytes("swap-guest"))]);
    mkfifo(&dir.path().join("fifo.wasm"));
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.wasm")).unwrap();
    let huge = std::fs::File::create(dir.path().join("huge.wasm")).unwrap();
    huge.set_len(768 << 20).unwrap(); // sparse
    let config = config_in(dir.path(), "swappable", "");
    let watch = Watch::start(
        dir.path(),
        &["--config", &config, "--plugins", ".", "--no-compiled-cache"],
    );
    let limit = Duration::from_secs(60);
    let fifo = watch.wait_for(limit, is("rejected", "fifo.wasm"));
    assert!(
        fifo["error"]
            .as_str()
            .unwrap()
            .contains("is a FIFO, not a regular file")
    );
    let zero = watch.wait_for(limit, is("rejected", "zero.wasm"));
    assert!(
        zero["error"]
            .as_str()
            .unwrap()
            .contains("a character device")
    );
    let huge = watch.wait_for(limit, is("rejected", "huge.wasm"));
    assert!(
        huge["error"]
            .as_str()
            .unwrap()
            .contains("over the 67108864-byte limit")
    );
    watch.wait_for(limit, is("loaded", "good.wasm"));

    // A FIFO created while running stalls nothing: the next deploy still reloads.
    mkfifo(&dir.path().join("later.wasm"));
    watch.wait_for(limit, is("rejected", "later.wasm"));
    let tmp = dir.path().join(".good.wasm.partial");
    std::fs::write(&tmp, plugin_bytes("swap-admin")).unwrap();
    std::fs::rename(&tmp, dir.path().join("good.wasm")).unwrap();
    watch.wait_for(limit, is("reloaded", "good.wasm"));
    // Said once each, not at every rescan.
    let again = watch.drain(Duration::from_millis(2500));
    assert!(
        again.iter().all(|e| e["event"] != "rejected"),
        "rejections repeated: {again:?}"
    );
    assert!(
        watch.status_field("VmHWM") < RSS_BOUND_KB,
        "peak RSS {} kB",
        watch.status_field("VmHWM")
    );
}

#[test]
fn plugins_check_refuses_a_sparse_768_mib_file_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let huge = std::fs::File::create(dir.path().join("huge.wasm")).unwrap();
    huge.set_len(768 << 20).unwrap();
    let (rows, peak, _) = check_folder(dir.path());
    let error = error_of(&rows, "huge.wasm");
    assert!(
        error.contains("805306368 bytes, over the 67108864-byte limit"),
        "{error}"
    );
    assert!(peak < 100 << 10, "peak RSS {peak} kB: the file was read");
}

// ---- 5. compiling ends, and never delays another plugin ----

#[test]
fn a_component_slow_to_compile_is_killed_and_delays_no_other_reload() {
    let slow = resolver(&Hostile {
        name: "slow",
        fields: &slow_to_compile_fields(6_000),
        ..Default::default()
    });
    let dir = folder(&[("good.wasm", &plugin_bytes("swap-guest"))]);
    let config = config_in(dir.path(), "swappable", "compile_timeout_s = 2");
    let watch = Watch::start(
        dir.path(),
        &["--config", &config, "--plugins", ".", "--no-compiled-cache"],
    );
    let limit = Duration::from_secs(60);
    watch.wait_for(limit, is("loaded", "good.wasm"));
    std::fs::write(dir.path().join(".slow"), &slow).unwrap();
    std::fs::rename(dir.path().join(".slow"), dir.path().join("slow.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.path().join(".good"), plugin_bytes("swap-admin")).unwrap();
    std::fs::rename(dir.path().join(".good"), dir.path().join("good.wasm")).unwrap();
    // The good reload comes first, while the slow one still compiles.
    let first = watch.wait_for(limit, |e| {
        e["file"] == "good.wasm" || e["file"] == "slow.wasm"
    });
    assert_eq!(first["event"], "reloaded", "{first}");
    assert_eq!(first["file"], "good.wasm", "{first}");
    let slow = watch.wait_for(limit, is("rejected", "slow.wasm"));
    let error = slow["error"].as_str().unwrap();
    assert!(
        error.contains("used more than 2 s of CPU time to compile"),
        "{error}"
    );
    assert!(slow["ms"].as_f64().unwrap() < 10_000.0, "{slow}");
    // The compile worker was killed, not left running.
    assert!(watch.children().is_empty(), "{:?}", watch.children());
}

// ---- 6. log floods ----

#[test]
fn a_plugin_flooding_the_log_writes_under_one_mib_per_call() {
    let dir = folder(&[("flood.wasm", &plugin_bytes("log-flood"))]);
    let config = config_in(dir.path(), "log-flood", "timeout_ms = 2000");
    let (out, _) = run_measured(
        resolve_in(dir.path(), &config, "1").env("CMDSCOPE_LOG", "info"),
        Duration::from_secs(60),
    );
    let log = text(&out.stderr);
    assert!(
        log.len() < 1 << 20,
        "{} bytes of log for one call",
        log.len()
    );
    assert!(
        log.contains("plugin log over budget"),
        "{}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(log.contains("lines="), "says how many lines were dropped");
}

// ---- 7. what a plugin says about itself is bounded ----

#[test]
fn huge_names_versions_and_profile_lists_get_short_reasons() {
    let dir = folder(&[
        ("version.wasm", &plugin_bytes("huge-version")),
        ("name.wasm", &plugin_bytes("huge-name")),
        ("profiles.wasm", &plugin_bytes("many-profiles")),
    ]);
    // Time enough to build 200,000 strings in the guest: the host's checks are the subject.
    let config = config_in(dir.path(), "many-profiles", "timeout_ms = 2000");
    let (rows, peak, printed) = check_folder_with(dir.path(), &["--config", &config]);
    for file in ["version.wasm", "name.wasm", "profiles.wasm"] {
        let error = error_of(&rows, file);
        assert!(error.len() < REASON_BOUND, "{file}: {} bytes", error.len());
    }
    assert!(error_of(&rows, "version.wasm").contains("(10485760 bytes) must be at most 64"));
    assert!(error_of(&rows, "name.wasm").contains("(10485760 bytes) must be 1-64"));
    let profiles = error_of(&rows, "profiles.wasm");
    assert!(
        profiles.contains("declares 200000 profiles; at most 256"),
        "{profiles}"
    );
    assert!(printed < REASON_BOUND * 3, "{printed} bytes printed");
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} kB");
}

#[test]
fn watch_events_for_hostile_info_stay_short() {
    let dir = folder(&[("good.wasm", &plugin_bytes("swap-guest"))]);
    let config = config_in(dir.path(), "swappable", "");
    let watch = Watch::start(
        dir.path(),
        &["--config", &config, "--plugins", ".", "--no-compiled-cache"],
    );
    let limit = Duration::from_secs(60);
    watch.wait_for(limit, is("loaded", "good.wasm"));
    for (file, crate_name) in [
        ("version.wasm", "huge-version"),
        ("name.wasm", "huge-name"),
        ("profiles.wasm", "many-profiles"),
    ] {
        std::fs::write(dir.path().join(file), plugin_bytes(crate_name)).unwrap();
        watch.wait_for(limit, |e| e["event"] == "rejected" && e["file"] == file);
    }
    let longest = watch.longest_line.load(std::sync::atomic::Ordering::SeqCst);
    assert!(longest < REASON_BOUND, "an event line of {longest} bytes");
}

// ---- 8. a rejection whose cause goes away is looked at again ----

#[test]
fn a_file_refused_for_a_taken_name_loads_when_the_other_file_goes() {
    let dir = folder(&[("keeper.wasm", &plugin_bytes("swap-guest"))]);
    let config = config_in(dir.path(), "swappable", "");
    let watch = Watch::start(
        dir.path(),
        &["--config", &config, "--plugins", ".", "--no-compiled-cache"],
    );
    let limit = Duration::from_secs(60);
    watch.wait_for(limit, is("loaded", "keeper.wasm"));
    std::fs::write(dir.path().join(".v2"), plugin_bytes("swap-admin")).unwrap();
    std::fs::rename(dir.path().join(".v2"), dir.path().join("keeper-v2.wasm")).unwrap();
    let refused = watch.wait_for(limit, is("rejected", "keeper-v2.wasm"));
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("a plugin named `swappable` is already loaded from keeper.wasm"),
        "{refused}"
    );
    std::fs::remove_file(dir.path().join("keeper.wasm")).unwrap();
    watch.wait_for(limit, is("removed", "keeper.wasm"));
    let took_over = watch.wait_for(limit, is("reloaded", "keeper-v2.wasm"));
    assert_eq!(took_over["plugin"], "swappable");
}

// ---- 9. another interface version ----

#[test]
fn a_plugin_for_another_interface_version_is_told_so() {
    let newer = wat::parse_str(
        r#"(component
             (import "cmdscope:plugin/host@0.9.0" (instance
               (export "log" (func (param "message" string))))))"#,
    )
    .unwrap();
    let dir = folder(&[("newer.wasm", &newer)]);
    let (rows, _, _) = check_folder(dir.path());
    let error = error_of(&rows, "newer.wasm");
    assert!(
        error.contains("targets the plugin interface version 0.9.0")
            && error.contains("this host speaks 0.1.x"),
        "{error}"
    );
}

// ---- 8. a failure says which plugin version and function failed ----

#[test]
fn a_trap_names_the_plugin_its_version_sha256_and_function_in_the_error_and_the_log() {
    let bytes = plugin_bytes("panicking");
    let sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&bytes);
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let dir = folder(&[("panicking.wasm", &bytes)]);
    let config = config_in(dir.path(), "panicking", "");
    let (out, _) = run_measured(
        resolve_in(dir.path(), &config, "666").env("CMDSCOPE_LOG", "warn"),
        Duration::from_secs(60),
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "panicking 0.1.0 ({}) `resolve`: trapped",
            &sha[..12]
        )),
        "{answer}"
    );
    // Where in the plugin: the guest's own frame, demangled, past the panic machinery.
    assert!(
        error.contains("in <panicking::Plugin as cmdscope_plugin_sdk::Resolver>::resolve"),
        "{answer}"
    );
    let log = text(&out.stderr);
    assert!(log.contains("plugin call failed"), "{log}");
    assert!(
        log.contains("plugin=panicking") && log.contains("version=0.1.0"),
        "{log}"
    );
    assert!(log.contains(&format!("sha256={sha}")), "{log}");
    assert!(log.contains("function=\"resolve\""), "{log}");
}
