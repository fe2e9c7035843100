//! Named locks and the guards that prove ownership.

use crate::client::Client;
use crate::clock::BootInstant;
use crate::error::{Error, Result};
use crate::lease::{self, Lease, NewLease};
use crate::local::{Entry, Released, Turn};
use crate::notify::Watch;
use crate::renew::Msg;
use crate::store::{Acquired, Extend, PassOn};
use crate::wait;
use crossbeam_channel::Receiver;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest accepted lock name, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Shortest accepted lease.
pub const MIN_TTL: Duration = Duration::from_millis(10);
/// Longest accepted lease.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Consecutive connection failures a `try_acquire` rides out.
const TRY_CONNECTION_FAILURES: u32 = 3;
/// Consecutive connection failures an `acquire` without deadline rides out
/// (about 1.3 s of backoff); with a deadline, failures are retried until it.
const WAIT_CONNECTION_FAILURES: u32 = 8;

pub(crate) fn validate_ttl(ttl: Duration) -> Result<()> {
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl must be between {} ms and {} h, got {} ms",
            MIN_TTL.as_millis(),
            MAX_TTL.as_secs() / 3600,
            ttl.as_millis()
        )));
    }
    Ok(())
}

pub(crate) fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("lock name is empty"));
    }
    if name.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "lock name is {} bytes; the maximum is {MAX_KEY_LEN}",
            name.len()
        )));
    }
    Ok(())
}

/// How long an acquisition may wait.
#[derive(Clone, Copy)]
enum Patience {
    /// One attempt (plus retries of a lost reply).
    None,
    Until(Instant),
    Forever,
}

impl Patience {
    /// Waiting at most `timeout` from now; a timeout too long to represent
    /// as a moment (`Duration::MAX`, say) means waiting without a limit.
    fn within(timeout: Duration) -> Patience {
        Instant::now()
            .checked_add(timeout)
            .map_or(Patience::Forever, Patience::Until)
    }
}

/// A named lock. Cheap to clone; holds no server state until acquired.
///
/// Each acquisition gets a fresh random token and its own [`Guard`].
#[derive(Clone)]
pub struct Lock {
    client: Client,
    name: String,
    ttl: Duration,
    auto_renew: bool,
}

impl Lock {
    pub(crate) fn new(client: Client, name: String) -> Lock {
        let ttl = client.inner.settings.ttl;
        Lock {
            client,
            name,
            ttl,
            auto_renew: true,
        }
    }

    /// Sets the lease (default: the client's TTL). Checked at acquire time
    /// against [`MIN_TTL`]..=[`MAX_TTL`].
    pub fn ttl(mut self, ttl: Duration) -> Lock {
        self.ttl = ttl;
        self
    }

    /// Whether the client's renewal thread keeps the lease alive while the
    /// guard lives (default true). Without it the lock expires after one
    /// TTL unless you call [`Guard::extend`].
    pub fn auto_renew(mut self, on: bool) -> Lock {
        self.auto_renew = on;
        self
    }

    /// The lock's name, as given to [`Client::lock`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Blocks until the lock is acquired. Fails only on invalid input or when
    /// the server stays unreachable.
    pub fn acquire(&self) -> Result<Guard> {
        self.run(Patience::Forever, None)
    }

