//! Opening the state backend a bot names (`[state]`, or `--state`): the store of applied state
//! and known users, and on Redis the pace gate and per-list turns its workers share. The host
//! and the CLI open it here, once, and hand the parts to the manager they build.

use std::sync::Arc;

use crate::coalesce::SharedTurns;
use crate::config::StateBackend;
use crate::deliver::{BotApi, Delivery, DeliveryOptions, RateGate};
use crate::engine::Engine;
use crate::manager::CommandManager;
use crate::state::{FileStore, MemoryStore, StateStore};

/// A backend, opened.
#[derive(Clone)]
pub struct Opened {
    pub store: Arc<dyn StateStore>,
    /// With Redis: the bot-wide pace and the per-list turns every worker takes.
    pub shared: Option<Shared>,
}

/// What a bot's workers share besides the store.
#[derive(Clone)]
pub struct Shared {
    pub gate: Arc<dyn RateGate>,
    pub turns: Arc<dyn SharedTurns>,
    /// Orders this worker's writes by the fleet release it serves.
    #[cfg(feature = "redis")]
    pub redis: crate::redis::RedisShared,
}

/// Opens `backend`. A Redis backend without a key prefix takes `default_prefix` (the CLI's is
/// `cmdscope:<bot id>`); without either it is an error saying how to name one. `delivery`'s
/// pace and burst configure the shared gate.
pub fn open(
    backend: &StateBackend,
    default_prefix: Option<&str>,
    delivery: &DeliveryOptions,
) -> anyhow::Result<Opened> {
    Ok(match backend {
        StateBackend::Memory => Opened {
            store: Arc::new(MemoryStore::new()),
            shared: None,
        },
        StateBackend::File(path) => Opened {
            store: Arc::new(FileStore::open(path)?),
            shared: None,
        },
        #[cfg(feature = "redis")]
        StateBackend::Redis { url, key_prefix } => {
            let prefix = key_prefix.as_deref().or(default_prefix).ok_or_else(|| {
                anyhow::anyhow!(
                    "[state] is redis but names no key_prefix: set `key_prefix` (or give the host a prefix)"
                )
            })?;
            let shared = crate::redis::RedisShared::connect(url, prefix)?;
            Opened {
                store: Arc::new(crate::redis::RedisStore::new(shared.clone())),
                shared: Some(Shared {
                    gate: Arc::new(crate::redis::RedisGate::new(
                        shared.clone(),
                        delivery.pace,
                        delivery.burst,
                    )),
                    turns: Arc::new(crate::redis::RedisTurns::new(shared.clone())),
                    redis: shared,
                }),
            }
        }
        #[cfg(not(feature = "redis"))]
        StateBackend::Redis { .. } => {
            let _ = (default_prefix, delivery);
            anyhow::bail!("[state] is redis but cmdscope was built without the `redis` feature")
        }
    })
}

impl Opened {
    /// This worker serves fleet release `number` from now on: a list a newer release wrote is
    /// never overwritten by this worker's older rules (a store one process owns needs no
    /// ordering).
    pub fn serve_release(&self, number: u64) {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            shared.redis.serve_release(number);
        }
        #[cfg(not(feature = "redis"))]
        let _ = number;
    }

    /// A manager following `engine` (a slot the caller may swap) that delivers through `api`
    /// at the shared pace when there is one, and keeps its state in this store.
    pub fn manager(
        &self,
        engine: Arc<arc_swap::ArcSwap<Engine>>,
        api: Arc<dyn BotApi>,
        delivery: DeliveryOptions,
    ) -> CommandManager {
        match &self.shared {
            Some(shared) => CommandManager::with_engine_slot(
                engine,
                Arc::new(Delivery::with_gate(api, shared.gate.clone(), delivery)),
                self.store.clone(),
            )
            .with_shared_turns(shared.turns.clone()),
            None => CommandManager::with_engine_slot(
                engine,
                Arc::new(Delivery::new(api, delivery)),
                self.store.clone(),
            ),
        }
    }
}
