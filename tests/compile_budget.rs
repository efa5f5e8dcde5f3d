//! The compile budget is CPU time: with both cores busy (a bot under load), an honest 18 MB
//! Python component still loads with the default budget, and a component built to compile
//! for minutes is still stopped by its budget. Apart from the other tests: the busy cores
//! would slow them.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::process::{BIN, run_measured};
use common::wat::{Hostile, resolver, slow_to_compile_fields};
use common::{guest_admin_config, plugin_bytes};

/// Keeps every core busy until dropped.
struct BusyCores {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl BusyCores {
    fn start() -> BusyCores {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                    spins
                })
            })
            .collect();
        BusyCores { stop, threads }
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `plugins check --format json` of a folder holding `file`, with `config` (its text): the
/// file's row and how long the check took.
fn check(file: &[u8], config: &str) -> (serde_json::Value, Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), file).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["plugins", "check"])
        .arg(dir.path())
        .args(["--format", "json"])
        .env("CMDSCOPE_LOG", "warn");
    let path = dir.path().join("cmdscope.toml");
    std::fs::write(&path, config).unwrap();
    command.arg("--config").arg(&path);
    let started = Instant::now();
    let (out, _) = run_measured(&mut command, Duration::from_secs(300));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (json["plugins"][0].clone(), took)
}

#[test]
fn a_busy_machine_loads_an_honest_python_plugin_and_still_stops_a_compile_bomb() {
    let python = plugin_bytes("tiered-resolver-py");
    let bomb = resolver(&Hostile {
        name: "slow",
        fields: &slow_to_compile_fields(6_000),
        ..Default::default()
    });
    let busy = BusyCores::start();

    // The default compile budget. Calls are bounded by wall time, so on a starved machine an
    // interpreted plugin needs the time its docs give it (`info` included).
    let python_config = r#"
default_profile = "guest"
resolver = "tiered-resolver-py"
[commands.start]
[profiles.guest]
include = ["start"]
[profiles.user]
include = ["start"]
[profiles.premium]
include = ["start"]
[profiles.admin]
include = ["start"]
[profiles.banned]
include = ["start"]
[[scopes]]
scope = "default"
profile = "guest"
[plugins.tiered-resolver-py]
timeout_ms = 500
memory_mib = 64
"#;
    let (row, took) = check(&python, python_config);
    let error = row["error"].as_str().unwrap_or("");
    assert!(
        !error.contains("compile"),
        "an honest plugin refused on a busy machine after {took:?}: {row}"
    );
    assert_eq!(row["name"], "tiered-resolver-py", "{row}");

    let bomb_config = format!(
        "{}\n[sandbox]\ncompile_timeout_s = 2\n",
        guest_admin_config("slow")
    );
    let (row, took) = check(&bomb, &bomb_config);
    let error = row["error"].as_str().unwrap_or("");
    assert!(
        error.contains("used more than 2 s of CPU time to compile")
            || error.contains("took longer than 8 s to compile"),
        "{row}"
    );
    // The CPU budget, or at worst the wall cap (4 times it), plus starting the process.
    assert!(
        took < Duration::from_secs(12),
        "stopped only after {took:?}"
    );
    drop(busy);
}
