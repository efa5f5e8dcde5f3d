//! What one store holds: WASI state with nothing behind it, the instance's caps (memory and
//! table totals, counts of instances, memories and tables, the resource table), the call's
//! time budget, its random stream and its log. The sandbox makes stores of it; the WASI and
//! `host` implementations read it.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::log::{CallLog, LogGate, log_line};

/// Counts per instance (a component is several core instances in one store). Generous for
/// what toolchains emit (a componentize-py component links a dozen core modules), far below
/// what would cost the host.
const MAX_CORE_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;
/// Host-side resources (streams, pollables) one instance may hold at once, and handles to
/// resources in the component's own tables.
pub(crate) const MAX_RESOURCES: usize = 65_536;

/// Largest random buffer one request may ask for.
pub(crate) const MAX_RANDOM_BYTES: u64 = 64 << 10;
/// The seed behind every plugin's randomness.
pub(crate) const RANDOM_SEED: u64 = 0x636d_6473_636f_7065;

/// What a store holds: WASI state with nothing behind it, the instance's caps, what the host
/// interface serves (the plugin's name and settings), and the running call's budgets.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(crate) plugin: Arc<str>,
    pub(crate) settings: Arc<BTreeMap<String, String>>,
    pub(crate) random: CallRandom,
    log: Arc<StoreLog>,
    budget: CallBudget,
}

/// The log of one store: its plugin's gate and the running call's budget, shared with the
/// stdout/stderr streams the store hands out.
struct StoreLog {
    gate: Arc<LogGate>,
    call: Mutex<CallLog>,
    plugin: Mutex<Arc<str>>,
}

/// A log line's level, whichever interface version sent it.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl StoreLog {
    fn write(&self, level: Level, message: &str) {
        let line = log_line(message);
        if line.is_empty() {
            return;
        }
        let admitted = self
            .call
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .may_write(&self.gate, line.len());
        if !admitted {
            return;
        }
        let plugin = self
            .plugin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let plugin = &*plugin;
        match level {
            Level::Debug => tracing::debug!(plugin, "{line}"),
            Level::Info => tracing::info!(plugin, "{line}"),
            Level::Warn => tracing::warn!(plugin, "{line}"),
            Level::Error => tracing::error!(plugin, "{line}"),
        }
    }
}

/// Why a limit stopped an instance: the error a trap carries, so a failure is classified by
/// type, not by wasmtime's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("linear memory would grow to {wanted} bytes, over the instance's {cap}-byte cap")]
    Memory { wanted: usize, cap: usize },
    #[error("tables would grow to {wanted} elements, over the instance's {cap}-element cap")]
    Table { wanted: usize, cap: usize },
}

/// Caps on one instance, its memories and tables counted together.
pub(crate) struct InstanceLimits {
    memory: Budget,
    table: Budget,
}

impl InstanceLimits {
    pub(crate) fn new(memory_bytes: usize, table_elements: usize) -> InstanceLimits {
        InstanceLimits {
            memory: Budget::new(memory_bytes),
            table: Budget::new(table_elements),
        }
    }
}

/// One cap over every memory (or table) of an instance: growths add up.
struct Budget {
    cap: usize,
    total: usize,
    /// The last growth approved, taken back if the grow then fails.
    last_grow: usize,
}

impl Budget {
    fn new(cap: usize) -> Budget {
        Budget {
            cap,
            total: 0,
            last_grow: 0,
        }
    }

    /// Approves growing one memory or table from `current` to `desired`, or says what the
    /// total would have been.
    fn grow(&mut self, current: usize, desired: usize) -> Result<(), usize> {
        let grow = desired.saturating_sub(current);
        let wanted = self.total.saturating_add(grow);
        if wanted > self.cap {
            return Err(wanted);
        }
        self.total = wanted;
        self.last_grow = grow;
        Ok(())
    }

