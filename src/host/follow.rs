//! Following the fleet's releases (`serve --follow-releases`): the host serves the store's
//! current release and switches when a newer one is published. A release is fetched, its
//! bytes checked against the manifest's sha256 and the fleet's key, and loaded in full (the
//! config and every plugin, through the compiled cache) before anything changes; then its
//! engine is swapped in at once and the reconciler walks the users it moves. A release that
//! cannot load is refused (an event, the status page, the fleet registry) and the last one
//! keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{HostEvent, Inner, Trigger};
use crate::plugin::Compiler;
use crate::release::{self, PublicKey, Release, ReleaseStore};
use crate::state::RefusedRelease;

/// Where a host's releases come from and how they are checked.
#[derive(Clone)]
pub struct ReleaseFollow {
    pub store: ReleaseStore,
    /// The fleet's public key: when set, only releases it signed load.
    pub verify_key: Option<PublicKey>,
    /// How often the store is asked for a newer release.
    pub poll: Duration,
}

impl ReleaseFollow {
    pub fn new(store: ReleaseStore) -> ReleaseFollow {
        ReleaseFollow {
            store,
            verify_key: None,
            poll: Duration::from_secs(1),
        }
    }
}

/// A release fetched and loaded, ready to swap in.
pub(super) struct Ready {
    pub release: Release,
    pub loaded: release::Loaded,
}

/// Fetches release `number` and loads it (on a blocking thread: compiling takes seconds).
pub(super) async fn fetch(
    follow: &ReleaseFollow,
    number: u64,
    compiled_cache: Option<PathBuf>,
    compiler: Compiler,
) -> Result<Ready, Vec<String>> {
    let release = follow
        .store
        .get(number)
        .await
        .map_err(|e| vec![format!("cannot read release {number}: {e}")])?
        .ok_or_else(|| vec![format!("release {number} is not in the store")])?;
    release
        .verify(follow.verify_key.as_ref())
        .map_err(|e| vec![e])?;
    let files = follow
        .store
        .files(&release)
        .await
        .map_err(|e| vec![format!("release {number}: {e}")])?;
    tokio::task::spawn_blocking(move || {
        let loaded = release::check(&release, &files, compiled_cache.as_deref(), &compiler)?;
        Ok(Ready { release, loaded })
    })
    .await
    .map_err(|e| vec![format!("release {number}: the load did not finish: {e}")])?
}

/// The first release to serve, waiting for one to be published (and for one that loads).
pub(super) async fn first(
    follow: &ReleaseFollow,
    compiled_cache: Option<PathBuf>,
    compiler: Compiler,
) -> Ready {
    let mut said = None;
    loop {
        match follow.store.current().await {
            Ok(Some(number)) if said != Some(number) => {
                match fetch(follow, number, compiled_cache.clone(), compiler.clone()).await {
                    Ok(ready) => return ready,
                    Err(errors) => {
                        tracing::error!(
                            release = number,
                            "release refused, waiting for a newer one: {}",
                            errors.join("; ")
                        );
                        said = Some(number);
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) if said.is_none() => {
                tracing::warn!(
                    "no release published yet in {}: waiting (cmdscope release publish)",
                    follow.store.describe()
                );
                said = Some(0);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot read the current release: {e}"),
        }
        tokio::time::sleep(follow.poll).await;
    }
}

/// The follower task: asks for the current release every `poll`; a different one is loaded
/// and swapped in, or refused.
pub(super) async fn run(
    inner: Arc<Inner>,
    follow: ReleaseFollow,
    compiled_cache: Option<PathBuf>,
    compiler: Compiler,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(follow.poll) => {}
        }
        let current = match follow.store.current().await {
            Ok(Some(number)) => number,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("cannot read the current release: {e}");
                continue;
            }
        };
        let (serving, refused) = inner.membership.numbers();
        if Some(current) == serving || Some(current) == refused {
            continue;
        }
        match fetch(&follow, current, compiled_cache.clone(), compiler.clone()).await {
            Ok(ready) => {
                let plugins = ready.release.plugins.clone();
                inner.serve_engine(Arc::new(ready.loaded.engine));
                inner.backend.serve_release(current);
                inner.membership.serve(ready.release);
                tracing::info!(release = current, "release serving");
                inner.emit(HostEvent::ReleaseServing {
                    release: current,
                    plugins,
                });
                let _ = inner.kick.send(Trigger::Release { number: current });
            }
            Err(errors) => {
                tracing::error!(
                    release = current,
                    serving = ?serving,
                    "release refused; the last one keeps serving: {}",
                    errors.join("; ")
                );
                inner.membership.refuse(RefusedRelease {
                    release: current,
                    reason: errors.join("; "),
                });
                inner.emit(HostEvent::ReleaseRefused {
                    release: current,
                    serving,
                    errors,
                });
                // Tell the fleet now rather than at the next heartbeat.
                if let Some(manager) = inner.manager() {
                    let ttl = inner.reconcile.heartbeat * 3;
                    inner.membership.check_in(manager, ttl).await;
                }
            }
        }
    }
}
