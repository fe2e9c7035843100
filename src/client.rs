//! The client: the handle every lock is taken through, owning the store,
//! the renewal thread, the release notifications and the local queues.

use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::limits::check_name;
use crate::linger::Lingerer;
use crate::local::{Fairness, Host, LocalLocks};
use crate::lock::Lock;
use crate::notify::{Notifier, Watch};
use crate::renew::{Msg, Renewer};
use crate::rwlock::RwLock;
use crate::semaphore::Semaphore;
use crate::stats::{add, Counters, Stats};
use crate::store::{LockInfo, Store, WANTS};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A handle on one lock server, shared by every lock taken through it.
///
/// Cloning is cheap (an `Arc`), and clones share the connection pool and the
/// renewal thread. The pool and thread stop once the last clone and the last
/// guard taken through it are dropped.
///
/// ```no_run
/// let client = distlock::Client::open("redis://127.0.0.1:6379/0")?;
/// let guard = client.lock("orders:42").acquire()?;
/// // ... exclusive work, with guard.fence() passed to storage ...
/// guard.release()?;
/// # Ok::<(), distlock::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Client-wide settings that locks start from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub ttl: Duration,
    pub max_hold: Option<Duration>,
    pub max_retry_interval: Duration,
    /// How long a released lock may stay held for this client's next
    /// acquisition (`None`: off).
    pub linger: Option<Duration>,
}

/// What every clone of a [`Client`] shares.
pub(crate) struct Inner {
    store: Arc<dyn Store>,
    settings: Settings,
    /// Threads of this client queued per lock name.
    local: LocalLocks,
    /// Release notifications for waiters.
    notifier: Arc<Notifier>,
    prefix: String,
    renewer: Renewer,
    /// What this client's locks have done.
    counters: Arc<Counters>,
    next_id: AtomicU64,
    /// Ends the stays of lingering locks (with a linger setting only).
    lingerer: Option<Lingerer>,
    /// Lock names whose guards had their fence read: acquisitions of these
    /// take the fence in the same round trip (see [`Inner::wants_fence`]).
    fenced: parking_lot::Mutex<HashSet<String>>,
}

/// Most lock names [`Inner::fenced`] remembers; past that, a name whose
/// fence is read costs one round trip more each time, as on its first.
const MAX_FENCED_NAMES: usize = 4096;

impl Inner {
    /// Whether an acquisition of `name` should take its fence at once: the
    /// guards of this name had their fence read before. The others are
    /// taken without one (on Redis 7, a `SET NX` instead of a script),
    /// which [`Guard::fence`](crate::Guard::fence) then asks for.
    pub(crate) fn wants_fence(&self, name: &str) -> bool {
        self.fenced.lock().contains(name)
    }

    /// A guard of `name` had its fence read.
    pub(crate) fn fence_read(&self, name: &str) {
        let mut fenced = self.fenced.lock();
        if fenced.len() < MAX_FENCED_NAMES && !fenced.contains(name) {
            fenced.insert(name.to_string());
        }
    }

    /// A process-unique id for a new lease.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Tells the renewal thread something; if it is gone (only after a fork)
    /// there is nobody left to tell, and nothing to do.
    pub(crate) fn renewal(&self, msg: Msg) {
        self.renewer.send(msg);
    }

    /// The server locks live on.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The client-wide settings locks start from.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This client's queues of threads waiting per lock name.
    pub(crate) fn local(&self) -> &LocalLocks {
        &self.local
    }

    /// The client's counters.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Starts listening for releases of `name` by a waiter asking with
    /// `token` (see [`Notifier::watch`]).
    pub(crate) fn watch(&self, name: &str, token: Option<&str>) -> Watch {
        self.notifier.watch(name, token, false)
    }

    /// As [`watch`](Inner::watch), telling a holder lingering on `name`
    /// that someone wants it in the same round trip.
    pub(crate) fn watch_announcing(&self, name: &str, token: Option<&str>) -> Watch {
        self.notifier.watch(name, token, true)
    }
}

impl Host for Inner {
    fn store(&self) -> &dyn Store {
        Inner::store(self)
    }

    fn continue_lease(&self, old: &Lease, fence: u64) -> Arc<Lease> {
        Lease::handoff(old, self.next_id(), fence, self.settings.max_hold)
    }

    fn handed_off(&self, lease: &Lease) {
        add(&self.counters.local_handoffs, 1);
        log::debug!(
            "distlock: handed the lock {:?} to a waiting thread",
            lease.name
        );
    }

