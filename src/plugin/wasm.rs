//! The adapters from a sandboxed component to the engine's traits: [`WasmResolver`] and
//! [`WasmTranslator`] (quarantine after repeated crashes, bounded answers, batches, metrics,
//! trace spans).

use std::sync::Arc;

use super::breaker::Breaker;
use super::calls::{ResolverCalls, TranslatorCalls};
use super::instances::CallFailure;
use super::stats::{CallStats, CallSummary};
use super::{PluginInfo, clip};
use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

/// A resolver plugin: `Resolver` over a sandboxed component.
pub struct WasmResolver {
    pub(super) info: PluginInfo,
    /// sha256 of the bytes and of the plugin's settings: what its answers depend on.
    pub(super) identity: Arc<str>,
    pub(super) calls: Box<dyn ResolverCalls>,
    pub(super) breaker: Breaker,
    pub(super) calls_series: crate::metrics::Series<crate::metrics::PluginCalls>,
    /// This version's calls (a swap starts a new count).
    pub(super) stats: CallStats,
}

impl WasmResolver {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn call_summary(&self) -> CallSummary {
        self.stats.summary()
    }

    /// True while the plugin is quarantined after repeated crashes.
    pub fn is_quarantined(&self) -> bool {
        self.breaker.is_open()
    }
}

/// Users per `resolve-batch` crossing: the whole batch runs under one call deadline.
const BATCH: usize = 128;

impl WasmResolver {
    fn not_quarantined(&self) -> Result<(), ResolveError> {
        self.breaker.may_call().map_err(|left| {
            self.calls_series.with(|c| c.record("quarantined"));
            self.stats.outcome("quarantined");
            ResolveError::Failed(format!(
                "plugin is quarantined after repeated failures ({} s left)",
                left.as_secs()
            ))
        })
    }

    /// One answer as the engine takes it: an oversized profile is a failure, a refusal's
    /// message is clipped.
    fn answer(
        &self,
        answer: Result<String, String>,
    ) -> Result<Result<String, String>, CallFailure> {
        let max = self.calls.max_output();
        match answer {
            Ok(profile) if profile.len() > max => Err(CallFailure::Oversized(profile.len(), max)),
            Ok(profile) => Ok(Ok(profile)),
            Err(message) => Ok(Err(clip(&message, max))),
        }
    }

    fn record(&self, result: &Result<Result<String, String>, CallFailure>) {
        self.breaker.record(result.is_ok());
        self.count(result);
    }

    fn count(&self, result: &Result<Result<String, String>, CallFailure>) {
        let outcome = match result {
            // The engine falls back for a profile the plugin did not declare: so does its count.
            Ok(Ok(profile)) if !self.info.profiles.iter().any(|p| p == profile) => "undeclared",
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "rejected",
            Err(failure) => failure.kind(),
        };
        self.calls_series.with(|c| c.record(outcome));
        self.stats.outcome(outcome);
    }

    fn took(&self, function: &str, started: std::time::Instant) {
        let elapsed = started.elapsed();
        self.stats.took(elapsed);
        self.calls_series.with(|c| c.took(function, elapsed));
    }

    /// The engine's answer; a failure names the plugin, its version and sha256 and the WIT
    /// function (with the guest backtrace, when the component has a name section), in the
    /// error and the log: what a support engineer needs to find the version that broke.
    fn resolution(
        &self,
        function: &str,
        result: Result<Result<String, String>, CallFailure>,
    ) -> Result<String, ResolveError> {
        match result {
            Ok(Ok(profile)) => Ok(profile),
            Ok(Err(message)) => Err(ResolveError::Rejected(message)),
            Err(failure) => Err(ResolveError::Failed(failed_in(
                &self.info, function, &failure,
            ))),
        }
    }
}

