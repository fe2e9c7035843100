//! Named locks: the acquire ladder, and how one acquisition asks the server.

use crate::client::Client;
use crate::clock::BootInstant;
use crate::error::{Error, Result};
use crate::guard::Guard;
use crate::lease::{self, Lease, NewLease};
use crate::limits::{check_name, check_permits, check_ttl};
use crate::local::{QueueWait, Want};
use crate::notify::Watch;
use crate::renew::Msg;
use crate::stats::add;
use crate::store::{Acquired, Kind};
use crate::wait;
use crossbeam_channel::Receiver;
use std::fmt;
use std::time::{Duration, Instant};

/// Consecutive connection failures a `try_acquire` rides out.
const TRY_CONNECTION_FAILURES: u32 = 3;
/// Consecutive connection failures an `acquire` without deadline rides out
/// (about 1.3 s of backoff); with a deadline, failures are retried until it.
const WAIT_CONNECTION_FAILURES: u32 = 8;

/// How long an acquisition may wait.
#[derive(Clone, Copy)]
enum Patience {
    /// One attempt (plus retries of a lost reply).
    Once,
    /// Until this moment.
    Until(Instant),
    /// Without a limit.
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

/// One acquisition's bounds and retry policy in one value: how long it may
/// wait, what cancels it, and how many connection failures in a row it
/// rides out (retrying with the same token, since a reply may have been
/// lost after the server granted the lock).
struct Attempt<'a> {
    patience: Patience,
    cancel: Option<&'a Receiver<()>>,
    /// Whether the server answered that someone else held the lock.
    contended: bool,
    /// Connection failures since the server last answered.
    failures: u32,
    last_failure: Option<Error>,
}

impl<'a> Attempt<'a> {
    fn new(patience: Patience, cancel: Option<&'a Receiver<()>>) -> Self {
        Attempt {
            patience,
            cancel,
            contended: false,
            failures: 0,
            last_failure: None,
        }
    }

    /// When waiting must stop (`None`: never, or it never waits).
    fn deadline(&self) -> Option<Instant> {
        match self.patience {
            Patience::Until(d) => Some(d),
            Patience::Once | Patience::Forever => None,
        }
    }

    /// The same bounds for the wait in this client's local queue.
    fn queueing(&self) -> QueueWait<'a> {
        QueueWait {
            once: matches!(self.patience, Patience::Once),
            deadline: self.deadline(),
            cancel: self.cancel,
        }
    }

    /// Whether the cancel channel fired (a message, or every sender gone).
    fn cancelled(&self) -> bool {
        self.cancel
            .is_some_and(|c| !c.is_empty() || c.try_recv().is_err_and(|e| e.is_disconnected()))
    }

    /// The server answered that someone else holds the lock: connection
    /// trouble is over, and an attempt that may not wait ends here.
    fn busy(&mut self) -> Result<()> {
        self.failures = 0;
        self.contended = true;
        match self.patience {
            Patience::Once => Err(Error::Timeout),
            Patience::Until(_) | Patience::Forever => Ok(()),
        }
    }

    /// Waits on `rx` (release notifications) for at most `pause`, within the
    /// attempt's deadline and cancel: true if a notification came.
    fn wait(&self, rx: &Receiver<()>, pause: Duration) -> Result<bool> {
        wait::wait_for(rx, Some(pause), self.deadline(), self.cancel).map(|m| m.is_some())
    }

    /// A connection failure: the pause before asking again with the same
    /// token, or `None` when the attempt gives up.
    fn failed(&mut self, e: Error) -> Option<Duration> {
        self.failures += 1;
        self.last_failure = Some(e);
        let give_up = match self.patience {
            Patience::Once => self.failures >= TRY_CONNECTION_FAILURES,
            Patience::Forever => self.failures >= WAIT_CONNECTION_FAILURES,
            Patience::Until(d) => Instant::now() >= d,
        };
        (!give_up)
            .then(|| Duration::from_millis(5 << self.failures.min(8)).min(Duration::from_secs(1)))
    }

    /// Sleeps for a backoff `pause` (even a `try_acquire` retries a lost
    /// reply), within the deadline and cancel.
    fn back_off(&self, pause: Duration) -> Result<()> {
        wait::sleep(pause, self.deadline(), self.cancel)
    }

    /// Whether the last request failed: the lock may then be ours unseen.
    fn failing(&self) -> bool {
        self.failures > 0
    }

    /// The error to report on giving up.
    fn give_up(&mut self) -> Error {
        self.last_failure.take().unwrap_or(Error::Timeout)
    }
}

