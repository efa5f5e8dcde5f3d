//! Applied state: what Telegram holds per (scope, language), as content fingerprints, behind
//! the [`StateStore`] trait so one process, a restart or several workers can share it.
//!
//! Crash safety comes from the write order: [`StateStore::begin`] records the intent before a
//! call and [`StateStore::confirm`] the result after Telegram accepts it. A key with an
//! unconfirmed intent is *uncertain* (the call may or may not have landed), so the next update
//! sends it again whatever its fingerprint says; a confirmed key is never re-sent.

pub mod conformance;
mod file;
pub(crate) mod unsaved;
mod users;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub use self::file::FileStore;
pub use self::unsaved::Unsaved;
pub use self::users::{
    CONTEXT_FROM, Cursor, Generation, KnownUser, KnownUsers, MAX_RECORD, Page, RefusedRelease,
    UserKey, Worker, today,
};

/// This machine's host name (`host` when the system will not say): part of a worker's id in
/// the fleet registry, and of a release's publisher.
pub(crate) fn hostname() -> String {
    let mut name = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0 {
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        String::from_utf8_lossy(&name[..end]).into_owned()
    } else {
        "host".to_string()
    }
}

/// A known user's record as stores keep it (for stores outside this module).
pub fn encode_user(ctx: &crate::UserContext, generation: Generation) -> Option<Vec<u8>> {
    users::encode(ctx, generation, today())
}

/// The user behind a record written by [`encode_user`].
pub fn decode_user(key: UserKey, record: &[u8]) -> Option<KnownUser> {
    users::decode(key, record)
}
use crate::menu::Fingerprint;
use crate::scope::ListKey;

/// What one key is being brought to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Set(Fingerprint),
    Delete,
}

impl Intent {
    /// The fingerprint the key holds once the intent is applied.
    pub fn applied(self) -> Option<Fingerprint> {
        match self {
            Intent::Set(fp) => Some(fp),
            Intent::Delete => None,
        }
    }
}

/// One key's state. The default (nothing applied, nothing pending) is a key never set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyState {
    /// The last content Telegram confirmed; `None`: no list.
    pub applied: Option<Fingerprint>,
    /// An intent recorded but not confirmed: Telegram may hold either version.
    pub pending: Option<Intent>,
}

impl KeyState {
    /// Whether Telegram is known to hold `desired` (`None`: no list).
    pub fn holds(&self, desired: Option<Fingerprint>) -> bool {
        self.pending.is_none() && self.applied == desired
    }
}

/// A state store failed; the update is reported failed and nothing is recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store {store}: {message}")]
pub struct StoreError {
    pub store: String,
    pub message: String,
}

impl StoreError {
    pub fn new(store: impl Into<String>, message: impl std::fmt::Display) -> StoreError {
        StoreError {
            store: store.into(),
            message: message.to_string(),
        }
    }
}

/// What `begin` hands to `confirm`: the key's version after the intent was recorded.
pub type Ticket = u64;

