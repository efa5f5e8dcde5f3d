//! [`Delivery`]: every Bot API call of a bot goes through here, at the bot's pace, retried
//! when it may succeed later, counted, and reported when it cannot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tracing::Instrument;

use super::lanes::{Lane, Lanes};
use super::pace::{LocalGate, RateGate};
use super::retry::{Admission, ApiBreaker, BreakerState, RetryPolicy};
use super::{ApiError, ApiFuture, BotApi};
use crate::config::MenuButton;
use crate::metrics;
use crate::scope::ListKey;
use crate::sync::Op;

/// How a bot's calls are paced and retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryOptions {
    /// Requests per second for the whole bot (Telegram allows about 30).
    pub pace: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
    pub retry: RetryPolicy,
    /// Consecutive server or transport failures that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit waits before a probe (doubles while probes fail).
    pub breaker_cooldown: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            pace: 25.0,
            burst: 5,
            retry: RetryPolicy::default(),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }
}

/// Proof that the breaker admitted a call and the gate gave it a slot; spend it at once.
#[must_use = "a permit is a slot of the bot's pace"]
pub struct Permit {
    admission: Admission,
    /// Retries of the call wait in the same lane.
    lane: Lane,
}

/// Counters since the delivery was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// HTTP requests made, by Bot API method (retries included).
    pub calls: BTreeMap<&'static str, u64>,
    /// Answers that were 429.
    pub rate_limited: u64,
    /// Requests repeated after a retryable failure.
    pub retries: u64,
    /// Operations that failed for good (reported to the caller).
    pub failed: u64,
}

const METHODS: [&str; 3] = ["setMyCommands", "deleteMyCommands", "setChatMenuButton"];

#[derive(Default)]
struct Counters {
    calls: [AtomicU64; 3],
    rate_limited: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// A bot's Bot API client with its pace, retries and breaker.
pub struct Delivery {
    api: Arc<dyn BotApi>,
    gate: Arc<dyn RateGate>,
    lanes: Lanes,
    retry: RetryPolicy,
    breaker: ApiBreaker,
    counters: Counters,
}

impl Delivery {
    pub fn new(api: Arc<dyn BotApi>, options: DeliveryOptions) -> Delivery {
        let gate = Arc::new(LocalGate::new(options.pace, options.burst));
        Delivery::with_gate(api, gate, options)
    }

    /// A delivery whose pace is kept by `gate` (shared with other workers of the same bot);
    /// `options.pace` and `burst` are then the gate's business.
    pub fn with_gate(
        api: Arc<dyn BotApi>,
        gate: Arc<dyn RateGate>,
        options: DeliveryOptions,
    ) -> Delivery {
        Delivery {
            api,
            gate,
            lanes: Lanes::default(),
            retry: options.retry,
            breaker: ApiBreaker::new(options.breaker_threshold, options.breaker_cooldown),
            counters: Counters::default(),
        }
    }

    pub fn api(&self) -> &Arc<dyn BotApi> {
        &self.api
    }

    /// Waits for the breaker and the bot's pace, in the live lane. Callers that can still
    /// change their mind (coalescing) wait here first and decide what to send afterwards.
    pub async fn ready(&self) -> Permit {
        self.ready_in(Lane::Live).await
    }

    /// [`ready`](Self::ready) in `lane`: background work yields the pace to live updates.
    pub async fn ready_in(&self, lane: Lane) -> Permit {
        let admission = self.breaker.admit().await;
        self.lanes.through(lane, self.gate.as_ref()).await;
        Permit { admission, lane }
    }

    /// Applies one list operation, retrying as the policy allows.
    pub async fn apply(&self, permit: Permit, key: &ListKey, op: &Op) -> Result<(), ApiError> {
        let method = op.method();
        // The list and method only: the request URL holds the token and is never recorded.
        let span = tracing::debug_span!("bot_api", method, list = %key);
        let result = self
            .run(Some(permit), method, || match op {
                Op::Set(menu) => self.api.set_my_commands(key, menu),
                Op::Delete => self.api.delete_my_commands(key),
            })
            .instrument(span)
            .await;
        if let Err(e) = &result {
            tracing::warn!(list = %key, method, "Bot API call failed: {e}");
        }
        result
    }

    /// `setChatMenuButton` for the bot's default button, paced and retried.
    pub async fn set_default_menu_button(&self, button: MenuButton) -> Result<(), ApiError> {
        let result = self
            .run(None, "setChatMenuButton", || {
                self.api.set_default_menu_button(button)
            })
            .await;
        if let Err(e) = &result {
            tracing::warn!("setChatMenuButton failed: {e}");
        }
        result
    }

    async fn run<'a>(
        &'a self,
        mut permit: Option<Permit>,
        method: &'static str,
        call: impl Fn() -> ApiFuture<'a>,
    ) -> Result<(), ApiError> {
        let mut failures = 0;
        let mut flood_wait = Duration::ZERO;
        let lane = permit.as_ref().map_or(Lane::Live, |p| p.lane);
        loop {
            let admission = match permit.take() {
                Some(p) => p.admission,
                None => self.ready_in(lane).await.admission,
            };
            self.count_call(method);
            let error = match call().await {
                Ok(()) => {
                    self.record(admission, true);
                    metrics::bot_api_request(method, "ok");
                    return Ok(());
                }
                Err(e) => e,
            };
            match &error {
                ApiError::RetryAfter(wait) => {
                    self.record(admission, true);
                    metrics::bot_api_request(method, "rate_limited");
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    self.gate.pause(*wait);
                    flood_wait += *wait;
                    if flood_wait > self.retry.max_flood_wait {
                        return Err(self.give_up(method, error));
                    }
                }
                e if e.is_retryable() => {
                    self.record(admission, false);
                    metrics::bot_api_request(method, "server_error");
                    failures += 1;
                    if failures >= self.retry.max_attempts {
                        return Err(self.give_up(method, error));
                    }
                    tokio::time::sleep(self.retry.backoff(failures)).await;
                }
                _ => {
                    // Telegram answered and refused: the API is fine, the request is not.
                    self.record(admission, true);
                    metrics::bot_api_request(method, "refused");
                    return Err(self.give_up(method, error));
                }
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            metrics::bot_api_retry();
        }
    }

    fn give_up(&self, method: &'static str, error: ApiError) -> ApiError {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        metrics::bot_api_failure(method);
        error
    }

    fn record(&self, admission: Admission, healthy: bool) {
        self.breaker.record(admission, healthy);
        metrics::breaker_state(match self.breaker.state() {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        });
    }

    fn count_call(&self, method: &str) {
        if let Some(i) = METHODS.iter().position(|m| *m == method) {
            self.counters.calls[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn stats(&self) -> DeliveryStats {
        let c = &self.counters;
        DeliveryStats {
            calls: METHODS
                .iter()
                .zip(&c.calls)
                .map(|(m, n)| (*m, n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}