    fn forget(&self, lease: &Lease) {
        self.renewal(Msg::Unregister(lease.grant.id));
    }

    fn max_retry_interval(&self) -> Duration {
        self.settings.max_retry_interval
    }

    fn linger(&self) -> Option<Duration> {
        self.settings.linger.filter(|_| self.lingerer.is_some())
    }

    fn hear_wants(&self, name: &str, check_at: std::time::Instant) -> Option<Watch> {
        let lingerer = self.lingerer.as_ref()?;
        let watch = self.notifier.watch(&format!("{WANTS}{name}"), None, false);
        lingerer.watch(name, watch.rx.clone(), watch.wake_pending, check_at);
        Some(watch)
    }

    fn wants_fence(&self, name: &str) -> bool {
        Inner::wants_fence(self, name)
    }

    fn disruptions(&self) -> u64 {
        self.notifier.disruptions()
    }

    fn lingered(&self, lease: &Lease) {
        add(&self.counters.lingered, 1);
        log::debug!(
            "distlock: granted the lock {:?} from the lease this client lingered on",
            lease.name
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Locks this client lingers on go back to the server now, not at
        // the end of their leases.
        self.local.release_lingering(&*self);
        if let Some(l) = &self.lingerer {
            l.shutdown();
        }
        self.notifier.shutdown();
        // The renewal thread never owns an `Inner`, so this is never a
        // self-join.
        self.renewer.shutdown();
    }
}

impl Client {
    /// Connects to the Redis server at `url` with default settings.
    ///
    /// Accepted forms: `redis://[[user]:password@]host[:port][/db]` and
    /// `rediss://…` for TLS. Fails with [`Error::InvalidArgument`] for a
    /// malformed URL, [`Error::Auth`] for refused credentials and
    /// [`Error::Connection`] when the server cannot be reached within the
    /// connect timeout.
    pub fn open(url: &str) -> Result<Client> {
        Client::builder().url(url).build()
    }

    /// A builder for a client with non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts a client on a connected store: the renewal thread and the
    /// release notifications.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        settings: Settings,
        prefix: String,
        fairness: Fairness,
    ) -> Result<Client> {
        let counters = Arc::new(Counters::new());
        let renewer = Renewer::spawn(store.clone(), counters.clone())
            .map_err(|e| Error::Connection(format!("cannot start the renewal thread: {e}")))?;
        let notifier = Notifier::new(store.clone(), counters.clone());
        let mut spawn_failed = None;
        let inner = Arc::new_cyclic(|me| {
            let lingerer = match settings.linger {
                Some(_) => Lingerer::spawn(me.clone())
                    .map_err(|e| spawn_failed = Some(e))
                    .ok(),
                None => None,
            };
            Inner {
                store,
                settings,
                prefix,
                local: LocalLocks::new(fairness),
                notifier,
                renewer,
                counters,
                next_id: AtomicU64::new(1),
                lingerer,
                fenced: parking_lot::Mutex::new(HashSet::new()),
            }
        });
        if let Some(e) = spawn_failed {
            return Err(Error::Connection(format!(
                "cannot start the linger thread: {e}"
            )));
        }
        Ok(Client { inner })
    }

    /// What every clone shares.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A named lock. Nothing is sent until you acquire it; the name is
    /// checked then (see [`MAX_KEY_LEN`](crate::MAX_KEY_LEN)).
    pub fn lock(&self, name: impl Into<String>) -> Lock {
        Lock::new(self.clone(), name.into())
    }

    /// A named read-write lock: many readers or one writer (see
    /// [`RwLock`]). Nothing is sent until you acquire a side; the name is
    /// checked then. Redis only: other stores refuse at acquire time.
    pub fn rw_lock(&self, name: impl Into<String>) -> RwLock {
        RwLock::new(self.clone(), name.into())
    }

    /// A named counting semaphore of `permits` permits whose holders'
    /// permits expire with their leases (see [`Semaphore`]). Nothing is
    /// sent until you acquire; the name and count (1 to
    /// [`MAX_PERMITS`](crate::MAX_PERMITS)) are checked then. Redis only:
    /// other stores refuse at acquire time.
    pub fn semaphore(&self, name: impl Into<String>, permits: u32) -> Semaphore {
        Semaphore::new(self.clone(), name.into(), permits)
    }