    /// One attempt, never waiting for the holder: `Ok(None)` if someone else
    /// holds the lock.
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        match self.run(Patience::None, None) {
            Ok(g) => Ok(Some(g)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits at most `timeout` for the lock; [`Error::Timeout`] after that.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.run(Patience::within(timeout), None)
    }

    /// Waits until the lock is acquired, `timeout` (if any) passes, or
    /// `cancel` fires: a message on it or all of its senders dropped both
    /// count, and give [`Error::Cancelled`].
    pub fn acquire_cancellable(
        &self,
        timeout: Option<Duration>,
        cancel: &Receiver<()>,
    ) -> Result<Guard> {
        let patience = timeout.map_or(Patience::Forever, Patience::within);
        self.run(patience, Some(cancel))
    }

    /// Acquires on a background thread and delivers the outcome on the
    /// returned channel, so the wait can sit in a `select!` with other events.
    ///
    /// To abandon it, drop the receiver: a guard acquired after that is
    /// released at once. The background attempt keeps waiting until it gets
    /// the lock, though; to stop it at once use
    /// [`acquire_chan_cancellable`](Lock::acquire_chan_cancellable).
    pub fn acquire_chan(&self) -> Receiver<Result<Guard>> {
        self.spawn_acquire(None)
    }

    /// Like [`acquire_chan`](Lock::acquire_chan), but the attempt stops as
    /// soon as `cancel` fires (a message or disconnection), delivering
    /// [`Error::Cancelled`].
    pub fn acquire_chan_cancellable(&self, cancel: Receiver<()>) -> Receiver<Result<Guard>> {
        self.spawn_acquire(Some(cancel))
    }

    fn spawn_acquire(&self, cancel: Option<Receiver<()>>) -> Receiver<Result<Guard>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let lock = self.clone();
        let spawned = std::thread::Builder::new()
            .name("distlock-acquire".into())
            .spawn({
                let tx = tx.clone();
                move || {
                    // If nobody listens any more, the guard drops and releases.
                    let _ = tx.send(lock.run(Patience::Forever, cancel.as_ref()));
                }
            });
        if let Err(e) = spawned {
            let _ = tx.send(Err(Error::Connection(format!(
                "cannot start an acquire thread: {e}"
            ))));
        }
        rx
    }

    /// The acquisition shared by every flavour: queue locally, then (as the
    /// head of the local queue) ask the server.
    fn run(&self, patience: Patience, cancel: Option<&Receiver<()>>) -> Result<Guard> {
        validate_name(&self.name)?;
        validate_ttl(self.ttl)?;
        let inner = &self.client.inner;
        let local = &inner.local;
        let id = inner.next_id();
        let deadline = match patience {
            Patience::Until(d) => Some(d),
            Patience::None => Some(Instant::now()),
            Patience::Forever => None,
        };
        if matches!(patience, Patience::None) {
            if !local.try_enter(&self.name, id) {
                return Err(Error::Timeout);
            }
        } else if let Entry::Wait(turns) = local.enter(&self.name, id, self.ttl, self.auto_renew) {
            loop {
                // Bounded by the local holder's lease, in case it is lost
                // while its guard lives on.
                let pause = wait::pause_for(
                    local.holder_left(&self.name),
                    inner.settings.max_retry_interval,
                );
                match wait::wait_for(&turns, Some(pause), deadline, cancel) {
                    Ok(Some(Turn::Lease(lease))) => return Ok(self.client.guard(lease)),
                    Ok(Some(Turn::Head(courtesy))) => {
                        // After a release for fairness, let another client's
                        // woken waiter go first.
                        if let Some(pause) = courtesy {
                            if let Err(e) = wait::sleep(pause, deadline, cancel) {
                                local.gave_up(&self.name, id);
                                return Err(e);
                            }
                        }
                        break;
                    }
                    Ok(None) if local.take_over(&self.name, id) => break,
                    Ok(None) => {}
                    Err(e) => {
                        match local.leave(&self.name, id, &turns) {
                            Some(Turn::Head(_)) => local.gave_up(&self.name, id),
                            // Handed to us as we gave up: pass it on.
                            Some(Turn::Lease(lease)) => drop(self.client.guard(lease)),
                            None => {}
                        }
                        return Err(e);
                    }
                }
            }
        }
        match self.ask_server(patience, deadline, cancel) {
            Ok((token, fence, sent)) => {
                let lease = Lease::new(NewLease {
                    id,
                    name: self.name.clone(),
                    token,
                    ttl: self.ttl,
                    fence,
                    auto_renew: self.auto_renew,
                    max_hold: inner.settings.max_hold,
                    sent,
                });
                local.won(id, &lease);
                inner.renewal(Msg::Register(lease.grant.clone()));
                Ok(self.client.guard(lease))
            }
            Err(e) => {
                local.gave_up(&self.name, id);
                Err(e)
            }
        }
    }

