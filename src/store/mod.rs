//! The seam between lock logic and the server that stores locks.
//!
//! Guards, renewal and waiting only speak to a [`Store`]; everything that
//! knows about Redis commands, scripts and key names lives below this
//! module. Another backend (etcd, ZooKeeper, memcached) would implement the
//! same trait without touching the rest of the crate.
//!
//! The Redis stores, by job:
//! - [`keys`]: the key layout (lock key, fence and value side keys, slots);
//! - [`scripts`]: the Lua scripts and what their replies mean;
//! - [`errors`]: error kinds, which failures break a connection, and the
//!   password scrub;
//! - [`replicas`]: replica acknowledgement (`WAIT`);
//! - [`pool`]: the connection pool, for one node or a cluster;
//! - [`feed`]: the release feed (pub/sub);
//! - [`route`]: what differs between a node and a cluster per command;
//! - [`ops`]: the lock operations, written once over [`route`] and [`pool`];
//! - [`redis`], [`cluster`], [`sentinel`]: one node (directly or through
//!   Sentinel) and a cluster, with only what sets them apart;
//! - [`redlock`]: one lock over several independent nodes;
//! - [`holder`]: the holder description written after the token, and the
//!   ownership compare every store uses;
//! - [`glob`]: the pattern match of `held` for stores that filter keys
//!   themselves;
//! - [`shares`]: read-write locks and semaphores (the holder set and its
//!   scripts' replies).
//!
//! And beside them, [`memcached`]: one memcached server (1.6 or later)
//! through the meta protocol, with a client of its own; and [`etcd`]: an
//! etcd cluster (3.4 or later) through its JSON gateway over blocking HTTP;
//! and [`zookeeper`]: a ZooKeeper ensemble (3.6 or later) through a small
//! jute client of its own, with ephemeral nodes on sessions as leases.

pub(crate) mod cluster;
mod errors;
pub(crate) mod etcd;
mod feed;
mod glob;
pub(crate) mod holder;
mod hosts;
mod keys;
pub(crate) mod memcached;
mod ops;
mod pool;
pub(crate) mod redis;
pub(crate) mod redlock;
mod replicas;
mod route;
mod scripts;
pub(crate) mod sentinel;
pub(crate) mod shares;
pub(crate) mod zookeeper;

use crate::error::{Error, Result};
use std::time::Duration;

/// A snapshot of one lock on the server, from [`Client::inspect`](crate::Client::inspect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The key (or path) holding the lock (`<prefix>:<name>`).
    pub key: String,
    /// The holder's token, or `None` when nobody holds the lock.
    pub token: Option<String>,
    /// The holder's remaining lease, when held.
    pub remaining: Option<Duration>,
    /// The last fencing token handed out for this name, if any.
    pub fence: Option<u64>,
    /// Who took the lock (host, pid, label), when held by a client that
    /// records it.
    pub holder: Option<holder::Holder>,
    /// The holders of a read-write lock or a semaphore of this name, each
    /// share with its token and lease (then `token` and `holder` are
    /// `None`, and `remaining` is the longest share's); empty for a plain
    /// lock.
    pub shares: Vec<Share>,
    /// Writers waiting for a read-write lock of this name: while any
    /// waits, new readers wait too.
    pub writers_waiting: usize,
}

/// One holder of a read-write lock or a semaphore, in a [`LockInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// What the share is.
    pub kind: ShareKind,
    /// The holder's token (what `distlock release-token` takes).
    pub token: String,
    /// The share's remaining lease.
    pub remaining: Duration,
}

/// The kind of a [`Share`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// A reader of a read-write lock.
    Read,
    /// The writer of a read-write lock.
    Write,
    /// A permit of a semaphore.
    Permit,
}

impl ShareKind {
    /// `"read"`, `"write"` or `"permit"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareKind::Read => "read",
            ShareKind::Write => "write",
            ShareKind::Permit => "permit",
        }
    }
}