    fn grow_failed(&mut self) {
        self.total -= std::mem::take(&mut self.last_grow);
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = self.memory.cap;
        self.memory
            .grow(current, desired)
            .map_err(|wanted| LimitHit::Memory { wanted, cap })?;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory.grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = self.table.cap;
        self.table
            .grow(current, desired)
            .map_err(|wanted| LimitHit::Table { wanted, cap })?;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table.grow_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// The running call's time budget.
///
/// The deadline is wall time, but a call past it is only stopped once it is seen using the CPU:
/// on a loaded machine a thread may wait for a core longer than the whole deadline, and that
/// must not fail the call. So past the deadline the thread's CPU clock is read (only then: the
/// read is a system call, about a microsecond) and the call gets one more deadline window; if it
/// used at least half of that window's time on the CPU it is spinning and is interrupted,
/// otherwise it was starved and gets another window. Wall time is capped at 20x the deadline
/// (at least 1 s) whatever happens. A CPU-bound plugin is thus stopped after about two deadlines.
/// No host function a plugin can call waits (see `wasi.rs`), so the cap holds for time spent
/// in host calls too.
#[derive(Clone, Copy)]
struct CallBudget {
    wall_at_start: std::time::Instant,
    /// CPU clock of the thread when the current grace window opened.
    window_cpu_start: Option<Duration>,
}

impl CallBudget {
    fn now() -> CallBudget {
        CallBudget {
            wall_at_start: std::time::Instant::now(),
            window_cpu_start: None,
        }
    }

    /// Called each time the epoch deadline passes.
    fn on_deadline(&mut self, deadline: Duration, deadline_ticks: u64) -> wasmtime::UpdateDeadline {
        if self.wall_at_start.elapsed() >= wall_cap(deadline) {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        let cpu_now = thread_cpu_time();
        if let Some(window_start) = self.window_cpu_start
            && cpu_now.saturating_sub(window_start) >= deadline / 2
        {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        self.window_cpu_start = Some(cpu_now);
        wasmtime::UpdateDeadline::Continue(deadline_ticks)
    }
}

/// The most wall time a call may take, whatever the machine's load.
pub(crate) fn wall_cap(deadline: Duration) -> Duration {
    (deadline * 20).max(Duration::from_secs(1))
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on
    // every platform this crate builds for (Linux, macOS, the BSDs).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl PluginState {
    /// The state of a fresh store for one instance of `plugin`: stdout and stderr to the log
    /// through `gate`, memories within `memory_bytes`, tables within `table_elements`.
    pub(crate) fn new(
        plugin: Arc<str>,
        settings: Arc<BTreeMap<String, String>>,
        gate: Arc<LogGate>,
        memory_bytes: usize,
        table_elements: usize,
    ) -> PluginState {
        let log = Arc::new(StoreLog {
            gate,
            call: Mutex::new(CallLog::new()),
            plugin: Mutex::new(plugin.clone()),
        });
        let stream = LogStream { log: log.clone() };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stream.clone()).stderr(stream);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        PluginState {
            wasi: wasi.build(),
            table,
            limits: InstanceLimits::new(memory_bytes, table_elements),
            plugin,
            settings,
            random: CallRandom::new(),
            log,
            budget: CallBudget::now(),
        }
    }

    /// A log line from the plugin (the `host` interface), within the call's budget.
    pub(crate) fn write_log(&self, level: Level, message: &str) {
        self.log.write(level, message);
    }

    /// The epoch deadline passed: go on, or stop the call (see `CallBudget`).
    pub(crate) fn on_deadline(
        &mut self,
        deadline: Duration,
        ticks: u64,
    ) -> wasmtime::UpdateDeadline {
        self.budget.on_deadline(deadline, ticks)
    }

    /// Starts the budgets of a call (or an instantiation) about to run on this thread, and
    /// the call's random stream from its seed.
    pub(crate) fn begin_call(&mut self) {
        self.budget = CallBudget::now();
        self.random.reset();
        *self.log.call.lock().unwrap_or_else(|p| p.into_inner()) = CallLog::new();
    }

    /// After a call: says (at most once a second) how many log lines the plugin had dropped.
    pub(crate) fn end_call(&self) {
        self.log.gate.report_dropped(&self.plugin);
    }

    /// Linear memory the instance holds, all its memories together.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.limits.memory.total
    }

    /// Which cap stopped the instance, if one did.
    pub(crate) fn limit_hit(error: &wasmtime::Error) -> Option<LimitHit> {
        error
            .chain()
            .find_map(|c| c.downcast_ref::<LimitHit>())
            .copied()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The call's random stream: the same at the start of every call.
pub(crate) struct CallRandom(fastrand::Rng);

impl CallRandom {
    pub(crate) fn new() -> CallRandom {
        CallRandom(fastrand::Rng::with_seed(RANDOM_SEED))
    }

    pub(crate) fn reset(&mut self) {
        self.0.seed(RANDOM_SEED);
    }

    pub(crate) fn bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!(
                "asked for {len} random bytes; a plugin may ask for at most {MAX_RANDOM_BYTES} at once"
            );
        }
        let mut out = vec![0u8; len as usize];
        self.0.fill(&mut out);
        Ok(out)
    }
}

impl CallRandom {
    pub(crate) fn u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

/// Guest stdout/stderr, line by line into the host log, within the store's log budget.
#[derive(Clone)]
struct LogStream {
    log: Arc<StoreLog>,
}

impl LogStream {
    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            self.log.write(Level::Info, line);
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.emit(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.emit(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
