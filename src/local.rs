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
//!
//! The same courtesy holds between clients: after a release that another
//! client heard (the release script says so; `COURTESY_AFTER` such
//! releases in a row, one today), this client's next acquisition of that
//! name pauses for about two round trips of the release before it asks, so
//! a process that releases and takes the lock again in a loop cannot win
//! every race against the waiters it woke.

//!
//! Lease caching ([`Builder::linger`](crate::Builder::linger)): a lease
//! released while no thread of the client waits is kept ("parked") for
//! the linger time instead of being released on the server, and the
//! client's next acquisition of the name takes it over like a hand-off:
//! the next fence of the block, no round trip. The parked lease is renewed
//! like any other. While the client lingers on a name its feed listens to
//! the name's want channel; a client that finds the lock held announces
//! itself there, and the lingering client then releases the lock at once
//! (or, if it holds it again meanwhile, at its next release). The fence
//! block and the fairness time budget bound a run of such grants as they
//! bound hand-offs: at the bound the server is asked, as for hand-offs.
//!
//! Each side of the protocol is one call: [`LocalLocks::acquire`] queues a
//! thread, waits for its turn and records what the head won on the server;
//! [`LocalLocks::release`] hands a released lease on, asks the server at
//! the fairness bound, or releases on the server, and lets the next thread
//! ask. The order of those steps is known only here.

use crate::clock::{drift, BootInstant};
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::notify::Watch;
use crate::store::{Kind, PassOn, Released, Store, FENCE_BLOCK, LAZY_FENCE};
use crate::wait;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most hand-offs one fence block allows.
pub(crate) const MAX_HANDOFFS: u32 = (FENCE_BLOCK - 1) as u32;

/// What the queues need from the client they belong to.
pub(crate) trait Host {
    /// The server the locks live on.
    fn store(&self) -> &dyn Store;
    /// A new lease that continues `old`'s grant with `fence`, for a local
    /// waiter (the renewal thread follows the grant without being told).
    fn continue_lease(&self, old: &Lease, fence: u64) -> Arc<Lease>;
    /// `lease` went on to a waiting thread of this client (for counters and
    /// logs).
    fn handed_off(&self, lease: &Lease);
    /// Stops renewing `lease`'s grant: it leaves this client.
    fn forget(&self, lease: &Lease);
    /// Longest a waiter goes without looking at the lock again.
    fn max_retry_interval(&self) -> Duration;
    /// How long a released lease may linger (`None`: it never does).
    fn linger(&self) -> Option<Duration>;
    /// Starts hearing the announcements of clients that want `name`, and
    /// has the linger thread look at the name at `check_at`; the returned
    /// subscription lasts while it is kept. `None` when the client cannot
    /// hear them (it then does not linger).
    fn hear_wants(&self, name: &str, check_at: Instant) -> Option<Watch>;
    /// `lease` was granted from a lingering lease (for counters and logs).
    fn lingered(&self, lease: &Lease);
    /// Whether guards of `name` have had their fence read, so that its
    /// leases should carry fences from a block.
    fn wants_fence(&self, name: &str) -> bool;
    /// How many times the client's release feed lost its connection: a
    /// count that moves when the server may have restarted and lost every
    /// lock, which a lease confirmed before cannot be handed on unasked.
    fn disruptions(&self) -> u64;
}

/// Which thread wants which lock, with which lease settings.
pub(crate) struct Want<'a> {
    /// The lock name.
    pub name: &'a str,
    /// The id its lease will have.
    pub id: u64,
    /// The lease it asks for; only a holder with the same may hand on.
    pub ttl: Duration,
    /// Whether it wants auto-renewal; likewise.
    pub auto_renew: bool,
}

/// How long a thread may wait in the queue.
#[derive(Clone, Copy)]
pub(crate) struct QueueWait<'a> {
    /// Never wait: ask the server only if nobody of this client holds or
    /// asks (for `try_acquire`).
    pub once: bool,
    /// Give up with [`Error::Timeout`] then; `None`: no limit.
    pub deadline: Option<Instant>,
    /// Give up with [`Error::Cancelled`] when it fires.
    pub cancel: Option<&'a Receiver<()>>,
}

