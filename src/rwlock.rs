//! Read-write locks: many readers or one writer, across every client.

use crate::client::Client;
use crate::lock::Lock;
use crate::store::Kind;
use std::fmt;

/// A named read-write lock: many readers at once, or one writer.
///
/// [`read`](RwLock::read) and [`write`](RwLock::write) give [`Lock`]
/// handles with the whole acquire ladder (`acquire`, `try_acquire`,
/// `acquire_timeout`, cancellable and channel forms); every acquisition is
/// a [`Guard`](crate::Guard) with its own token, lease, renewal, `lost()`
/// signal and fence.
///
/// - Readers share the lock with each other, never with a writer.
/// - Writers are preferred: once a writer waits, new readers wait behind
///   it, so a stream of readers cannot starve writers. The writer's place
///   is kept while it keeps asking (it asks again at the latest when the
///   holders' leases run out) and given back when it gives up.
/// - A reader that crashes frees its own share after its lease; the other
///   readers keep theirs.
/// - A release wakes the waiters by notification: a writer's release, or
///   the last reader's, lets them try at once.
/// - Not re-entrant and not upgradable: a thread that holds a read lock
///   and asks for the write lock waits for itself.
///
/// Readers and writers of one client do not queue on the client's local
/// fast path (each share is its own round trip). Supported on Redis (one
/// node, Sentinel, Cluster); other stores refuse.
///
/// ```no_run
/// let client = distlock::Client::open("redis://127.0.0.1:6379/0")?;
/// let config = client.rw_lock("config");
/// let reading = config.read().acquire()?; // shared with other readers
/// drop(reading);
/// let writing = config.write().acquire()?; // alone
/// writing.release()?;
/// # Ok::<(), distlock::Error>(())
/// ```
#[derive(Clone)]
pub struct RwLock {
    client: Client,
    name: String,
}

impl RwLock {
    pub(crate) fn new(client: Client, name: String) -> RwLock {
        RwLock { client, name }
    }

    /// The read side: acquisitions share the lock with other readers.
    /// Set its lease with [`Lock::ttl`] as for a plain lock.
    pub fn read(&self) -> Lock {
        Lock::of_kind(self.client.clone(), self.name.clone(), Kind::Read)
    }

    /// The write side: an acquisition holds the lock alone.
    pub fn write(&self) -> Lock {
        Lock::of_kind(self.client.clone(), self.name.clone(), Kind::Write)
    }

    /// The lock's name, as given to [`Client::rw_lock`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
