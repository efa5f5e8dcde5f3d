//! Thousands of corruptions of a valid plugin's bytes, each loaded by the host: bit flips,
//! truncations, section splices and custom sections. No load may panic, hang or grow the
//! host without bound; the few that still load must answer within the sandbox like any plugin.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use cmdscope::plugin::{Plugin, PluginHost, PluginSettings, SandboxLimits};
use cmdscope::{Resolver, UserContext};

const MUTATIONS: usize = 2_000;

/// One corruption of `bytes`, chosen by `rng`.
fn mutate(bytes: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.u8(0..5) {
        // A few bit flips anywhere past the header.
        0 => {
            for _ in 0..rng.usize(1..=8) {
                let i = rng.usize(8..out.len());
                out[i] ^= 1 << rng.u8(0..8);
            }
        }
        // Truncation.
        1 => out.truncate(rng.usize(0..out.len())),
        // A range copied over another place (a section spliced into another's bytes).
        2 => {
            let len = rng.usize(1..256.min(out.len() / 2));
            let from = rng.usize(8..out.len() - len);
            let to = rng.usize(8..out.len() - len);
            let piece = out[from..from + len].to_vec();
            out[to..to + len].copy_from_slice(&piece);
        }
        // A range inserted elsewhere (sections and lengths no longer agree).
        3 => {
            let len = rng.usize(1..512.min(out.len() / 2));
            let from = rng.usize(8..out.len() - len);
            let piece = out[from..from + len].to_vec();
            let at = rng.usize(8..out.len());
            out.splice(at..at, piece);
        }
        // A custom section, well-formed or lying about its length, after the header.
        _ => {
            let payload: Vec<u8> = (0..rng.usize(0..2048)).map(|_| rng.u8(..)).collect();
            let name = b"fuzz";
            let declared = if rng.bool() {
                1 + name.len() + payload.len()
            } else {
                rng.usize(0..1 << 20)
            };
            let mut section = vec![0u8];
            leb128(&mut section, declared as u64);
            section.push(name.len() as u8);
            section.extend_from_slice(name);
            section.extend_from_slice(&payload);
            out.splice(8..8, section);
        }
    }
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn rss_kb() -> u64 {
    common::process::proc_status(std::process::id(), "VmRSS")
}

#[test]
fn thousands_of_corrupted_plugins_never_panic_hang_or_grow_the_host() {
    let original = common::plugin_bytes("tiered-resolver");
    let limits = SandboxLimits {
        compile_timeout: Duration::from_secs(5),
        ..SandboxLimits::default()
    };
    let host = PluginHost::new(limits).unwrap();
    let settings = PluginSettings::new();
    let (tx, rx) = mpsc::channel();
    let workers = 2;
    let baseline = {
        // Warm up: the first loads set up the engine's and allocator's own structures.
        for _ in 0..5 {
            host.load_bytes(&original, "warm.wasm", &settings).unwrap();
        }
        rss_kb()
    };
    for worker in 0..workers {
        let (host, original, settings, tx) =
            (host.clone(), original.clone(), settings.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(0x5eed + worker as u64);
            for i in (worker..MUTATIONS).step_by(workers) {
                let bytes = mutate(&original, &mut rng);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    match host.load_bytes(&bytes, "mutant.wasm", &settings) {
                        Ok(Plugin::Resolver(r)) => {
                            // A mutant that loads is called like any plugin: an answer or an
                            // error value, never a panic.
                            let _ = r.resolve(&UserContext::private(i as i64));
                            "loaded"
                        }
                        Ok(Plugin::Translator(_)) => "loaded",
                        Err(_) => "rejected",
                    }
                }));
                if tx.send((i, outcome.map_err(|_| bytes))).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let (mut loaded, mut rejected) = (0, 0);
    for _ in 0..MUTATIONS {
        // Each load ends within its compile budget plus the call's wall cap; a minute
        // without any result is a hang.
        let (i, outcome) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a load hung");
        match outcome {
            Ok("loaded") => loaded += 1,
            Ok(_) => rejected += 1,
            Err(bytes) => {
                let path = std::env::temp_dir().join(format!("cmdscope-mutant-{i}.wasm"));
                std::fs::write(&path, bytes).unwrap();
                panic!(
                    "mutation {i} panicked the host; bytes kept in {}",
                    path.display()
                );
            }
        }
    }
    let grown = rss_kb().saturating_sub(baseline);
    eprintln!("{loaded} mutants loaded, {rejected} rejected; RSS grew {grown} kB");
    assert_eq!(loaded + rejected, MUTATIONS);
    assert!(rejected > MUTATIONS / 2, "most corruptions must be refused");
    assert!(
        grown < 200 << 10,
        "RSS grew {grown} kB over {MUTATIONS} loads"
    );
}
