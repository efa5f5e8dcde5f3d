//! Two lanes into one pace: live updates (a user just wrote to the bot) go before background
//! work (bringing every known user to a new rule set), and the background keeps a guaranteed
//! share so a busy bot still finishes its reconciliation.
//!
//! Callers queue per lane; one at a time stands at the [`RateGate`], chosen by lane: a live
//! caller goes first, except that after [`BACKGROUND_SHARE`] live slots in a row a waiting
//! background caller takes the next one. The gate's own pace is unchanged: lanes only decide
//! who gets each slot.

use std::sync::Mutex;

use tokio::sync::Notify;

use super::pace::RateGate;

/// Who is asking for a slot of the bot's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// An update a user or the bot is waiting for.
    Live,
    /// Reconciliation: bringing known users to a new config or plugin version.
    Background,
}

/// When both lanes wait, one slot in this many goes to the background.
pub const BACKGROUND_SHARE: u32 = 5;

#[derive(Default)]
struct State {
    waiting: [usize; 2],
    /// Someone is at the gate now.
    at_gate: bool,
    /// Live slots given since the background last had one.
    live_in_a_row: u32,
}

impl State {
    fn may_go(&self, lane: Lane) -> bool {
        let background_owed = self.live_in_a_row >= BACKGROUND_SHARE;
        match lane {
            Lane::Live => !(background_owed && self.waiting[1] > 0),
            Lane::Background => self.waiting[0] == 0 || background_owed,
        }
    }
}

fn index(lane: Lane) -> usize {
    match lane {
        Lane::Live => 0,
        Lane::Background => 1,
    }
}

/// The lanes in front of one gate.
#[derive(Default)]
pub(crate) struct Lanes {
    state: Mutex<State>,
    changed: Notify,
}

impl Lanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this lane's turn, then for a slot of `gate`.
    pub(crate) async fn through(&self, lane: Lane, gate: &dyn RateGate) {
        self.lock().waiting[index(lane)] += 1;
        // Undoes the count if the caller gives up while queued.
        let mut queued = Queued {
            lanes: self,
            lane,
            armed: true,
        };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if !state.at_gate && state.may_go(lane) {
                    state.at_gate = true;
                    state.waiting[index(lane)] -= 1;
                    queued.armed = false;
                    break;
                }
            }
            notified.await;
        }
        let _leave = AtGate { lanes: self };
        gate.acquire().await;
        let mut state = self.lock();
        state.live_in_a_row = match lane {
            Lane::Live => state.live_in_a_row.saturating_add(1),
            Lane::Background => 0,
        };
    }
}

struct Queued<'a> {
    lanes: &'a Lanes,
    lane: Lane,
    armed: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.lanes.lock().waiting[index(self.lane)] -= 1;
            self.lanes.changed.notify_waiters();
        }
    }
}

struct AtGate<'a> {
    lanes: &'a Lanes,
}

impl Drop for AtGate<'_> {
    fn drop(&mut self) {
        self.lanes.lock().at_gate = false;
        self.lanes.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::deliver::pace::LocalGate;

    /// 40 background and 10 live callers queue at once behind a gate of 10/s: every live
    /// caller is served within its first slots, and the background still gets its share.
    #[tokio::test(start_paused = true)]
    async fn live_goes_first_and_the_background_keeps_its_share() {
        let lanes = Arc::new(Lanes::default());
        let gate = Arc::new(LocalGate::new(10.0, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let lane = if i < 40 { Lane::Background } else { Lane::Live };
            let (lanes, gate, order) = (lanes.clone(), gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                lanes.through(lane, gate.as_ref()).await;
                order.lock().unwrap().push(lane);
            }));
            // The background queues first.
            if i == 39 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let last_live = order.iter().rposition(|l| *l == Lane::Live).unwrap();
        // 10 live slots with a background one owed after every 5: done by the 13th slot.
        assert!(last_live <= 13, "live served late: {order:?}");
        let background_before = order[..last_live]
            .iter()
            .filter(|l| **l == Lane::Background)
            .count();
        assert!(background_before >= 1, "the background starved: {order:?}");
    }
}
