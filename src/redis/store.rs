//! [`RedisStore`]: applied state in Redis hashes, one per list key, with a version per key so
//! a worker never records an older call over a newer one.

use std::collections::HashSet;
use std::sync::Mutex;

use redis::Script;

use super::RedisShared;
use crate::menu::Fingerprint;
use crate::scope::ListKey;
use crate::state::{
    Cursor, Generation, Intent, KeyState, KnownUsers, Page, StateStore, StoreError, StoreFuture,
    Ticket, UserKey,
};

/// `{prefix}:list:<storage key>` = hash { a: applied fingerprint (hex), p: pending intent
/// (`s<hex>` or `d`), v: version }. `{prefix}:lists` = set of the keys, for `entries`.
///
/// Known users: `{prefix}:users` = hash { user key (16 bytes) -> context record },
/// `{prefix}:users:gen` = hash { user key -> generation }, kept apart so marking a page of
/// users is one `HSET` and a walk scans only it. `{prefix}:workers` = hash { worker id ->
/// `expiry_ms:json` }, the fleet registry. `{prefix}:reconciled` = the generation of the last complete
/// reconciliation; `{prefix}:reconcile:lease` = which worker runs it now.
pub struct RedisStore {
    shared: RedisShared,
    /// Keys whose begin or confirm could not be written while Redis was away: marked
    /// uncertain for every worker as soon as it answers again.
    dirty: Mutex<HashSet<ListKey>>,
    begin: Script,
    confirm: Script,
    mark: Script,
}

/// Records the intent and bumps the version; returns the new version.
const BEGIN: &str = r#"
local release = tonumber(ARGV[3])
if release > 0 then
  local written = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
  if written > release then return -1 end
  redis.call('HSET', KEYS[1], 'r', release)
end
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

/// Takes the lease, or renews it for its holder.
const LEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// Sets the generation of each user (ARGV[2], ARGV[4], ...) whose record still holds the
/// context given after it: byte 2 and bytes 15 on (Lua counts from 1) of a record.
const MARK: &str = r#"
local marked = 0
for i = 2, #ARGV, 2 do
  local r = redis.call('HGET', KEYS[1], ARGV[i])
  if r and (string.sub(r, 2, 2) .. string.sub(r, 15)) == ARGV[i + 1] then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
    marked = marked + 1
  end
end
return marked
"#;

/// What [`MARK`] compares: a record without its generation and day.
fn context_part(record: &[u8]) -> Vec<u8> {
    let mut part = vec![record[1]];
    part.extend_from_slice(&record[crate::state::CONTEXT_FROM..]);
    part
}

/// Records worker ARGV[1] (ARGV[2]: what it serves, JSON) until the server's clock passes
/// ARGV[3] ms from now; drops expired workers; answers every live worker and its JSON. A
/// value is `expiry_ms:json`.
const CHECK_IN: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[3])) .. ':' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, ':', 1, true)
  if (not sep) or tonumber(string.sub(v, 1, sep - 1)) < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(out, all[i])
    table.insert(out, string.sub(v, sep + 1))
  end
end
return out
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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
            mark: Script::new(MARK),
        }
    }

    fn fail(&self, e: redis::RedisError) -> StoreError {
        StoreError::new(self.describe(), e)
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

    /// One pipelined round trip for the whole page.
    fn load_many<'a>(&'a self, keys: &'a [&'a ListKey]) -> StoreFuture<'a, Vec<KeyState>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            self.flush_dirty().await;
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("HMGET").arg(self.hash_key(key)).arg("a").arg("p");
            }
            let mut conn = self.shared.conn.clone();
            let answers: Result<Vec<(Option<String>, Option<String>)>, _> =
                pipe.query_async(&mut conn).await;
            Ok(match answers {
                Ok(answers) => answers
                    .into_iter()
                    .map(|(applied, pending)| decode(applied, pending))
                    .collect(),
                Err(e) => {
                    tracing::warn!(
                        "redis unavailable, taking {} lists as uncertain: {e}",
                        keys.len()
                    );
                    vec![UNCERTAIN; keys.len()]
                }
            })
        })
    }

    fn begin<'a>(&'a self, key: &'a ListKey, intent: Intent) -> StoreFuture<'a, Ticket> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let release = self
                .shared
                .release
                .load(std::sync::atomic::Ordering::SeqCst);
            let result: Result<i64, _> = self
                .begin
                .key(self.hash_key(key))
                .key(self.index_key())
                .arg(encode_intent(intent))
                .arg(key.storage_key())
                .arg(release)
                .invoke_async(&mut conn)
                .await;
            Ok(match result {
                // Written under a newer release: this worker has not switched yet.
                Ok(v) if v < 0 => crate::state::OVERTAKEN,
                Ok(v) => v as u64,
                Err(e) => {
                    self.mark_dirty(key, &e);
                    0
                }
            })
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

    fn known_users(&self) -> Option<&dyn KnownUsers> {
        Some(self)
    }

    fn document<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("GET")
                .arg(self.shared.key(&["doc", name]))
                .query_async(&mut conn)
                .await
                .map_err(|e| crate::state::StoreError::new(self.describe(), e))
        })
    }

    fn set_document<'a>(&'a self, name: &'a str, value: Option<&'a [u8]>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let key = self.shared.key(&["doc", name]);
            let result: Result<(), _> = match value {
                Some(v) => {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(v)
                        .query_async(&mut conn)
                        .await
                }
                None => redis::cmd("DEL").arg(key).query_async(&mut conn).await,
            };
            result.map_err(|e| crate::state::StoreError::new(self.describe(), e))
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

