//! What a running host reports: [`HostEvent`], as `subscribe()`, `GET /v1/events` and
//! `serve`'s stdout give it (one JSON object, tagged by `event`).

use serde::Serialize;

use super::ReconcileReport;
use crate::plugin::ReloadEvent;

/// Something that happened in a running host, as `subscribe()` and `GET /v1/events` give it.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// A plugin file was loaded, reloaded, rejected or removed.
    Plugin(ReloadEvent),
    /// A new config (or catalog) is serving.
    ConfigReloaded {
        file: String,
        generation: u64,
        /// Settings that take effect only after a restart (`[sandbox]`, `[state]`).
        restart_needed: Vec<String>,
    },
    /// A changed config was refused; the last good one keeps serving.
    ConfigRejected { file: String, errors: Vec<String> },
    /// A changed config names plugins the folder does not serve yet; the last good one serves
    /// until they load (it is looked at again on every plugin change).
    ConfigWaiting {
        file: String,
        waiting_for: Vec<String>,
        errors: Vec<String>,
    },
    /// A reconciliation run ended.
    Reconciled(ReconcileReport),
    /// A release of the fleet is serving (loaded in full, swapped in at once).
    ReleaseServing {
        release: u64,
        plugins: Vec<crate::release::ReleasePlugin>,
    },
    /// A release could not be loaded; `serving` (the last good one) keeps serving.
    ReleaseRefused {
        release: u64,
        serving: Option<u64>,
        errors: Vec<String>,
    },
    /// A plugin was rolled back: its previous version was written over its file by rename,
    /// and reloads from there like any deploy (the folder holds what serves).
    RolledBack(crate::plugin::RolledBack),
    /// A staged rollout `started`, was `followed` from the store, `changed`, `promoted`,
    /// `aborted` (the reason says why: a request, or the fallback limit) or `ended` (taken
    /// back by another worker).
    Rollout {
        action: &'static str,
        rollout: crate::rollout::Rollout,
        reason: Option<String>,
    },
}

impl Serialize for HostEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "event", rename_all = "snake_case")]
        enum Tagged<'a> {
            ConfigReloaded {
                file: &'a str,
                generation: String,
                #[serde(skip_serializing_if = "<[String]>::is_empty")]
                restart_needed: &'a [String],
            },
            ConfigRejected {
                file: &'a str,
                errors: &'a [String],
            },
            ConfigWaiting {
                file: &'a str,
                waiting_for: &'a [String],
                errors: &'a [String],
            },
            Reconciled(&'a ReconcileReport),
            ReleaseServing {
                release: u64,
                plugins: &'a [crate::release::ReleasePlugin],
            },
            ReleaseRefused {
                release: u64,
                serving: Option<u64>,
                errors: &'a [String],
            },
            RolledBack(&'a crate::plugin::RolledBack),
            Rollout {
                action: &'a str,
                #[serde(flatten)]
                rollout: &'a crate::rollout::Rollout,
                #[serde(skip_serializing_if = "Option::is_none")]
                reason: Option<&'a str>,
            },
        }
        match self {
            HostEvent::Plugin(event) => event.serialize(s),
            HostEvent::ConfigReloaded {
                file,
                generation,
                restart_needed,
            } => Tagged::ConfigReloaded {
                file,
                generation: format!("{generation:016x}"),
                restart_needed,
            }
            .serialize(s),
            HostEvent::ConfigRejected { file, errors } => {
                Tagged::ConfigRejected { file, errors }.serialize(s)
            }
            HostEvent::ConfigWaiting {
                file,
                waiting_for,
                errors,
            } => Tagged::ConfigWaiting {
                file,
                waiting_for,
                errors,
            }
            .serialize(s),
            HostEvent::Reconciled(report) => Tagged::Reconciled(report).serialize(s),
            HostEvent::ReleaseServing { release, plugins } => Tagged::ReleaseServing {
                release: *release,
                plugins,
            }
            .serialize(s),
            HostEvent::ReleaseRefused {
                release,
                serving,
                errors,
            } => Tagged::ReleaseRefused {
                release: *release,
                serving: *serving,
                errors,
            }
            .serialize(s),
            HostEvent::RolledBack(rolled) => Tagged::RolledBack(rolled).serialize(s),
            HostEvent::Rollout {
                action,
                rollout,
                reason,
            } => Tagged::Rollout {
                action,
                rollout,
                reason: reason.as_deref(),
            }
            .serialize(s),
        }
    }
}
