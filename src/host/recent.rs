//! What the host has seen lately, for the status page: the last events, each file's last
//! rejection, and the folder generation each plugin's serving version loaded at.

use std::collections::{BTreeMap, VecDeque};

use super::HostEvent;
use crate::plugin::ReloadKind;

/// Events kept.
pub const RECENT: usize = 50;

#[derive(Default)]
pub struct Recent {
    pub events: VecDeque<HostEvent>,
    /// Per file: the last rejection's reason, cleared when a version of it loads.
    pub last_error: BTreeMap<String, String>,
    /// Per plugin name: the folder generation when its serving version loaded.
    pub generation: BTreeMap<String, u64>,
    /// The last config rejection, cleared by a reload.
    pub config_errors: Vec<String>,
}

impl Recent {
    pub fn record(&mut self, event: &HostEvent) {
        match event {
            HostEvent::Plugin(e) => match e.event {
                ReloadKind::Rejected => {
                    self.last_error
                        .insert(e.file.clone(), e.error.clone().unwrap_or_default());
                }
                ReloadKind::Loaded | ReloadKind::Reloaded => {
                    self.last_error.remove(&e.file);
                    if let Some(name) = &e.plugin {
                        self.generation.insert(name.clone(), e.generation);
                    }
                }
                ReloadKind::Removed => {}
            },
            HostEvent::ConfigRejected { errors, .. } | HostEvent::ConfigWaiting { errors, .. } => {
                self.config_errors = errors.clone()
            }
            HostEvent::ConfigReloaded { .. } => self.config_errors.clear(),
            HostEvent::Reconciled(_)
            | HostEvent::ReleaseServing { .. }
            | HostEvent::ReleaseRefused { .. }
            | HostEvent::RolledBack(_)
            | HostEvent::Rollout { .. } => {}
        }
        if self.events.len() == RECENT {
            self.events.pop_back();
        }
        self.events.push_front(event.clone());
    }
}
