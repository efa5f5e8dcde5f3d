//! The sandbox every plugin runs in: one wasmtime `Engine` with epoch interruption, a linker
//! that denies capabilities rather than interfaces, and a per-store state with a memory cap, a
//! fixed clock, seeded randomness, no environment, no preopened directory, and stdout/stderr
//! going to the host log.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::LoadError;
use super::bindings::host;
use crate::config::SandboxLimits;

/// How often the epoch advances; a call's deadline is counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The fixed wall-clock time plugins see: 2024-01-01T00:00:00Z. Fixed so outputs stay pure.
pub const FIXED_WALL_CLOCK_SECS: u64 = 1_704_067_200;

/// The seed behind every plugin's randomness.
const RANDOM_SEED: u128 = 0x636d_6473_636f_7065_2d73_6565_6421_0000;

/// Interfaces a plugin may import. Everything else (sockets, HTTP, anything unknown) is
/// refused at load with the import's name. Filesystem is linked with zero preopens, clocks
/// are fixed and randomness is seeded: importing them grants nothing.
const ALLOWED_IMPORT_PREFIXES: [&str; 7] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:clocks/",
    "wasi:random/",
    "cmdscope:plugin/host@0.1.",
    "cmdscope:plugin/types@0.1.",
];

/// What a store holds: WASI state with nothing behind it, the memory cap, what the host
/// interface serves (the plugin's name and settings), and the running call's budget.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) plugin: Arc<str>,
    pub(crate) settings: Arc<BTreeMap<String, String>>,
    budget: CallBudget,
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
        let wall_cap = (deadline * 20).max(Duration::from_secs(1));
        if self.wall_at_start.elapsed() >= wall_cap {
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
    /// Starts the budget of a call (or an instantiation) about to run on this thread.
    pub(crate) fn begin_call(&mut self) {
        self.budget = CallBudget::now();
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

impl host::Host for PluginState {
    fn log(&mut self, level: host::LogLevel, message: String) {
        let plugin = &*self.plugin;
        let message = truncate_for_log(&message);
        match level {
            host::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            host::LogLevel::Info => tracing::info!(plugin, "{message}"),
            host::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            host::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn setting(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).cloned()
    }
}

/// A plugin cannot flood the log: lines are cut at 1 KiB.
fn truncate_for_log(message: &str) -> &str {
    let mut end = message.len().min(1024);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].trim_end()
}

/// The engine, the linker and the limits shared by every plugin.
pub(crate) struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) limits: SandboxLimits,
}

impl Sandbox {
    pub(crate) fn new(limits: SandboxLimits) -> wasmtime::Result<Sandbox> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        // Deadlines: the epoch advances every EPOCH_TICK; each call sets its own deadline.
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        link_wasi(&mut linker)?;
        host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
        Ok(Sandbox {
            engine,
            linker,
            limits,
        })
    }

    /// A fresh store for one instance of `plugin`.
    pub(crate) fn store(
        &self,
        plugin: Arc<str>,
        settings: Arc<BTreeMap<String, String>>,
    ) -> Store<PluginState> {
        let log = LogStream {
            plugin: plugin.clone(),
        };
        let mut wasi = WasiCtx::builder();
        wasi.stdout(log.clone())
            .stderr(log)
            .wall_clock(FixedWallClock)
            .monotonic_clock(FixedMonotonicClock)
            .secure_random(wasmtime_wasi::Deterministic::new(
                RANDOM_SEED.to_le_bytes().to_vec(),
            ))
            .insecure_random(wasmtime_wasi::Deterministic::new(
                RANDOM_SEED.to_be_bytes().to_vec(),
            ))
            .insecure_random_seed(RANDOM_SEED);
        let state = PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .trap_on_grow_failure(true)
                .instances(16)
                .build(),
            plugin,
            settings,
            budget: CallBudget::now(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The epoch deadline (set per call to the timeout) is a check point, see `CallBudget`.
        let (deadline, ticks) = (self.limits.timeout, self.deadline_ticks());
        store.epoch_deadline_callback(move |mut ctx| {
            Ok(ctx.data_mut().budget.on_deadline(deadline, ticks))
        });
        store
    }

    /// Ticks to allow one call.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let ticks = self.limits.timeout.as_micros() / EPOCH_TICK.as_micros().max(1);
        (ticks as u64).max(1)
    }
}

/// Refuses a component whose imports the sandbox does not provide, naming them.
pub(crate) fn check_imports(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<(), LoadError> {
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

/// Links the WASI interfaces std guests import, with nothing behind them. Deliberately not
/// linked: `wasi:sockets/*` and `wasi:http/*`.
fn link_wasi(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    type S = PluginState;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    sync::filesystem::types::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    random::random::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(l, |s| s.wasi.random())?;
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<S, IoTable>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<S, IoTable>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<S, IoTable>(l, |s| &mut s.table)?;
    Ok(())
}

/// `wasi:io` host functions only need the resource table.
struct IoTable;

impl wasmtime::component::HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
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

struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(FIXED_WALL_CLOCK_SECS)
    }
}

struct FixedMonotonicClock;

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Guest stdout/stderr, line by line into the host log.
#[derive(Clone)]
struct LogStream {
    plugin: Arc<str>,
}

impl LogStream {
    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(plugin = &*self.plugin, "stdout: {}", truncate_for_log(line));
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