/// What `begin` answers when a worker serving a newer release wrote this list: nothing is
/// sent, so a worker that has not switched yet never puts an older menu over a newer one.
pub const OVERTAKEN: Ticket = u64::MAX;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where applied state lives. Implementations must make `begin` durable before returning
/// (the call follows at once) and must never let an older write overwrite a newer one.
pub trait StateStore: Send + Sync {
    /// A short description for reports (`memory`, `file /var/lib/bot.state`).
    fn describe(&self) -> String;
    fn load<'a>(&'a self, key: &'a ListKey) -> StoreFuture<'a, KeyState>;
    /// The states of many keys at once, in order: what a reconciliation reads for a page of
    /// users. A shared store answers in one round trip.
    fn load_many<'a>(&'a self, keys: &'a [&'a ListKey]) -> StoreFuture<'a, Vec<KeyState>> {
        Box::pin(async move {
            let mut states = Vec::with_capacity(keys.len());
            for key in keys {
                states.push(self.load(key).await?);
            }
            Ok(states)
        })
    }
    /// Records that a call bringing `key` to `intent` is about to be made. The ticket goes
    /// back to `confirm`: a shared store uses it to refuse a confirmation that a newer intent
    /// overtook (the key then stays uncertain, and is sent again).
    fn begin<'a>(&'a self, key: &'a ListKey, intent: Intent) -> StoreFuture<'a, Ticket>;
    /// Records that Telegram accepted the call for `intent`.
    fn confirm<'a>(
        &'a self,
        key: &'a ListKey,
        intent: Intent,
        ticket: Ticket,
    ) -> StoreFuture<'a, ()>;
    /// Every key with a state, for reports and reconciliation.
    fn entries(&self) -> StoreFuture<'_, Vec<(ListKey, KeyState)>>;
    /// The bot's default menu button as last confirmed (`commands`, `default`), if known.
    fn menu_button(&self) -> StoreFuture<'_, Option<String>>;
    /// Records the button: `None` before a call (unknown until confirmed), the value after.
    fn record_menu_button<'a>(&'a self, button: Option<&'a str>) -> StoreFuture<'a, ()>;
    /// The bot's known users, kept beside the applied state, when this store keeps them.
    fn known_users(&self) -> Option<&dyn KnownUsers> {
        None
    }
    /// A bot-wide document by name (a staged rollout, its candidate's bytes), shared by the
    /// workers of the store; `None` when not set.
    fn document<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Sets (or, with `None`, removes) a document, durably.
    fn set_document<'a>(&'a self, name: &'a str, value: Option<&'a [u8]>) -> StoreFuture<'a, ()>;
}

/// The library default: state for this process's lifetime.
#[derive(Default)]
pub struct MemoryStore {
    keys: Mutex<HashMap<ListKey, KeyState>>,
    menu_button: Mutex<Option<String>>,
    users: users::MemoryUsers,
    documents: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, KeyState>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn load<'a>(&'a self, key: &'a ListKey) -> StoreFuture<'a, KeyState> {
        let state = self.lock().get(key).copied().unwrap_or_default();
        Box::pin(std::future::ready(Ok(state)))
    }

    fn load_many<'a>(&'a self, keys: &'a [&'a ListKey]) -> StoreFuture<'a, Vec<KeyState>> {
        let held = self.lock();
        let states = keys
            .iter()
            .map(|k| held.get(*k).copied().unwrap_or_default())
            .collect();
        Box::pin(std::future::ready(Ok(states)))
    }

    fn begin<'a>(&'a self, key: &'a ListKey, intent: Intent) -> StoreFuture<'a, Ticket> {
        self.lock().entry(key.clone()).or_default().pending = Some(intent);
        Box::pin(std::future::ready(Ok(0)))
    }

    /// One process, and updates of a key take turns: no newer intent can overtake.
    fn confirm<'a>(&'a self, key: &'a ListKey, intent: Intent, _: Ticket) -> StoreFuture<'a, ()> {
        let mut keys = self.lock();
        match intent {
            Intent::Delete => {
                keys.remove(key);
            }
            Intent::Set(fp) => {
                keys.insert(
                    key.clone(),
                    KeyState {
                        applied: Some(fp),
                        pending: None,
                    },
                );
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn entries(&self) -> StoreFuture<'_, Vec<(ListKey, KeyState)>> {
        let all = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>();
        Box::pin(std::future::ready(Ok(all)))
    }

    fn menu_button(&self) -> StoreFuture<'_, Option<String>> {
        let button = self
            .menu_button
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Box::pin(std::future::ready(Ok(button)))
    }

    fn record_menu_button<'a>(&'a self, button: Option<&'a str>) -> StoreFuture<'a, ()> {
        *self.menu_button.lock().unwrap_or_else(|p| p.into_inner()) = button.map(str::to_string);
        Box::pin(std::future::ready(Ok(())))
    }

    fn known_users(&self) -> Option<&dyn KnownUsers> {
        Some(&self.users)
    }

    fn document<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        Box::pin(std::future::ready(Ok(documents.get(name).cloned())))
    }

    fn set_document<'a>(&'a self, name: &'a str, value: Option<&'a [u8]>) -> StoreFuture<'a, ()> {
        let mut documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(v) => documents.insert(name.to_string(), v.to_vec()),
            None => documents.remove(name),
        };
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        conformance::store_contract(&MemoryStore::new()).await;
    }
}