/// A named lock. Cheap to clone; holds no server state until acquired.
///
/// Each acquisition gets a fresh random token and its own [`Guard`].
///
/// The same handle stands for the read and write sides of a
/// [`RwLock`](crate::RwLock) and for a [`Semaphore`](crate::Semaphore)'s
/// permits: the ladder, the guard, renewal and loss work alike.
#[derive(Clone)]
pub struct Lock {
    client: Client,
    name: String,
    ttl: Duration,
    auto_renew: bool,
    /// What an acquisition holds: the whole lock, or a share.
    kind: Kind,
    /// Whether acquisitions queue in arrival order ([`Lock::fair`]).
    fair: bool,
}

impl Lock {
    pub(crate) fn new(client: Client, name: String) -> Lock {
        Lock::of_kind(client, name, Kind::Plain)
    }

    /// A handle whose acquisitions hold `kind` of `name`.
    pub(crate) fn of_kind(client: Client, name: String, kind: Kind) -> Lock {
        let ttl = client.inner().settings().ttl;
        Lock {
            client,
            name,
            ttl,
            auto_renew: true,
            kind,
            fair: false,
        }
    }

    /// Makes acquisitions FIFO-fair (default off): waiters of every client
    /// that use `fair()` on this name get the lock in the order they first
    /// asked, instead of whoever asks first after a release.
    ///
    /// Each waiter keeps a place in a line on the server by asking again
    /// before the place runs out (the wait ahead plus two leases); a dead
    /// waiter's place runs out and the line moves on. The costs: every
    /// release wakes every waiter of the name, and each asks once (one
    /// round trip each); threads of one client queue on the server rather
    /// than on the client's local fast path (no local hand-offs); a plain
    /// acquirer of the same name does not queue and may barge in.
    ///
    /// For plain locks only: acquiring a read-write lock's side or a
    /// semaphore's permit made fair fails with
    /// [`Error::InvalidArgument`]. Redis only.
    pub fn fair(mut self) -> Lock {
        self.fair = true;
        self
    }

    /// What an acquisition asks the server for.
    fn asking(&self) -> Result<Kind> {
        match (self.fair, self.kind) {
            (false, kind) => Ok(kind),
            (true, Kind::Plain) => Ok(Kind::Fair),
            (true, _) => Err(Error::invalid(
                "fair() applies to plain locks only, not to read-write locks or semaphores",
            )),
        }
    }

    /// Sets the lease (default: the client's TTL). Checked at acquire time
    /// against [`MIN_TTL`](crate::MIN_TTL)..=[`MAX_TTL`](crate::MAX_TTL).
    pub fn ttl(mut self, ttl: Duration) -> Lock {
        self.ttl = ttl;
        self
    }

    /// Whether the client's renewal thread keeps the lease alive while the
    /// guard lives (default true). Without it the lock expires after one
    /// TTL unless you call [`Guard::extend`](crate::Guard::extend).
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
    #[must_use = "the guard is the lock: dropping it at once releases it"]
    pub fn acquire(&self) -> Result<Guard> {
        self.acquire_with(Patience::Forever, None)
    }

    /// One attempt, never waiting for the holder: `Ok(None)` if someone else
    /// holds the lock.
    #[must_use = "the guard is the lock: dropping it at once releases it"]
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        match self.acquire_with(Patience::Once, None) {
            Ok(g) => Ok(Some(g)),
            Err(Error::Timeout) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits at most `timeout` for the lock; [`Error::Timeout`] after that.
    #[must_use = "the guard is the lock: dropping it at once releases it"]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.acquire_with(Patience::within(timeout), None)
    }

