//! What a config's `resolver` and `translators` name, assembled into the engine's inputs:
//! plugins from a loaded folder and catalogs from files, in the config's order.

use std::sync::Arc;

use crate::catalog::{FileCatalog, TranslatorSource};
use crate::config::Config;
use crate::engine::Engine;
use crate::output_cache::CachedTranslator;
use crate::plugin::{LivePlugins, PluginSet};
use crate::resolve::{Resolver, Translator, TranslatorChain};

/// The resolver and the translator chain a config names.
pub struct Sources {
    /// `None` when the config names no resolver (or no plugin folder was given).
    pub resolver: Option<Arc<dyn Resolver>>,
    pub translator: TranslatorChain,
    /// The output caches in front of the chain's plugin translators (`[cache]`), for the
    /// engine to invalidate when a plugin is swapped.
    pub translation_caches: Vec<Arc<CachedTranslator>>,
    /// Plugins the config names that were skipped because no plugin folder was given.
    pub skipped: Vec<String>,
}

/// Where plugins are looked up by name: a folder loaded once, or a hot-reloading one (whose
/// plugins then follow every swap).
pub trait PluginLookup {
    fn resolver(&self, name: &str) -> Option<Arc<dyn Resolver>>;
    fn translator(&self, name: &str) -> Option<Arc<dyn Translator>>;
    /// One line saying what loaded (and what was rejected), for error messages.
    fn summary(&self) -> String;
}

impl PluginLookup for PluginSet {
    fn resolver(&self, name: &str) -> Option<Arc<dyn Resolver>> {
        PluginSet::resolver(self, name).map(|r| r as Arc<dyn Resolver>)
    }
    fn translator(&self, name: &str) -> Option<Arc<dyn Translator>> {
        PluginSet::translator(self, name).map(|t| t as Arc<dyn Translator>)
    }
    fn summary(&self) -> String {
        PluginSet::summary(self)
    }
}

impl PluginLookup for LivePlugins {
    fn resolver(&self, name: &str) -> Option<Arc<dyn Resolver>> {
        LivePlugins::resolver(self, name).map(|r| Arc::new(r) as Arc<dyn Resolver>)
    }
    fn translator(&self, name: &str) -> Option<Arc<dyn Translator>> {
        LivePlugins::translator(self, name).map(|t| Arc::new(t) as Arc<dyn Translator>)
    }
    fn summary(&self) -> String {
        let names: Vec<String> = self.current().into_iter().map(|(name, _)| name).collect();
        format!(
            "serving: {}",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        )
    }
}

/// A lookup with one plugin put in place of the one of its name (or beside the others): how
/// a candidate version is tried against the rules serving, without serving it.
pub struct WithCandidate<'a> {
    pub base: Option<&'a dyn PluginLookup>,
    pub candidate: &'a crate::plugin::Plugin,
}

impl PluginLookup for WithCandidate<'_> {
    fn resolver(&self, name: &str) -> Option<Arc<dyn Resolver>> {
        match self.candidate {
            crate::plugin::Plugin::Resolver(r) if r.info().name == name => {
                Some(r.clone() as Arc<dyn Resolver>)
            }
            _ => self.base?.resolver(name),
        }
    }
    fn translator(&self, name: &str) -> Option<Arc<dyn Translator>> {
        match self.candidate {
            crate::plugin::Plugin::Translator(t) if t.info().name == name => {
                Some(t.clone() as Arc<dyn Translator>)
            }
            _ => self.base?.translator(name),
        }
    }
    fn summary(&self) -> String {
        let info = self.candidate.info();
        let base = self.base.map(|b| b.summary()).unwrap_or_default();
        format!("candidate: {} {}; {base}", info.name, info.version)
    }
}

/// Looks up every name. With `plugins: None`, plugin names are skipped (and listed); with a
/// folder, a missing plugin is an error naming what did load. A catalog that fails to parse is
/// an error naming the file and line.
pub fn assemble(config: &Config, plugins: Option<&dyn PluginLookup>) -> Result<Sources, String> {
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut missing = Vec::new();
    let resolver = match (&config.resolver, plugins) {
        (None, _) => None,
        (Some(name), None) => {
            skipped.push(format!("resolver `{name}`"));
            None
        }
        (Some(name), Some(set)) => match set.resolver(name) {
            Some(r) => Some(r),
            None => {
                missing.push(format!("resolver `{name}`"));
                None
            }
        },
    };
    let mut chain: Vec<Arc<dyn Translator>> = Vec::new();
    let mut translation_caches = Vec::new();
    for entry in &config.translators {
        match TranslatorSource::parse(entry, &config.base_dir) {
            Err(e) => problems.push(e),
            Ok(TranslatorSource::Catalog { format, dir }) => {
                match FileCatalog::load(&dir, format, &config.languages) {
                    Ok(catalog) => chain.push(Arc::new(catalog)),
                    Err(errors) => problems.extend(errors.iter().map(|e| e.to_string())),
                }
            }
            Ok(TranslatorSource::Plugin(name)) => match plugins {
                None => skipped.push(format!("translator `{name}`")),
                Some(set) => match set.translator(&name) {
                    Some(t) if config.cache.capacity > 0 => {
                        let cached = Arc::new(CachedTranslator::new(t, &config.cache));
                        translation_caches.push(cached.clone());
                        chain.push(cached);
                    }
                    Some(t) => chain.push(t),
                    None => missing.push(format!("translator `{name}`")),
                },
            },
        }
    }
    if !missing.is_empty() {
        let set = plugins.expect("only looked up with a plugin set");
        problems.push(format!(
            "{} named in {} {} not loaded; {}",
            missing.join(", "),
            config.source,
            if missing.len() == 1 { "is" } else { "are" },
            set.summary()
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(Sources {
        resolver,
        translator: TranslatorChain(chain),
        translation_caches,
        skipped,
    })
}

/// An engine for `config` with everything it names ([`assemble`]); `resolver` stands in when
/// the config names no resolver (a bot's native rules). Also returns the plugins skipped for
/// want of a plugin folder.
pub fn engine(
    config: Config,
    plugins: Option<&dyn PluginLookup>,
    resolver: Option<Arc<dyn Resolver>>,
) -> Result<(Engine, Vec<String>), String> {
    let sources = assemble(&config, plugins)?;
    let mut builder = Engine::builder(config)
        .translator(Arc::new(sources.translator))
        .translation_caches(sources.translation_caches);
    if let Some(r) = sources.resolver.or(resolver) {
        builder = builder.resolver(r);
    }
    Ok((builder.engine(), sources.skipped))
}
