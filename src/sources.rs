//! What a config's `resolver` and `translators` name, assembled into the engine's inputs:
//! plugins from a loaded folder and catalogs from files, in the config's order.

use std::sync::Arc;

use crate::catalog::{FileCatalog, TranslatorSource};
use crate::config::Config;
use crate::output_cache::CachedTranslator;
use crate::plugin::PluginSet;
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

/// Looks up every name. With `plugins: None`, plugin names are skipped (and listed); with a
/// folder, a missing plugin is an error naming what did load. A catalog that fails to parse is
/// an error naming the file and line.
pub fn assemble(config: &Config, plugins: Option<&PluginSet>) -> Result<Sources, String> {
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
            Some(r) => Some(r as Arc<dyn Resolver>),
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