/// What a waiting thread is given.
enum Turn {
    /// Go and ask the server, after pausing this long if given (to let a
    /// waiter of another client take its turn).
    Head(Option<Duration>),
    /// The lock, handed over by the previous local holder.
    Lease(Arc<Lease>),
}

/// Where a thread stands after [`LocalLocks::enter`].
enum Place {
    /// Ask the server now.
    Head,
    /// Wait for a [`Turn`].
    Queued(Receiver<Turn>),
    /// Busy, and the thread may not wait (`try_acquire`).
    Busy,
    /// The lock, taken over from this client's lingering lease.
    Granted(Arc<Lease>),
    /// The head, with the lingering lease at its bound: ask the server to
    /// keep it with a new fence block, else ask for the lock.
    Refresh(Arc<Lease>),
    /// The head, with a lingering lease it cannot take over (other lease
    /// settings, wanted by another client, or about to run out): release
    /// that on the server, then ask for the lock.
    Release(Arc<Lease>),
}

/// What the local side can do with a released lease.
enum Local {
    /// A local waiter has it now.
    HandedOff,
    /// Nobody local can take it: release it on the server.
    ToServer,
    /// The fairness bound is reached: ask the server whether others wait.
    AskServer,
    /// Nobody local waits, and the client lingers on the lease.
    Parked,
    /// Nobody local can take it: release it on the server, and start
    /// hearing who wants the lock (the client lingers on it next time,
    /// once it hears them).
    ToServerHearing,
}

/// What is left to do with a released lease once the local side is settled.
enum Next {
    /// A local waiter has it: nothing.
    HandedOff,
    /// Release it on the server.
    Release,
    /// The server already answered for it, with this outcome.
    Answered(Result<()>),
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
    /// The released lease the client lingers on, and until when it may.
    parked: Option<(Arc<Lease>, Instant)>,
    /// Another client announced that it wants the lock, or heard its last
    /// release on the server: do not linger on it.
    wanted: bool,
    /// The subscription to those announcements, kept from the first stay
    /// until one linger time after the last ends.
    wants: Option<Watch>,
    /// When the last stay was to end.
    stayed: Option<Instant>,
    /// The client's [`Host::disruptions`] before the lease was last
    /// confirmed by the server.
    epoch: u64,
}

impl Queue {
    /// Whether a local guard holds the lock; forgets a holder whose lease
    /// was lost (its guard may live on, but it holds nothing).
    fn held(&mut self) -> bool {
        let stale = crate::mutant::on(crate::mutant::Mutant::StaleHandoff);
        if !stale && self.holder.as_ref().is_some_and(|h| !h.is_held()) {
            self.holder = None;
        }
        self.holder.is_some()
    }

    fn idle(&mut self) -> bool {
        !self.held()
            && self.head.is_none()
            && self.waiters.is_empty()
            && self.parked.is_none()
            && self.wants.is_none()
    }

