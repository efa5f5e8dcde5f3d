//! `cmdscope sync-users` as an operator runs it, measured from outside: the real binary against
//! a `cmdscope emulator` process, with the CPU time (user + system) and the peak resident
//! memory the kernel accounts to the sync process alone.
//!
//! `cargo bench --bench sync_users` (add `-- 10000 100000` to choose the sizes). For each size,
//! a run with no resolver (everyone gets the default profile: the native floor) and one with
//! the `tiered-resolver` plugin. Users are guests in private chats: their menu is their
//! scope's, so no call is needed and the figures are the engine's own cost.

#[path = "common/process.rs"]
mod process;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::{BIN, emulator};

const TOKEN: &str = "4242:bench";

struct Run {
    cpu: Duration,
    peak_rss_kb: u64,
    wall: Duration,
}

/// Runs one sync and reads its resource usage from `wait4` (which reaps it: the child is
/// never waited for through `std`).
#[allow(clippy::zombie_processes)]
fn sync(dir: &Path, config: &Path, plugins: &Path, users: &Path, url: &str) -> Run {
    let started = Instant::now();
    let child = Command::new(BIN)
        .args(["sync-users", "--config", config.to_str().unwrap()])
        .args(["--plugins", plugins.to_str().unwrap()])
        .args(["--users", users.to_str().unwrap()])
        .args(["--token", TOKEN, "--api-url", url])
        .args(["--pace", "100000", "--burst", "1000", "--concurrency", "32"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut out).unwrap();
    assert!(out.contains("\"failed\":0"), "the sync failed: {out}");
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Run {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_kb: usage.ru_maxrss as u64,
        wall: started.elapsed(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; sizes may follow.
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let built = Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
    for file in ["tiered_resolver.wasm", "shop_translator.wasm"] {
        std::fs::copy(built.join(file), plugins.join(file)).unwrap();
    }
    let shop = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop.toml"))
        .unwrap();
    let wasm = dir.path().join("wasm.toml");
    std::fs::write(&wasm, &shop).unwrap();
    let native = dir.path().join("native.toml");
    std::fs::write(&native, shop.replace("resolver = \"tiered-resolver\"", "")).unwrap();
    let (_emulator, url) = emulator();

    println!("| users | resolver | CPU per user | CPU total | wall | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for &n in &sizes {
        let users = dir.path().join(format!("users-{n}.jsonl"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&users).unwrap());
        for id in 1..=n {
            writeln!(
                file,
                "{{\"user_id\":{id},\"language_code\":\"en\",\"flags\":{{\"registered\":false}}}}"
            )
            .unwrap();
        }
        file.flush().unwrap();
        drop(file);
        for (name, config) in [
            ("none (default profile)", &native),
            ("tiered-resolver (wasm)", &wasm),
        ] {
            let run = sync(dir.path(), config, &plugins, &users, &url);
            println!(
                "| {n} | {name} | {:.2} us | {:.2} s | {:.2} s | {} MB |",
                run.cpu.as_secs_f64() * 1e6 / n as f64,
                run.cpu.as_secs_f64(),
                run.wall.as_secs_f64(),
                run.peak_rss_kb / 1024
            );
        }
    }
}
