//! What cmdscope counts, through the `metrics` facade: names and labels live here, so the
//! set of series is one list. Without an installed recorder every call is a no-op; the CLI's
//! `--metrics ADDR` (feature `prometheus`) serves them at `http://ADDR/metrics`.
//!
//! Labels are bounded: methods, outcomes and plugin names, never user or chat ids, and never
//! anything holding the bot token.
//!
//! Series recorded per user or per plugin call keep registered handles ([`Series`]): an
//! increment is an atomic add, with no key or label built. Handles are registered with the
//! recorder installed when they are first used, and again after [`recorder_installed`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use metrics::{Counter, Gauge, Histogram, SharedString, counter, gauge, histogram};

/// Whether series are recorded. On by default; a run that serves no metrics (a bulk
/// `sync-users` without `--metrics`) turns it off, so the hot path builds no keys or labels.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Records every series from now on (`true`, the default) or none (`false`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Bumped when a recorder is installed: handles registered before are registered again.
/// 0: none installed yet, so the per-user series do nothing at all.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Call after installing your own `metrics` recorder (cmdscope's Prometheus one does it
/// itself): the series cmdscope records per user and per plugin call (resolutions, cache
/// lookups, plugin calls, updates) are registered with it from then on; until a recorder is
/// announced this way they cost nothing. The other series use the facade's macros and reach
/// any recorder.
pub fn recorder_installed() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The handles of some series, labelled with a few names (a resolver's; a plugin's and its
/// version), registered when first used and again after a recorder is installed.
pub(crate) struct Series<T> {
    labels: Box<[SharedString]>,
    register: fn(&[SharedString]) -> T,
    current: ArcSwapOption<(u64, T)>,
}

impl<T> Series<T> {
    pub(crate) fn new(labels: &[&str], register: fn(&[SharedString]) -> T) -> Series<T> {
        Series {
            labels: labels
                .iter()
                .map(|l| SharedString::from_shared(Arc::from(*l)))
                .collect(),
            register,
            current: ArcSwapOption::empty(),
        }
    }

    /// Runs `use_them` on the handles, when series are recorded at all.
    pub(crate) fn with(&self, use_them: impl FnOnce(&T)) {
        let epoch = EPOCH.load(Ordering::Relaxed);
        if epoch == 0 || !enabled() {
            return;
        }
        let current = self.current.load();
        match &*current {
            Some(held) if held.0 == epoch => use_them(&held.1),
            _ => {
                let fresh = Arc::new((epoch, (self.register)(&self.labels)));
                use_them(&fresh.1);
                self.current.store(Some(fresh));
            }
        }
    }
}

/// Resolutions by one resolver: `ok`, `error` (default profile used), `unknown_profile`.
pub(crate) struct Resolutions {
    ok: Counter,
    error: Counter,
    unknown: Counter,
    seconds: Histogram,
}

pub(crate) fn resolutions(resolver: &str) -> Series<Resolutions> {
    Series::new(&[resolver], |labels| {
        let r = &labels[0];
        Resolutions {
            ok: counter!("cmdscope_resolutions_total", "resolver" => r.clone(), "outcome" => "ok"),
            error: counter!("cmdscope_resolutions_total", "resolver" => r.clone(), "outcome" => "error"),
            unknown: counter!("cmdscope_resolutions_total", "resolver" => r.clone(), "outcome" => "unknown_profile"),
            seconds: histogram!("cmdscope_resolve_seconds", "resolver" => r.clone()),
        }
    })
}

impl Resolutions {
    pub(crate) fn record(&self, outcome: &str, started: Option<Instant>) {
        match outcome {
            "ok" => self.ok.increment(1),
            "unknown_profile" => self.unknown.increment(1),
            _ => self.error.increment(1),
        }
        if let Some(started) = started {
            self.seconds.record(started.elapsed().as_secs_f64());
        }
    }
}

/// Output cache lookups of one plugin: `hit`, `miss`, `bypass`.
pub(crate) struct CacheLookups {
    pub(crate) hit: Counter,
    pub(crate) miss: Counter,
    pub(crate) bypass: Counter,
}

pub(crate) fn cache_lookups(plugin: &str) -> Series<CacheLookups> {
    Series::new(&[plugin], |labels| {
        let p = &labels[0];
        CacheLookups {
            hit: counter!("cmdscope_output_cache_total", "plugin" => p.clone(), "result" => "hit"),
            miss: counter!("cmdscope_output_cache_total", "plugin" => p.clone(), "result" => "miss"),
            bypass: counter!("cmdscope_output_cache_total", "plugin" => p.clone(), "result" => "bypass"),
        }
    })
}

/// One plugin version's calls: outcomes in the order of [`PLUGIN_OUTCOMES`], and the time of
/// each crossing by WIT function (in the order of [`PLUGIN_FUNCTIONS`]).
pub(crate) struct PluginCalls {
    outcomes: [Counter; PLUGIN_OUTCOMES.len()],
    seconds: [Histogram; PLUGIN_FUNCTIONS.len()],
}

/// `ok`, `rejected` (the plugin said no), `undeclared` (a profile it did not declare),
/// `quarantined`, or the failure.
pub const PLUGIN_OUTCOMES: [&str; 10] = [
    "ok",
    "rejected",
    "undeclared",
    "quarantined",
    "timeout",
    "memory_limit",
    "table_limit",
    "trap",
    "oversized",
    "malformed",
];

/// The WIT functions a host calls on a plugin.
pub const PLUGIN_FUNCTIONS: [&str; 4] =
    ["resolve", "resolve-batch", "translate", "translate-batch"];

pub(crate) fn plugin_calls(plugin: &str, version: &str) -> Series<PluginCalls> {
    Series::new(&[plugin, version], |labels| {
        let (p, v) = (&labels[0], &labels[1]);
        PluginCalls {
            outcomes: PLUGIN_OUTCOMES.map(|outcome| {
                counter!("cmdscope_plugin_calls_total", "plugin" => p.clone(), "version" => v.clone(), "outcome" => outcome)
            }),
            seconds: PLUGIN_FUNCTIONS.map(|function| {
                histogram!("cmdscope_plugin_call_seconds", "plugin" => p.clone(), "version" => v.clone(), "function" => function)
            }),
        }
    })
}

impl PluginCalls {
    pub(crate) fn record(&self, outcome: &str) {
        if let Some(i) = PLUGIN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].increment(1);
        }
    }

    pub(crate) fn took(&self, function: &str, elapsed: Duration) {
        if let Some(i) = PLUGIN_FUNCTIONS.iter().position(|f| *f == function) {
            self.seconds[i].record(elapsed.as_secs_f64());
        }
    }
}

