//! [`RedisStore`]: applied state in Redis hashes, one per list key, with a version per key so
//! a worker never records an older call over a newer one.

use std::collections::HashSet;
use std::sync::Mutex;

use redis::Script;

use super::RedisShared;
use crate::menu::Fingerprint;
use crate::scope::ListKey;
use crate::state::{Intent, KeyState, StateStore, StoreFuture, Ticket};

/// `{prefix}:list:<storage key>` = hash { a: applied fingerprint (hex), p: pending intent
/// (`s<hex>` or `d`), v: version }. `{prefix}:lists` = set of the keys, for `entries`.
pub struct RedisStore {
    shared: RedisShared,
    /// Keys whose begin or confirm could not be written while Redis was away: marked
    /// uncertain for every worker as soon as it answers again.
    dirty: Mutex<HashSet<ListKey>>,
    begin: Script,
    confirm: Script,
}

/// Records the intent and bumps the version; returns the new version.
const BEGIN: &str = r#"
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'p', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return v
"#;

/// Records the result only if no newer intent began since (the version is still ours).
const CONFIRM: &str = r#"
if tonumber(redis.call('HGET', KEYS[1], 'v') or '0') ~= tonumber(ARGV[2]) then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'a', 'p') else
  redis.call('HSET', KEYS[1], 'a', ARGV[1]); redis.call('HDEL', KEYS[1], 'p') end
return 1
"#;

/// What an unreadable or unreachable key is taken as: uncertain, so it is sent.
const UNCERTAIN: KeyState = KeyState {
    applied: None,
    pending: Some(Intent::Delete),
};

impl RedisStore {
    pub fn new(shared: RedisShared) -> RedisStore {
        RedisStore {
            shared,
            dirty: Mutex::new(HashSet::new()),
            begin: Script::new(BEGIN),
            confirm: Script::new(CONFIRM),
        }
    }

    fn hash_key(&self, key: &ListKey) -> String {
        self.shared.key(&["list", &key.storage_key()])
    }

    fn index_key(&self) -> String {
        self.shared.key(&["lists"])
    }

    fn mark_dirty(&self, key: &ListKey, e: &redis::RedisError) {
        tracing::warn!(list = %key, "redis unavailable, state not recorded (will be marked uncertain): {e}");
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
    }

    /// Marks every key this worker could not record as uncertain (pending, version bumped
    /// so a confirmation in flight elsewhere cannot settle it).
    async fn flush_dirty(&self) {
        let keys: Vec<ListKey> = {
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            if dirty.is_empty() {
                return;
            }
            dirty.drain().collect()
        };
        let mut conn = self.shared.conn.clone();
        for key in keys {
            let result: Result<u64, _> = self
                .begin
                .key(self.hash_key(&key))
                .key(self.index_key())
                .arg(encode_intent(Intent::Delete))
                .arg(key.storage_key())
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = result {
                self.mark_dirty(&key, &e);
                return;
            }
        }
    }
}

fn encode_fp(fp: Fingerprint) -> String {
    format!("{:032x}", fp.0)
}

fn decode_fp(text: &str) -> Option<Fingerprint> {
    u128::from_str_radix(text, 16).ok().map(Fingerprint)
}

fn encode_intent(intent: Intent) -> String {
    match intent {
        Intent::Set(fp) => format!("s{}", encode_fp(fp)),
        Intent::Delete => "d".into(),
    }
}

fn decode(applied: Option<String>, pending: Option<String>) -> KeyState {
    let applied = match applied {
        None => None,
        Some(text) => match decode_fp(&text) {
            Some(fp) => Some(fp),
            None => return UNCERTAIN,
        },
    };
    // Anything but a readable `s<fingerprint>` is taken as a delete: uncertain either way.
    let pending = pending
        .as_deref()
        .map(|p| match p.strip_prefix('s').and_then(decode_fp) {
            Some(fp) => Intent::Set(fp),
            None => Intent::Delete,
        });
    KeyState { applied, pending }
}

impl StateStore for RedisStore {
    fn describe(&self) -> String {
        self.shared.describe()
    }

    fn load<'a>(&'a self, key: &'a ListKey) -> StoreFuture<'a, KeyState> {
        Box::pin(async move {
            self.flush_dirty().await;
            let mut conn = self.shared.conn.clone();
            let fields: Result<(Option<String>, Option<String>), _> = redis::cmd("HMGET")
                .arg(self.hash_key(key))
                .arg("a")
                .arg("p")
                .query_async(&mut conn)
                .await;
            Ok(match fields {
                Ok((applied, pending)) => decode(applied, pending),
                Err(e) => {
                    tracing::warn!(list = %key, "redis unavailable, taking the list as uncertain: {e}");
                    UNCERTAIN
                }
            })
        })
    }

    fn begin<'a>(&'a self, key: &'a ListKey, intent: Intent) -> StoreFuture<'a, Ticket> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let result: Result<u64, _> = self
                .begin
                .key(self.hash_key(key))
                .key(self.index_key())
                .arg(encode_intent(intent))
                .arg(key.storage_key())
                .invoke_async(&mut conn)
                .await;
            Ok(result.unwrap_or_else(|e| {
                self.mark_dirty(key, &e);
                0
            }))
        })
    }

    fn confirm<'a>(
        &'a self,
        key: &'a ListKey,
        intent: Intent,
        ticket: Ticket,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if ticket == 0 {
                // The intent never reached Redis: already marked dirty.
                return Ok(());
            }
            let mut conn = self.shared.conn.clone();
            let applied = intent.applied().map(encode_fp).unwrap_or_default();
            let result: Result<u64, _> = self
                .confirm
                .key(self.hash_key(key))
                .arg(applied)
                .arg(ticket)
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok(1) => {}
                Ok(_) => {
                    tracing::debug!(list = %key, "a newer intent overtook this one; the list stays uncertain")
                }
                Err(e) => self.mark_dirty(key, &e),
            }
            Ok(())
        })
    }

    fn entries(&self) -> StoreFuture<'_, Vec<(ListKey, KeyState)>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let fail = |e: redis::RedisError| crate::state::StoreError::new(self.describe(), e);
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.index_key())
                .query_async(&mut conn)
                .await
                .map_err(fail)?;
            let mut out = Vec::with_capacity(members.len());
            for member in members {
                let Some(key) = ListKey::from_storage_key(&member) else {
                    continue;
                };
                let (a, p): (Option<String>, Option<String>) = redis::cmd("HMGET")
                    .arg(self.hash_key(&key))
                    .arg("a")
                    .arg("p")
                    .query_async(&mut conn)
                    .await
                    .map_err(fail)?;
                if a.is_some() || p.is_some() {
                    out.push((key, decode(a, p)));
                }
            }
            Ok(out)
        })
    }

    fn menu_button(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("GET")
                .arg(self.shared.key(&["menu_button"]))
                .query_async(&mut conn)
                .await
                .map_err(|e| crate::state::StoreError::new(self.describe(), e))
        })
    }

    fn record_menu_button<'a>(&'a self, button: Option<&'a str>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let key = self.shared.key(&["menu_button"]);
            let result: Result<(), _> = match button {
                Some(b) => {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(b)
                        .query_async(&mut conn)
                        .await
                }
                None => redis::cmd("DEL").arg(key).query_async(&mut conn).await,
            };
            result.map_err(|e| crate::state::StoreError::new(self.describe(), e))
        })
    }
}
