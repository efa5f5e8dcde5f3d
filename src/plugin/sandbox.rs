//! The sandbox every plugin runs in: one wasmtime `Engine` with epoch interruption, a linker
//! that denies capabilities rather than interfaces (see `wasi.rs`), the import allow-list,
//! and stores made of `store.rs`'s per-store state within a plugin's `CallLimits`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, ResourceType};
use wasmtime::{Engine, Store};

use super::LoadError;
use super::log::LogGate;
use super::store::MAX_RESOURCES;
use super::store::PluginState;
use crate::config::SandboxLimits;

/// How often the epoch advances; a call's deadline is counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The fixed wall-clock time plugins see: 2024-01-01T00:00:00Z. Fixed so outputs stay pure.
pub const FIXED_WALL_CLOCK_SECS: u64 = 1_704_067_200;

/// Interfaces a plugin may import. Everything else (HTTP, anything unknown) is refused at
/// load with the import's name. Filesystem is linked with zero preopens, clocks are fixed,
/// randomness is seeded and every socket function traps: importing them grants nothing.
/// (componentize-py links CPython's socket module, so its components import `wasi:sockets`
/// whether they use it or not.)
/// (cmdscope's own `host` and `types`, of every version spoken, come from `bindings`.)
const ALLOWED_IMPORT_PREFIXES: [&str; 6] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:filesystem/",
    "wasi:clocks/",
    "wasi:random/",
    SOCKETS,
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

/// The engine, the linker and the limits shared by every plugin.
pub(crate) struct Sandbox {
    pub(crate) engine: Engine,
    /// Advances the epoch while guest code runs.
    pub(crate) ticker: Ticker,
    linker: Linker<PluginState>,
    pub(crate) limits: SandboxLimits,
}

impl Sandbox {
    /// `hosts` links the `host` interface of every version spoken (`bindings::add_hosts`).
    pub(crate) fn new(
        limits: SandboxLimits,
        hosts: fn(&mut Linker<PluginState>) -> wasmtime::Result<()>,
    ) -> wasmtime::Result<Sandbox> {
        let engine = Engine::new(&engine_config())?;
        let ticker = Ticker::start(&engine);

        let mut linker = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker)?;
        hosts(&mut linker)?;
        Ok(Sandbox {
            engine,
            ticker,
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
        let state = PluginState::new(
            plugin,
            settings,
            gate,
            limits.memory_bytes,
            self.limits.table_elements,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_max_component_handles(MAX_RESOURCES);
        // The epoch deadline (set per call to the timeout) is a check point, see `CallBudget`.
        let (deadline, ticks) = (limits.timeout, limits.deadline_ticks());
        store.epoch_deadline_callback(move |mut ctx| {
            Ok(ctx.data_mut().on_deadline(deadline, ticks))
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
pub(crate) fn check_imports(
    engine: &Engine,
    component: &Component,
    plugin_imports: &[String],
) -> Result<(), LoadError> {
    let allowed = |name: &str| {
        ALLOWED_IMPORT_PREFIXES.iter().any(|p| name.starts_with(p))
            || plugin_imports.iter().any(|p| name.starts_with(p.as_str()))
    };
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !allowed(name))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(LoadError::ForbiddenImport(refused))
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while guest code runs, and sleeps
/// otherwise: an idle host (or one whose users' answers come from the cache) wakes no thread
/// a thousand times a second. A call's deadline counts ticks from when it starts; the first
/// call after a quiet spell wakes the thread (`unpark`, a no-op when it is awake). Holds only
/// a weak engine reference: the thread ends within a second of the last `Engine` clone.
pub(crate) struct Ticker {
    running: Arc<AtomicUsize>,
    thread: std::thread::Thread,
}

/// Held while guest code runs (see [`Ticker::running`]).
pub(crate) struct Ticking<'a>(&'a Ticker);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Release);
    }
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let weak = engine.weak();
        let running = Arc::new(AtomicUsize::new(0));
        let calls = running.clone();
        let handle = std::thread::Builder::new()
            .name("cmdscope-epoch".into())
            .spawn(move || {
                loop {
                    if calls.load(Ordering::Acquire) == 0 {
                        // An unpark between the load and the park is not lost: park returns.
                        std::thread::park_timeout(Duration::from_secs(1));
                        if weak.upgrade().is_none() {
                            return;
                        }
                        continue;
                    }
                    let Some(engine) = weak.upgrade() else { return };
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawn the epoch ticker thread");
        Ticker {
            running,
            thread: handle.thread().clone(),
        }
    }

    /// The epoch advances until the guard drops: take it before guest code runs.
    pub(crate) fn running(&self) -> Ticking<'_> {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Ticking(self)
    }
}
