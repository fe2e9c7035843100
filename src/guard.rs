//! The guard: proof of holding a lock, released on drop.

use crate::client::Client;
use crate::clock::BootInstant;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::store::{Extend, LAZY_FENCE};
use crossbeam_channel::Receiver;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Proof of holding a lock. Dropping it releases the lock; call
/// [`release`](Guard::release) instead to learn whether the release worked.
///
/// A guard never claims the lock past its local deadline (the moment the
/// winning request was sent, plus the lease, minus a drift allowance), even
/// if the renewal thread has not noticed trouble yet.
///
/// **Dropping blocks**: like [`release`](Guard::release), `drop` sends the
/// release to the server (at most one command timeout, plus one retry on a
/// fresh connection) unless the lease passes to a waiting thread of the
/// same client. In an async program, drop guards where blocking is
/// allowed (for example in `spawn_blocking`).
#[must_use = "a guard that is not kept releases the lock at once"]
pub struct Guard {
    client: Client,
    lease: Arc<Lease>,
    released: bool,
}

impl Guard {
    /// Wraps a lease this client holds (already registered for renewal).
    pub(crate) fn new(client: Client, lease: Arc<Lease>) -> Guard {
        Guard {
            client,
            lease,
            released: false,
        }
    }

    /// The fencing token of this acquisition: strictly greater than that of
    /// every earlier acquisition of the same lock name, from any client.
    /// Pass it to the storage you protect and have it reject smaller ones.
    ///
    /// A lock taken from Redis 7 or later may have been granted without its
    /// fence, which is then asked for (one round trip, while the lock is
    /// still held) the first time it is read; after that, this client takes
    /// the fence of every acquisition of this name in the same round trip
    /// as the lock. Returns 0, which every fenced resource refuses, if the
    /// lock turns out lost or the server cannot be asked:
    /// [`try_fence`](Guard::try_fence) says which.
    pub fn fence(&self) -> u64 {
        self.try_fence().unwrap_or(0)
    }

    /// The fence if it is known already, else [`LAZY_FENCE`]; asks nothing.
    pub(crate) fn given_fence(&self) -> u64 {
        self.lease.fence()
    }

    /// [`fence`](Guard::fence), with what went wrong: [`Error::Lost`] if the
    /// lock was no longer held when its fence was asked for, or the error
    /// that kept the server from answering (try again).
    pub fn try_fence(&self) -> Result<u64> {
        let fence = self.lease.fence();
        if fence != LAZY_FENCE {
            return Ok(fence);
        }
        let inner = self.client.inner();
        inner.fence_read(&self.lease.name);
        if !self.is_held() {
            return Err(Error::Lost);
        }
        match inner
            .store()
            .assign_fence(&self.lease.name, &self.lease.token)?
        {
            Some(fence) => Ok(self.lease.give_fence(fence)),
            None => {
                self.lease
                    .mark_lost("asked for its fence, the server no longer held it");
                Err(Error::Lost)
            }
        }
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
        let answers = self.client.inner().store().extend(&[Extend {
            name: &self.lease.name,
            token: &self.lease.token,
            ttl: self.lease.ttl,
            kind: self.lease.kind,
        }])?;
        if answers.first() == Some(&true) {
            self.lease.renewed(sent);
            Ok(())
        } else {
            self.lease.mark_lost("an extend found it no longer ours");
            Err(Error::Lost)
        }
    }

    /// Releases the lock. [`Error::Lost`] if it was no longer ours (expired,
    /// deleted, taken, or this is a forked child of the owner): the release
    /// then deleted nothing that belongs to someone else.
    pub fn release(mut self) -> Result<()> {
        self.release_once()
    }

    /// The release behind [`release`](Guard::release) and `drop`; only the
    /// first call does anything.
    fn release_once(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        if std::process::id() != self.lease.owner_pid {
            // A forked child must not release its parent's lock.
            return Err(Error::Lost);
        }
        let inner = self.client.inner();
        inner.local().release(inner, &self.lease)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.release_once();
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.lease.name)
            .field("fence", &self.lease.fence())
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}
