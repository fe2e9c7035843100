//! Counting semaphores whose permits expire with their holders' leases.

use crate::client::Client;
use crate::error::Result;
use crate::guard::Guard;
use crate::lock::Lock;
use crate::store::Kind;
use crossbeam_channel::Receiver;
use std::fmt;
use std::time::Duration;

/// A named counting semaphore: at most `permits` holders at once, across
/// every client.
///
/// Each permit is a [`Guard`] with its own token, lease, renewal, `lost()`
/// signal and fence, so a crashed holder's permit comes back after its
/// lease. A returned permit wakes the waiters by notification.
///
/// The permit count travels with each acquisition, not with the semaphore:
/// a handle made with another count applies it to its own acquisitions at
/// once, holders keep the permits they have, and after a lowered count
/// nobody new gets a permit until fewer than the new count hold one. Give
/// every client the same count unless you mean to change it.
///
/// Counts run from 1 to [`MAX_PERMITS`](crate::MAX_PERMITS); others are
/// refused at acquire time with [`Error::InvalidArgument`](crate::Error).
/// Supported on Redis (one node, Sentinel, Cluster); other stores refuse.
///
/// ```no_run
/// let client = distlock::Client::open("redis://127.0.0.1:6379/0")?;
/// let downloads = client.semaphore("downloads", 4);
/// let permit = downloads.acquire()?; // one of 4
/// permit.release()?;
/// # Ok::<(), distlock::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    /// The permits' handle (of kind `Permit(permits)`).
    lock: Lock,
    permits: u32,
}

impl Semaphore {
    pub(crate) fn new(client: Client, name: String, permits: u32) -> Semaphore {
        Semaphore {
            lock: Lock::of_kind(client, name, Kind::Permit(permits)),
            permits,
        }
    }

    /// Sets each permit's lease (default: the client's TTL), as
    /// [`Lock::ttl`] does.
    pub fn ttl(mut self, ttl: Duration) -> Semaphore {
        self.lock = self.lock.ttl(ttl);
        self
    }

    /// Whether permits are renewed while their guards live (default true),
    /// as [`Lock::auto_renew`] says.
    pub fn auto_renew(mut self, on: bool) -> Semaphore {
        self.lock = self.lock.auto_renew(on);
        self
    }

    /// The semaphore's name, as given to [`Client::semaphore`].
    pub fn name(&self) -> &str {
        self.lock.name()
    }

    /// The permit count this handle acquires with.
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// The [`Lock`] handle the permits are taken through: its acquisitions
    /// are permits of this semaphore (for code that takes any kind of
    /// lock through one type).
    pub fn as_lock(&self) -> &Lock {
        &self.lock
    }

    /// Blocks until a permit is held, as [`Lock::acquire`] does.
    #[must_use = "the guard is the permit: dropping it at once returns it"]
    pub fn acquire(&self) -> Result<Guard> {
        self.lock.acquire()
    }

    /// One attempt: `Ok(None)` if every permit is taken.
    #[must_use = "the guard is the permit: dropping it at once returns it"]
    pub fn try_acquire(&self) -> Result<Option<Guard>> {
        self.lock.try_acquire()
    }

    /// Waits at most `timeout` for a permit; [`Error::Timeout`](crate::Error)
    /// after that.
    #[must_use = "the guard is the permit: dropping it at once returns it"]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Guard> {
        self.lock.acquire_timeout(timeout)
    }

    /// Waits until a permit is held, `timeout` (if any) passes, or `cancel`
    /// fires, as [`Lock::acquire_cancellable`] does.
    #[must_use = "the guard is the permit: dropping it at once returns it"]
    pub fn acquire_cancellable(
        &self,
        timeout: Option<Duration>,
        cancel: &Receiver<()>,
    ) -> Result<Guard> {
        self.lock.acquire_cancellable(timeout, cancel)
    }

    /// Acquires on a background thread, as [`Lock::acquire_chan`] does.
    pub fn acquire_chan(&self) -> Receiver<Result<Guard>> {
        self.lock.acquire_chan()
    }

    /// Like [`acquire_chan`](Semaphore::acquire_chan), stopped by `cancel`.
    pub fn acquire_chan_cancellable(&self, cancel: Receiver<()>) -> Receiver<Result<Guard>> {
        self.lock.acquire_chan_cancellable(cancel)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name())
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}
