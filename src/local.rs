//! The local fast path: threads of one client that want the same lock queue
//! here first, and only the head of the queue talks to the server.
//!
//! When a guard is released while other threads of the client wait for the
//! same name, the still-valid lease goes straight to the next of them: no
//! round trip, just a channel send. Each hand-off gets the next fencing token
//! of the block the server reserved for the acquisition (see
//! [`FENCE_BLOCK`]), so fences still strictly increase.
//!
//! Fairness: after a number of hand-offs in a row, or once a time budget
//! since the lease came from the server is spent, the holder asks the server
//! (one round trip) whether other clients wait for the lock. If they do, it
//! is released to them, and the local thread that goes next first pauses for
//! about two round trips, so that a remote waiter woken by the release
//! notification wins the race. If nobody else waits, the lease is restarted
//! with a new block of fences and local hand-offs go on.

use crate::lease::{drift, Lease};
use crate::store::FENCE_BLOCK;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most hand-offs one fence block allows.
pub(crate) const MAX_HANDOFFS: u32 = (FENCE_BLOCK - 1) as u32;

/// What a waiting thread is given.
pub(crate) enum Turn {
    /// Go and ask the server, after pausing this long if given (to let a
    /// waiter of another client take its turn).
    Head(Option<Duration>),
    /// The lock, handed over by the previous local holder.
    Lease(Arc<Lease>),
}

/// Where a thread stands after [`LocalLocks::enter`].
pub(crate) enum Entry {
    /// Ask the server now.
    Head,
    /// Wait for a [`Turn`].
    Wait(Receiver<Turn>),
}

/// What became of a released lease.
pub(crate) enum Released {
    /// A local waiter has it now.
    HandedOff,
    /// Nobody local can take it: release it on the server, then call
    /// [`LocalLocks::promote`].
    ToServer,
    /// The fairness bound is reached: ask the server whether others wait
    /// (`Store::pass_on`), then call [`LocalLocks::refreshed`].
    AskServer,
}

struct Waiter {
    id: u64,
    tx: Sender<Turn>,
    ttl: Duration,
    auto_renew: bool,
}

#[derive(Default)]
struct Queue {
    /// The lease of the guard of this client that holds the lock.
    holder: Option<Arc<Lease>>,
    /// The waiter currently asking the server.
    head: Option<u64>,
    waiters: VecDeque<Waiter>,
    /// Hand-offs since the lease came from the server.
    handoffs: u64,
    /// The fence the server gave that acquisition.
    base_fence: u64,
    /// When the lease came from the server.
    since: Option<Instant>,
}

impl Queue {
    /// Whether a local guard holds the lock; forgets a holder whose lease
    /// was lost (its guard may live on, but it holds nothing).
    fn held(&mut self) -> bool {
        if self.holder.as_ref().is_some_and(|h| !h.is_held()) {
            self.holder = None;
        }
        self.holder.is_some()
    }

    fn idle(&mut self) -> bool {
        !self.held() && self.head.is_none() && self.waiters.is_empty()
    }

    /// Makes the first waiter the head, if nobody holds or asks.
    fn promote(&mut self, courtesy: Option<Duration>) {
        if self.held() || self.head.is_some() {
            return;
        }
        if let Some(w) = self.waiters.pop_front() {
            self.head = Some(w.id);
            // Its receiver lives until it has left the queue, and it is not
            // in the queue any more, so this send cannot be lost.
            let _ = w.tx.send(Turn::Head(courtesy));
        }
    }

    /// Gives the lease to the first waiter with fence `fence`; false (and
    /// nothing changed) if there is none.
    fn hand_off(&mut self, fence: u64, make: &dyn Fn(u64) -> Arc<Lease>) -> bool {
        let Some(w) = self.waiters.pop_front() else {
            return false;
        };
        let next = make(fence);
        if w.tx.send(Turn::Lease(next.clone())).is_ok() {
            self.holder = Some(next);
            return true;
        }
        // Cannot happen (a queued waiter keeps its receiver), but never
        // leave a lease nobody holds registered for renewal.
        next.mark_lost();
        false
    }
}

