//! The sandbox every plugin runs in: one wasmtime `Engine` with epoch interruption, a linker
//! that denies capabilities rather than interfaces (see `wasi.rs`), and a per-store state with
//! the instance's caps (memory and table totals, counts of instances, memories and tables, and
//! the resource table), the call's time budget and its log budget.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable, ResourceType};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::LoadError;
use super::bindings::{v0_1, v0_2};
use super::wasi::{CallLog, CallRandom, LogGate, log_line};
use crate::config::SandboxLimits;

/// How often the epoch advances; a call's deadline is counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The fixed wall-clock time plugins see: 2024-01-01T00:00:00Z. Fixed so outputs stay pure.
pub const FIXED_WALL_CLOCK_SECS: u64 = 1_704_067_200;

/// Counts per instance (a component is several core instances in one store). Generous for
/// what toolchains emit (a componentize-py component links a dozen core modules), far below
/// what would cost the host.
const MAX_CORE_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;
/// Host-side resources (streams, pollables) one instance may hold at once, and handles to
/// resources in the component's own tables.
const MAX_RESOURCES: usize = 65_536;

/// Interfaces a plugin may import. Everything else (HTTP, anything unknown) is refused at
/// load with the import's name. Filesystem is linked with zero preopens, clocks are fixed,
/// randomness is seeded and every socket function traps: importing them grants nothing.
/// (componentize-py links CPython's socket module, so its components import `wasi:sockets`
/// whether they use it or not.)
const ALLOWED_IMPORT_PREFIXES: [&str; 10] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:clocks/",
    "wasi:random/",
    SOCKETS,
    "cmdscope:plugin/host@0.1.",
    "cmdscope:plugin/types@0.1.",
    "cmdscope:plugin/host@0.2.",
    "cmdscope:plugin/types@0.2.",
];

/// Imported by toolchains that link a socket library; every function of it traps.
const SOCKETS: &str = "wasi:sockets/";

/// The host-side type of every socket resource: none is ever made.
struct DeniedSocket;

/// The engine configuration every plugin is compiled for; a compile worker builds the same
/// one, so its output deserialises here.
pub(crate) fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // Deadlines: the epoch advances every EPOCH_TICK; each call sets its own deadline.
    config.epoch_interruption(true);
    config
}

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
enum Level {
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
            .admit(&self.gate, line.len());
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

/// The `host` interface, the same in every version: a log line, a setting.
macro_rules! host_interface {
    ($($host:ident),*) => {$(
        impl $host::Host for PluginState {
            fn log(&mut self, level: $host::LogLevel, message: String) {
                let level = match level {
                    $host::LogLevel::Debug => Level::Debug,
                    $host::LogLevel::Info => Level::Info,
                    $host::LogLevel::Warn => Level::Warn,
                    $host::LogLevel::Error => Level::Error,
                };
                self.log.write(level, &message);
            }

            fn setting(&mut self, key: String) -> Option<String> {
                self.settings.get(&key).cloned()
            }
        }
    )*};
}

use v0_1::host as host_v0_1;
use v0_2::host as host_v0_2;
host_interface!(host_v0_1, host_v0_2);

/// The engine, the linker and the limits shared by every plugin.
pub(crate) struct Sandbox {
    pub(crate) engine: Engine,
    linker: Linker<PluginState>,
    pub(crate) limits: SandboxLimits,
}

impl Sandbox {
    pub(crate) fn new(limits: SandboxLimits) -> wasmtime::Result<Sandbox> {
        let engine = Engine::new(&engine_config())?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker)?;
        host_v0_1::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        host_v0_2::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        Ok(Sandbox {
            engine,
            linker,
            limits,
        })
    }

