//! The one renewal thread of a client.
//!
//! Every guard is registered here. Auto-renewed leases are extended at about
//! a third of their TTL (between a sixth and a third), all that are due in
//! one pipelined round trip; every
//! lease (renewed or not) is watched so that its `lost()` signal fires when
//! its deadline or hold cap passes, or when the server says it is gone.

use crate::clock::BootInstant;
use crate::lease::{Grant, Lease};
use crate::stats::{add, Counters};
use crate::store::{Extend, Store};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the renewal thread is told.
pub(crate) enum Msg {
    /// Start watching (and, if asked, renewing) a lease fresh from the
    /// server; local hand-offs continue the same grant.
    Register(Arc<Grant>),
    /// Stop: the grant with this id was released.
    Unregister(u64),
    /// The client is going away.
    Shutdown,
}

/// One grant the renewal thread keeps alive.
struct Renewal {
    grant: Arc<Grant>,
    /// The lease holding the grant at the last look.
    lease: Arc<Lease>,
    /// When to extend next (ignored without auto-renewal).
    next_renew: BootInstant,
}

impl Renewal {
    fn wake_at(&self) -> BootInstant {
        look_at(&self.lease, self.next_renew)
    }

    /// Follows local hand-offs to the lease that holds the grant now; false
    /// when none does any more.
    fn refresh(&mut self) -> bool {
        if self.lease.is_held() {
            return true;
        }
        match self.grant.current() {
            Some(l) if l.id != self.lease.id && l.is_held() => {
                self.lease = l;
                true
            }
            _ => false,
        }
    }
}

/// How long to wait before trying a failed renewal again.
fn retry_delay(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(2), Duration::from_millis(500))
}

/// When the renewal thread must look at `lease`: its deadline or hold cap,
/// or `next_renew` if it is auto-renewed.
fn look_at(lease: &Lease, next_renew: BootInstant) -> BootInstant {
    let watch = lease.watch_until();
    if lease.auto_renew {
        watch.min(next_renew)
    } else {
        watch
    }
}

