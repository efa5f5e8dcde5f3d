//! The manager's side of known users: a live update remembers the context it used (inside its
//! list's turn), a store that is away gets it later, a user recorded behind the rules serving
//! now wakes the reconciler, and a reconciliation leaves a user whose context changed meanwhile
//! to the live update that changed it.

use std::sync::atomic::Ordering;

use super::{CommandManager, Status};
use crate::plan::override_key;
use crate::resolve::UserContext;
use crate::state::{KnownUsers, StoreError, UserKey};

impl CommandManager {
    /// The store's known users, when this manager remembers them.
    pub fn known_users(&self) -> Option<&dyn KnownUsers> {
        if self.known.remember {
            self.store.known_users()
        } else {
            None
        }
    }

    /// Records the context a live update used: at `generation` when Telegram holds its menu,
    /// at 0 (behind every generation, so the reconciler retries it) when the update failed.
    /// A store that cannot take it gets it later ([`CommandManager::save_unsaved`]).
    pub(super) async fn remember(&self, ctx: &UserContext, generation: u64, status: &Status) {
        let Some(known) = self.known_users() else {
            return;
        };
        let generation = match status {
            Status::Unchanged | Status::Set | Status::Deleted => generation,
            Status::Failed(_) | Status::StoreFailed(_) => 0,
            // A newer update remembers; nothing was tried.
            Status::Superseded | Status::NotSent(_) => return,
        };
        if generation != self.engine.load().generation() {
            // Resolved under rules that were replaced meanwhile (or failed): walk it again.
            self.left_behind.notify_one();
        }
        match self.record_known(known, ctx, generation).await {
            Ok(()) => self.unsaved.settled(UserKey::of(ctx)),
            Err(e) => {
                if self.unsaved.is_empty() {
                    tracing::warn!(
                        user_id = ctx.user_id,
                        "cannot remember the user, kept until the store answers again: {e}"
                    );
                }
                self.unsaved.keep(ctx, generation);
            }
        }
    }

    /// Writes one known user, counting new ones against the policy's maximum.
    async fn record_known(
        &self,
        known: &dyn KnownUsers,
        ctx: &UserContext,
        generation: u64,
    ) -> Result<(), StoreError> {
        if !self.known_counted.load(Ordering::Relaxed) {
            let count = known.count().await?;
            if !self.known_counted.swap(true, Ordering::Relaxed) {
                self.known_count.fetch_add(count, Ordering::Relaxed);
            }
        }
        if known.remember(ctx, generation).await? {
            let count = self.known_count.fetch_add(1, Ordering::Relaxed) + 1;
            if count > self.known.max {
                self.known_count.fetch_sub(1, Ordering::Relaxed);
                let _ = known.forget(UserKey::of(ctx)).await;
                tracing::warn!(
                    max = self.known.max,
                    "known users at their maximum: user {} is updated but not remembered",
                    ctx.user_id
                );
            }
        }
        Ok(())
    }

    /// Writes the users the store could not take while it was away, each in its list's turn
    /// (so a live update for the same user, which remembers a newer context, is never
    /// overwritten). Stops at the first failure: the store is still away. Answers how many
    /// were written and how many still wait.
    pub async fn save_unsaved(&self) -> (u64, usize) {
        let Some(known) = self.known_users() else {
            return (0, 0);
        };
        let mut saved = 0;
        'pages: while !self.unsaved.is_empty() {
            let page = self.unsaved.oldest(256);
            for (key, ctx) in page {
                let _turn = self.turns.turn(&override_key(&ctx.viewer())).await;
                let Some(generation) = self.unsaved.take_if(key, &ctx) else {
                    continue;
                };
                if let Err(e) = self.record_known(known, &ctx, generation).await {
                    self.unsaved.keep_if_absent(&ctx, generation);
                    tracing::debug!("the store is still away ({e}); known users keep waiting");
                    break 'pages;
                }
                saved += 1;
            }
        }
        if saved > 0 {
            tracing::info!(
                saved,
                waiting = self.unsaved.len(),
                dropped = self.unsaved.dropped(),
                "known users kept during a store outage are written"
            );
        }
        (saved, self.unsaved.len())
    }

    /// Known users waiting for the store to answer again.
    pub fn unsaved_users(&self) -> usize {
        self.unsaved.len()
    }

    /// Resolves once a live update recorded a user behind the rules serving now.
    pub async fn user_left_behind(&self) {
        self.left_behind.notified().await
    }

    /// Whether the context a reconciliation resolved from is no longer the user's last: a
    /// live update remembered a newer one (or the user was forgotten) since its page was read.
    pub(super) async fn stale(&self, ctx: &UserContext) -> bool {
        let Some(known) = self.known_users() else {
            return false;
        };
        match known.get(UserKey::of(ctx)).await {
            Ok(Some(user)) => user.context != *ctx,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(
                    user_id = ctx.user_id,
                    "cannot read the known user, leaving it for later: {e}"
                );
                true
            }
        }
    }
}