    /// Links `component` once. A component importing `wasi:sockets` (at whatever version)
    /// gets a linker of its own where each socket function traps, naming itself.
    pub(crate) fn instantiate_pre(
        &self,
        component: &Component,
    ) -> Result<InstancePre<PluginState>, LoadError> {
        let link_error = |e: wasmtime::Error| LoadError::Link(super::root_cause(&e));
        let sockets: Vec<(String, wasmtime::component::types::ComponentInstance)> = component
            .component_type()
            .imports(&self.engine)
            .filter_map(|(name, item)| match item.ty {
                ComponentItem::ComponentInstance(i) if name.starts_with(SOCKETS) => {
                    Some((name.to_string(), i))
                }
                _ => None,
            })
            .collect();
        if sockets.is_empty() {
            return self.linker.instantiate_pre(component).map_err(link_error);
        }
        let mut linker = self.linker.clone();
        for (interface, instance) in sockets {
            let mut scope = linker.instance(&interface).map_err(link_error)?;
            for (name, item) in instance.exports(&self.engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        let what = format!("{interface}#{name}");
                        scope
                            .func_new(name, move |_, _, _, _| {
                                wasmtime::bail!("`{what}` denied: plugins get no network")
                            })
                            .map_err(link_error)?;
                    }
                    // Types the socket interfaces `use` from wasi:io are wasi:io's own.
                    ComponentItem::Resource(_) => {
                        let ty = match name {
                            "pollable" => ResourceType::host::<wasmtime_wasi::p2::DynPollable>(),
                            "input-stream" => {
                                ResourceType::host::<wasmtime_wasi::p2::DynInputStream>()
                            }
                            "output-stream" => {
                                ResourceType::host::<wasmtime_wasi::p2::DynOutputStream>()
                            }
                            "error" => ResourceType::host::<wasmtime_wasi_io::streams::Error>(),
                            _ => ResourceType::host::<DeniedSocket>(),
                        };
                        scope
                            .resource(name, ty, |_, _| Ok(()))
                            .map_err(link_error)?;
                    }
                    _ => {}
                }
            }
        }
        linker.instantiate_pre(component).map_err(link_error)
    }

    /// A fresh store for one instance of `plugin`, logging through `gate`, within `limits`.
    pub(crate) fn store(
        &self,
        plugin: Arc<str>,
        settings: Arc<BTreeMap<String, String>>,
        gate: Arc<LogGate>,
        limits: CallLimits,
    ) -> Store<PluginState> {
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
        let state = PluginState {
            wasi: wasi.build(),
            table,
            limits: InstanceLimits::new(limits.memory_bytes, self.limits.table_elements),
            plugin,
            settings,
            random: CallRandom::new(),
            log,
            budget: CallBudget::now(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_max_component_handles(MAX_RESOURCES);
        // The epoch deadline (set per call to the timeout) is a check point, see `CallBudget`.
        let (deadline, ticks) = (limits.timeout, limits.deadline_ticks());
        store.epoch_deadline_callback(move |mut ctx| {
            Ok(ctx.data_mut().budget.on_deadline(deadline, ticks))
        });
        store
    }
}

/// What one plugin's calls may use: `[sandbox]`'s defaults, or what `[plugins.<name>]` raised
/// them to (never past the host's maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallLimits {
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl CallLimits {
    /// The defaults every plugin gets.
    pub(crate) fn default_of(limits: &SandboxLimits) -> CallLimits {
        CallLimits {
            memory_bytes: limits.memory_bytes,
            timeout: limits.timeout,
        }
    }

    /// The most any plugin may get.
    pub(crate) fn max_of(limits: &SandboxLimits) -> CallLimits {
        CallLimits {
            memory_bytes: limits.max_memory_bytes.max(limits.memory_bytes),
            timeout: limits.max_timeout.max(limits.timeout),
        }
    }

    /// What `info` runs within, before the plugin's name (and so its own limits) is known:
    /// the most any configured plugin may have. With no plugin's limits raised, the defaults;
    /// never more than the maximum.
    pub(crate) fn before_info(
        limits: &SandboxLimits,
        settings: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> CallLimits {
        settings
            .values()
            .map(|own| CallLimits::for_plugin(limits, own))
            .fold(CallLimits::default_of(limits), |a, b| CallLimits {
                memory_bytes: a.memory_bytes.max(b.memory_bytes),
                timeout: a.timeout.max(b.timeout),
            })
    }

    /// `plugin`'s limits: the defaults, raised by its `memory_mib` and `timeout_ms` settings,
    /// capped at the maximum.
    pub(crate) fn for_plugin(
        limits: &SandboxLimits,
        settings: &BTreeMap<String, String>,
    ) -> CallLimits {
        let max = CallLimits::max_of(limits);
        let mut own = CallLimits::default_of(limits);
        let number = |key: &str| settings.get(key).and_then(|v| v.parse::<u64>().ok());
        if let Some(mib) = number("memory_mib") {
            own.memory_bytes = ((mib as usize) << 20).min(max.memory_bytes);
        }
        if let Some(ms) = number("timeout_ms") {
            own.timeout = Duration::from_millis(ms).min(max.timeout);
        }
        own
    }

    /// Ticks to allow one call.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let ticks = self.timeout.as_micros() / EPOCH_TICK.as_micros().max(1);
        (ticks as u64).max(1)
    }
}

/// Refuses a component whose imports the sandbox does not provide, naming them.
pub(crate) fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !ALLOWED_IMPORT_PREFIXES.iter().any(|p| name.starts_with(p)))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImport(refused))
    }
}

/// Advances the engine's epoch until the engine is dropped. Holds only a weak reference, so
/// the thread ends with the last `Engine` clone.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("cmdscope-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker thread");
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