/// `d` in whole milliseconds, as Redis commands take it (saturating).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What an acquire attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The caller's token now holds the lock, with this fencing token.
    Yes {
        /// The first fence of the block the acquisition reserved.
        fence: u64,
    },
    /// Someone else holds it; their lease has about this much time left
    /// (`None` when the store could not say).
    No {
        /// What is left of the holder's lease.
        remaining: Option<Duration>,
    },
}

/// The fence of an [`Acquired::Yes`] whose fence is not given yet (see
/// [`Store::acquire_lazy`]). Every real fence is larger.
pub(crate) const LAZY_FENCE: u64 = 0;

/// How many fences one acquisition reserves: the acquirer's process may
/// hand the lease on to its own waiting threads with the next fences of
/// the block (see `local.rs`).
pub(crate) const FENCE_BLOCK: u64 = 64;

/// The start of a feed name that stands for the announcements of clients
/// that want a lock (`WANTS` + the lock name), rather than for its
/// releases: see [`Store::announce`].
pub(crate) const WANTS: &str = "\u{0}wants\u{0}";

/// Receives what a release feed sees; implemented by the notifier.
pub(crate) trait FeedHandler {
    /// Changes to apply before the next read: names to subscribe to, names
    /// to drop, and whether to stop.
    fn changes(&mut self) -> FeedChanges;
    /// The feed now hears releases of `name` (also after a reconnect).
    fn subscribed(&mut self, name: &str);
    /// `name` was released.
    fn released(&mut self, name: &str);
    /// `name` was released to one waiter: the acquisition with `token`
    /// (a waiting writer, or the head of a fair lock's line). The others
    /// could not go in, so nobody else needs waking.
    fn released_to(&mut self, name: &str, token: &str) {
        let _ = token;
        self.released(name);
    }
}

/// What a [`FeedHandler`] wants changed.
#[derive(Debug, Default)]
pub(crate) struct FeedChanges {
    /// Lock names whose releases to hear from now on.
    pub subscribe: Vec<String>,
    /// Lock names no longer of interest.
    pub unsubscribe: Vec<String>,
    /// End the feed.
    pub stop: bool,
}

/// What [`Store::release_heard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    /// The lock was held with the token, and is free now.
    pub deleted: bool,
    /// Another client listened for the release: someone waits.
    pub heard: bool,
}

/// What [`Store::pass_on`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassOn {
    /// The lock was not held with the token.
    NotOwner,
    /// Other clients were waiting: the lock was released to them.
    Released,
    /// Nobody else waits: the lease was restarted and a new block of
    /// fences reserved, starting at `fence`.
    Kept {
        /// The first fence of the new block.
        fence: u64,
    },
}

/// What one acquisition holds of its name: the whole of a plain lock, or a
/// share of a read-write lock or semaphore (see [`shares`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A plain lock: one holder ([`Store::acquire`]).
    Plain,
    /// A read hold of a read-write lock: shared with other readers.
    Read,
    /// The write hold of a read-write lock: excludes readers and writers.
    Write,
    /// One permit of a semaphore that has this many.
    Permit(u32),
    /// A plain lock taken in FIFO order among fair acquirers: the same key
    /// as [`Kind::Plain`], plus a line of waiters beside it.
    Fair,
}

/// One lease to extend in a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extend<'a> {
    /// The user's lock name.
    pub name: &'a str,
    /// The owner's token.
    pub token: &'a str,
    /// The new lease.
    pub ttl: Duration,
    /// What the lease holds; stores without shares only see
    /// [`Kind::Plain`] (they refuse to grant anything else).
    pub kind: Kind,
}