    /// Asks the server until the lock is ours: returns the token, the fence
    /// and when the winning request was sent.
    fn ask_server(
        &self,
        patience: Patience,
        deadline: Option<Instant>,
        cancel: Option<&Receiver<()>>,
    ) -> Result<(String, u64, BootInstant)> {
        let inner = &self.client.inner;
        let store = &*inner.store;
        // One token for the whole call: a retry after a lost reply must be
        // recognised as the same owner.
        let token = uuid::Uuid::new_v4().to_string();
        let mut watch: Option<Watch> = None;
        let mut failures = 0;
        let mut last_failure = None;
        loop {
            if let Some(c) = cancel {
                if !c.is_empty() || c.try_recv().is_err_and(|e| e.is_disconnected()) {
                    return Err(Error::Cancelled);
                }
            }
            let sent = BootInstant::now();
            let answer = match store.acquire(&self.name, &token, self.ttl) {
                // The grant came back after the lease it starts had run out
                // (a reply slower than the TTL, or this process paused): it
                // is worth nothing. Ask again with the same token, as after
                // a lost reply; the server restarts the lease if it is ours.
                Ok(Acquired::Yes { .. }) if lease::deadline(sent, self.ttl).has_passed() => {
                    Err(Error::Connection(format!(
                        "the server's answer took longer than the {} ms lease",
                        self.ttl.as_millis()
                    )))
                }
                other => other,
            };
            let outcome = match answer {
                Ok(Acquired::Yes { fence }) => return Ok((token, fence, sent)),
                Ok(Acquired::No { remaining }) => {
                    failures = 0;
                    if matches!(patience, Patience::None) {
                        return Err(Error::Timeout);
                    }
                    let w = match watch.take() {
                        Some(w) => w,
                        None => {
                            let w = inner.notifier.watch(&self.name);
                            // Already subscribed: a release may have slipped
                            // by before we registered, so look once more.
                            if !w.wake_pending {
                                watch = Some(w);
                                continue;
                            }
                            w
                        }
                    };
                    let pause = wait::pause_for(remaining, inner.settings.max_retry_interval);
                    let woke = wait::wait_for(&w.rx, Some(pause), deadline, cancel);
                    watch = Some(w);
                    woke.map(|_| ())
                }
                Err(Error::Connection(msg)) => {
                    // The reply may have been lost after the server took the
                    // lock for us: ask again with the same token.
                    failures += 1;
                    let give_up = match patience {
                        Patience::None => failures >= TRY_CONNECTION_FAILURES,
                        Patience::Forever => failures >= WAIT_CONNECTION_FAILURES,
                        Patience::Until(d) => Instant::now() >= d,
                    };
                    last_failure = Some(Error::Connection(msg));
                    if give_up {
                        break;
                    }
                    let pause =
                        Duration::from_millis(5 << failures.min(8)).min(Duration::from_secs(1));
                    // A lost reply is retried even by try_acquire.
                    let until = deadline.filter(|_| !matches!(patience, Patience::None));
                    wait::sleep(pause, until, cancel)
                }
                Err(e) => return Err(e),
            };
            match outcome {
                Ok(()) => {}
                // Out of time while the server was unreachable: say so.
                Err(Error::Timeout) if failures > 0 => break,
                Err(e) => {
                    if failures > 0 {
                        let _ = store.release(&self.name, &token);
                    }
                    return Err(e);
                }
            }
        }
        // Leave nothing behind if the lock did go to us.
        let _ = store.release(&self.name, &token);
        Err(last_failure.unwrap_or(Error::Timeout))
    }
}

impl Client {
    /// Wraps a lease this client holds (already registered for renewal).
    fn guard(&self, lease: Arc<Lease>) -> Guard {
        Guard {
            client: self.clone(),
            lease,
            finished: false,
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("auto_renew", &self.auto_renew)
            .finish()
    }
}

/// Proof of holding a lock. Dropping it releases the lock; call
/// [`release`](Guard::release) instead to learn whether the release worked.
///
/// A guard never claims the lock past its local deadline (the moment the
/// winning request was sent, plus the lease, minus a drift allowance), even
/// if the renewal thread has not noticed trouble yet.
pub struct Guard {
    client: Client,
    lease: Arc<Lease>,
    finished: bool,
}

impl Guard {
    /// The fencing token of this acquisition: strictly greater than that of
    /// every earlier acquisition of the same lock name, from any client.
    /// Pass it to the storage you protect and have it reject smaller ones.
    pub fn fence(&self) -> u64 {
        self.lease.fence
    }

    /// The random token stored in the lock key while this guard holds it.
    pub fn token(&self) -> &str {
        &self.lease.token
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.lease.name
    }