    /// Takes the lingering lease, if there is one.
    fn unpark(&mut self) -> Option<Arc<Lease>> {
        self.parked.take().map(|(lease, _)| lease)
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

    /// The fence of the next hand-off: the next of the block, or none yet
    /// when the server gave the acquisition none (each guard then asks for
    /// its own when it is read).
    fn next_fence(&self) -> u64 {
        if self.base_fence == LAZY_FENCE {
            LAZY_FENCE
        } else {
            self.base_fence + self.handoffs
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
        next.mark_lost("the thread it was handed to had gone");
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

/// Releases `lease` on the server: `Ok` if it was still ours and is gone,
/// with whether another client heard the release (a plain lock's only).
fn release_on_server(store: &dyn Store, lease: &Lease) -> Result<bool> {
    let release = || match lease.kind {
        Kind::Plain => store.release_heard(&lease.name, &lease.token),
        kind => store
            .release_share(&lease.name, kind, &lease.token)
            .map(|deleted| Released {
                deleted,
                heard: false,
            }),
    };
    let released = match release() {
        // A dead pooled connection (say, after a server restart): ask again
        // on a fresh one. If the first attempt did delete the key and only
        // its reply was lost, this reports a loss that was not one; never
        // the other way round.
        Err(Error::Connection(_)) => release(),
        other => other,
    }?;
    if released.deleted {
        Ok(released.heard)
    } else {
        Err(Error::Lost)
    }
}

/// The shortest and longest courtesy pause after a release another client
/// heard: long enough for its woken waiter to ask, never a noticeable wait.
const COURTESY_MIN: Duration = Duration::from_micros(100);
const COURTESY_MAX: Duration = Duration::from_millis(5);
/// Releases in a row that other clients heard before this client lets
/// their waiters go first: a bound on how long it can keep winning.
const COURTESY_AFTER: u32 = 1;
/// Names with a courtesy pause pending above which the expired ones are
/// dropped.
const COURTESY_NAMES: usize = 1024;

/// Per-client queues, one per lock name in use.
pub(crate) struct LocalLocks {
    queues: Mutex<HashMap<String, Queue>>,
    fairness: Fairness,
    /// Per name: releases in a row that other clients heard, and until
    /// when this client's next acquisition lets their waiters go first.
    courtesy: Mutex<HashMap<String, (u32, Option<Instant>)>>,
}

impl LocalLocks {
    pub(crate) fn new(fairness: Fairness) -> Self {
        LocalLocks {
            queues: Mutex::new(HashMap::new()),
            fairness,
            courtesy: Mutex::new(HashMap::new()),
        }
    }

    /// The acquire side, in one call: queues the thread `want` describes,
    /// waits for its turn within `wait`, and returns either a lease handed
    /// over by this client's holder or, once the thread is the head of the
    /// queue, what `ask` won on the server (recorded as this client's
    /// holder). `ask` returns a lease already registered for renewal.
    ///
    /// [`Error::Timeout`] when `wait.once` and the queue is busy, or at the
    /// deadline; [`Error::Cancelled`]; or `ask`'s error. Whatever happens,
    /// the thread leaves the queue, and a lease handed to it as it gave up
    /// is passed on. With the lease comes whether the thread had to queue.
    pub(crate) fn acquire(
        &self,
        host: &dyn Host,
        want: &Want<'_>,
        wait: QueueWait<'_>,
        ask: impl FnOnce() -> Result<Arc<Lease>>,
    ) -> Result<(Arc<Lease>, bool)> {
        let mut queued = false;
        match self.enter(host, want, wait.once) {
            Place::Head => {}
            Place::Busy => return Err(Error::Timeout),
            Place::Granted(lease) => return Ok((lease, false)),
            Place::Refresh(parked) => {
                if let Some(lease) = self.refresh_parked(host, want.id, &parked) {
                    return Ok((lease, false));
                }
            }
            Place::Release(parked) => self.release_parked(host, &parked),
            Place::Queued(turns) => {
                queued = true;
                if let Some(lease) = self.wait_turn(host, want, wait, &turns)? {
                    return Ok((lease, queued));
                }
            }
        }
        if !wait.once {
            if let Err(e) = self.be_courteous(want.name, &wait) {
                self.gave_up(want.name, want.id);
                return Err(e);
            }
        }
        let epoch = host.disruptions();
        match ask() {
            Ok(lease) => {
                self.won(want.id, &lease, epoch);
                Ok((lease, queued))
            }
            Err(e) => {
                self.gave_up(want.name, want.id);
                Err(e)
            }
        }
    }

    /// Pauses until the courtesy after this client's last release of
    /// `name` has passed, if other clients heard that release.
    fn be_courteous(&self, name: &str, wait: &QueueWait<'_>) -> Result<()> {
        let until = match self.courtesy.lock().get_mut(name) {
            Some((_, until)) => until.take(),
            None => None,
        };
        match until.and_then(|t| t.checked_duration_since(Instant::now())) {
            Some(pause) => wait::sleep(pause, wait.deadline, wait.cancel),
            None => Ok(()),
        }
    }

    /// Records a release of `name` that took `took`, and whether other
    /// clients heard it. The `COURTESY_AFTER`th heard release in a row
    /// makes the next acquisition pause; a release nobody heard ends the
    /// run.
    ///
    /// Whether another client heard it also says whether a client that
    /// lingers may keep the lock at its next release: not while others
    /// wait, although they announced themselves only once.
    fn released(&self, name: &str, heard: bool, took: Duration) {
        if let Some(q) = self.queues.lock().get_mut(name) {
            q.wanted = heard;
        }
        let mut pending = self.courtesy.lock();
        if !heard {
            pending.remove(name);
            return;
        }
        let now = Instant::now();
        if pending.len() >= COURTESY_NAMES {
            pending.retain(|_, (_, t)| t.is_some_and(|t| t > now));
        }
        let (run, until) = pending.entry(name.to_string()).or_insert((0, None));
        *run += 1;
        if *run >= COURTESY_AFTER {
            *run = 0;
            *until = Some(now + (took * 2).clamp(COURTESY_MIN, COURTESY_MAX));
        }
    }

    /// Waits in the queue: `Some` lease handed over, or `None` when the
    /// thread is the head and should ask the server.
    fn wait_turn(
        &self,
        host: &dyn Host,
        want: &Want<'_>,
        wait: QueueWait<'_>,
        turns: &Receiver<Turn>,
    ) -> Result<Option<Arc<Lease>>> {
        let (name, id) = (want.name, want.id);
        loop {
            // Bounded by the local holder's lease, in case it is lost while
            // its guard lives on.
            let pause = wait::pause_for(self.holder_left(name), host.max_retry_interval());
            match wait::wait_for(turns, Some(pause), wait.deadline, wait.cancel) {
                Ok(Some(Turn::Lease(lease))) => return Ok(Some(lease)),
                Ok(Some(Turn::Head(courtesy))) => {
                    // After a release for fairness, let another client's
                    // woken waiter go first.
                    if let Some(pause) = courtesy {
                        if let Err(e) = wait::sleep(pause, wait.deadline, wait.cancel) {
                            self.gave_up(name, id);
                            return Err(e);
                        }
                    }
                    return Ok(None);
                }
                Ok(None) if self.take_over(name, id) => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    match self.leave(name, id, turns) {
                        Some(Turn::Head(_)) => self.gave_up(name, id),
                        // Handed to us as we gave up: pass it on.
                        Some(Turn::Lease(lease)) => {
                            let _ = self.release(host, &lease);
                        }
                        None => {}
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Joins the queue for `want.name`: head at once if nobody of this
    /// client holds or asks for it (taking over the lease the client
    /// lingers on, if it can); [`Place::Busy`] instead of queueing when
    /// the thread may not wait (`once`).
    fn enter(&self, host: &dyn Host, want: &Want<'_>, once: bool) -> Place {
        if !self.fairness.enabled {
            return Place::Head;
        }
        let mut map = self.queues.lock();
        let q = map.entry(want.name.to_string()).or_default();
        if !q.held() && q.head.is_none() {
            if let Some(parked) = q.unpark() {
                return self.take_parked(host, q, want, parked);
            }
            q.head = Some(want.id);
            return Place::Head;
        }
        if once {
            if q.idle() {
                map.remove(want.name);
            }
            return Place::Busy;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        q.waiters.push_back(Waiter {
            id: want.id,
            tx,
            ttl: want.ttl,
            auto_renew: want.auto_renew,
        });
        Place::Queued(rx)
    }

    /// What `want` does with the lease `parked` the client lingers on (in
    /// the queue `q`, which nobody holds or asks for): takes it over like a
    /// hand-off while the fence block and the fairness budget allow, else
    /// becomes the head with it to refresh or to release.
    fn take_parked(
        &self,
        host: &dyn Host,
        q: &mut Queue,
        want: &Want<'_>,
        parked: Arc<Lease>,
    ) -> Place {
        let fits = parked.ttl == want.ttl && parked.auto_renew == want.auto_renew;
        let fresh = parked.remaining() > drift(parked.ttl) * 2;
        q.head = Some(want.id);
        if !(fits && fresh) || q.wanted {
            return Place::Release(parked);
        }
        // A chain without fences stays one while nobody reads them; once
        // somebody does, a refresh gives it a block, so that each grant's
        // fence costs no round trip of its own.
        let in_block = if q.base_fence == LAZY_FENCE {
            !host.wants_fence(want.name)
        } else {
            q.handoffs < u64::from(MAX_HANDOFFS)
        };
        let in_budget = q.since.is_some_and(|t| t.elapsed() < self.fairness.budget);
        let undisturbed = q.epoch == host.disruptions();
        if !(in_block && in_budget && undisturbed) {
            return Place::Refresh(parked);
        }
        q.head = None;
        q.handoffs += 1;
        let lease = host.continue_lease(&parked, q.next_fence());
        parked.mark_released();
        q.holder = Some(lease.clone());
        host.lingered(&lease);
        Place::Granted(lease)
    }

    /// The head `id` has the lingering lease `parked` at its bound: asks
    /// the server to keep it with a new fence block (the lease then goes
    /// to `id`), or releases it to the clients that wait. `None`: the head
    /// must ask for the lock.
    fn refresh_parked(&self, host: &dyn Host, id: u64, parked: &Lease) -> Option<Arc<Lease>> {
        let asked = Instant::now();
        let sent = BootInstant::now();
        let epoch = host.disruptions();
        match host
            .store()
            .pass_on(&parked.name, &parked.token, parked.ttl)
        {
            Ok(PassOn::Kept { fence }) => {
                parked.renewed(sent);
                let lease = host.continue_lease(parked, fence);
                parked.mark_released();
                self.won(id, &lease, epoch);
                host.lingered(&lease);
                Some(lease)
            }
            Ok(PassOn::Released) => {
                parked.mark_released();
                host.forget(parked);
                self.released(&parked.name, true, asked.elapsed());
                None
            }
            Ok(PassOn::NotOwner) => {
                parked.mark_released();
                host.forget(parked);
                None
            }
            Err(_) => {
                self.release_parked(host, parked);
                None
            }
        }
    }

    /// Releases the lease `parked` the client lingered on, on the server.
    fn release_parked(&self, host: &dyn Host, parked: &Lease) {
        parked.mark_released();
        host.forget(parked);
        let asked = Instant::now();
        if let Ok(heard) = release_on_server(host.store(), parked) {
            self.released(&parked.name, heard, asked.elapsed());
        }
    }

    /// Another client announced that it wants `name` (heard by the linger
    /// thread): a lease the client lingers on is released now, a lease it
    /// holds again will not linger at its release. True while the client
    /// still listens for such announcements of `name`.
    pub(crate) fn wanted(&self, host: &dyn Host, name: &str) -> bool {
        let parked = {
            let mut map = self.queues.lock();
            let Some(q) = map.get_mut(name) else {
                return false;
            };
            q.wanted = true;
            match q.unpark() {
                Some(parked) => parked,
                None => return q.wants.is_some(),
            }
        };
        self.release_parked(host, &parked);
        true
    }

    /// The linger thread's look at `name` at the time it was given: a
    /// lingering lease whose stay is over is released on the server, and
    /// one linger time after the last stay ended (and nobody of the client
    /// holds the lock) the client stops hearing who wants it, so that
    /// stays in a row keep one subscription. Returns when to look again
    /// (`None`: the client no longer listens for the name).
    pub(crate) fn linger_due(&self, host: &dyn Host, name: &str) -> Option<Instant> {
        let linger = host.linger()?;
        let now = Instant::now();
        let (parked, unused) = {
            let mut map = self.queues.lock();
            let q = map.get_mut(name)?;
            match &q.parked {
                Some((_, until)) if *until > now => return Some(*until),
                Some(_) => (q.unpark(), None),
                None => {
                    let quiet_until = q.stayed.map_or(now, |t| t + linger);
                    if q.held() || q.head.is_some() || quiet_until > now {
                        return Some(quiet_until.max(now + linger / 4));
                    }
                    let wants = q.wants.take();
                    if q.idle() {
                        map.remove(name);
                    }
                    (None, wants)
                }
            }
        };
        // Dropped outside the queues' lock: it takes the notifier's.
        drop(unused);
        let parked = parked?;
        self.release_parked(host, &parked);
        Some(now + linger)
    }

    /// Releases on the server every lease the client lingers on (when the
    /// client goes away).
    pub(crate) fn release_lingering(&self, host: &dyn Host) {
        let parked: Vec<Arc<Lease>> = self
            .queues
            .lock()
            .values_mut()
            .filter_map(Queue::unpark)
            .collect();
        for lease in parked {
            self.release_parked(host, &lease);
        }
    }

    /// Starts hearing who wants `name`, which the client will linger on
    /// from its next release once it hears them; the subscription stays in
    /// its queue until [`LocalLocks::linger_due`] finds the client done
    /// with the name.
    fn hear_wants(&self, host: &dyn Host, name: &str) {
        let Some(linger) = host.linger() else {
            return;
        };
        let check_at = Instant::now() + linger;
        let Some(watch) = host.hear_wants(name, check_at) else {
            return;
        };
        let unused = {
            let mut map = self.queues.lock();
            let q = map.entry(name.to_string()).or_default();
            if q.wants.is_none() {
                q.wants = Some(watch);
                // Counts as a stay for how long the subscription lasts.
                q.stayed = Some(Instant::now());
                None
            } else {
                Some(watch)
            }
        };
        // Dropped outside the queues' lock: it takes the notifier's.
        drop(unused);
    }

    /// The head `id` acquired `lease` on the server, asked when the
    /// client's disruptions were `epoch`.
    fn won(&self, id: u64, lease: &Arc<Lease>, epoch: u64) {
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
        q.base_fence = lease.fence();
        q.since = Some(Instant::now());
        q.epoch = epoch;
    }

    /// A queued waiter whose wait ran out checks whether the holder lost
    /// its lease without releasing it; if so, and nobody asks the server,
    /// the waiter becomes the head and true is returned.
    fn take_over(&self, name: &str, id: u64) -> bool {
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
    fn holder_left(&self, name: &str) -> Option<Duration> {
        let map = self.queues.lock();
        map.get(name)?.holder.as_ref().map(|h| h.remaining())
    }

    /// The head `id` stopped asking (timeout, cancel, error).
    fn gave_up(&self, name: &str, id: u64) {
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
    fn leave(&self, name: &str, id: u64, rx: &Receiver<Turn>) -> Option<Turn> {
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

    /// The release side, in one call: hands `lease` to the next compatible
    /// local waiter while the fairness bound allows; at the bound, asks the
    /// server whether other clients wait (keeping the lease, with a new
    /// fence block, if none do); otherwise releases it on the server. Then
    /// lets the next local thread ask the server, after a courtesy pause if
    /// the lease went to other clients.
    ///
    /// [`Error::Lost`] if the lease was no longer held (it then deleted
    /// nothing that belongs to someone else), or the server's error.
    ///
    /// A share of a read-write lock or semaphore never queues here: it is
    /// released on the server at once.
    pub(crate) fn release(&self, host: &dyn Host, lease: &Lease) -> Result<()> {
        if lease.kind != Kind::Plain {
            let was_held = lease.mark_released();
            host.forget(lease);
            let outcome = release_on_server(host.store(), lease).map(|_| ());
            return if was_held {
                outcome
            } else {
                outcome.and(Err(Error::Lost))
            };
        }
        let make = |fence: u64| host.continue_lease(lease, fence);
        let (next, courtesy) = match self.pass_locally(lease, host, &make) {
            Local::Parked => {
                let was_held = lease.mark_released();
                return if was_held { Ok(()) } else { Err(Error::Lost) };
            }
            Local::HandedOff => (Next::HandedOff, None),
            Local::ToServer => (Next::Release, None),
            Local::ToServerHearing => {
                self.hear_wants(host, &lease.name);
                (Next::Release, None)
            }
            Local::AskServer => self.ask_server(host, lease, &make),
        };
        let was_held = lease.mark_released();
        let outcome = match next {
            Next::HandedOff => {
                host.handed_off(lease);
                return Ok(());
            }
            Next::Answered(outcome) => {
                host.forget(lease);
                outcome
            }
            Next::Release => {
                host.forget(lease);
                let asked = Instant::now();
                let released = release_on_server(host.store(), lease);
                if let Ok(heard) = released {
                    self.released(&lease.name, heard, asked.elapsed());
                }
                released.map(|_| ())
            }
        };
        self.promote(&lease.name, courtesy);
        if was_held {
            outcome
        } else {
            outcome.and(Err(Error::Lost))
        }
    }

    /// At the fairness bound: asks the server to pass `lease` on
    /// (`Store::pass_on`), and hands it to the next local waiter if the
    /// server kept it for us. Returns what is left to do, and the courtesy
    /// pause for the next local thread.
    fn ask_server(
        &self,
        host: &dyn Host,
        lease: &Lease,
        make: &dyn Fn(u64) -> Arc<Lease>,
    ) -> (Next, Option<Duration>) {
        let asked = Instant::now();
        let sent = BootInstant::now();
        let epoch = host.disruptions();
        let answer = host.store().pass_on(&lease.name, &lease.token, lease.ttl);
        let kept = match answer {
            Ok(PassOn::Kept { fence }) => {
                lease.renewed(sent);
                Some(fence)
            }
            _ => None,
        };
        let handed_off = self.refreshed(lease, kept, epoch, make);
        match answer {
            Ok(PassOn::Kept { .. }) if handed_off => (Next::HandedOff, None),
            Ok(PassOn::Kept { .. }) | Err(_) => (Next::Release, None),
            // About two round trips: time for the woken remote waiter to
            // ask the server.
            Ok(PassOn::Released) => (Next::Answered(Ok(())), Some(asked.elapsed() * 2)),
            Ok(PassOn::NotOwner) => (Next::Answered(Err(Error::Lost)), None),
        }
    }

    /// Hands the lease to the next compatible local waiter (with a new
    /// lease made by `make(fence)`) while the fairness bound allows, or
    /// with nobody waiting keeps it for `linger` if given; otherwise says
    /// what to do.
    fn pass_locally(
        &self,
        old: &Lease,
        host: &dyn Host,
        make: &dyn Fn(u64) -> Arc<Lease>,
    ) -> Local {
        let linger = host.linger();
        let mut map = self.queues.lock();
        let Some(q) = map.get_mut(&old.name) else {
            return Local::ToServer;
        };
        if q.holder.as_ref().is_none_or(|h| h.id != old.id) {
            // A stale guard (lost, and someone else holds now): not ours to
            // pass on.
            return Local::ToServer;
        }
        let compatible = q
            .waiters
            .front()
            .is_some_and(|w| w.ttl == old.ttl && w.auto_renew == old.auto_renew);
        let fresh = old.remaining() > drift(old.ttl) * 2
            || crate::mutant::on(crate::mutant::Mutant::StaleHandoff);
        if !(compatible && fresh) {
            q.holder = None;
            let Some(linger) = linger.filter(|_| q.waiters.is_empty()) else {
                return Local::ToServer;
            };
            // Only a client that hears who wants the lock may keep it: an
            // announcement sent before that would be lost.
            let Some(wants) = &q.wants else {
                return Local::ToServerHearing;
            };
            if fresh && !q.wanted && wants.live() {
                // Without renewal the stay ends before the lease does.
                let stay = if old.auto_renew {
                    linger
                } else {
                    linger.min(old.remaining().saturating_sub(drift(old.ttl) * 2))
                };
                let until = Instant::now() + stay;
                q.parked = Some((make(LAZY_FENCE), until));
                q.stayed = Some(until);
                return Local::Parked;
            }
            return Local::ToServer;
        }
        let within_budget = q.since.is_some_and(|t| t.elapsed() < self.fairness.budget)
            || crate::mutant::on(crate::mutant::Mutant::StaleHandoff);
        // After the feed lost its connection the server may have restarted
        // empty: the lease goes on only once the server confirms it.
        let undisturbed =
            q.epoch == host.disruptions() || crate::mutant::on(crate::mutant::Mutant::StaleHandoff);
        if q.handoffs < u64::from(self.fairness.handoffs) && within_budget && undisturbed {
            q.handoffs += 1;
            if q.hand_off(q.next_fence(), make) {
                return Local::HandedOff;
            }
            q.holder = None;
            return Local::ToServer;
        }
        Local::AskServer
    }

    /// After asking the server at the fairness bound: it kept the lease for
    /// us with a new fence block starting at `fence` (`Some`), or did not
    /// (`None`: released to others, not ours, or unreachable). True if the
    /// lease went on to a local waiter.
    fn refreshed(
        &self,
        old: &Lease,
        fence: Option<u64>,
        epoch: u64,
        make: &dyn Fn(u64) -> Arc<Lease>,
    ) -> bool {
        let mut map = self.queues.lock();
        let Some(q) = map.get_mut(&old.name) else {
            return false;
        };
        if q.holder.as_ref().is_none_or(|h| h.id != old.id) {
            return false;
        }
        if let Some(fence) = fence {
            q.base_fence = fence;
            q.handoffs = 1;
            q.since = Some(Instant::now());
            q.epoch = epoch;
            if q.hand_off(fence + 1, make) {
                return true;
            }
        }
        q.holder = None;
        false
    }

    /// After a release on the server: lets the next local waiter ask, after
    /// `courtesy` if given.
    fn promote(&self, name: &str, courtesy: Option<Duration>) {
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

    /// A host for queue tests that never reach the server.
    struct NoHost;

    impl Host for NoHost {
        fn store(&self) -> &dyn Store {
            unreachable!("these tests never reach the server")
        }
        fn continue_lease(&self, old: &Lease, fence: u64) -> Arc<Lease> {
            Lease::handoff(old, old.id + 1, fence, None)
        }
        fn handed_off(&self, _: &Lease) {}
        fn forget(&self, _: &Lease) {}
        fn max_retry_interval(&self) -> Duration {
            Duration::from_millis(100)
        }
        fn linger(&self) -> Option<Duration> {
            None
        }
        fn hear_wants(&self, _: &str, _: Instant) -> Option<Watch> {
            None
        }
        fn lingered(&self, _: &Lease) {}
        fn wants_fence(&self, _: &str) -> bool {
            false
        }
        fn disruptions(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_release_other_clients_heard_makes_the_next_ask_pause() {
        let l = LocalLocks::new(Fairness {
            enabled: true,
            handoffs: 16,
            budget: Duration::from_millis(20),
        });
        let wait = QueueWait {
            once: false,
            deadline: None,
            cancel: None,
        };
        // Nobody heard it: no pause, and nothing kept.
        l.released("quiet", false, Duration::from_millis(1));
        assert!(l.courtesy.lock().is_empty());
        // Heard: the next ask waits about two round trips (2 ms here).
        l.released("busy", true, Duration::from_millis(1));
        let start = Instant::now();
        l.be_courteous("busy", &wait).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(2));
        // Once only.
        let start = Instant::now();
        l.be_courteous("busy", &wait).unwrap();
        assert!(start.elapsed() < Duration::from_millis(2));
        // A slow release is not an excuse for a long pause.
        l.released("slow", true, Duration::from_secs(1));
        let until = l.courtesy.lock()["slow"].1.unwrap();
        assert!(until <= Instant::now() + COURTESY_MAX);
        // A cancelled waiter does not sit the pause out.
        let (tx, rx) = crossbeam_channel::bounded(1);
        tx.send(()).unwrap();
        let cancelled = QueueWait {
            once: false,
            deadline: None,
            cancel: Some(&rx),
        };
        assert!(matches!(
            l.be_courteous("slow", &cancelled),
            Err(Error::Cancelled)
        ));
    }

    #[test]
    fn queue_order_head_and_cleanup() {
        let l = LocalLocks::new(Fairness {
            enabled: true,
            handoffs: 16,
            budget: Duration::from_millis(50),
        });
        let ttl = Duration::from_secs(1);
        let want = |id| Want {
            name: "k",
            id,
            ttl,
            auto_renew: true,
        };
        let host = NoHost;
        assert!(matches!(l.enter(&host, &want(1), false), Place::Head));
        let Place::Queued(rx2) = l.enter(&host, &want(2), false) else {
            panic!("second must wait")
        };
        let Place::Queued(rx3) = l.enter(&host, &want(3), false) else {
            panic!("third must wait")
        };
        assert!(
            matches!(l.enter(&host, &want(4), true), Place::Busy),
            "try never queues"
        );
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
            kind: crate::store::Kind::Plain,
            sent: crate::clock::BootInstant::now(),
            counters: Arc::new(crate::stats::Counters::new()),
        });
        l.won(2, &lease, 0);
        assert_eq!(l.len(), 1);
        l.gave_up("k", 2);
        l.promote("k", None);
        assert_eq!(l.len(), 1, "still held by 2");
        // Lost without a release: a newcomer need not wait for it.
        lease.mark_lost("the test says so");
        assert!(matches!(l.enter(&host, &want(5), false), Place::Head));
    }
}
