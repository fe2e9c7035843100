//! The shared state of one acquisition, seen by its guard and the renewal thread.

use crate::clock::{drift, BootInstant};
use crate::stats::{add, Counters};
use crate::store::{Kind, LAZY_FENCE};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Until when a lease granted for a request sent at `sent` may be claimed.
pub(crate) fn deadline(sent: BootInstant, ttl: Duration) -> BootInstant {
    if crate::mutant::on(crate::mutant::Mutant::LongLease) {
        return sent.add(ttl * 4);
    }
    sent.add(ttl).sub(drift(ttl))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Held,
    Lost,
    Released,
}

struct State {
    status: Status,
    /// Until when we may claim to hold the lock.
    deadline: BootInstant,
    /// Dropped when the lease ends, which makes every `lost()` receiver ready.
    done_tx: Option<Sender<()>>,
}

/// One server-side lease, which local hand-offs pass from guard to guard:
/// the renewal thread keeps the grant, and renews whichever lease is
/// current, so a hand-off needs no message to it.
pub(crate) struct Grant {
    /// The id of the lease that came from the server.
    pub id: u64,
    current: Mutex<Weak<Lease>>,
}

impl Grant {
    /// The lease that holds the grant now, if its guard still exists.
    pub(crate) fn current(&self) -> Option<Arc<Lease>> {
        self.current.lock().upgrade()
    }
}

/// One acquisition: what it is, and whether it is still ours.
pub(crate) struct Lease {
    pub id: u64,
    pub name: String,
    pub token: String,
    pub ttl: Duration,
    /// The fencing token; [`LAZY_FENCE`] until it is given (see
    /// [`Store::acquire_lazy`](crate::store::Store::acquire_lazy)).
    fence: AtomicU64,
    pub auto_renew: bool,
    /// What it holds: a plain lock, or a share of a read-write lock or
    /// semaphore.
    pub kind: Kind,
    /// The process that acquired it; a forked child must not touch it.
    pub owner_pid: u32,
    /// With auto-renewal, the moment the hold-time cap runs out.
    pub hold_until: Option<BootInstant>,
    /// The server-side lease this one is (or continues).
    pub grant: Arc<Grant>,
    state: Mutex<State>,
    done_rx: Receiver<()>,
    /// The client's counters, for losses.
    counters: Arc<Counters>,
}

/// The fields a new lease starts from.
pub(crate) struct NewLease {
    pub id: u64,
    pub name: String,
    pub token: String,
    pub ttl: Duration,
    pub fence: u64,
    pub auto_renew: bool,
    pub max_hold: Option<Duration>,
    /// What it holds.
    pub kind: Kind,
    /// When the winning request was sent.
    pub sent: BootInstant,
    /// The client's counters.
    pub counters: Arc<Counters>,
}