impl Resolver for WasmResolver {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        self.not_quarantined()?;
        let _span =
            tracing::trace_span!("plugin_call", plugin = %self.info.name, function = "resolve")
                .entered();
        let started = std::time::Instant::now();
        let result = self.calls.resolve(ctx).and_then(|a| self.answer(a));
        self.took("resolve", started);
        self.record(&result);
        self.resolution("resolve", result)
    }

    /// Pages of [`BATCH`] users, one crossing each (interface 0.2). A page that fails as a
    /// whole (a trap, the deadline) is asked again user by user, so one context that makes
    /// the plugin fail costs only that user their answer.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        let mut out = Vec::with_capacity(ctxs.len());
        for page in ctxs.chunks(BATCH) {
            if let Err(e) = self.not_quarantined() {
                for _ in 1..page.len() {
                    self.stats.outcome("quarantined");
                }
                out.extend(page.iter().map(|_| Err(e.clone())));
                continue;
            }
            let _span = tracing::trace_span!(
                "plugin_call",
                plugin = %self.info.name,
                function = "resolve-batch",
                users = page.len()
            )
            .entered();
            let started = std::time::Instant::now();
            let answers = self.calls.resolve_batch(page);
            self.took("resolve-batch", started);
            match answers {
                Ok(answers) => {
                    self.breaker.record(true);
                    for answer in answers {
                        let result = self.answer(answer);
                        self.count(&result);
                        out.push(self.resolution("resolve-batch", result));
                    }
                }
                Err(failure) => {
                    failed_in(&self.info, "resolve-batch", &failure);
                    out.extend(page.iter().map(|ctx| self.resolve(ctx)));
                }
            }
        }
        out
    }

    fn may_block(&self) -> bool {
        true
    }

    /// The sandbox makes a plugin's answer a pure function of its bytes, context and settings.
    fn identity(&self) -> Option<Arc<str>> {
        Some(self.identity.clone())
    }
}

/// A translator plugin: `Translator` over a sandboxed component. A failing call answers "no
/// translation" (the description chain then falls back) and is logged.
pub struct WasmTranslator {
    pub(super) info: PluginInfo,
    /// sha256 of the bytes and of the plugin's settings: what its answers depend on.
    pub(super) identity: Arc<str>,
    pub(super) calls: Box<dyn TranslatorCalls>,
    pub(super) breaker: Breaker,
    pub(super) calls_series: crate::metrics::Series<crate::metrics::PluginCalls>,
    /// This version's calls (a swap starts a new count).
    pub(super) stats: CallStats,
}

impl WasmTranslator {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn call_summary(&self) -> CallSummary {
        self.stats.summary()
    }

    fn guarded<R>(&self, what: &str, call: impl FnOnce() -> Result<R, CallFailure>) -> Option<R> {
        let _span = tracing::trace_span!("plugin_call", plugin = %self.info.name, function = what)
            .entered();
        if self.breaker.may_call().is_err() {
            self.calls_series.with(|c| c.record("quarantined"));
            self.stats.outcome("quarantined");
            return None;
        }
        let started = std::time::Instant::now();
        let result = call();
        let elapsed = started.elapsed();
        self.stats.took(elapsed);
        self.calls_series.with(|c| c.took(what, elapsed));
        self.breaker.record(result.is_ok());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.kind(),
        };
        self.calls_series.with(|c| c.record(outcome));
        self.stats.outcome(outcome);
        match result {
            Ok(r) => Some(r),
            Err(failure) => {
                failed_in(&self.info, what, &failure);
                None
            }
        }
    }
}

impl Translator for WasmTranslator {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        let max = self.calls.max_output();
        self.guarded("translate", || {
            let text = self.calls.translate(key, language.as_str())?;
            match text {
                Some(t) if t.len() > max => Err(CallFailure::Oversized(t.len(), max)),
                other => Ok(other),
            }
        })
        .flatten()
    }

    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        self.try_translate_batch(keys, language)
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        let max = self.calls.max_output();
        let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.guarded("translate-batch", || {
            let texts = self.calls.translate_batch(&owned, language.as_str())?;
            if texts.len() != keys.len() {
                return Err(CallFailure::Malformed(format!(
                    "{} answers for {} keys",
                    texts.len(),
                    keys.len()
                )));
            }
            if let Some(long) = texts.iter().flatten().find(|t| t.len() > max) {
                return Err(CallFailure::Oversized(long.len(), max));
            }
            Ok(texts)
        })
    }

    fn identity(&self) -> Option<Arc<str>> {
        Some(self.identity.clone())
    }
}

/// A failed call, said once in the log and returned as the reason: `tiered-resolver 2.0.0
/// (c3e7d36e8e7d) `resolve`: trapped: ...`.
fn failed_in(info: &PluginInfo, function: &str, failure: &CallFailure) -> String {
    let sha = &info.sha256[..info.sha256.len().min(12)];
    tracing::warn!(
        plugin = %info.name,
        version = %info.version,
        sha256 = %info.sha256,
        function,
        "plugin call failed: {failure}"
    );
    format!(
        "{} {} ({sha}) `{function}`: {failure}",
        info.name, info.version
    )
}
