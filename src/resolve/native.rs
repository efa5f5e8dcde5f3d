//! Native resolvers and translators: rules and catalogs in Rust, for bots that need no plugin
//! and for tests.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ResolveError, Resolver, Translator, UserContext};
use crate::scope::Lang;

/// A resolver from a closure, for bots whose rules live in Rust.
pub struct FnResolver<F> {
    name: String,
    f: F,
}

impl<F> FnResolver<F>
where
    F: Fn(&UserContext) -> Result<String, ResolveError> + Send + Sync,
{
    pub fn new(name: &str, f: F) -> Self {
        FnResolver {
            name: name.to_string(),
            f,
        }
    }
}

impl<F> Resolver for FnResolver<F>
where
    F: Fn(&UserContext) -> Result<String, ResolveError> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        (self.f)(ctx)
    }
}

/// Everyone gets the same profile.
pub struct StaticResolver(pub String);

impl Resolver for StaticResolver {
    fn name(&self) -> &str {
        "static"
    }
    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from(format!("static:{}", self.0)))
    }
    fn resolve(&self, _: &UserContext) -> Result<String, ResolveError> {
        Ok(self.0.clone())
    }
}

/// The first rule whose boolean flag is true decides the profile; otherwise `otherwise`.
/// `FlagRules::tiered()` is the native twin of the `tiered-resolver` example plugin.
#[derive(Debug, Clone)]
pub struct FlagRules {
    rules: Vec<(String, String)>,
    otherwise: String,
}

impl FlagRules {
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str)>, otherwise: &str) -> Self {
        FlagRules {
            rules: rules
                .into_iter()
                .map(|(f, p)| (f.to_string(), p.to_string()))
                .collect(),
            otherwise: otherwise.to_string(),
        }
    }

    /// banned -> banned; admin -> admin; premium -> premium; registered -> user; else guest.
    pub fn tiered() -> Self {
        FlagRules::new(
            [
                ("banned", "banned"),
                ("admin", "admin"),
                ("premium", "premium"),
                ("registered", "user"),
            ],
            "guest",
        )
    }
}

impl Resolver for FlagRules {
    fn name(&self) -> &str {
        "flag-rules"
    }
    /// Pure: the answer depends on the rules and the context only.
    fn identity(&self) -> Option<Arc<str>> {
        Some(Arc::from(format!(
            "flag-rules:{:?}->{}",
            self.rules, self.otherwise
        )))
    }
    fn resolve(&self, ctx: &UserContext) -> Result<String, ResolveError> {
        let hit = self.rules.iter().find(|(flag, _)| ctx.is(flag));
        Ok(hit.map(|(_, p)| p).unwrap_or(&self.otherwise).clone())
    }
}

/// Translates nothing: descriptions come from the config alone.
pub struct NoTranslator;

impl Translator for NoTranslator {
    fn translate(&self, _: &str, _: Lang) -> Option<String> {
        None
    }
}

/// An in-memory catalog: language -> key -> text.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: HashMap<Lang, HashMap<String, String>>,
}

impl Catalog {
    pub fn insert(&mut self, language: Lang, key: &str, text: &str) {
        self.entries
            .entry(language)
            .or_default()
            .insert(key.to_string(), text.to_string());
    }

    /// Reads `{"es": {"shop.start.desc": "Iniciar"}}`.
    pub fn from_json(text: &str) -> Result<Catalog, serde_json::Error> {
        let raw: HashMap<Lang, HashMap<String, String>> = serde_json::from_str(text)?;
        Ok(Catalog { entries: raw })
    }
}

impl Translator for Catalog {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.entries.get(&language)?.get(key).cloned()
    }
}

/// Asks each translator in turn; the first answer wins.
#[derive(Clone, Default)]
pub struct TranslatorChain(pub Vec<Arc<dyn Translator>>);

impl Translator for TranslatorChain {
    fn translate(&self, key: &str, language: Lang) -> Option<String> {
        self.0.iter().find_map(|t| t.translate(key, language))
    }

    /// One batch per translator, each asked only for what the ones before it lacked.
    fn translate_batch(&self, keys: &[&str], language: Lang) -> Vec<Option<String>> {
        let mut out = vec![None; keys.len()];
        for translator in &self.0 {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let asked: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
            for (i, text) in missing
                .into_iter()
                .zip(translator.translate_batch(&asked, language))
            {
                out[i] = text;
            }
        }
        out
    }
}
