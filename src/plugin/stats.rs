//! Per plugin version: its calls by outcome and their latency, kept in the version itself (a
//! swap starts a new count, so a bad version is seen apart from the good one), for the
//! status page and a staged change's checks. `/metrics` gets the same through `metrics`
//! (`cmdscope_plugin_calls_total`, `cmdscope_plugin_call_seconds`, labelled by version).
//!
//! Latency is a log-linear histogram of microseconds (8 buckets per power of two: a quantile
//! is within 12.5% of the truth) held in atomics: recording is two relaxed increments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::metrics::PLUGIN_OUTCOMES;

/// Sub-buckets per power of two.
const SUB: u32 = 8;
const SUB_BITS: u32 = 3;
/// Enough for 2^40 us (12 days): every call fits.
const BUCKETS: usize = ((40 - SUB_BITS + 1) * SUB) as usize;

pub struct CallStats {
    outcomes: [AtomicU64; PLUGIN_OUTCOMES.len()],
    buckets: Box<[AtomicU64; BUCKETS]>,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

/// What a version's calls came to, as the status page shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallSummary {
    /// Answers (a batch counts each of its users).
    pub answers: u64,
    pub ok: u64,
    /// Answers the engine replaced by `default_profile` (or, for a translator, by the next
    /// translator): refusals, failures, undeclared profiles, quarantine.
    pub fallbacks: u64,
    /// Crossings into the sandbox timed (a batch is one).
    pub crossings: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl CallStats {
    /// One answer's outcome (one of `PLUGIN_OUTCOMES`).
    pub(crate) fn outcome(&self, outcome: &str) {
        if let Some(i) = PLUGIN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One crossing's time.
    pub(crate) fn took(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> CallSummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let crossings: u64 = counts.iter().sum();
        let quantile = |q: f64| -> u64 {
            if crossings == 0 {
                return 0;
            }
            let rank = ((crossings as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return upper(i);
                }
            }
            upper(BUCKETS - 1)
        };
        let max_us = counts.iter().rposition(|&n| n > 0).map(upper).unwrap_or(0);
        let by = |o: &str| {
            PLUGIN_OUTCOMES
                .iter()
                .position(|x| *x == o)
                .map_or(0, |i| self.outcomes[i].load(Ordering::Relaxed))
        };
        let answers: u64 = self
            .outcomes
            .iter()
            .map(|o| o.load(Ordering::Relaxed))
            .sum();
        let ok = by("ok");
        CallSummary {
            answers,
            ok,
            fallbacks: answers - ok,
            crossings,
            p50_us: quantile(0.50),
            p99_us: quantile(0.99),
            max_us,
        }
    }
}

/// The bucket of `us`: exact below 8, then 8 per power of two.
fn bucket(us: u64) -> usize {
    if us < u64::from(SUB) {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (octave - SUB_BITS)) & u64::from(SUB - 1);
    (((octave - SUB_BITS + 1) * SUB) as usize + sub as usize).min(BUCKETS - 1)
}

/// The largest value of bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return i;
    }
    let octave = i / sub - 1 + u64::from(SUB_BITS);
    let step = 1u64 << (octave - u64::from(SUB_BITS));
    (1u64 << octave) + (i % sub + 1) * step - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for us in [0, 1, 7, 8, 9, 15, 16, 100, 760, 1_000, 61_500, 5_000_000] {
            let b = bucket(us);
            assert!(upper(b) >= us, "{us} in bucket {b} (upper {})", upper(b));
            assert!(b == 0 || upper(b - 1) < us, "{us}: bucket {b} too high");
            assert!(upper(b) - us <= us / 8 + 1, "{us}: bucket {b} too wide");
        }
    }

    #[test]
    fn quantiles_and_fallbacks() {
        let stats = CallStats::default();
        for _ in 0..98 {
            stats.took(Duration::from_micros(100));
            stats.outcome("ok");
        }
        stats.took(Duration::from_millis(20));
        stats.outcome("trap");
        stats.took(Duration::from_millis(20));
        stats.outcome("undeclared");
        let s = stats.summary();
        assert_eq!(
            (s.answers, s.ok, s.fallbacks, s.crossings),
            (100, 98, 2, 100)
        );
        assert!((100..=112).contains(&s.p50_us), "{s:?}");
        assert!((20_000..=22_500).contains(&s.p99_us), "{s:?}");
        assert_eq!(s.max_us, s.p99_us);
    }
}
