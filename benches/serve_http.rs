//! `cmdscope serve` as a bot sees it: the real binary (shop example, wasm resolver) against
//! a `cmdscope emulator` process, driven over HTTP with a keep-alive client, and the CPU time
//! the kernel accounts to the serve process per request (every thread's run time, from
//! `/proc/PID/task/*/schedstat`), so every hand-off between its threads is counted.
//!
//! `cargo bench --bench serve_http` (add a number to choose the requests per figure, 20,000
//! by default: the kernel counts CPU in 10 ms ticks). Users are known and unchanged before each figure is taken: what most messages
//! of a running bot are. Then resident memory: after the single-context requests, and the peak
//! while requests of 10,000 contexts run, and what is left after them.

#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use process::{BIN, Process, emulator};

const TOKEN: &str = "4242:bench";
const KEY: &str = "bench-key";

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let (user, system): (f64, f64) = (fields[11].parse().unwrap(), fields[12].parse().unwrap());
    (user + system) / TICKS
}

fn memory_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn serve(dir: &Path, api: &str) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let built = Path::new(env!("CMDSCOPE_PLUGIN_DIR"));
    std::fs::copy(
        built.join("tiered_resolver.wasm"),
        plugins.join("tiered.wasm"),
    )
    .unwrap();
    std::fs::copy(
        built.join("shop_translator.wasm"),
        plugins.join("shop.wasm"),
    )
    .unwrap();
    let config = dir.join("cmdscope.toml");
    std::fs::write(&config, include_str!("../examples/shop.toml")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .args([
            "--plugins",
            plugins.to_str().unwrap(),
            "--no-compiled-cache",
        ])
        .args(["--token", TOKEN, "--api-url", api])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CMDSCOPE_API_KEY", KEY)
        .env("CMDSCOPE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cmdscope serve starts");
    (Process(child), format!("http://127.0.0.1:{port}"))
}

