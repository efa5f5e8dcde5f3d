//! A folder's (or a release's) plugins loaded once and checked against a config
//! ([`PluginSet`]), and the one admission rule a hot-reloading folder applies too.

use std::path::Path;
use std::sync::Arc;

use super::{LoadError, Plugin, PluginHost, WasmResolver, WasmTranslator, World};
use crate::config::Config;

/// A plugin file's bytes, or why they could not be read.
pub type FileRead = Result<Vec<u8>, LoadError>;

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub file: String,
    pub error: LoadError,
}

/// Every plugin of a folder, checked against a config: a resolver that may return a profile
/// the config lacks is rejected, as is a second plugin of the same name.
#[derive(Clone, Default)]
pub struct PluginSet {
    pub loaded: Vec<Plugin>,
    pub rejected: Vec<Rejected>,
}

impl PluginSet {
    pub fn load(host: &PluginHost, dir: &Path, config: &Config) -> std::io::Result<PluginSet> {
        let loads = host
            .load_dir(dir, &config.plugin_settings)?
            .into_iter()
            .map(|(path, result)| {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (file, result)
            });
        Ok(PluginSet::admit_all(loads, config))
    }

    /// The set of plugins loaded elsewhere (a release's files), each admitted against
    /// `config` as a folder's would be, in the order given.
    pub fn admit_all(
        loads: impl IntoIterator<Item = (String, Result<Plugin, LoadError>)>,
        config: &Config,
    ) -> PluginSet {
        let mut set = PluginSet::default();
        for (file, result) in loads {
            match result.and_then(|plugin| set.admit(plugin, config)) {
                Ok(plugin) => {
                    let info = plugin.info();
                    tracing::info!(plugin = %info.name, file, sha256 = %info.sha256, "loaded {} {}", info.world, info.version);
                    set.loaded.push(plugin);
                }
                Err(error) => {
                    tracing::warn!(file, "plugin rejected: {error}");
                    set.rejected.push(Rejected { file, error });
                }
            }
        }
        set
    }

    fn admit(&self, plugin: Plugin, config: &Config) -> Result<Plugin, LoadError> {
        let name = &plugin.info().name;
        let taken = self.loaded.iter().find(|p| p.info().name == *name);
        admission(&plugin, config, taken.map(|p| p.info().file.as_str()), None)?;
        Ok(plugin)
    }

    pub fn resolver(&self, name: &str) -> Option<Arc<WasmResolver>> {
        self.loaded.iter().find_map(|p| match p {
            Plugin::Resolver(r) if r.info.name == name => Some(r.clone()),
            _ => None,
        })
    }

    pub fn translator(&self, name: &str) -> Option<Arc<WasmTranslator>> {
        self.loaded.iter().find_map(|p| match p {
            Plugin::Translator(t) if t.info.name == name => Some(t.clone()),
            _ => None,
        })
    }

    /// One line saying what loaded and what was rejected, for error messages.
    pub fn summary(&self) -> String {
        let loaded: Vec<String> = self
            .loaded
            .iter()
            .map(|p| format!("{} ({})", p.info().name, p.info().world))
            .collect();
        let mut text = format!(
            "loaded: {}",
            if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            }
        );
        if !self.rejected.is_empty() {
            let rejected: Vec<String> = self
                .rejected
                .iter()
                .map(|r| format!("{}: {}", r.file, r.error))
                .collect();
            text.push_str(&format!("; rejected: {}", rejected.join("; ")));
        }
        text
    }
}

/// The checks that involve more than the file, the same for a folder loaded once and a
/// hot-reloading one: one file per plugin name (`taken_by`: the file already serving it),
/// declared profiles the config defines, one world per name (`serving`: the world of the
/// plugin serving the name now). `LoadError::is_external` tells which refusals may go away.
pub(crate) fn admission(
    plugin: &Plugin,
    config: &Config,
    taken_by: Option<&str>,
    serving: Option<World>,
) -> Result<(), LoadError> {
    let info = plugin.info();
    if let Some(other) = taken_by {
        return Err(LoadError::DuplicateName(
            info.name.clone(),
            other.to_string(),
        ));
    }
    plugin.check_profiles(config)?;
    match serving {
        Some(world) if world != info.world => Err(LoadError::OtherWorld(info.name.clone(), world)),
        _ => Ok(()),
    }
}
