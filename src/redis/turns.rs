//! [`RedisTurns`]: per-list turns across workers: a sequence number per list (who announced
//! last) and a short lease (who may send now).

use std::time::Duration;

use redis::Script;

use super::RedisShared;
use crate::coalesce::{SharedTurn, SharedTurns, TurnFuture};
use crate::scope::ListKey;

/// How long a lease lasts if its holder dies; a live holder gives it back at once.
const LEASE: Duration = Duration::from_secs(10);
/// How often a waiting worker asks for the lease again.
const POLL: Duration = Duration::from_millis(5);

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

pub struct RedisTurns {
    shared: RedisShared,
    release: Script,
}

impl RedisTurns {
    pub fn new(shared: RedisShared) -> RedisTurns {
        RedisTurns {
            shared,
            release: Script::new(RELEASE),
        }
    }

    fn keys(&self, key: &ListKey) -> (String, String) {
        let k = key.storage_key();
        (
            self.shared.key(&["seq", &k]),
            self.shared.key(&["lease", &k]),
        )
    }
}

impl SharedTurns for RedisTurns {
    fn enter<'a>(&'a self, key: &'a ListKey) -> TurnFuture<'a, Option<SharedTurn>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let (seq_key, lease_key) = self.keys(key);
            let announced: Result<(u64,), _> = redis::pipe()
                .atomic()
                .incr(&seq_key, 1)
                .expire(&seq_key, 86_400)
                .ignore()
                .query_async(&mut conn)
                .await;
            let seq = match announced {
                Ok((seq,)) => seq,
                Err(e) => {
                    tracing::warn!(list = %key, "redis unavailable, taking turns in this worker only: {e}");
                    return None;
                }
            };
            let token = format!("{:016x}{:016x}", fastrand::u64(..), seq);
            loop {
                let taken: Result<Option<String>, _> = redis::cmd("SET")
                    .arg(&lease_key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE.as_millis() as u64)
                    .query_async(&mut conn)
                    .await;
                match taken {
                    Ok(Some(_)) => {
                        return Some(SharedTurn {
                            key: key.clone(),
                            seq,
                            token,
                        });
                    }
                    Ok(None) => tokio::time::sleep(POLL).await,
                    Err(e) => {
                        tracing::warn!(list = %key, "redis unavailable, taking turns in this worker only: {e}");
                        return None;
                    }
                }
            }
        })
    }

    fn superseded<'a>(&'a self, turn: &'a SharedTurn) -> TurnFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let latest: Result<Option<u64>, _> = redis::cmd("GET")
                .arg(self.keys(&turn.key).0)
                .query_async(&mut conn)
                .await;
            matches!(latest, Ok(Some(latest)) if latest > turn.seq)
        })
    }

    fn enter_if_idle<'a>(
        &'a self,
        key: &'a ListKey,
    ) -> TurnFuture<'a, Result<Option<SharedTurn>, ()>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let (seq_key, lease_key) = self.keys(key);
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let taken: Result<(Option<String>, Option<u64>), _> = redis::pipe()
                .cmd("SET")
                .arg(&lease_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LEASE.as_millis() as u64)
                .get(&seq_key)
                .query_async(&mut conn)
                .await;
            match taken {
                Ok((Some(_), seq)) => Ok(Some(SharedTurn {
                    key: key.clone(),
                    seq: seq.unwrap_or(0),
                    token,
                })),
                Ok((None, _)) => Err(()),
                Err(e) => {
                    tracing::warn!(list = %key, "redis unavailable, taking turns in this worker only: {e}");
                    Ok(None)
                }
            }
        })
    }

    fn leave(&self, turn: SharedTurn) -> TurnFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let result: Result<u64, _> = self
                .release
                .key(self.keys(&turn.key).1)
                .arg(&turn.token)
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = result {
                tracing::warn!(list = %turn.key, "could not give the lease back (it expires by itself): {e}");
            }
        })
    }
}
