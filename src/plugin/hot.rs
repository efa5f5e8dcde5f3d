//! Handles that always call the version of a plugin serving when a call starts (a call in
//! flight finishes on the version it started with).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{WasmResolver, WasmTranslator};
use crate::resolve::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

/// A `Resolver` that calls whatever version of its plugin is current when a call starts.
#[derive(Clone)]
pub struct HotResolver {
    pub(super) name: String,
    pub(super) slot: Arc<ArcSwap<WasmResolver>>,
}

impl HotResolver {
    /// The version serving now.
    pub fn current(&self) -> Arc<WasmResolver> {
        self.slot.load_full()
    }
}

impl Resolver for HotResolver {
    fn name(&self) -> &str {
        &self.name
    }

    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        // The snapshot lives until the call returns, even if a swap happens meanwhile.
        let current = self.slot.load_full();
        current.resolve(ctx)
    }

    fn may_block(&self) -> bool {
        true
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.slot.load().identity()
    }

    fn resolve_identified(
        &self,
        ctx: &UserContext,
    ) -> (Option<Arc<str>>, Result<String, ResolveError>) {
        let current = self.slot.load_full();
        (current.identity(), current.resolve(ctx))
    }

    /// One snapshot for the whole batch, so every answer of a page comes from one version,
    /// and the plugin's own batch call: a page crosses into the sandbox once per 128 users,
    /// not once per user.
    fn resolve_batch(&self, ctxs: &[&UserContext]) -> Vec<Result<String, ResolveError>> {
        self.slot.load_full().resolve_batch(ctxs)
    }
}

/// A `Translator` that calls whatever version of its plugin is current when a call starts.
#[derive(Clone)]
pub struct HotTranslator {
    pub(super) slot: Arc<ArcSwap<WasmTranslator>>,
}

impl Translator for HotTranslator {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.slot.load_full().translate(key, language)
    }

    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        self.slot.load_full().translate_batch(keys, language)
    }

    fn try_translate_batch(&self, keys: &[&str], language: Lang) -> Option<Vec<Option<String>>> {
        self.slot.load_full().try_translate_batch(keys, language)
    }

    fn identity(&self) -> Option<Arc<str>> {
        self.slot.load().identity()
    }
}
