//! Quarantine for a plugin that keeps crashing: after `threshold` consecutive failures it is
//! skipped for `cooldown`, then one call probes it; success closes the breaker, failure
//! reopens it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(time left)` while quarantined; after the cooldown, lets calls through as probes.
    pub(crate) fn may_call(&self) -> Result<(), Duration> {
        let mut state = self.lock();
        match state.open_until {
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Err(until - now)
                } else {
                    // Half-open: the next result decides.
                    state.open_until = None;
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    pub(crate) fn record(&self, ok: bool) {
        let mut state = self.lock();
        if ok {
            state.consecutive_failures = 0;
            return;
        }
        state.consecutive_failures += 1;
        if state.consecutive_failures >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock()
            .open_until
            .is_some_and(|until| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.may_call().is_ok());
            b.record(false);
        }
        assert!(!b.is_open());
        b.record(true); // a success resets the count
        for _ in 0..3 {
            b.may_call().unwrap();
            b.record(false);
        }
        assert!(b.is_open());
        assert!(b.may_call().is_err());
        std::thread::sleep(Duration::from_millis(40));
        // Probe fails: open again at once.
        b.may_call().unwrap();
        b.record(false);
        assert!(b.may_call().is_err());
        std::thread::sleep(Duration::from_millis(40));
        // Probe succeeds: closed.
        b.may_call().unwrap();
        b.record(true);
        assert!(!b.is_open());
        b.record(false);
        assert!(b.may_call().is_ok());
    }
}
