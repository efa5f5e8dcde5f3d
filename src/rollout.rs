//! A staged rollout of a resolver version: the candidate serves the users whose stable hash
//! falls within a percentage, the version serving now everyone else.
//!
//! [`Rollout`] is the record (kept in the state store, so every worker and every restart
//! follows the same one); [`in_canary`] decides who is in, the same on every machine;
//! [`SplitResolver`] is the resolver the engine gets while a rollout runs; [`verdict`] is the
//! automatic abort rule (`[rollout]`). The host (`host/rollout.rs`) starts, follows, promotes
//! and aborts rollouts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::RolloutSettings;
use crate::plugin::stats::CallSummary;
use crate::resolve::{ResolveError, Resolver, UserContext};

/// The store's document names: the record, and the candidate's bytes.
pub const RECORD: &str = "rollout";
pub const CANDIDATE: &str = "rollout.wasm";

/// A rollout under way, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The plugin name (the config's resolver).
    pub plugin: String,
    pub version: String,
    pub sha256: String,
    /// Share of users the candidate serves, 0 < percent <= 100.
    pub percent: f64,
    /// Seconds since 1970.
    pub started_at: u64,
}

/// Whether `user_id` is among the `percent` of users a rollout of `plugin` moves: a hash of
/// the plugin name and the user id (xxh3, the same on every machine and every version of
/// cmdscope), in basis points.
pub fn in_canary(plugin: &str, user_id: i64, percent: f64) -> bool {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(plugin.as_bytes());
    h.update(&[0]);
    h.update(&user_id.to_le_bytes());
    let basis_points = h.digest() % 10_000;
    (basis_points as f64) < percent * 100.0
}

/// The resolver while a rollout runs: the candidate for the users in the canary, the current
/// version for the rest (who are never asked the candidate: no call, no change).
pub struct SplitResolver {
    pub current: Arc<dyn Resolver>,
    pub candidate: Arc<dyn Resolver>,
    pub rollout: Rollout,
}

impl SplitResolver {
    fn moves(&self, ctx: &UserContext) -> bool {
        in_canary(&self.rollout.plugin, ctx.user_id, self.rollout.percent)
    }
}

impl Resolver for SplitResolver {
    fn name(&self) -> &str {
        self.current.name()
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        if self.moves(ctx) {
            self.candidate.resolve(ctx)
        } else {
            self.current.resolve(ctx)
        }
    }

    /// One batch to each version, answers back in input order.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        type Side<'c> = Vec<(usize, &'c UserContext)>;
        let (moved, kept): (Side, Side) = ctxs
            .iter()
            .copied()
            .enumerate()
            .partition(|(_, ctx)| self.moves(ctx));
        let mut out: Vec<Option<Result<String, ResolveError>>> = vec![None; ctxs.len()];
        for (side, resolver) in [(moved, &self.candidate), (kept, &self.current)] {
            if side.is_empty() {
                continue;
            }
            let refs: Vec<&UserContext> = side.iter().map(|(_, ctx)| *ctx).collect();
            for ((i, _), answer) in side.iter().zip(resolver.resolve_batch(&refs)) {
                out[*i] = Some(answer);
            }
        }
        out.into_iter()
            .map(|a| a.expect("every user answered by one side"))
            .collect()
    }

    fn may_block(&self) -> bool {
        self.current.may_block() || self.candidate.may_block()
    }

    /// Both versions and the share: a rollout's start, change and end each move the
    /// generation, so the users it moves are reconciled.
    fn identity(&self) -> Option<Arc<str>> {
        let current = self.current.identity()?;
        let candidate = self.candidate.identity()?;
        Some(Arc::from(format!(
            "rollout:{}:{current}:{candidate}",
            self.rollout.percent
        )))
    }
}

/// Why the candidate must be taken back, if it must: more than `max_fallback_percent` of its
/// answers fell back, over at least `min_calls` answers.
pub fn verdict(candidate: &CallSummary, settings: &RolloutSettings) -> Option<String> {
    if candidate.answers < settings.min_calls {
        return None;
    }
    let percent = candidate.fallbacks as f64 * 100.0 / candidate.answers as f64;
    (percent > settings.max_fallback_percent).then(|| {
        format!(
            "{} of the candidate's {} answers fell back ({percent:.1}%, more than [rollout] max_fallback_percent = {})",
            candidate.fallbacks, candidate.answers, settings.max_fallback_percent
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_is_the_share_asked_for_and_stable() {
        let moved = (1..=100_000)
            .filter(|&id| in_canary("tiered-resolver", id, 10.0))
            .count();
        assert!((9_500..=10_500).contains(&moved), "{moved} of 100,000");
        // A wider share keeps everyone the narrower one moved.
        assert!(
            (1..=10_000)
                .filter(|&id| in_canary("tiered-resolver", id, 10.0))
                .all(|id| in_canary("tiered-resolver", id, 25.0))
        );
        assert!((1..=1_000).all(|id| in_canary("x", id, 100.0)));
        assert!((1..=1_000).all(|id| !in_canary("x", id, 0.0)));
        // Pinned: every machine and every later version of cmdscope picks the same users.
        let first: Vec<i64> = (1..=200)
            .filter(|&id| in_canary("tiered-resolver", id, 10.0))
            .take(5)
            .collect();
        assert_eq!(first, PINNED);
    }

    const PINNED: [i64; 5] = [15, 24, 29, 30, 61];

    #[test]
    fn the_verdict_waits_for_enough_answers() {
        let settings = RolloutSettings::default();
        let summary = |answers, fallbacks| CallSummary {
            answers,
            ok: answers - fallbacks,
            fallbacks,
            ..CallSummary::default()
        };
        assert_eq!(verdict(&summary(99, 50), &settings), None);
        assert_eq!(verdict(&summary(100, 1), &settings), None);
        let why = verdict(&summary(100, 5), &settings).unwrap();
        assert!(why.contains("5 of the candidate's 100 answers"), "{why}");
    }
}