/// A client's renewal thread and the channel that feeds it.
///
/// The thread sleeps until its next renewal or deadline; a message is
/// queued on the channel and wakes the thread only when it must act
/// sooner than planned (a lease due before the planned wake-up, or
/// shutdown). So a short-lived lock costs its client no thread switch.
pub(crate) struct Renewer {
    tx: Sender<Msg>,
    /// When the thread looks next, in boot-clock nanoseconds.
    next_wake: Arc<AtomicU64>,
    thread: std::thread::Thread,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Renewer {
    /// Starts the renewal thread for `store`, counting into `counters`.
    pub(crate) fn spawn(store: Arc<dyn Store>, counters: Arc<Counters>) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let next_wake = Arc::new(AtomicU64::new(u64::MAX));
        let wake = next_wake.clone();
        let handle = std::thread::Builder::new()
            .name("distlock-renew".into())
            .spawn(move || run(&*store, &rx, &wake, &counters))?;
        Ok(Renewer {
            tx,
            next_wake,
            thread: handle.thread().clone(),
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Queues `msg`, waking the thread if it has to act before it planned to.
    pub(crate) fn send(&self, msg: Msg) {
        let urgent = match &msg {
            Msg::Register(grant) => grant.current().map(|l| look_at(&l, l.renew_due()).nanos()),
            Msg::Unregister(_) => None,
            Msg::Shutdown => Some(0),
        };
        // Fails only once the thread is gone (after a fork): nothing to do.
        let _ = self.tx.send(msg);
        fence(Ordering::SeqCst);
        if urgent.is_some_and(|at| at < self.next_wake.load(Ordering::SeqCst)) {
            self.thread.unpark();
        }
    }

    /// Stops the thread and waits for it.
    pub(crate) fn shutdown(&self) {
        self.send(Msg::Shutdown);
        if let Some(handle) = self.handle.lock().take() {
            let _ = handle.join();
        }
    }
}

fn run(store: &dyn Store, rx: &Receiver<Msg>, next_wake: &AtomicU64, counters: &Counters) {
    let mut entries: HashMap<u64, Renewal> = HashMap::new();
    loop {
        // Take every queued message before doing any work, so that a burst
        // of registrations costs one pass over the leases, not one each.
        loop {
            match rx.try_recv() {
                Ok(Msg::Register(grant)) => {
                    if let Some(lease) = grant.current() {
                        let next_renew = lease.renew_due();
                        entries.insert(
                            grant.id,
                            Renewal {
                                grant,
                                lease,
                                next_renew,
                            },
                        );
                    }
                }
                Ok(Msg::Unregister(id)) => {
                    entries.remove(&id);
                }
                Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        tick(store, &mut entries, counters);
        let wake = entries.values().map(Renewal::wake_at).min();
        next_wake.store(wake.map_or(u64::MAX, BootInstant::nanos), Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // A message sent before the store above may not have woken us.
        if !rx.is_empty() {
            continue;
        }
        match wake {
            Some(at) => std::thread::park_timeout(at.remaining()),
            None => std::thread::park(),
        }
    }
}

/// Extends `batch` (and once more if that fails: often a pooled connection
/// that died with a server restart, and the retry gets a fresh one), on a
/// scoped thread, while this one fires the loss of every lease of
/// `entries` whose deadline or hold cap passes meanwhile: a slow or
/// unreachable server (an etcd member paused, say, with the call trying
/// each member in turn) must not hold `lost()` back past the deadline.
fn extend_watching(
    store: &dyn Store,
    batch: &[Extend<'_>],
    entries: &HashMap<u64, Renewal>,
) -> crate::error::Result<Vec<bool>> {
    let call = || store.extend(batch).or_else(|_| store.extend(batch));
    std::thread::scope(|s| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("distlock-renew-call".into())
            .spawn_scoped(s, move || {
                let _ = tx.send(call());
            });
        if spawned.is_err() {
            // No thread to be had: wait for the call here.
            return call();
        }
        loop {
            let now = BootInstant::now();
            let mut next: Option<BootInstant> = None;
            for e in entries.values() {
                if e.lease.hold_until.is_some_and(|cap| now >= cap) {
                    e.lease
                        .mark_lost("it reached max_hold, the cap on its hold time");
                }
                // is_held() marks a lease whose deadline passed lost, which
                // fires its lost() signal.
                if e.lease.is_held() {
                    let at = e.lease.watch_until();
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            let got = match next {
                Some(at) => rx.recv_timeout(at.remaining()),
                None => rx
                    .recv()
                    .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(outcome) => return outcome,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(crate::error::Error::Connection(
                        "the renewal call ended without an answer".into(),
                    ))
                }
            }
        }
    })
}

/// Drops finished leases, fires the lost ones, renews those that are due.
fn tick(store: &dyn Store, entries: &mut HashMap<u64, Renewal>, counters: &Counters) {
    let now = BootInstant::now();
    entries.retain(|_, e| {
        if !e.refresh() {
            return false;
        }
        let capped = e.lease.hold_until.is_some_and(|cap| now >= cap);
        if capped {
            e.lease
                .mark_lost("it reached max_hold, the cap on its hold time");
        }
        !capped
    });

    if !entries
        .values()
        .any(|e| e.lease.auto_renew && e.next_renew <= now)
    {
        return;
    }
    // Something is due: renew it together with every lease that would be
    // due within the next sixth of its TTL, so that leases taken at
    // different moments share pipelines instead of waking the thread apart.
    let due: Vec<u64> = entries
        .iter()
        .filter(|(_, e)| e.lease.auto_renew && e.next_renew <= now.add(e.lease.ttl / 6))
        .map(|(id, _)| *id)
        .collect();
    let batch: Vec<Extend<'_>> = due
        .iter()
        .map(|id| {
            let l = &entries[id].lease;
            Extend {
                name: &l.name,
                token: &l.token,
                ttl: l.ttl,
                kind: l.kind,
            }
        })
        .collect();
    let sent = BootInstant::now();
    // A failure is often a pooled connection that died with a server
    // restart; the retry gets a fresh one at once.
    let outcome = if crate::mutant::on(crate::mutant::Mutant::NoRenewal) {
        Ok(vec![true; batch.len()])
    } else {
        extend_watching(store, &batch, entries)
    };
    drop(batch);
    match outcome {
        Ok(answers) => {
            for (id, still_ours) in due.iter().zip(answers) {
                let e = entries.get_mut(id).expect("due ids come from entries");
                // A local hand-off may have happened during the round trip.
                e.refresh();
                if still_ours {
                    add(&counters.renewals, 1);
                    e.lease.renewed(sent);
                    e.next_renew = sent.add(e.lease.ttl / 3);
                } else {
                    e.lease.mark_lost(
                        "the server no longer holds it with our token (it expired, \
                         was deleted or was taken)",
                    );
                    entries.remove(id);
                }
            }
        }
        Err(e) => {
            // The server is unreachable or slow: try again soon. A lease whose
            // deadline passes meanwhile is reported lost by the next tick.
            add(&counters.renewal_failures, due.len() as u64);
            log::warn!(
                "distlock: renewing {} lease(s) failed, retrying: {e}",
                due.len()
            );
            let now = BootInstant::now();
            for id in &due {
                let e = entries.get_mut(id).expect("due ids come from entries");
                e.next_renew = now.add(retry_delay(e.lease.ttl));
            }
        }
    }
}
