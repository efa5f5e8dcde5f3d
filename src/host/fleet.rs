//! This worker in its fleet: its id, the release it serves (or last refused), and the workers
//! sharing the store as its last check-in saw them. The reconciler checks in (every heartbeat
//! and before a walk), the release follower records what it serves, the status page reads it.

use std::sync::Mutex;
use std::time::Duration;

use crate::manager::CommandManager;
use crate::release::Release;
use crate::state::{RefusedRelease, Worker};

/// What a host serves of its releases (empty in folder mode).
#[derive(Debug, Clone, Default)]
pub(super) struct Following {
    pub serving: Option<Release>,
    pub refused: Option<RefusedRelease>,
}

/// This worker, as the fleet registry knows it.
pub(super) struct Membership {
    /// Unique across the fleet: host name, pid, a random part.
    pub(super) id: String,
    following: Mutex<Following>,
    /// The workers alive at the last check-in, this one included.
    seen: Mutex<Vec<Worker>>,
}

impl Membership {
    pub(super) fn new(following: Following) -> Membership {
        Membership {
            id: format!(
                "{}-{}-{:04x}",
                crate::state::hostname(),
                std::process::id(),
                fastrand::u16(..)
            ),
            following: Mutex::new(following),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Following> {
        self.following.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn serving(&self) -> Option<Release> {
        self.lock().serving.clone()
    }

    pub(super) fn refused(&self) -> Option<RefusedRelease> {
        self.lock().refused.clone()
    }

    /// The numbers of the release serving and the last refused.
    pub(super) fn numbers(&self) -> (Option<u64>, Option<u64>) {
        let following = self.lock();
        (
            following.serving.as_ref().map(|r| r.number),
            following.refused.as_ref().map(|r| r.release),
        )
    }

    pub(super) fn serve(&self, release: Release) {
        let mut following = self.lock();
        following.serving = Some(release);
        following.refused = None;
    }

    pub(super) fn refuse(&self, refused: RefusedRelease) {
        self.lock().refused = Some(refused);
    }

    /// The workers sharing the store, as the last check-in saw them.
    pub(super) fn seen(&self) -> Vec<Worker> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells the fleet registry which rules this worker serves, for `ttl`; answers the workers
    /// alive, or `None` when there is no registry (a store one process owns, no known users)
    /// or it cannot be reached (the worker then acts alone).
    pub(super) async fn check_in(
        &self,
        manager: &CommandManager,
        ttl: Duration,
    ) -> Option<Vec<Worker>> {
        let known = manager.known_users()?;
        let (release, _) = self.numbers();
        let me = Worker {
            id: self.id.clone(),
            generation: manager.engine().generation(),
            release,
            refused: self.refused(),
        };
        match known.check_in(&me, ttl).await {
            Ok(fleet) => {
                *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = fleet.clone();
                Some(fleet)
            }
            Err(e) => {
                tracing::warn!("cannot check in to the fleet registry: {e}");
                None
            }
        }
    }

    /// Leaves the registry at once (else it expires after its ttl).
    pub(super) async fn check_out(&self, manager: &CommandManager) {
        if let Some(known) = manager.known_users()
            && let Err(e) = known.check_out(&self.id).await
        {
            tracing::debug!("cannot check out of the fleet registry: {e}");
        }
    }
}