/// Updates by status, their latency, and the queue depth, for the whole process.
struct Updates {
    by_status: [Counter; STATUSES.len()],
    seconds: Histogram,
    queue_depth: Gauge,
}

const STATUSES: [&str; 6] = [
    "unchanged",
    "set",
    "deleted",
    "superseded",
    "failed",
    "store_failed",
];

fn updates() -> &'static Series<Updates> {
    static UPDATES: std::sync::OnceLock<Series<Updates>> = std::sync::OnceLock::new();
    UPDATES.get_or_init(|| {
        Series::new(&[], |_| Updates {
            by_status: STATUSES
                .map(|status| counter!("cmdscope_user_updates_total", "status" => status)),
            seconds: histogram!("cmdscope_update_user_seconds"),
            queue_depth: gauge!("cmdscope_update_queue_depth"),
        })
    })
}

/// A start time for a latency, only when it will be recorded (reading the clock costs too).
pub(crate) fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// A Bot API request's answer: `ok`, `rate_limited` (429), `server_error` (5xx, timeout,
/// connection) or `refused` (4xx).
pub(crate) fn bot_api_request(method: &'static str, outcome: &'static str) {
    if !enabled() {
        return;
    }
    counter!("cmdscope_bot_api_requests_total", "method" => method, "outcome" => outcome)
        .increment(1);
}

pub(crate) fn bot_api_retry() {
    if !enabled() {
        return;
    }
    counter!("cmdscope_bot_api_retries_total").increment(1);
}

