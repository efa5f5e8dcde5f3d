//! When to try a failed call again: exponential backoff with jitter for server and transport
//! errors, and a bot-wide circuit breaker that stops hammering an API that keeps failing and
//! lets one probe call find out when it is back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bounded retries for 5xx, timeouts and connection errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Calls per operation, the first included (429 answers are not counted: Telegram said
    /// exactly when to come back).
    pub max_attempts: u32,
    /// The first backoff; doubles per attempt up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up on an operation once 429s have made it wait this long in total.
    pub max_flood_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_flood_wait: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): half the exponential step plus a
    /// random half, so workers that failed together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .base_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        step / 2 + step.mul_f64(fastrand::f64() / 2.0)
    }
}

/// The breaker's state, for reports and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Calls wait until the cooldown ends.
    Open,
    /// One probe call is deciding.
    HalfOpen,
}

/// What the breaker let a call through as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    Probe,
}

pub(crate) struct ApiBreaker {
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
    state: Mutex<Inner>,
}

struct Inner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
    cooldown: Duration,
}

/// How often a call waiting on a probe looks again.
const PROBE_POLL: Duration = Duration::from_millis(20);

impl ApiBreaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> ApiBreaker {
        ApiBreaker {
            threshold: threshold.max(1),
            base_cooldown: cooldown,
            max_cooldown: cooldown.saturating_mul(16),
            state: Mutex::new(Inner {
                consecutive_failures: 0,
                open_until: None,
                probing: false,
                cooldown,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state(&self) -> BreakerState {
        let s = self.lock();
        match (s.open_until, s.probing) {
            (_, true) => BreakerState::HalfOpen,
            (Some(_), false) => BreakerState::Open,
            (None, false) => BreakerState::Closed,
        }
    }

    /// Waits while the breaker is open or a probe is out; then admits the call.
    pub(crate) async fn admit(&self) -> Admission {
        loop {
            let wait = {
                let mut s = self.lock();
                match (s.open_until, s.probing) {
                    (None, false) => return Admission::Normal,
                    (Some(until), false) if Instant::now() >= until => {
                        s.open_until = None;
                        s.probing = true;
                        return Admission::Probe;
                    }
                    (Some(until), false) => until,
                    (_, true) => Instant::now() + PROBE_POLL,
                }
            };
            tokio::time::sleep_until(wait).await;
        }
    }

    /// Records a call's result: `healthy` when the API answered (success, 4xx or 429).
    pub(crate) fn record(&self, admission: Admission, healthy: bool) {
        let mut s = self.lock();
        if healthy {
            s.consecutive_failures = 0;
            if admission == Admission::Probe {
                s.probing = false;
                s.cooldown = self.base_cooldown;
                tracing::info!("Bot API answers again: circuit closed");
            }
            return;
        }
        s.consecutive_failures += 1;
        let reopen = admission == Admission::Probe
            || (s.consecutive_failures >= self.threshold && s.open_until.is_none() && !s.probing);
        if reopen {
            if admission == Admission::Probe {
                s.probing = false;
                s.cooldown = (s.cooldown * 2).min(self.max_cooldown);
            }
            s.open_until = Some(Instant::now() + s.cooldown);
            tracing::warn!(
                failures = s.consecutive_failures,
                "Bot API keeps failing: circuit open for {:?}",
                s.cooldown
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_bounded() {
        let p = RetryPolicy {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for attempt in 1..30 {
            let step = Duration::from_millis(100 * (1 << (attempt - 1).min(10)))
                .min(Duration::from_secs(1));
            let b = p.backoff(attempt);
            assert!(b >= step / 2 && b <= step, "attempt {attempt}: {b:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_then_probes_once() {
        let breaker = ApiBreaker::new(3, Duration::from_secs(1));
        for _ in 0..3 {
            let a = breaker.admit().await;
            breaker.record(a, false);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let start = Instant::now();
        let probe = breaker.admit().await;
        assert_eq!(probe, Admission::Probe);
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // A failed probe reopens with a longer cooldown.
        breaker.record(probe, false);
        let start = Instant::now();
        let probe = breaker.admit().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        breaker.record(probe, true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit().await, Admission::Normal);
    }
}
