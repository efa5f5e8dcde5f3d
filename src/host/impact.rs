//! `Host::impact`: what a candidate plugin version or config would do to this host's known
//! users, before it serves (see `crate::impact`). The candidate's bytes pass the checks a
//! file of the folder passes (`[sandbox] max_file_mib`, the compile budget, interface and
//! imports, `info`), loaded by the folder's own plugin host, off the async threads.

use std::sync::Arc;

use super::Host;
use crate::explain::PluginRef;
use crate::impact::{Change, Impact, Options, Refused};
use crate::plugin::Plugin;

/// What to try.
pub enum Candidate {
    /// A component's bytes, in place of the plugin of the name it says it has.
    Plugin(Vec<u8>),
    /// A config's text (TOML, or JSON when `json`), with the plugins serving now.
    Config { text: Vec<u8>, json: bool },
}

/// Why no report was made.
#[derive(Debug)]
pub enum ImpactError {
    /// The candidate does not load or cannot serve: every reason.
    Refused(Vec<String>),
    /// This host cannot try that kind of candidate (no plugin folder, following releases).
    Unsupported(String),
    /// Another report is being made (one at a time: each walks every known user).
    Busy,
    Store(crate::state::StoreError),
}

impl std::fmt::Display for ImpactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImpactError::Refused(why) => {
                write!(f, "the candidate cannot serve: {}", why.join("; "))
            }
            ImpactError::Unsupported(why) => f.write_str(why),
            ImpactError::Busy => {
                f.write_str("another impact report is being made: try again when it ends")
            }
            ImpactError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<Refused> for ImpactError {
    fn from(refused: Refused) -> Self {
        ImpactError::Refused(refused.0)
    }
}

impl Host {
    /// What `candidate` would do if it served now: every known user resolved with the rules
    /// serving and with the candidate, the menus that change, and the calls the swap would
    /// make at this host's pace. No Bot API call; nothing the host serves changes.
    pub async fn impact(
        &self,
        candidate: Candidate,
        list_users: bool,
    ) -> Result<Impact, ImpactError> {
        let inner = &self.inner;
        let _one = inner
            .impact_running
            .try_lock()
            .map_err(|_| ImpactError::Busy)?;
        if inner.follows_releases() {
            return Err(ImpactError::Unsupported(
                "this worker follows releases: run `cmdscope impact` with the release's files, or publish a draft to a test store".into(),
            ));
        }
        let now = inner.engine.load_full();
        let live = inner.live.clone();
        let serving: Vec<Plugin> = live
            .as_ref()
            .map(|l| l.current().into_iter().map(|(_, p)| p).collect())
            .unwrap_or_default();
        let mut changes = Vec::new();
        let (config, plugin) = match candidate {
            Candidate::Plugin(bytes) => {
                let Some(live) = live.clone() else {
                    return Err(ImpactError::Unsupported(
                        "this host has no plugin folder: a plugin candidate has nothing to replace"
                            .into(),
                    ));
                };
                let config = now.config().clone();
                let loaded = load_candidate(live, bytes, "candidate.wasm", &config)
                    .await
                    .map_err(|why| ImpactError::Refused(vec![why]))?;
                changes.push(Change::Plugin {
                    candidate: PluginRef::of(loaded.info()),
                    replaces: serving
                        .iter()
                        .find(|p| p.info().name == loaded.info().name)
                        .map(|p| PluginRef::of(p.info())),
                });
                (config, Some(loaded))
            }
            Candidate::Config { text, json } => {
                let dir = inner
                    .config_path
                    .parent()
                    .unwrap_or(std::path::Path::new("."));
                let path = dir.join(if json {
                    "candidate.json"
                } else {
                    "candidate.toml"
                });
                let loaded = crate::config::Config::from_bytes(&path, &text).map_err(|errors| {
                    ImpactError::Refused(errors.iter().map(|e| e.to_string()).collect())
                })?;
                changes.push(Change::Config {
                    source: "request body".into(),
                });
                (loaded.config, None)
            }
        };
        let lookup = live
            .as_deref()
            .map(|l| l as &dyn crate::sources::PluginLookup);
        let after = crate::impact::candidate_engine(
            config,
            lookup,
            &serving,
            plugin.as_ref(),
            inner.resolver.clone(),
        )?;
        let options = Options {
            pace: inner.delivery.pace,
            list_users,
            ..Options::default()
        };
        let store = inner.backend.store.clone();
        crate::impact::impact(&now, &Arc::new(after), store.as_ref(), changes, &options)
            .await
            .map_err(ImpactError::Store)
    }
}

/// Loads a candidate's bytes with the folder's own plugin host (the checks a file of the
/// folder gets), off the async threads: a compile takes seconds.
pub(super) async fn load_candidate(
    live: Arc<crate::plugin::LivePlugins>,
    bytes: Vec<u8>,
    file: &'static str,
    config: &crate::config::Config,
) -> Result<Plugin, String> {
    let settings = config.plugin_settings.clone();
    tokio::task::spawn_blocking(move || live.plugin_host().load_untrusted(&bytes, file, &settings))
        .await
        .map_err(|e| format!("the load did not finish: {e}"))?
        .map_err(|e| format!("it does not load: {e}"))
}
