//! A plugin's log budget: what its calls may write to the host log (the `host` interface's
//! `log`, stdout and stderr together). Per call in each store ([`CallLog`], reset when a call
//! starts) and per plugin, all its instances together ([`LogGate`]); what is dropped is
//! counted and reported at most once a second.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Log a plugin may write in one call (host `log`, stdout and stderr together).
pub(crate) const MAX_LOG_BYTES_PER_CALL: usize = 1 << 20;
pub(crate) const MAX_LOG_LINES_PER_CALL: u32 = 1_000;
/// Sustained log lines per plugin, all its instances together (bursts up to a call's worth).
pub(crate) const LOG_LINES_PER_SECOND: u32 = 100;
/// Longest log line kept; the rest of the line is cut.
pub(crate) const MAX_LOG_LINE: usize = 1024;
/// What the host's log adds to a plugin's line (time, level, target, plugin name), counted
/// against the per-call budget so the budget bounds what is written, not just the message.
pub(crate) const LOG_LINE_OVERHEAD: usize = 160;

/// A plugin's log budget: per call (in each store, reset when a call starts) and per plugin
/// (shared by its instances).
pub(crate) struct LogGate {
    per_second: governor::DefaultDirectRateLimiter,
    dropped_lines: AtomicU64,
    dropped_bytes: AtomicU64,
    last_report: std::sync::Mutex<Instant>,
}

impl LogGate {
    pub(crate) fn new() -> Arc<LogGate> {
        let quota =
            governor::Quota::per_second(NonZeroU32::new(LOG_LINES_PER_SECOND).expect("nonzero"))
                .allow_burst(NonZeroU32::new(MAX_LOG_LINES_PER_CALL).expect("nonzero"));
        Arc::new(LogGate {
            per_second: governor::RateLimiter::direct(quota),
            dropped_lines: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
            last_report: std::sync::Mutex::new(Instant::now()),
        })
    }

    fn drop_line(&self, bytes: usize) {
        self.dropped_lines.fetch_add(1, Ordering::Relaxed);
        self.dropped_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Says how much was dropped since the last report, at most once a second.
    pub(crate) fn report_dropped(&self, plugin: &str) {
        if self.dropped_lines.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let lines = self.dropped_lines.swap(0, Ordering::Relaxed);
        let bytes = self.dropped_bytes.swap(0, Ordering::Relaxed);
        crate::metrics::plugin_log_dropped(plugin, lines);
        tracing::warn!(
            plugin,
            lines,
            bytes,
            "plugin log over budget: lines dropped (a plugin may log {MAX_LOG_LINES_PER_CALL} lines or 1 MiB per call, {LOG_LINES_PER_SECOND} lines/s)"
        );
    }
}

/// What the running call may still log; lives in the store.
pub(crate) struct CallLog {
    bytes_left: usize,
    lines_left: u32,
}

impl CallLog {
    pub(crate) fn new() -> CallLog {
        CallLog {
            bytes_left: MAX_LOG_BYTES_PER_CALL,
            lines_left: MAX_LOG_LINES_PER_CALL,
        }
    }

    /// Whether a line of `len` bytes may be written now; a line that may not is counted.
    pub(crate) fn may_write(&mut self, gate: &LogGate, len: usize) -> bool {
        let len = len.min(MAX_LOG_LINE) + LOG_LINE_OVERHEAD;
        if self.lines_left == 0 || self.bytes_left < len || gate.per_second.check().is_err() {
            gate.drop_line(len);
            return false;
        }
        self.lines_left -= 1;
        self.bytes_left -= len;
        true
    }
}

/// A line cut at [`MAX_LOG_LINE`] bytes, on a character boundary, trailing space trimmed.
pub(crate) fn log_line(message: &str) -> &str {
    let mut end = message.len().min(MAX_LOG_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].trim_end()
}