    /// True while the lock is held: not released, not reported lost, and
    /// before the local deadline.
    pub fn is_held(&self) -> bool {
        self.lease.is_held() && std::process::id() == self.lease.owner_pid
    }

    /// How long the lock is certainly ours without another renewal
    /// (zero when not held).
    pub fn remaining(&self) -> Duration {
        if self.is_held() {
            self.lease.remaining()
        } else {
            Duration::ZERO
        }
    }

    /// A channel that becomes ready when the lock is lost while held: the
    /// lease ran out, the key was deleted or taken, or the hold cap passed.
    /// Ready means disconnected: `recv()` returns `Err(RecvError)`, and a
    /// `select!` arm on it fires. It also becomes ready once the guard is
    /// released, since there is nothing left to watch.
    pub fn lost(&self) -> Receiver<()> {
        self.lease.done()
    }

    /// Restarts the lease at its full TTL now. Useful with
    /// `auto_renew(false)`; [`Error::Lost`] if the lock is no longer ours.
    pub fn extend(&self) -> Result<()> {
        if !self.is_held() {
            return Err(Error::Lost);
        }
        let sent = BootInstant::now();
        let answers = self.client.inner.store.extend(&[Extend {
            name: &self.lease.name,
            token: &self.lease.token,
            ttl: self.lease.ttl,
        }])?;
        if answers.first() == Some(&true) {
            self.lease.renewed(sent);
            Ok(())
        } else {
            self.lease.mark_lost();
            Err(Error::Lost)
        }
    }

    /// Releases the lock. [`Error::Lost`] if it was no longer ours (expired,
    /// deleted, taken, or this is a forked child of the owner): the release
    /// then deleted nothing that belongs to someone else.
    pub fn release(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if std::process::id() != self.lease.owner_pid {
            // A forked child must not release its parent's lock.
            return Err(Error::Lost);
        }
        let inner = &self.client.inner;
        let l = &self.lease;
        // The next lease continues the same grant: the renewal thread
        // follows it without being told.
        let make = |fence: u64| Lease::handoff(l, inner.next_id(), fence, inner.settings.max_hold);
        // What is left to do on the server once the local side is settled.
        enum Then {
            HandedOff,
            Done(Result<()>),
            Release,
        }
        let mut courtesy = None;
        let then = match inner.local.release(l, &make) {
            Released::HandedOff => Then::HandedOff,
            Released::ToServer => Then::Release,
            Released::AskServer => {
                let asked = Instant::now();
                let sent = BootInstant::now();
                match inner.store.pass_on(&l.name, &l.token, l.ttl) {
                    Ok(PassOn::Kept { fence }) => {
                        l.renewed(sent);
                        match inner.local.refreshed(l, Some(fence), &make) {
                            Released::HandedOff => Then::HandedOff,
                            _ => Then::Release,
                        }
                    }
                    Ok(PassOn::Released) => {
                        inner.local.refreshed(l, None, &make);
                        // About two round trips: time for the woken remote
                        // waiter to ask the server.
                        courtesy = Some(asked.elapsed() * 2);
                        Then::Done(Ok(()))
                    }
                    Ok(PassOn::NotOwner) => {
                        inner.local.refreshed(l, None, &make);
                        Then::Done(Err(Error::Lost))
                    }
                    Err(_) => {
                        inner.local.refreshed(l, None, &make);
                        Then::Release
                    }
                }
            }
        };
        let was_held = l.mark_released();
        if let Then::HandedOff = then {
            return Ok(());
        }
        inner.renewal(Msg::Unregister(l.grant.id));
        let outcome = match then {
            Then::HandedOff => Ok(()),
            Then::Done(r) => r,
            Then::Release => match inner.store.release(&l.name, &l.token) {
                // A dead pooled connection (say, after a server restart):
                // ask again on a fresh one. If the first attempt did delete
                // the key and only its reply was lost, this reports a loss
                // that was not one; never the other way round.
                Err(Error::Connection(_)) => inner.store.release(&l.name, &l.token),
                other => other,
            }
            .and_then(|deleted| if deleted { Ok(()) } else { Err(Error::Lost) }),
        };
        inner.local.promote(&l.name, courtesy);
        if was_held {
            outcome
        } else {
            outcome.and(Err(Error::Lost))
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.lease.name)
            .field("fence", &self.lease.fence)
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}
