//! Instances of one plugin: made from its `InstancePre` (linking done once at load), reused
//! between calls, discarded after any trap.
//!
//! Measured (see README): a call on a reused instance costs well under a microsecond more than
//! the guest's own work, a fresh `Store` + instantiate about 10-25 us, so instances are reused.
//! A trap poisons the whole `Store`, so a trapped instance is dropped, never returned to the pool.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use wasmtime::Store;

use super::PluginSettings;
use super::log::LogGate;
use super::sandbox::{CallLimits, Sandbox};
use super::store::{LimitHit, PluginState};

/// Idle instances kept per plugin: enough for every worker thread of a busy host.
const MAX_IDLE: usize = 16;

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallFailure {
    Timeout(Duration),
    MemoryLimit(usize),
    TableLimit(usize),
    Trap(String),
    Oversized(usize, usize),
    Malformed(String),
}

impl CallFailure {
    /// A short name for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CallFailure::Timeout(_) => "timeout",
            CallFailure::MemoryLimit(_) => "memory_limit",
            CallFailure::TableLimit(_) => "table_limit",
            CallFailure::Trap(_) => "trap",
            CallFailure::Oversized(..) => "oversized",
            CallFailure::Malformed(_) => "malformed",
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailure::Timeout(d) => write!(
                f,
                "timed out: interrupted after its {} ms deadline",
                d.as_millis()
            ),
            CallFailure::MemoryLimit(bytes) => write!(f, "hit the {} MiB memory cap", bytes >> 20),
            CallFailure::TableLimit(elements) => {
                write!(f, "hit the {elements}-element table cap")
            }
            CallFailure::Trap(why) => write!(f, "trapped: {why}"),
            CallFailure::Oversized(len, max) => {
                write!(f, "answered {len} bytes, over the {max}-byte cap")
            }
            CallFailure::Malformed(why) => write!(f, "malformed answer: {why}"),
        }
    }
}

/// The generated bindings of one world, instantiable from its `InstancePre`.
pub(crate) trait WorldBindings: Sized + Send + 'static {
    type Pre: Send + Sync + 'static;
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self>;
}

struct Live<W> {
    store: Store<PluginState>,
    bindings: W,
}

pub(crate) struct Instances<W: WorldBindings> {
    sandbox: Arc<Sandbox>,
    pre: W::Pre,
    idle: Mutex<Vec<Live<W>>>,
    identity: RwLock<Identity>,
    /// The plugin's log budget, shared by its instances.
    log: Arc<LogGate>,
}

/// The plugin's name (for logs), settings and limits; until `info` has answered, the file name,
/// no settings and the limits any configured plugin may have.
#[derive(Clone)]
struct Identity {
    name: Arc<str>,
    settings: Arc<BTreeMap<String, String>>,
    limits: CallLimits,
}

impl<W: WorldBindings> Instances<W> {
    /// `first` is what calls run within until `configure` names the plugin.
    pub(crate) fn new(sandbox: Arc<Sandbox>, pre: W::Pre, file: &str, first: CallLimits) -> Self {
        let limits = first;
        Instances {
            sandbox,
            pre,
            idle: Mutex::new(Vec::new()),
            identity: RwLock::new(Identity {
                name: Arc::from(file),
                settings: Arc::default(),
                limits,
            }),
            log: LogGate::new(),
        }
    }

    /// Names the plugin and gives it its settings and limits. Instances made before (under
    /// the first limits, for `info`) are dropped, and one is made under the plugin's own
    /// limits: a plugin that does not fit them is refused now, not at its first call.
    pub(crate) fn configure(
        &self,
        name: &str,
        settings: &PluginSettings,
    ) -> Result<(), CallFailure> {
        let name: Arc<str> = Arc::from(name);
        let mut own = settings.get(&*name).cloned().unwrap_or_default();
        let limits = CallLimits::for_plugin(&self.sandbox.limits, &own);
        // Limits are the host's business; the plugin reads only its own settings.
        own.retain(|key, _| !crate::config::PLUGIN_LIMIT_KEYS.contains(&key.as_str()));
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = Identity {
            name,
            settings: Arc::new(own),
            limits,
        };
        self.lock_idle().clear();
        let first = self.fresh()?;
        self.lock_idle().push(first);
        Ok(())
    }

    fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The limits calls run within now.
    pub(crate) fn limits(&self) -> CallLimits {
        self.identity().limits
    }

    /// Linear memory an idle instance holds (the largest, when several are idle).
    pub(crate) fn instance_memory(&self) -> Option<usize> {
        self.lock_idle()
            .iter()
            .map(|live| live.store.data().memory_in_use())
            .max()
    }

    pub(crate) fn max_output(&self) -> usize {
        self.sandbox.limits.max_output_bytes
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Live<W>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self) -> Result<Live<W>, CallFailure> {
        let Identity {
            name,
            settings,
            limits,
        } = self.identity();
        let mut store = self.sandbox.store(name, settings, self.log.clone(), limits);
        // Instantiation runs guest code too (initialisers): it gets the same deadline.
        store.data_mut().begin_call();
        store.set_epoch_deadline(limits.deadline_ticks());
        let _ticking = self.sandbox.ticker.running();
        let bindings = W::instantiate(&self.pre, &mut store).map_err(|e| self.classify(e))?;
        Ok(Live { store, bindings })
    }

    /// Runs one call on an idle instance (or a fresh one) under the deadline. The instance
    /// goes back to the pool only if the call did not trap.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&W, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let reuse = self.sandbox.limits.reuse_instances;
        let idle = if reuse { self.lock_idle().pop() } else { None };
        let mut live = match idle {
            Some(live) => live,
            None => self.fresh()?,
        };
        live.store.data_mut().begin_call();
        live.store
            .set_epoch_deadline(self.limits().deadline_ticks());
        let ticking = self.sandbox.ticker.running();
        let result = f(&live.bindings, &mut live.store);
        drop(ticking);
        live.store.data().end_call();
        match result {
            Ok(r) => {
                if reuse {
                    let mut idle = self.lock_idle();
                    if idle.len() < MAX_IDLE {
                        idle.push(live);
                    }
                }
                Ok(r)
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: wasmtime::Error) -> CallFailure {
        match PluginState::limit_hit(&e) {
            Some(LimitHit::Memory { cap, .. }) => return CallFailure::MemoryLimit(cap),
            Some(LimitHit::Table { cap, .. }) => return CallFailure::TableLimit(cap),
            None => {}
        }
        // The guest's frames (with function names when the component has a name section),
        // the innermost few: where in the plugin it failed.
        let frames = e
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(|trace| {
                let all: Vec<String> = trace
                    .frames()
                    .iter()
                    .map(|f| match f.func_name() {
                        // Rust guests' symbols, readable (`std::process::abort`).
                        Some(name) => super::clip_display(
                            &format!("{:#}", rustc_demangle::demangle(name)),
                            120,
                        ),
                        None => format!("func[{}]", f.func_index()),
                    })
                    .collect();
                // The panic and abort machinery says nothing about the plugin: skip it.
                let runtime = |n: &str| {
                    [
                        "std::",
                        "core::",
                        "alloc::",
                        "__rustc::",
                        "abort",
                        "rust_panic",
                    ]
                    .iter()
                    .any(|p| n.starts_with(p))
                };
                let own: Vec<String> = all.iter().filter(|n| !runtime(n)).cloned().collect();
                let names: Vec<String> = if own.is_empty() { all } else { own }
                    .into_iter()
                    .take(4)
                    .collect();
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", names.join(" < "))
                }
            })
            .unwrap_or_default();
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => CallFailure::Timeout(self.limits().timeout),
            Some(wasmtime::Trap::StackOverflow) => {
                CallFailure::Trap(format!("stack overflow (unbounded recursion?){frames}"))
            }
            Some(wasmtime::Trap::UnreachableCodeReached) => CallFailure::Trap(format!(
                "`unreachable` executed (the plugin panicked or aborted){frames}"
            )),
            Some(other) => CallFailure::Trap(format!("{other}{frames}")),
            None => CallFailure::Trap(super::root_cause(&e)),
        }
    }
}
