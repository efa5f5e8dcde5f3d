//! Per-key turns: updates of one list run one at a time, in arrival order, and an update that a
//! newer one for the same key overtook while it waited is dropped (last writer wins), so a
//! burst of updates for one chat ends in one call carrying the latest menu.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::future::Future;
use std::pin::Pin;

use tokio::sync::OwnedMutexGuard;

use crate::scope::ListKey;

pub type TurnFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns shared by several workers of one bot (e.g. in Redis): the same rule as the
/// in-process [`Coalescer`] across processes. A worker takes its local turn first, then the
/// shared one.
pub trait SharedTurns: Send + Sync {
    /// Announces an update of `key` and waits until no other worker holds the key.
    /// `None` when the shared state is unreachable: the worker goes on alone.
    fn enter<'a>(&'a self, key: &'a ListKey) -> TurnFuture<'a, Option<SharedTurn>>;
    /// Whether an update announced after `turn` exists anywhere (`false` when unreachable).
    fn superseded<'a>(&'a self, turn: &'a SharedTurn) -> TurnFuture<'a, bool>;
    /// Gives the key back.
    fn leave(&self, turn: SharedTurn) -> TurnFuture<'_, ()>;
    /// For background work: the key's turn only if no worker holds or awaits it, without
    /// announcing an update (so it never supersedes a live one; a live update announced later
    /// supersedes it). `Err(())`: the key is busy; `Ok(None)`: unreachable, go on alone.
    fn enter_if_idle<'a>(
        &'a self,
        key: &'a ListKey,
    ) -> TurnFuture<'a, Result<Option<SharedTurn>, ()>>;
}

/// A worker's hold on a key in [`SharedTurns`].
#[derive(Debug)]
pub struct SharedTurn {
    pub key: ListKey,
    /// This update's place in the key's order of announcements.
    pub seq: u64,
    /// Proves the hold when giving it back.
    pub token: String,
}

#[derive(Default)]
pub(crate) struct Coalescer {
    slots: Mutex<HashMap<ListKey, Arc<Slot>>>,
    next_seq: AtomicU64,
}

#[derive(Default)]
struct Slot {
    /// The newest update's sequence number.
    latest: AtomicU64,
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// One update's exclusive turn on a key; the next update's turn starts when it is dropped.
pub(crate) struct Turn<'a> {
    coalescer: &'a Coalescer,
    key: ListKey,
    slot: Arc<Slot>,
    seq: u64,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Coalescer {
    /// Announces an update of `key` and waits for its turn.
    pub(crate) async fn turn(&self, key: &ListKey) -> Turn<'_> {
        let (slot, seq) = {
            let mut slots = self.lock();
            let slot = slots.entry(key.clone()).or_default().clone();
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
            slot.latest.store(seq, Ordering::Release);
            (slot, seq)
        };
        let guard = slot.turn.clone().lock_owned().await;
        Turn {
            coalescer: self,
            key: key.clone(),
            slot,
            seq,
            guard: Some(guard),
        }
    }

    /// For background work: the key's turn only if no update of it is running or waiting.
    pub(crate) fn try_turn(&self, key: &ListKey) -> Option<Turn<'_>> {
        let mut slots = self.lock();
        if slots.contains_key(key) {
            return None;
        }
        let slot = Arc::new(Slot::default());
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        slot.latest.store(seq, Ordering::Release);
        let guard = slot
            .turn
            .clone()
            .try_lock_owned()
            .expect("a new slot is free");
        slots.insert(key.clone(), slot.clone());
        Some(Turn {
            coalescer: self,
            key: key.clone(),
            slot,
            seq,
            guard: Some(guard),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys with an update running or waiting (the queue depth).
    pub(crate) fn busy_keys(&self) -> usize {
        self.lock().len()
    }
}

impl Turn<'_> {
    /// Whether a newer update for the same key arrived; it will carry the latest menu.
    pub(crate) fn superseded(&self) -> bool {
        self.slot.latest.load(Ordering::Acquire) != self.seq
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut slots = self.coalescer.lock();
        // Only the map and this turn hold the slot: nobody waits, forget the key.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    #[tokio::test]
    async fn later_updates_supersede_waiting_ones_and_slots_are_freed() {
        let c = Coalescer::default();
        let key = ListKey::new(Scope::Default, None);
        let first = c.turn(&key).await;
        assert!(!first.superseded());
        // Two more updates queue behind the first.
        let (second, third) = {
            let s = c.turn(&key);
            let t = c.turn(&key);
            tokio::pin!(s, t);
            // Poll both once so they register, then release the first turn.
            assert!(futures_util::poll!(s.as_mut()).is_pending());
            assert!(futures_util::poll!(t.as_mut()).is_pending());
            assert!(first.superseded(), "a newer update arrived");
            drop(first);
            let second = s.await;
            assert!(second.superseded());
            drop(second);
            (true, t.await)
        };
        assert!(second);
        assert!(!third.superseded(), "the newest update carries the menu");
        assert_eq!(c.busy_keys(), 1);
        assert!(
            c.try_turn(&key).is_none(),
            "busy: background work steps aside"
        );
        drop(third);
        assert_eq!(c.busy_keys(), 0);
        let background = c.try_turn(&key).unwrap();
        assert!(!background.superseded());
        let live = c.turn(&key);
        tokio::pin!(live);
        assert!(futures_util::poll!(live.as_mut()).is_pending());
        assert!(
            background.superseded(),
            "a live update supersedes background work"
        );
        drop(background);
        assert!(!live.await.superseded());
    }
}
