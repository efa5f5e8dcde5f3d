//! Known users: the last context the bot gave for each user, and the generation of rules
//! their menu was last brought to. After a plugin or config change, the users behind the new
//! generation are resolved again and only those whose menu changed get a call; after a
//! restart, or on another worker, the walk resumes from here.
//!
//! What a known user costs: a 16-byte key (user id, chat id) and a compact record of about
//! 16 bytes plus the language and the flags (a user with `registered = true` and language
//! `en`: 33 bytes). Measured with 100,000 users (`cargo bench --bench reconcile`): 95 bytes of
//! heap in memory, 89 bytes of redb file, 197 bytes of Redis memory (two hash fields). A
//! context over [`MAX_RECORD`] bytes is not remembered (its menu is still set; it is just not
//! reconciled).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::StoreFuture;
use crate::resolve::{FlagValue, UserContext};
use crate::scope::ChatType;

/// Which rules decided a menu (see [`crate::engine::Generation`]); 0: never brought to any.
pub type Generation = u64;

/// Largest record kept for one user.
pub const MAX_RECORD: usize = 4096;

/// A user's own menu key: one per (user, chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub user_id: i64,
    pub chat_id: i64,
}

impl UserKey {
    pub fn of(ctx: &UserContext) -> UserKey {
        UserKey {
            user_id: ctx.user_id,
            chat_id: ctx.chat(),
        }
    }

    /// 16 bytes that sort like the key (big-endian, sign bit flipped).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&((self.user_id as u64) ^ (1 << 63)).to_be_bytes());
        out[8..].copy_from_slice(&((self.chat_id as u64) ^ (1 << 63)).to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<UserKey> {
        let half = |b: &[u8]| -> Option<i64> {
            Some((u64::from_be_bytes(b.try_into().ok()?) ^ (1 << 63)) as i64)
        };
        if bytes.len() != 16 {
            return None;
        }
        Some(UserKey {
            user_id: half(&bytes[..8])?,
            chat_id: half(&bytes[8..])?,
        })
    }
}

/// A user as the reconciler walks them.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownUser {
    pub context: UserContext,
    pub generation: Generation,
    /// The day (since 1970-01-01) the bot last gave this context.
    pub seen_day: u32,
}

impl KnownUser {
    pub fn key(&self) -> UserKey {
        UserKey::of(&self.context)
    }
}

/// A worker of the bot, as the store's fleet registry lists it: which rules it serves now.
/// Workers sharing a store reconcile only while they all serve the same generation, so two
/// workers on different plugin versions never walk users back and forth.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Worker {
    /// Unique per process (host name, pid and a random part).
    pub id: String,
    /// The generation of the rules the worker serves.
    #[serde(with = "hex_generation")]
    pub generation: Generation,
    /// The release it serves, when it follows releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// A newer release it could not load (it keeps serving `release`), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedRelease>,
}

/// A release a worker refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusedRelease {
    pub release: u64,
    pub reason: String,
}

mod hex_generation {
    pub fn serialize<S: serde::Serializer>(g: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{g:016x}"))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// Where to continue a walk over known users; opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub Vec<u8>);

/// One page of a walk, and where the next starts (`None`: the walk is done).
pub type Page = (Vec<KnownUser>, Option<Cursor>);

/// The known users of a bot, kept by its state store ([`super::StateStore::known_users`]).
pub trait KnownUsers: Send + Sync {
    /// Records `ctx` as the user's latest context, brought to `generation` (0: not yet).
    /// Answers whether the user was new.
    fn remember<'a>(
        &'a self,
        ctx: &'a UserContext,
        generation: Generation,
    ) -> StoreFuture<'a, bool>;
    /// The user's record, if known.
    fn get(&self, key: UserKey) -> StoreFuture<'_, Option<KnownUser>>;
    /// Forgets a user (their menu was cleared, or they were not seen for too long).
    fn forget(&self, key: UserKey) -> StoreFuture<'_, ()>;
    /// Known users from `cursor` on (`None`: from the start) not at `generation`: at most
    /// `limit`, and fewer when the store stops early to stay responsive. The next cursor is
    /// `None` only once the walk has reached the end.
    fn behind<'a>(
        &'a self,
        generation: Generation,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, Page>;
    /// Records that these users' menus were brought to `generation` from these contexts: a
    /// user whose remembered context is no longer the one given (a live update remembered a
    /// newer one meanwhile) is left behind, to be walked again. Answers how many were marked.
    fn mark<'a>(
        &'a self,
        users: &'a [&'a UserContext],
        generation: Generation,
    ) -> StoreFuture<'a, u64>;
    fn count(&self) -> StoreFuture<'_, u64>;
    /// The generation a complete reconciliation last brought every known user to. A record
    /// for reports only: users remembered since at another generation are walked whatever it
    /// says (a worker on other rules, an update resolved just before a swap).
    fn reconciled(&self) -> StoreFuture<'_, Option<Generation>>;
    fn set_reconciled(&self, generation: Generation) -> StoreFuture<'_, ()>;
    /// Takes (or, for its holder, renews) the right to run the reconciliation for `ttl`. One
    /// process per store needs no lease; workers sharing a store do.
    fn lease<'a>(&'a self, _holder: &'a str, _ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(true)))
    }
    fn release_lease<'a>(&'a self, _holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// Records that `worker` is alive and serves its generation, for `ttl`, and answers every
    /// worker alive now, itself included. A store one process owns has no fleet: it answers
    /// the caller alone.
    fn check_in<'a>(&'a self, worker: &'a Worker, _ttl: Duration) -> StoreFuture<'a, Vec<Worker>> {
        Box::pin(std::future::ready(Ok(vec![worker.clone()])))
    }
    /// Takes a stopping worker out of the registry at once (else it expires after its ttl).
    fn check_out<'a>(&'a self, _id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// Makes what `remember` wrote durable (a store that writes remembered users lazily).
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Today, as days since 1970-01-01.
pub fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as u32
}

