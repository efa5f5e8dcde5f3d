//! `Host::rollback`: a plugin's previous version back in one step (see
//! `crate::plugin::shelf`), and `Host::versions`, the versions kept for it.

use super::{Host, HostEvent};
use crate::plugin::RolledBack;
use crate::plugin::shelf::Shelved;

impl Host {
    /// Puts back the version of plugin `name` that served before the current one: written
    /// over its file by rename, then reloaded, swapped and reconciled like any deploy. The
    /// error says why not (no earlier version kept, no compiled cache, a fleet release).
    pub fn rollback(&self, name: &str) -> Result<RolledBack, String> {
        if self.inner.follows_releases() {
            return Err(
                "this worker follows releases: `cmdscope release rollback` puts the fleet's previous release back".into(),
            );
        }
        let live = self
            .plugins()
            .ok_or("this host has no plugin folder: there is nothing to roll back")?;
        let rolled = live.rollback(name)?;
        self.inner.emit(HostEvent::RolledBack(rolled.clone()));
        Ok(rolled)
    }

    /// The versions kept for plugin `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<Shelved> {
        self.plugins()
            .map(|live| live.versions(name))
            .unwrap_or_default()
    }
}