/// An operation given up after its retries.
pub(crate) fn bot_api_failure(method: &'static str) {
    if !enabled() {
        return;
    }
    counter!("cmdscope_bot_api_failures_total", "method" => method).increment(1);
}

/// 0 closed, 1 open, 2 half-open.
pub(crate) fn breaker_state(state: u8) {
    if !enabled() {
        return;
    }
    gauge!("cmdscope_bot_api_breaker_state").set(f64::from(state));
}

/// Lists with an update running or waiting for its turn.
pub(crate) fn queue_depth(depth: usize) {
    updates().with(|u| u.queue_depth.set(depth as f64));
}

/// One `update_user`: its status and how long it took.
pub(crate) fn user_update(status: &'static str, started: std::time::Instant) {
    updates().with(|u| {
        if let Some(i) = STATUSES.iter().position(|s| *s == status) {
            u.by_status[i].increment(1);
        }
        u.seconds.record(started.elapsed().as_secs_f64());
    });
}

/// Output cache lookups of the shared translator cache.
pub(crate) fn cache_lookup(plugin: &str, result: &'static str, n: u64) {
    if !enabled() {
        return;
    }
    counter!("cmdscope_output_cache_total", "plugin" => plugin.to_string(), "result" => result)
        .increment(n);
}

/// Known users waiting for the store to answer again.
pub(crate) fn known_users_unsaved(n: usize) {
    if !enabled() {
        return;
    }
    gauge!("cmdscope_known_users_unsaved").set(n as f64);
}

/// A known user dropped because too many waited for the store.
pub(crate) fn known_users_dropped() {
    if !enabled() {
        return;
    }
    counter!("cmdscope_known_users_dropped_total").increment(1);
}

/// Log lines a plugin wrote over its budget, dropped.
pub(crate) fn plugin_log_dropped(plugin: &str, lines: u64) {
    if !enabled() {
        return;
    }
    counter!("cmdscope_plugin_log_dropped_lines_total", "plugin" => plugin.to_string())
        .increment(lines);
}

/// A reload event: `loaded`, `reloaded`, `rejected`, `removed`.
pub(crate) fn reload(plugin: Option<&str>, event: &'static str) {
    if !enabled() {
        return;
    }
    let plugin = plugin.unwrap_or("").to_string();
    counter!("cmdscope_plugin_reloads_total", "plugin" => plugin, "event" => event).increment(1);
}

pub(crate) fn menu_build(took: Duration) {
    if !enabled() {
        return;
    }
    histogram!("cmdscope_menu_build_seconds").record(took.as_secs_f64());
}

/// Installs cmdscope's Prometheus recorder (once per process) and returns its handle, whose
/// `render()` is the text a `/metrics` endpoint serves. Fails when another recorder was
/// installed first.
#[cfg(feature = "prometheus")]
pub fn prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<
        Result<metrics_exporter_prometheus::PrometheusHandle, String>,
    > = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map(|()| {
                    recorder_installed();
                    keep_up(handle.clone());
                    handle
                })
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()
}

/// Drains the recorder's histograms into their summaries every second. The recorder keeps
/// every recorded value until then: a process nobody scrapes would otherwise grow by 16 bytes
/// per user update, for ever (a bot at 1,000 messages a second: 1.4 GB a day). Every second,
/// not every five: bulk requests record a value per user, and five seconds of them (12 MB at
/// 300,000 users a second) scattered through the heap kept serve growing (30 -> 78 MB over
/// 3,000 requests of 1,000 users; 35 MB, flat, at one second).
#[cfg(feature = "prometheus")]
fn keep_up(handle: metrics_exporter_prometheus::PrometheusHandle) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    let started = std::thread::Builder::new()
        .name("cmdscope-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!("cannot start the metrics upkeep (histograms grow until scraped): {e}");
    }
}

/// Serves every series at `http://addr/metrics` in Prometheus' text format, on the running
/// tokio runtime, for the rest of the process.
#[cfg(all(feature = "prometheus", feature = "http"))]
pub async fn serve_prometheus(addr: std::net::SocketAddr) -> Result<std::net::SocketAddr, String> {
    let handle = prometheus()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}