// ---- the record ----

const VERSION: u8 = 1;
const ADMIN: u8 = 0x80;
/// Where the generation sits in a record, so `mark` rewrites 8 bytes in place.
pub(crate) const GENERATION_AT: std::ops::Range<usize> = 2..10;
/// The context is byte 1 (chat type, admin) and everything from here on (language, flags);
/// the bytes between are the generation and the day last seen.
pub const CONTEXT_FROM: usize = 14;

/// Whether two records hold the same context (whatever their generation and day).
pub(crate) fn same_context(a: &[u8], b: &[u8]) -> bool {
    a.len() >= CONTEXT_FROM
        && b.len() >= CONTEXT_FROM
        && a[1] == b[1]
        && a[CONTEXT_FROM..] == b[CONTEXT_FROM..]
}

/// `[version][chat type | admin][generation u64][seen day u32][language len][language]
/// [flag count] { [name len][name][tag][value] }`; `None` when over [`MAX_RECORD`].
pub(crate) fn encode(ctx: &UserContext, generation: Generation, seen_day: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(24);
    out.push(VERSION);
    let chat = match ctx.chat_type {
        ChatType::Private => 0,
        ChatType::Group => 1,
        ChatType::Supergroup => 2,
    };
    out.push(chat | if ctx.is_chat_admin { ADMIN } else { 0 });
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&seen_day.to_le_bytes());
    let lang = ctx.language_code.as_deref().unwrap_or("");
    out.push(u8::try_from(lang.len()).ok()?);
    out.extend_from_slice(lang.as_bytes());
    out.push(u8::try_from(ctx.flags.len()).ok()?);
    for (name, value) in &ctx.flags {
        out.push(u8::try_from(name.len()).ok()?);
        out.extend_from_slice(name.as_bytes());
        match value {
            FlagValue::Bool(b) => out.push(u8::from(*b)),
            FlagValue::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            FlagValue::Text(t) => {
                out.push(3);
                out.extend_from_slice(&u16::try_from(t.len()).ok()?.to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
        if out.len() > MAX_RECORD {
            return None;
        }
    }
    (out.len() <= MAX_RECORD).then_some(out)
}

/// The user behind a record; `None` for a record this version cannot read.
pub(crate) fn decode(key: UserKey, bytes: &[u8]) -> Option<KnownUser> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return None;
    }
    let chat = r.u8()?;
    let generation = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let seen_day = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
    let lang_len = r.u8()? as usize;
    let lang = std::str::from_utf8(r.take(lang_len)?).ok()?;
    let mut flags = BTreeMap::new();
    for _ in 0..r.u8()? {
        let name_len = r.u8()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?).ok()?.to_string();
        let value = match r.u8()? {
            0 => FlagValue::Bool(false),
            1 => FlagValue::Bool(true),
            2 => FlagValue::Int(i64::from_le_bytes(r.take(8)?.try_into().ok()?)),
            3 => {
                let len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
                FlagValue::Text(std::str::from_utf8(r.take(len)?).ok()?.to_string())
            }
            _ => return None,
        };
        flags.insert(name, value);
    }
    let chat_type = match chat & !ADMIN {
        0 => ChatType::Private,
        1 => ChatType::Group,
        2 => ChatType::Supergroup,
        _ => return None,
    };
    Some(KnownUser {
        context: UserContext {
            user_id: key.user_id,
            chat_id: (key.chat_id != key.user_id || chat_type != ChatType::Private)
                .then_some(key.chat_id),
            chat_type,
            language_code: (!lang.is_empty()).then(|| lang.to_string()),
            flags,
            is_chat_admin: chat & ADMIN != 0,
        },
        generation,
        seen_day,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}

// ---- in memory ----

/// Known users for this process's lifetime, in key order (so a walk can page).
#[derive(Default)]
pub(crate) struct MemoryUsers {
    users: Mutex<BTreeMap<UserKey, Box<[u8]>>>,
    reconciled: Mutex<Option<Generation>>,
}

impl MemoryUsers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<UserKey, Box<[u8]>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl KnownUsers for MemoryUsers {
    fn remember<'a>(
        &'a self,
        ctx: &'a UserContext,
        generation: Generation,
    ) -> StoreFuture<'a, bool> {
        let Some(record) = encode(ctx, generation, today()) else {
            return ready(false);
        };
        let new = self
            .lock()
            .insert(UserKey::of(ctx), record.into_boxed_slice())
            .is_none();
        ready(new)
    }

    fn get(&self, key: UserKey) -> StoreFuture<'_, Option<KnownUser>> {
        ready(self.lock().get(&key).and_then(|r| decode(key, r)))
    }

    fn forget(&self, key: UserKey) -> StoreFuture<'_, ()> {
        self.lock().remove(&key);
        ready(())
    }

    fn behind<'a>(
        &'a self,
        generation: Generation,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, Page> {
        let users = self.lock();
        let start = cursor.and_then(|c| UserKey::from_bytes(&c.0));
        let range = match start {
            Some(after) => {
                users.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            }
            None => users.range(..),
        };
        let mut page = Vec::new();
        let mut next = None;
        // Users already at the generation are skipped, but only so many per call: the map is
        // locked meanwhile.
        for (examined, (key, record)) in range.enumerate() {
            if record.get(GENERATION_AT) != Some(&generation.to_le_bytes()[..])
                && let Some(user) = decode(*key, record)
            {
                page.push(user);
            }
            if page.len() >= limit || examined + 1 >= limit.saturating_mul(16) {
                next = Some(Cursor(key.to_bytes().to_vec()));
                break;
            }
        }
        ready((page, next))
    }

    fn mark<'a>(
        &'a self,
        contexts: &'a [&'a UserContext],
        generation: Generation,
    ) -> StoreFuture<'a, u64> {
        let mut users = self.lock();
        let mut marked = 0;
        for ctx in contexts {
            if let Some(record) = users.get_mut(&UserKey::of(ctx))
                && encode(ctx, generation, 0).is_some_and(|given| same_context(record, &given))
            {
                record[GENERATION_AT].copy_from_slice(&generation.to_le_bytes());
                marked += 1;
            }
        }
        ready(marked)
    }

    fn count(&self) -> StoreFuture<'_, u64> {
        ready(self.lock().len() as u64)
    }

    fn reconciled(&self) -> StoreFuture<'_, Option<Generation>> {
        ready(*self.reconciled.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_reconciled(&self, generation: Generation) -> StoreFuture<'_, ()> {
        *self.reconciled.lock().unwrap_or_else(|p| p.into_inner()) = Some(generation);
        ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::conformance::sample;

    #[test]
    fn records_round_trip_and_keys_sort() {
        for id in [1, -5, 3, 6, i64::MAX] {
            let mut ctx = sample(id);
            ctx.is_chat_admin = id % 3 == 0;
            let record = encode(&ctx, 77, 20_000).unwrap();
            let user = decode(UserKey::of(&ctx), &record).unwrap();
            assert_eq!(user.context, ctx);
            assert_eq!((user.generation, user.seen_day), (77, 20_000));
        }
        let keys = [(-3, 1), (-3, 2), (0, -9), (5, -1), (5, 4)]
            .map(|(user_id, chat_id)| UserKey { user_id, chat_id });
        let mut bytes: Vec<[u8; 16]> = keys.iter().map(|k| k.to_bytes()).collect();
        bytes.sort();
        let back: Vec<UserKey> = bytes
            .iter()
            .map(|b| UserKey::from_bytes(b).unwrap())
            .collect();
        assert_eq!(back, keys);
        let huge = UserContext::private(1).flag("blob", "x".repeat(5000).as_str());
        assert!(encode(&huge, 1, 1).is_none(), "over MAX_RECORD");
    }

    #[tokio::test]
    async fn memory_users_keep_the_contract() {
        crate::state::conformance::known_users_contract(&MemoryUsers::default()).await;
    }
}