impl Lease {
    /// A lease fresh from the server, with its own grant.
    pub(crate) fn new(n: NewLease) -> Arc<Self> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(0);
        let lease = Arc::new(Lease {
            id: n.id,
            grant: Arc::new(Grant {
                id: n.id,
                current: Mutex::new(Weak::new()),
            }),
            hold_until: n
                .max_hold
                .filter(|_| n.auto_renew)
                .map(|cap| n.sent.add(cap)),
            state: Mutex::new(State {
                status: Status::Held,
                deadline: deadline(n.sent, n.ttl),
                done_tx: Some(done_tx),
            }),
            done_rx,
            name: n.name,
            token: n.token,
            ttl: n.ttl,
            fence: AtomicU64::new(n.fence),
            auto_renew: n.auto_renew,
            kind: n.kind,
            owner_pid: std::process::id(),
            counters: n.counters,
        });
        *lease.grant.current.lock() = Arc::downgrade(&lease);
        lease
    }

    /// The lease the next local waiter gets when `old` is handed over: same
    /// key, token and deadline (the server-side lease simply continues), a
    /// new id and the next fence of the reserved block.
    pub(crate) fn handoff(
        old: &Lease,
        id: u64,
        fence: u64,
        max_hold: Option<Duration>,
    ) -> Arc<Self> {
        let now = BootInstant::now();
        let mut deadline = old.state.lock().deadline;
        if crate::mutant::on(crate::mutant::Mutant::StaleHandoff) {
            deadline = self::deadline(now, old.ttl);
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(0);
        let lease = Arc::new(Lease {
            id,
            grant: old.grant.clone(),
            name: old.name.clone(),
            token: old.token.clone(),
            ttl: old.ttl,
            fence: AtomicU64::new(fence),
            auto_renew: old.auto_renew,
            kind: old.kind,
            owner_pid: old.owner_pid,
            hold_until: max_hold.filter(|_| old.auto_renew).map(|cap| now.add(cap)),
            state: Mutex::new(State {
                status: Status::Held,
                deadline,
                done_tx: Some(done_tx),
            }),
            done_rx,
            counters: old.counters.clone(),
        });
        *lease.grant.current.lock() = Arc::downgrade(&lease);
        lease
    }

    /// When the renewal thread should first extend this lease: two thirds
    /// of a TTL before its deadline (a third of the TTL after a fresh grant).
    pub(crate) fn renew_due(&self) -> BootInstant {
        self.state.lock().deadline.sub(self.ttl * 2 / 3)
    }

    /// Held, and the local deadline has not passed. A passed deadline turns
    /// the lease into lost on the spot.
    pub(crate) fn is_held(&self) -> bool {
        let mut s = self.state.lock();
        if s.status == Status::Held && s.deadline.has_passed() {
            s.status = Status::Lost;
            s.done_tx = None;
            add(&self.counters.lost, 1);
            log::warn!(
                "distlock: lost the lock {:?}: its lease ran out before a renewal was confirmed",
                self.name
            );
        }
        s.status == Status::Held
    }

    /// A receiver that becomes ready (disconnected) once the lease ends.
    pub(crate) fn done(&self) -> Receiver<()> {
        // Checking first makes a lease whose deadline passed unnoticed (a
        // suspended process, say) report the loss at once.
        self.is_held();
        self.done_rx.clone()
    }

    /// Time left on the local deadline (zero when not held).
    pub(crate) fn remaining(&self) -> Duration {
        if !self.is_held() {
            return Duration::ZERO;
        }
        self.state.lock().deadline.remaining()
    }

    /// The earliest moment the renewal thread must look at this lease again
    /// without renewing it: its deadline or its hold cap.
    pub(crate) fn watch_until(&self) -> BootInstant {
        let deadline = self.state.lock().deadline;
        self.hold_until.map_or(deadline, |cap| cap.min(deadline))
    }

    /// The fencing token, or [`LAZY_FENCE`] if it is not given yet.
    pub(crate) fn fence(&self) -> u64 {
        self.fence.load(Ordering::Acquire)
    }

    /// Records the fence the server gave a lease acquired without one; if
    /// another thread recorded one first, that one stays. The lease's fence.
    pub(crate) fn give_fence(&self, fence: u64) -> u64 {
        match self
            .fence
            .compare_exchange(LAZY_FENCE, fence, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fence,
            Err(given) => given,
        }
    }

    /// The server confirmed the lease again, for a request sent at `sent`.
    pub(crate) fn renewed(&self, sent: BootInstant) {
        let mut s = self.state.lock();
        if s.status == Status::Held {
            let fresh = deadline(sent, self.ttl);
            s.deadline = s.deadline.max(fresh);
        }
    }

    /// Marks the lease lost, for `why` (logged); true if it was held until
    /// now.
    pub(crate) fn mark_lost(&self, why: &str) -> bool {
        let was_held = self.end(Status::Lost);
        if was_held {
            add(&self.counters.lost, 1);
            log::warn!("distlock: lost the lock {:?}: {why}", self.name);
        }
        was_held
    }

    /// Marks the lease released by its owner; true if it was still validly
    /// held (before its deadline) at that moment.
    pub(crate) fn mark_released(&self) -> bool {
        self.is_held() && self.end(Status::Released)
    }

    fn end(&self, to: Status) -> bool {
        let mut s = self.state.lock();
        let was_held = s.status == Status::Held;
        if was_held {
            s.status = to;
            s.done_tx = None;
        }
        was_held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl_ms: u64) -> Arc<Lease> {
        Lease::new(NewLease {
            id: 1,
            name: "k".into(),
            token: "t".into(),
            ttl: Duration::from_millis(ttl_ms),
            fence: 1,
            auto_renew: true,
            max_hold: Some(Duration::from_secs(5)),
            kind: Kind::Plain,
            sent: BootInstant::now(),
            counters: Arc::new(Counters::new()),
        })
    }

    #[test]
    fn release_ends_the_lease_once_and_fires_done() {
        let l = lease(10_000);
        let done = l.done();
        assert!(l.is_held());
        assert!(done.try_recv().is_err_and(|e| e.is_empty()));
        assert!(l.mark_released());
        assert!(!l.mark_released());
        assert!(!l.mark_lost("test"));
        assert!(!l.is_held());
        assert!(done.try_recv().is_err_and(|e| e.is_disconnected()));
    }

    #[test]
    fn a_passed_deadline_reads_as_lost() {
        let l = lease(10_000);
        // Pretend the lease was granted long ago.
        l.state.lock().deadline = BootInstant::now().sub(Duration::from_millis(1));
        assert!(!l.is_held());
        assert!(
            !l.mark_released(),
            "release after the deadline must report loss"
        );
        assert_eq!(l.remaining(), Duration::ZERO);
    }

    #[test]
    fn deadline_leaves_room_for_drift_and_hold_cap_bounds_watch() {
        let before = BootInstant::now();
        let l = lease(1_000);
        let left = l.remaining();
        assert!(left <= Duration::from_millis(1_000) - drift(Duration::from_millis(1_000)));
        assert!(
            l.watch_until()
                <= before
                    .add(Duration::from_secs(5))
                    .add(Duration::from_millis(50))
        );
    }
}