/// A lock store: atomic acquire / release / extend keyed by lock name.
///
/// Every operation must be idempotent for a given token, because callers
/// retry an operation whose reply was lost.
pub(crate) trait Store: Send + Sync + 'static {
    /// Take `name` for `token` for `ttl`, or report the current holder's
    /// remaining lease. Called again with the same token after a lost reply,
    /// it must report `Yes` (with the same fence) if the first call won.
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired>;

    /// As [`acquire`](Store::acquire), but a store may leave the fence for
    /// later: a `Yes` with [`LAZY_FENCE`] means the lock is held and its
    /// fence is given by [`assign_fence`](Store::assign_fence) when it is
    /// first wanted. By default, the same as `acquire`.
    fn acquire_lazy(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        self.acquire(name, token, ttl)
    }

    /// The fence of a hold `acquire_lazy` took with [`LAZY_FENCE`], given
    /// while `token` still holds `name` (the first of a fresh block), or
    /// `None` if it does not. Only stores that give lazy fences are asked.
    fn assign_fence(&self, name: &str, token: &str) -> Result<Option<u64>> {
        let _ = (name, token);
        Err(Error::Connection(format!(
            "{} gives every fence when it grants a lock",
            self.describe()
        )))
    }

    /// Give `name` back if `token` still holds it. `Ok(false)` means it did
    /// not (expired, deleted, or someone else's).
    fn release(&self, name: &str, token: &str) -> Result<bool>;

    /// As [`release`](Store::release), also saying whether another client
    /// heard the release (so waits for it). Stores that cannot tell say
    /// nobody did.
    fn release_heard(&self, name: &str, token: &str) -> Result<Released> {
        Ok(Released {
            deleted: self.release(name, token)?,
            heard: false,
        })
    }

    /// At the end of a run of local hand-offs: release `name` if other
    /// clients wait for it, else keep it with a fresh lease and fence block.
    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn>;

    /// Tells a client lingering on `name` (holding it after its release,
    /// see [`Builder::linger`](crate::Builder::linger)) that someone waits
    /// for it, and with `poke` wakes that feed as [`poke`](Store::poke)
    /// does (in the same round trip where the store can). Feeds of stores
    /// that hear announcements hear those of a name under [`WANTS`] + the
    /// name; other stores only poke.
    fn announce(&self, name: &str, poke: Option<&str>) -> Result<()> {
        let _ = name;
        poke.map_or(Ok(()), |control| self.poke(control))
    }

    /// Extend several leases in one round trip; one answer per request, in
    /// order: `true` if the token still held the lock and was extended.
    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>>;

    /// Runs a release feed on a dedicated connection until `handler` asks to
    /// stop (`Ok`) or the connection fails (`Err`; the caller reconnects).
    /// A [`poke`](Store::poke) with the same `control` name makes the feed
    /// look at [`FeedHandler::changes`] at once.
    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()>;

    /// Wakes the feed running with `control`.
    fn poke(&self, control: &str) -> Result<()>;

    /// The value a loader cached beside the lock `name`, if any.
    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Caches `value` beside the lock `name` for `ttl`.
    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()>;

    /// Take a share of `name` (a [`Kind`] other than `Plain`) for `token`
    /// for `ttl`, or report how long until a share may free up. Like
    /// [`acquire`](Store::acquire), idempotent for a token: a retry after a
    /// lost reply finds the share and restarts its lease (with a new fence:
    /// the lost one was never seen). Stores without shares refuse.
    fn acquire_share(
        &self,
        _name: &str,
        kind: Kind,
        _token: &str,
        _ttl: Duration,
    ) -> Result<Acquired> {
        Err(shares::unsupported(kind, self.describe()))
    }

    /// Gives back the share `token` holds of `name` (and, for a writer,
    /// withdraws its place in the writers' queue). `Ok(false)` if `token`
    /// held no such share. Stores without shares refuse.
    fn release_share(&self, _name: &str, kind: Kind, _token: &str) -> Result<bool> {
        Err(shares::unsupported(kind, self.describe()))
    }

    /// What the server holds for `name` right now.
    fn inspect(&self, name: &str) -> Result<LockInfo>;

    /// The locks held now whose keys match the glob `pattern` (a prefix
    /// already applied), at most `limit`, and whether there were more.
    /// Stores that cannot list their locks refuse.
    fn held(&self, _pattern: &str, _limit: usize) -> Result<(Vec<LockInfo>, bool)> {
        Err(crate::error::Error::invalid(format!(
            "listing held locks is not supported with {}",
            self.describe()
        )))
    }

    /// Connections open to the server, and how many of them are idle.
    fn pool_state(&self) -> (u32, u32);

    /// Where the store is, for Debug output: never credentials.
    fn describe(&self) -> &str;
}
