//! Known users the store could not take while it was away. A live update still reaches
//! Telegram when the store is down (it records nothing and the key stays uncertain), but the
//! user must not be forgotten: the next change of rules would never reach them. Such users
//! wait here, newest context per user, bounded, and are written when the store answers again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use indexmap::IndexMap;

use super::{Generation, UserKey};
use crate::resolve::UserContext;

/// Users kept for the store by default (a few hundred bytes each).
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Remembered users waiting for the store, oldest first.
pub struct Unsaved {
    users: Mutex<IndexMap<UserKey, (UserContext, Generation)>>,
    capacity: usize,
    dropped: AtomicU64,
    /// The length, readable without the lock: the live path asks on every update.
    waiting: std::sync::atomic::AtomicUsize,
}

impl Unsaved {
    pub fn new(capacity: usize) -> Unsaved {
        Unsaved {
            users: Mutex::new(IndexMap::new()),
            capacity,
            dropped: AtomicU64::new(0),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexMap<UserKey, (UserContext, Generation)>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the user's latest context; past the capacity the oldest waiting user is dropped
    /// (counted, and on `/metrics`).
    pub fn keep(&self, ctx: &UserContext, generation: Generation) {
        let mut users = self.lock();
        let key = UserKey::of(ctx);
        users.shift_remove(&key);
        users.insert(key, (ctx.clone(), generation));
        if users.len() > self.capacity {
            users.shift_remove_index(0);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            crate::metrics::known_users_dropped();
        }
        self.counted(users.len());
    }

    fn counted(&self, len: usize) {
        self.waiting.store(len, Ordering::Relaxed);
        crate::metrics::known_users_unsaved(len);
    }

    /// Puts back a user whose write failed, unless a newer context arrived meanwhile (it is
    /// put back where it was: first in line).
    pub fn keep_if_absent(&self, ctx: &UserContext, generation: Generation) {
        let mut users = self.lock();
        let key = UserKey::of(ctx);
        if users.contains_key(&key) {
            return;
        }
        users.shift_insert(0, key, (ctx.clone(), generation));
        self.counted(users.len());
    }

    /// The store took a newer context for the user: the waiting one is obsolete.
    pub fn settled(&self, key: UserKey) {
        if self.is_empty() {
            return;
        }
        let mut users = self.lock();
        if users.shift_remove(&key).is_some() {
            self.counted(users.len());
        }
    }

    /// Takes the user out if the waiting context is still `ctx` (nothing newer came meanwhile).
    pub fn take_if(&self, key: UserKey, ctx: &UserContext) -> Option<Generation> {
        let mut users = self.lock();
        let generation = match users.get(&key) {
            Some((waiting, generation)) if waiting == ctx => *generation,
            _ => return None,
        };
        users.shift_remove(&key);
        self.counted(users.len());
        Some(generation)
    }

    /// Up to `n` waiting users, oldest first (left in place).
    pub fn oldest(&self, n: usize) -> Vec<(UserKey, UserContext)> {
        self.lock()
            .iter()
            .take(n)
            .map(|(key, (ctx, _))| (*key, ctx.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Users dropped for want of room since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_context_per_user_and_drops_the_oldest_past_capacity() {
        let buffer = Unsaved::new(2);
        let a = UserContext::private(1);
        let a2 = UserContext::private(1).flag("registered", true);
        buffer.keep(&a, 5);
        buffer.keep(&UserContext::private(2), 5);
        buffer.keep(&a2, 6);
        assert_eq!(buffer.len(), 2);
        assert_eq!(
            buffer.take_if(UserKey::of(&a), &a),
            None,
            "a newer one waits"
        );
        buffer.keep(&UserContext::private(3), 6);
        assert_eq!(buffer.dropped(), 1, "user 2 was the oldest");
        let left: Vec<i64> = buffer.oldest(10).iter().map(|(k, _)| k.user_id).collect();
        assert_eq!(left, [1, 3]);
        assert_eq!(buffer.take_if(UserKey::of(&a2), &a2), Some(6));
        buffer.settled(UserKey::of(&UserContext::private(3)));
        assert!(buffer.is_empty());
    }
}