/// How the local fast path behaves; see [`Builder`](crate::Builder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fairness {
    /// Queue locally at all.
    pub enabled: bool,
    /// Hand-offs in a row before asking the server.
    pub handoffs: u32,
    /// Time since the lease came from the server before asking it.
    pub budget: Duration,
}

/// Per-client queues, one per lock name in use.
pub(crate) struct LocalLocks {
    queues: Mutex<HashMap<String, Queue>>,
    fairness: Fairness,
}

impl LocalLocks {
    pub(crate) fn new(fairness: Fairness) -> Self {
        LocalLocks {
            queues: Mutex::new(HashMap::new()),
            fairness,
        }
    }

    /// Joins the queue for `name`: head at once if nobody of this client
    /// holds or asks for it.
    pub(crate) fn enter(&self, name: &str, id: u64, ttl: Duration, auto_renew: bool) -> Entry {
        if !self.fairness.enabled {
            return Entry::Head;
        }
        let mut map = self.queues.lock();
        let q = map.entry(name.to_string()).or_default();
        if !q.held() && q.head.is_none() {
            q.head = Some(id);
            return Entry::Head;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        q.waiters.push_back(Waiter {
            id,
            tx,
            ttl,
            auto_renew,
        });
        Entry::Wait(rx)
    }

    /// Head only if that needs no waiting (for `try_acquire`).
    pub(crate) fn try_enter(&self, name: &str, id: u64) -> bool {
        if !self.fairness.enabled {
            return true;
        }
        let mut map = self.queues.lock();
        let q = map.entry(name.to_string()).or_default();
        let free = !q.held() && q.head.is_none();
        if free {
            q.head = Some(id);
        } else if q.idle() {
            map.remove(name);
        }
        free
    }

    /// The head `id` acquired `lease` on the server.
    pub(crate) fn won(&self, id: u64, lease: &Arc<Lease>) {
        if !self.fairness.enabled {
            return;
        }
        let mut map = self.queues.lock();
        let q = map.entry(lease.name.clone()).or_default();
        if q.head == Some(id) {
            q.head = None;
        }
        q.holder = Some(lease.clone());
        q.handoffs = 0;
        q.base_fence = lease.fence;
        q.since = Some(Instant::now());
    }

    /// A queued waiter whose wait ran out checks whether the holder lost
    /// its lease without releasing it; if so, and nobody asks the server,
    /// the waiter becomes the head and true is returned.
    pub(crate) fn take_over(&self, name: &str, id: u64) -> bool {
        let mut map = self.queues.lock();
        let Some(q) = map.get_mut(name) else {
            return false;
        };
        if q.held() || q.head.is_some() {
            return false;
        }
        let Some(i) = q.waiters.iter().position(|w| w.id == id) else {
            return false;
        };
        q.waiters.remove(i);
        q.head = Some(id);
        true
    }

    /// How long the local holder's lease has left, if there is one.
    pub(crate) fn holder_left(&self, name: &str) -> Option<Duration> {
        let map = self.queues.lock();
        map.get(name)?.holder.as_ref().map(|h| h.remaining())
    }

    /// The head `id` stopped asking (timeout, cancel, error).
    pub(crate) fn gave_up(&self, name: &str, id: u64) {
        let mut map = self.queues.lock();
        if let Some(q) = map.get_mut(name) {
            if q.head == Some(id) {
                q.head = None;
            }
            q.promote(None);
            if q.idle() {
                map.remove(name);
            }
        }
    }

    /// The waiter `id` stops waiting. If a turn was sent to it meanwhile it
    /// is returned, and the caller must pass it on (give up the head, or
    /// release the lease).
    pub(crate) fn leave(&self, name: &str, id: u64, rx: &Receiver<Turn>) -> Option<Turn> {
        {
            let mut map = self.queues.lock();
            if let Some(q) = map.get_mut(name) {
                if let Some(i) = q.waiters.iter().position(|w| w.id == id) {
                    q.waiters.remove(i);
                    if q.idle() {
                        map.remove(name);
                    }
                    return None;
                }
            }
        }
        // Not queued any more: the turn was sent before we took the lock.
        rx.try_recv().ok()
    }

    /// A guard of `name` is being released. Hands the lease to the next
    /// compatible local waiter (with a new lease made by `make(fence)`)
    /// while the fairness bound allows; otherwise says what to do.
    pub(crate) fn release(&self, old: &Lease, make: &dyn Fn(u64) -> Arc<Lease>) -> Released {
        let mut map = self.queues.lock();
        let Some(q) = map.get_mut(&old.name) else {
            return Released::ToServer;
        };
        if q.holder.as_ref().is_none_or(|h| h.id != old.id) {
            // A stale guard (lost, and someone else holds now): not ours to
            // pass on.
            return Released::ToServer;
        }
        let compatible = q
            .waiters
            .front()
            .is_some_and(|w| w.ttl == old.ttl && w.auto_renew == old.auto_renew);
        let fresh = old.remaining() > drift(old.ttl) * 2;
        if !(compatible && fresh) {
            q.holder = None;
            return Released::ToServer;
        }
        let within_budget = q.since.is_some_and(|t| t.elapsed() < self.fairness.budget);
        if q.handoffs < u64::from(self.fairness.handoffs) && within_budget {
            q.handoffs += 1;
            if q.hand_off(q.base_fence + q.handoffs, make) {
                return Released::HandedOff;
            }
            q.holder = None;
            return Released::ToServer;
        }
        Released::AskServer
    }

    /// After [`Released::AskServer`]: the server kept the lease for us with
    /// a new fence block starting at `fence` (`Some`), or did not (`None`:
    /// released to others, not ours, or unreachable).
    pub(crate) fn refreshed(
        &self,
        old: &Lease,
        fence: Option<u64>,
        make: &dyn Fn(u64) -> Arc<Lease>,
    ) -> Released {
        let mut map = self.queues.lock();
        let Some(q) = map.get_mut(&old.name) else {
            return Released::ToServer;
        };
        if q.holder.as_ref().is_none_or(|h| h.id != old.id) {
            return Released::ToServer;
        }
        if let Some(fence) = fence {
            q.base_fence = fence;
            q.handoffs = 1;
            q.since = Some(Instant::now());
            if q.hand_off(fence + 1, make) {
                return Released::HandedOff;
            }
        }
        q.holder = None;
        Released::ToServer
    }

    /// After a release on the server: lets the next local waiter ask, after
    /// `courtesy` if given.
    pub(crate) fn promote(&self, name: &str, courtesy: Option<Duration>) {
        let mut map = self.queues.lock();
        if let Some(q) = map.get_mut(name) {
            q.promote(courtesy);
            if q.idle() {
                map.remove(name);
            }
        }
    }

    /// Names with queue state, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queues.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_order_head_and_cleanup() {
        let l = LocalLocks::new(Fairness {
            enabled: true,
            handoffs: 16,
            budget: Duration::from_millis(50),
        });
        let ttl = Duration::from_secs(1);
        assert!(matches!(l.enter("k", 1, ttl, true), Entry::Head));
        let Entry::Wait(rx2) = l.enter("k", 2, ttl, true) else {
            panic!("second must wait")
        };
        let Entry::Wait(rx3) = l.enter("k", 3, ttl, true) else {
            panic!("third must wait")
        };
        assert!(!l.try_enter("k", 4), "try never queues");
        // The head fails: the next in line becomes head.
        l.gave_up("k", 1);
        assert!(matches!(rx2.try_recv(), Ok(Turn::Head(None))));
        assert!(rx3.try_recv().is_err());
        // Waiter 3 leaves before its turn; waiter 2 wins and releases.
        assert!(l.leave("k", 3, &rx3).is_none());
        let lease = Lease::new(crate::lease::NewLease {
            id: 2,
            name: "k".into(),
            token: "t".into(),
            ttl,
            fence: 100,
            auto_renew: true,
            max_hold: None,
            sent: crate::clock::BootInstant::now(),
        });
        l.won(2, &lease);
        assert_eq!(l.len(), 1);
        l.gave_up("k", 2);
        l.promote("k", None);
        assert_eq!(l.len(), 1, "still held by 2");
        // Lost without a release: a newcomer need not wait for it.
        lease.mark_lost();
        assert!(matches!(l.enter("k", 5, ttl, true), Entry::Head));
    }
}
