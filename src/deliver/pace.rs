//! The bot-wide pace: Telegram counts requests per bot, so every call of a bot passes one
//! [`RateGate`]. A 429 pauses the whole gate for `retry_after`, not just the call that met it.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

pub type GateFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Admits requests at the bot's pace. In-process here; shared across workers later.
pub trait RateGate: Send + Sync {
    /// Waits until one more request may be sent, and takes that slot.
    fn acquire(&self) -> GateFuture<'_>;
    /// Telegram asked to wait: nobody sends before `wait` has passed.
    fn pause(&self, wait: Duration);
}

/// A GCRA limiter (governor) for one process: at most `burst` requests at once, then one
/// every `1 / pace` seconds, so any one-second window holds at most `pace + burst` calls.
pub struct LocalGate {
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl LocalGate {
    /// `pace` requests per second (fractions allowed), `burst` at least 1.
    pub fn new(pace: f64, burst: u32) -> LocalGate {
        let period = Duration::from_secs_f64(1.0 / pace.max(0.001));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        LocalGate {
            limiter: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
        }
    }

    fn pause_end(&self) -> Option<Instant> {
        let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        until.filter(|u| *u > Instant::now())
    }
}

impl RateGate for LocalGate {
    fn acquire(&self) -> GateFuture<'_> {
        Box::pin(async move {
            loop {
                if let Some(until) = self.pause_end() {
                    tokio::time::sleep_until(until).await;
                }
                self.limiter.until_ready().await;
                // A 429 met by another call while this one waited: wait that out too.
                if self.pause_end().is_none() {
                    return;
                }
            }
        })
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_gate_keeps_the_pace_and_honours_pauses() {
        let gate = LocalGate::new(10.0, 2);
        let start = Instant::now();
        for _ in 0..2 {
            gate.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(5),
            "the burst is free"
        );
        gate.acquire().await;
        gate.pause(Duration::from_secs(3));
        gate.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
