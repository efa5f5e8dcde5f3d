//! What cmdscope counts, through the `metrics` facade: names and labels live here, so the
//! set of series is one list. Without an installed recorder every call is a no-op; the CLI's
//! `--metrics ADDR` (feature `prometheus`) serves them at `http://ADDR/metrics`.
//!
//! Labels are bounded: methods, outcomes and plugin names, never user or chat ids, and never
//! anything holding the bot token.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// A Bot API request's answer: `ok`, `rate_limited` (429), `server_error` (5xx, timeout,
/// connection) or `refused` (4xx).
pub(crate) fn bot_api_request(method: &'static str, outcome: &'static str) {
    counter!("cmdscope_bot_api_requests_total", "method" => method, "outcome" => outcome)
        .increment(1);
}

pub(crate) fn bot_api_retry() {
    counter!("cmdscope_bot_api_retries_total").increment(1);
}

/// An operation given up after its retries.
pub(crate) fn bot_api_failure(method: &'static str) {
    counter!("cmdscope_bot_api_failures_total", "method" => method).increment(1);
}

/// 0 closed, 1 open, 2 half-open.
pub(crate) fn breaker_state(state: u8) {
    gauge!("cmdscope_bot_api_breaker_state").set(f64::from(state));
}

/// Lists with an update running or waiting for its turn.
pub(crate) fn queue_depth(depth: usize) {
    gauge!("cmdscope_update_queue_depth").set(depth as f64);
}

/// One `update_user`: its status and how long it took.
pub(crate) fn user_update(status: &'static str, took: Duration) {
    counter!("cmdscope_user_updates_total", "status" => status).increment(1);
    histogram!("cmdscope_update_user_seconds").record(took.as_secs_f64());
}

/// A resolution: `ok`, `error` (default profile used) or `unknown_profile`.
pub(crate) fn resolution(resolver: &str, outcome: &'static str, took: Duration) {
    counter!("cmdscope_resolutions_total", "resolver" => resolver.to_string(), "outcome" => outcome)
        .increment(1);
    histogram!("cmdscope_resolve_seconds", "resolver" => resolver.to_string())
        .record(took.as_secs_f64());
}

/// An output cache lookup: `hit`, `miss` or `bypass`, per plugin.
pub(crate) fn cache_lookup(plugin: &str, result: &'static str, n: u64) {
    counter!("cmdscope_output_cache_total", "plugin" => plugin.to_string(), "result" => result)
        .increment(n);
}

/// One sandboxed call: `ok`, `rejected` (the plugin said no), `quarantined`, or the failure
/// (`timeout`, `memory_limit`, `trap`, `oversized`, `malformed`).
pub(crate) fn plugin_call(plugin: &str, outcome: &'static str) {
    counter!("cmdscope_plugin_calls_total", "plugin" => plugin.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Log lines a plugin wrote over its budget, dropped.
pub(crate) fn plugin_log_dropped(plugin: &str, lines: u64) {
    counter!("cmdscope_plugin_log_dropped_lines_total", "plugin" => plugin.to_string())
        .increment(lines);
}

/// A reload event: `loaded`, `reloaded`, `rejected`, `removed`.
pub(crate) fn reload(plugin: Option<&str>, event: &'static str) {
    let plugin = plugin.unwrap_or("").to_string();
    counter!("cmdscope_plugin_reloads_total", "plugin" => plugin, "event" => event).increment(1);
}

pub(crate) fn menu_build(took: Duration) {
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
                .map(|()| handle)
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()
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