/// The highest resident memory of a process while it is sampled (every millisecond, on a
/// thread of its own).
struct Peak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Peak {
    fn start(pid: u32) -> Peak {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(memory_kb(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        });
        Peak { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// CPU time the process's threads have run, in nanoseconds (`/proc/PID/task/*/schedstat`),
/// with the threads it was summed over: finer than the 10 ms ticks of `/proc/PID/stat`, but a
/// thread that ends takes its time with it, so a figure is only taken from one set.
fn thread_cpu(pid: u32) -> (u64, Vec<String>) {
    let mut total = 0;
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
            threads.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    threads.sort();
    (total, threads)
}

/// Serve's CPU per request over `n` requests made by `request` (after 200 to warm up):
/// from the threads' run time when no thread came or went meanwhile, else from the ticks.
async fn per_request<F, Fut>(pid: u32, n: usize, mut request: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        request().await;
    }
    let (ticks, (ns, threads)) = (cpu_seconds(pid), thread_cpu(pid));
    for _ in 0..n {
        request().await;
    }
    let (ns_after, threads_after) = thread_cpu(pid);
    if threads_after == threads {
        Duration::from_nanos((ns_after - ns) / n as u64)
    } else {
        Duration::from_secs_f64((cpu_seconds(pid) - ticks) / n as f64)
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_emulator, api) = emulator();
    let (server, url) = serve(dir.path(), &api);
    let pid = server.0.id();
    // One connection, kept alive (reqwest pools it), as aiohttp's session in the Python bot.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "serve never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |body: Value| {
        let request = client
            .post(format!("{url}/v1/users"))
            .bearer_auth(KEY)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    };
    let get = |path: String| {
        let request = client.get(format!("{url}{path}"));
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    };
    let user = json!({"user_id": 7, "language_code": "en", "flags": {"registered": true}});
    post(user.clone()).await;
    let page: Value = (1..=1_000)
        .map(|id| json!({"user_id": id, "language_code": "es"}))
        .collect();
    post(page.clone()).await;

    let before_single = memory_kb(pid, "VmRSS:");
    // The figures taken in turns, a fifth of the requests at a time, so a change in the
    // machine's load (two cores, shared with the client) weighs on each of them alike.
    const ROUNDS: u32 = 5;
    let each = n / ROUNDS as usize;
    let (mut healthz, mut preview, mut one, mut message) = Default::default();
    for _ in 0..ROUNDS {
        healthz += per_request(pid, each, || get("/healthz".into())).await / ROUNDS;
        preview += per_request(pid, each, || {
            get("/v1/preview?user_id=7&language_code=en&flags=registered".into())
        })
        .await
            / ROUNDS;
        one += per_request(pid, each, || post(user.clone())).await / ROUNDS;
        // The Python bot's pattern for a message with an unknown command: its context, then
        // the suggestion.
        message += per_request(pid, each, || {
            let (post, get) = (
                post(user.clone()),
                get("/v1/suggest?user_id=7&language_code=en&flags=registered&text=/ordres".into()),
            );
            async move {
                post.await;
                get.await;
            }
        })
        .await
            / ROUNDS;
    }
    let (healthz, preview, one, message): (Duration, Duration, Duration, Duration) =
        (healthz, preview, one, message);
    let batch = per_request(pid, (n / 100).max(20), || post(page.clone())).await / 1_000;

    let micros = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    println!("serve CPU per request ({n} requests each, keep-alive):");
    println!(
        "  GET /healthz                              {}",
        micros(healthz)
    );
    println!(
        "  GET /v1/preview                           {}",
        micros(preview)
    );
    println!(
        "  POST /v1/users, one unchanged user        {} ({:.2}x healthz)",
        micros(one),
        one.as_secs_f64() / healthz.as_secs_f64()
    );
    println!(
        "  a message of the Python bot (post+suggest) {}",
        micros(message)
    );
    println!(
        "  POST /v1/users of 1,000, per user         {}",
        micros(batch)
    );

    // Memory. A request of 10,000 contexts, ten times with new users (the store keeps them:
    // 100,000 more known users), then ten times with the last 10,000 (known): the peak while
    // they run, sampled every millisecond, and what is left three seconds after (serve hands
    // a burst's free memory back once a second passes without another).
    let big = |first: i64| -> Value {
        (first..first + 10_000)
            .map(|id| json!({"user_id": id, "language_code": "es"}))
            .collect()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_new = memory_kb(pid, "VmRSS:");
    let sampler = Peak::start(pid);
    for round in 0..10 {
        post(big(1_000_000 + round * 10_000)).await;
    }
    let peak_new = sampler.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_new = memory_kb(pid, "VmRSS:");
    let sampler = Peak::start(pid);
    for _ in 0..10 {
        post(big(1_090_000)).await;
    }
    let peak_known = sampler.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_known = memory_kb(pid, "VmRSS:");
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    println!(
        "RSS 3 s after the figures above: {} more than before them",
        mb(before_new.saturating_sub(before_single))
    );
    println!(
        "10 requests of 10,000 new contexts:   RSS {} before, peak +{}, after +{} (100,000 more known users)",
        mb(before_new),
        mb(peak_new.saturating_sub(before_new)),
        mb(after_new.saturating_sub(before_new))
    );
    println!(
        "10 requests of 10,000 known contexts: RSS {} before, peak +{}, after {}{}",
        mb(after_new),
        mb(peak_known.saturating_sub(after_new)),
        if after_known >= after_new { "+" } else { "-" },
        mb(after_known.abs_diff(after_new))
    );
    // A reconciliation that changes nothing: version 2 of the resolver, renamed into the
    // folder, moves only registered users with 10 orders or more, and the known users here
    // are guests. Serve's CPU from the new version serving to the run's report.
    let mut events = client.get(format!("{url}/v1/events")).send().await.unwrap();
    let incoming = dir.path().join("plugins").join("tiered.incoming");
    std::fs::copy(
        Path::new(env!("CMDSCOPE_PLUGIN_DIR")).join("tiered_resolver_v2.wasm"),
        &incoming,
    )
    .unwrap();
    std::fs::rename(&incoming, dir.path().join("plugins").join("tiered.wasm")).unwrap();
    let mut seen = String::new();
    let mut from = None;
    let examined = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(120), events.chunk())
            .await
            .expect("events within 2 minutes")
            .unwrap()
            .expect("the event stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if from.is_none() && seen.contains("event: reloaded") {
            from = Some(cpu_seconds(pid));
        }
        if let Some(at) = seen.find("event: reconciled") {
            let data = seen[at..].lines().find_map(|l| l.strip_prefix("data: "));
            if let Some(report) = data.and_then(|d| serde_json::from_str::<Value>(d).ok())
                && report["trigger"].to_string().contains("plugin")
            {
                assert_eq!(report["failed"], 0, "{report}");
                break report["users_examined"].as_u64().unwrap();
            }
            seen.drain(..at + 1);
        }
    };
    let took = cpu_seconds(pid) - from.expect("the new version is announced first");
    println!(
        "a reconciliation that changes nothing: {examined} known users, {:.2} us of CPU each",
        took * 1e6 / examined as f64
    );
    drop(server);
}