    /// Waits until the lock is acquired, `timeout` (if any) passes, or
    /// `cancel` fires: a message on it or all of its senders dropped both
    /// count, and give [`Error::Cancelled`].
    #[must_use = "the guard is the lock: dropping it at once releases it"]
    pub fn acquire_cancellable(
        &self,
        timeout: Option<Duration>,
        cancel: &Receiver<()>,
    ) -> Result<Guard> {
        let patience = timeout.map_or(Patience::Forever, Patience::within);
        self.acquire_with(patience, Some(cancel))
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
                    let _ = tx.send(lock.acquire_with(Patience::Forever, cancel.as_ref()));
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
    fn acquire_with(&self, patience: Patience, cancel: Option<&Receiver<()>>) -> Result<Guard> {
        check_name(&self.name)?;
        check_ttl(self.ttl)?;
        if let Kind::Permit(n) = self.kind {
            check_permits(n)?;
        }
        let kind = self.asking()?;
        let inner = self.client.inner();
        let want = Want {
            name: &self.name,
            id: inner.next_id(),
            ttl: self.ttl,
            auto_renew: self.auto_renew,
        };
        let started = Instant::now();
        let mut attempt = Attempt::new(patience, cancel);
        let queueing = attempt.queueing();
        let mut ask = || {
            let (token, fence, sent) = self.ask_server(&mut attempt)?;
            let lease = Lease::new(NewLease {
                id: want.id,
                name: self.name.clone(),
                token,
                ttl: self.ttl,
                fence,
                auto_renew: self.auto_renew,
                max_hold: inner.settings().max_hold,
                kind,
                sent,
                counters: inner.counters().clone(),
            });
            inner.renewal(Msg::Register(lease.grant.clone()));
            Ok(lease)
        };
        // Shares of read-write locks and semaphores do not queue locally:
        // several threads may hold them at once.
        let acquired = match kind {
            Kind::Plain => inner.local().acquire(inner, &want, queueing, ask),
            _ => ask().map(|lease| (lease, false)),
        };
        let counters = inner.counters();
        match acquired {
            Ok((lease, queued)) => {
                let waited = started.elapsed();
                counters.acquired(waited, queued || attempt.contended);
                log::debug!(
                    "distlock: acquired {:?} (fence {}) after {} us",
                    self.name,
                    lease.fence(),
                    waited.as_micros()
                );
                Ok(Guard::new(self.client.clone(), lease))
            }
            Err(e) => {
                match e {
                    Error::Timeout if !matches!(patience, Patience::Once) => {
                        add(&counters.timed_out, 1)
                    }
                    Error::Cancelled => add(&counters.cancelled, 1),
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// Asks the server until the lock is ours, within `attempt`: returns the
    /// token, the fence and when the winning request was sent.
    fn ask_server(&self, attempt: &mut Attempt<'_>) -> Result<(String, u64, BootInstant)> {
        // One token for the whole call: a retry after a lost reply must be
        // recognised as the same owner.
        let token = uuid::Uuid::new_v4().to_string();
        // One way of asking for the whole call too: a retry must not take
        // the fence of another hold (see `Store::acquire_lazy`).
        let lazy = !self.client.inner().wants_fence(&self.name);
        let mut watch: Option<Watch> = None;
        // Whether a holder lingering on the lock should hear of us again:
        // at the first refusal, and after each wait no release ended.
        let mut announce = true;
        loop {
            if attempt.cancelled() {
                return Err(Error::Cancelled);
            }
            let sent = BootInstant::now();
            let waited = match self.ask_once(&token, lazy, sent) {
                Ok(Acquired::Yes { fence }) => return Ok((token, fence, sent)),
                Ok(Acquired::No { remaining }) => {
                    let announcing = announce && self.kind == Kind::Plain;
                    // A try does not announce: it would not wait for the
                    // lingering holder's release anyway, and the bindings
                    // try once before each wait, which announces.
                    if let Err(e) = attempt.busy() {
                        // A try that took a place in a line gives it back.
                        if self.queues() {
                            self.release_token(&token);
                        }
                        return Err(e);
                    }
                    self.wait_for_release(&mut watch, &token, remaining, attempt, announcing)
                        .map(|woken| announce = !woken)
                }
                Err(e @ Error::Connection(_)) => match attempt.failed(e) {
                    Some(pause) => attempt.back_off(pause),
                    None => break,
                },
                Err(e) => return Err(e),
            };
            match waited {
                Ok(()) => {}
                // Out of time while the server was unreachable: say so.
                Err(Error::Timeout) if attempt.failing() => break,
                Err(e) => {
                    // A writer also gives its place among the waiting
                    // writers back, so readers need not wait for it.
                    if attempt.failing() || (self.queues() && attempt.contended) {
                        self.release_token(&token);
                    }
                    return Err(e);
                }
            }
        }
        // Leave nothing behind if the lock did go to us.
        self.release_token(&token);
        Err(attempt.give_up())
    }

    /// Whether a contended attempt takes a place in a line on the server
    /// (a writer's, or a fair lock's), which giving up must give back.
    fn queues(&self) -> bool {
        matches!(self.asking(), Ok(Kind::Write | Kind::Fair))
    }

    /// Gives back whatever `token` may hold of this lock (after giving up).
    fn release_token(&self, token: &str) {
        let store = self.client.inner().store();
        let _ = match self.asking().unwrap_or(self.kind) {
            Kind::Plain => store.release(&self.name, token),
            kind => store.release_share(&self.name, kind, token),
        };
    }

    /// One request for the lock with `token`, sent at `sent`; `lazy`: the
    /// fence may be left for later (a plain lock only).
    fn ask_once(&self, token: &str, lazy: bool, sent: BootInstant) -> Result<Acquired> {
        let store = self.client.inner().store();
        let asked = match self.asking()? {
            Kind::Plain if lazy => store.acquire_lazy(&self.name, token, self.ttl),
            Kind::Plain => store.acquire(&self.name, token, self.ttl),
            kind => store.acquire_share(&self.name, kind, token, self.ttl),
        };
        match asked {
            // The grant came back after the lease it starts had run out (a
            // reply slower than the TTL, or this process paused): it is worth
            // nothing. Ask again with the same token, as after a lost reply;
            // the server restarts the lease if it is ours.
            Ok(Acquired::Yes { .. }) if lease::deadline(sent, self.ttl).has_passed() => {
                Err(Error::Connection(format!(
                    "the server's answer took longer than the {} ms lease",
                    self.ttl.as_millis()
                )))
            }
            Err(Error::Connection(_)) if crate::mutant::on(crate::mutant::Mutant::BlindRetry) => {
                // A fence like the server's: its clock in microseconds.
                let micros = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                Ok(Acquired::Yes {
                    fence: u64::try_from(micros).unwrap_or(u64::MAX),
                })
            }
            other => other,
        }
    }

    /// Waits for a release notification of the lock (or for the holder's
    /// `remaining` lease, bounded by `max_retry_interval`): true if one
    /// came. The first call subscribes and returns at once unless a
    /// wake-up is already pending: a release may have slipped by before the
    /// subscription. With `announce`, first tells a holder lingering on the
    /// lock that we want it (with the subscription's poke, if one is sent).
    fn wait_for_release(
        &self,
        watch: &mut Option<Watch>,
        token: &str,
        remaining: Option<Duration>,
        attempt: &Attempt<'_>,
        announce: bool,
    ) -> Result<bool> {
        let inner = self.client.inner();
        let w = match watch {
            Some(w) => {
                if announce {
                    // A failed announcement only costs the wait for the
                    // holder's stay to end.
                    let _ = inner.store().announce(&self.name, None);
                }
                w
            }
            None => {
                let w = watch.insert(if announce {
                    inner.watch_announcing(&self.name, Some(token))
                } else {
                    inner.watch(&self.name, Some(token))
                });
                if !w.wake_pending {
                    return Ok(true);
                }
                w
            }
        };
        attempt.wait(
            &w.rx,
            wait::pause_for(remaining, inner.settings().max_retry_interval),
        )
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("fair", &self.fair)
            .field("ttl", &self.ttl)
            .field("auto_renew", &self.auto_renew)
            .finish()
    }
}