    /// The key prefix locks of this client live under.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The default lease of locks made by this client.
    pub fn default_ttl(&self) -> Duration {
        self.inner.settings.ttl
    }

    /// What the server holds for the lock `name` right now: its key, the
    /// holder's token and remaining lease (if held), and the last fencing
    /// token handed out. For operators and tools; a guard is the only proof
    /// of ownership.
    pub fn inspect(&self, name: &str) -> Result<LockInfo> {
        check_name(name)?;
        self.inner.store.inspect(name)
    }

    /// Deletes the lock `name` if (and only if) it is held with `token`:
    /// the operator's way to free a lock whose holder is known to be dead.
    /// `Ok(false)` if the lock was not held with that token.
    pub fn release_token(&self, name: &str, token: &str) -> Result<bool> {
        check_name(name)?;
        if token.is_empty() {
            return Err(Error::invalid("token is empty"));
        }
        self.inner.store.release(name, token)
    }

    /// The locks held now under this client's prefix whose names match the
    /// glob `pattern` (`*` for all; `?`, `[abc]` and `\\` escapes as in
    /// Redis `SCAN MATCH`), at most `limit` of them. Found with `SCAN`, a
    /// bounded number of keys per step, so it is safe on a busy server;
    /// it is a snapshot that may miss locks taken or include locks freed
    /// while it runs. For operators and tools.
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty pattern or a
    /// zero limit, and on Redis Cluster (its keys are spread over nodes);
    /// with Redlock the list comes from the first node that answers.
    pub fn held(&self, pattern: &str, limit: usize) -> Result<HeldLocks> {
        if pattern.is_empty() || pattern.len() > crate::MAX_KEY_LEN {
            return Err(Error::invalid(format!(
                "the pattern must be 1 to {} bytes, got {}",
                crate::MAX_KEY_LEN,
                pattern.len()
            )));
        }
        if limit == 0 {
            return Err(Error::invalid("the limit must be at least 1"));
        }
        let prefix = &self.inner.prefix;
        let glob = format!("{}:{pattern}", glob_escaped(prefix));
        let (infos, truncated) = self.inner.store.held(&glob, limit)?;
        let strip = prefix.len() + 1;
        let locks = infos
            .into_iter()
            .map(|info| HeldLock {
                name: info.key.get(strip..).unwrap_or_default().to_string(),
                info,
            })
            .collect();
        Ok(HeldLocks { locks, truncated })
    }

    /// What this client's locks have done since it was built: acquisitions
    /// (and how many had to wait, timed out or were cancelled), losses,
    /// renewals and their failures, local hand-offs, release-feed
    /// reconnects, and the spread of acquire waits. Reading it takes no
    /// lock and costs the lock operations nothing.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The state of the connection pool.
    pub fn pool_state(&self) -> PoolState {
        let (connections, idle) = self.inner.store.pool_state();
        PoolState { connections, idle }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.store.describe())
            .field("prefix", &self.inner.prefix)
            .field("ttl", &self.inner.settings.ttl)
            .finish_non_exhaustive()
    }
}

/// What [`Client::held`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLocks {
    /// The held locks, in no particular order.
    pub locks: Vec<HeldLock>,
    /// True when the listing stopped at its limit: there may be more.
    pub truncated: bool,
}

/// One held lock in a [`HeldLocks`] listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// The lock's name, as given to [`Client::lock`].
    pub name: String,
    /// Its key, holder token, remaining lease and last fence.
    pub info: LockInfo,
}

/// `s` with the characters a Redis glob treats specially escaped.
fn glob_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Connections in a client's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections currently open.
    pub connections: u32,
    /// Of those, the ones not in use.
    pub idle: u32,
}

/// `url` with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL we understand: do not risk echoing a secret.
        return "<unparsed>".to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!(
                "{}{}:***@{}{}",
                &url[..scheme_end + 3],
                user,
                &authority[at + 1..],
                &rest[authority_end..]
            )
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("redis://alice:s3cret@127.0.0.1:6380/2"),
            "redis://alice:***@127.0.0.1:6380/2"
        );
        assert_eq!(redact_url("rediss://:s3cret@h/0"), "rediss://:***@h/0");
        assert_eq!(redact_url("redis://127.0.0.1/0"), "redis://127.0.0.1/0");
        assert_eq!(redact_url("s3cret"), "<unparsed>");
        let b = Client::builder().url("redis://u:hunter2@127.0.0.1:1/0");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