impl KnownUsers for RedisStore {
    fn remember<'a>(
        &'a self,
        ctx: &'a crate::UserContext,
        generation: Generation,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let Some(record) = crate::state::encode_user(ctx, 0) else {
                return Ok(false);
            };
            let key = UserKey::of(ctx).to_bytes();
            let mut conn = self.shared.conn.clone();
            let (new, _): (u64, u64) = redis::pipe()
                .atomic()
                .hset(self.shared.key(&["users"]), key.as_slice(), record)
                .hset(
                    self.shared.key(&["users", "gen"]),
                    key.as_slice(),
                    generation,
                )
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(new == 1)
        })
    }

    fn get(&self, key: UserKey) -> StoreFuture<'_, Option<crate::state::KnownUser>> {
        Box::pin(async move {
            let field = key.to_bytes();
            let mut conn = self.shared.conn.clone();
            let (record, generation): (Option<Vec<u8>>, Option<u64>) = redis::pipe()
                .hget(self.shared.key(&["users"]), field.as_slice())
                .hget(self.shared.key(&["users", "gen"]), field.as_slice())
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(record
                .and_then(|r| crate::state::decode_user(key, &r))
                .map(|mut user| {
                    user.generation = generation.unwrap_or(0);
                    user
                }))
        })
    }

    fn forget(&self, key: UserKey) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let key = key.to_bytes();
            let mut conn = self.shared.conn.clone();
            redis::pipe()
                .atomic()
                .hdel(self.shared.key(&["users"]), key.as_slice())
                .hdel(self.shared.key(&["users", "gen"]), key.as_slice())
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn behind<'a>(
        &'a self,
        generation: Generation,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, Page> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let from = cursor
                .map(|c| String::from_utf8_lossy(&c.0).into_owned())
                .unwrap_or_else(|| "0".into());
            // The generations alone (about 40 bytes a user) are scanned; records are read only
            // for the users behind, so a walk that finds everyone current moves little data.
            // Every known user has a generation field (`remember` writes both at once).
            let (next, rows): (String, Vec<(Vec<u8>, u64)>) = redis::cmd("HSCAN")
                .arg(self.shared.key(&["users", "gen"]))
                .arg(&from)
                .arg("COUNT")
                .arg(limit.max(1))
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))?;
            let behind: Vec<(Vec<u8>, u64)> = rows
                .into_iter()
                .filter(|(_, at)| *at != generation)
                .collect();
            let mut page = Vec::with_capacity(behind.len());
            if !behind.is_empty() {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(self.shared.key(&["users"]));
                for (key, _) in &behind {
                    cmd.arg(key.as_slice());
                }
                let records: Vec<Option<Vec<u8>>> =
                    cmd.query_async(&mut conn).await.map_err(|e| self.fail(e))?;
                for ((key, at), record) in behind.into_iter().zip(records) {
                    if let Some(mut user) = record.and_then(|record| {
                        UserKey::from_bytes(&key)
                            .and_then(|key| crate::state::decode_user(key, &record))
                    }) {
                        user.generation = at;
                        page.push(user);
                    }
                }
            }
            Ok((page, (next != "0").then(|| Cursor(next.into_bytes()))))
        })
    }

    fn mark<'a>(
        &'a self,
        contexts: &'a [&'a crate::UserContext],
        generation: Generation,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut invocation = self.mark.prepare_invoke();
            invocation
                .key(self.shared.key(&["users"]))
                .key(self.shared.key(&["users", "gen"]))
                .arg(generation);
            let mut any = false;
            for ctx in contexts {
                if let Some(record) = crate::state::encode_user(ctx, 0) {
                    invocation
                        .arg(UserKey::of(ctx).to_bytes().as_slice())
                        .arg(context_part(&record));
                    any = true;
                }
            }
            if !any {
                return Ok(0);
            }
            let mut conn = self.shared.conn.clone();
            invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("HLEN")
                .arg(self.shared.key(&["users"]))
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn reconciled(&self) -> StoreFuture<'_, Option<Generation>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("GET")
                .arg(self.shared.key(&["reconciled"]))
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn set_reconciled(&self, generation: Generation) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("SET")
                .arg(self.shared.key(&["reconciled"]))
                .arg(generation)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn lease<'a>(&'a self, holder: &'a str, ttl: std::time::Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let taken: u64 = Script::new(LEASE)
                .key(self.shared.key(&["reconcile", "lease"]))
                .arg(holder)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(taken == 1)
        })
    }

    fn check_in<'a>(
        &'a self,
        worker: &'a crate::state::Worker,
        ttl: std::time::Duration,
    ) -> StoreFuture<'a, Vec<crate::state::Worker>> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            let json = serde_json::to_string(worker).unwrap_or_default();
            let flat: Vec<String> = Script::new(CHECK_IN)
                .key(self.shared.key(&["workers"]))
                .arg(&worker.id)
                .arg(json)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.fail(e))?;
            // A value this version cannot read (another version's worker) is left out.
            Ok(flat
                .chunks_exact(2)
                .filter_map(|pair| serde_json::from_str(&pair[1]).ok())
                .collect())
        })
    }

    fn check_out<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            redis::cmd("HDEL")
                .arg(self.shared.key(&["workers"]))
                .arg(id)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn release_lease<'a>(&'a self, holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.shared.conn.clone();
            Script::new(RELEASE)
                .key(self.shared.key(&["reconcile", "lease"]))
                .arg(holder)
                .invoke_async::<u64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| self.fail(e))
        })
    }
}
