//! The client: configuration, the connection pool and the renewal thread.

use crate::error::{Error, Result};
use crate::local::{Fairness, LocalLocks, MAX_HANDOFFS};
use crate::lock::{validate_ttl, Lock};
use crate::notify::Notifier;
use crate::renew::{Msg, Renewer};
use crate::store::cluster::ClusterStore;
use crate::store::redis::{RedisConfig, RedisStore, Replicas, Tls};
use crate::store::redlock::RedlockStore;
use crate::store::sentinel::SentinelConfig;
use crate::store::Store;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The URL used when none is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";
/// The key prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "distlock";
/// The lease used when none is given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Longest accepted key prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;
/// Longest accepted timeout or interval setting: connect and command
/// timeouts, the replica acknowledgement timeout, `max_retry_interval` and
/// `handoff_budget`.
const MAX_SETTING: Duration = Duration::from_secs(3600);
/// Longest accepted hold-time cap.
const MAX_HOLD_CAP: Duration = Duration::from_secs(365 * 24 * 3600);

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
    pub(crate) inner: Arc<Inner>,
}

/// Client-wide settings that locks start from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub ttl: Duration,
    pub max_hold: Option<Duration>,
    pub max_retry_interval: Duration,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    /// Threads of this client queued per lock name.
    pub local: LocalLocks,
    /// Release notifications for waiters.
    pub notifier: Arc<Notifier>,
    prefix: String,
    renewer: Renewer,
    next_id: AtomicU64,
}

impl Inner {
    /// A process-unique id for a new lease.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Tells the renewal thread something; if it is gone (only after a fork)
    /// there is nobody left to tell, and nothing to do.
    pub(crate) fn renewal(&self, msg: Msg) {
        self.renewer.send(msg);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
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

    /// A named lock. Nothing is sent until you acquire it; the name is
    /// checked then (see [`MAX_KEY_LEN`](crate::MAX_KEY_LEN)).
    pub fn lock(&self, name: impl Into<String>) -> Lock {
        Lock::new(self.clone(), name.into())
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
        crate::lock::validate_name(name)?;
        self.inner.store.inspect(name)
    }

    /// Deletes the lock `name` if (and only if) it is held with `token`:
    /// the operator's way to free a lock whose holder is known to be dead.
    /// `Ok(false)` if the lock was not held with that token.
    pub fn release_token(&self, name: &str, token: &str) -> Result<bool> {
        crate::lock::validate_name(name)?;
        if token.is_empty() {
            return Err(Error::invalid("token is empty"));
        }
        self.inner.store.release(name, token)
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

/// A snapshot of one lock on the server, from [`Client::inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The Redis key holding the lock (`<prefix>:<name>`).
    pub key: String,
    /// The holder's token, or `None` when nobody holds the lock.
    pub token: Option<String>,
    /// The holder's remaining lease, when held.
    pub remaining: Option<Duration>,
    /// The last fencing token handed out for this name, if any.
    pub fence: Option<u64>,
}

/// Connections in a client's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections currently open.
    pub connections: u32,
    /// Of those, the ones not in use.
    pub idle: u32,
}

/// Builds a [`Client`]. Every setting has a default; see each method.
#[derive(Clone)]
pub struct Builder {
    urls: Vec<String>,
    prefix: String,
    ttl: Duration,
    pool_size: u32,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_hold: Option<Duration>,
    max_retry_interval: Duration,
    fairness: Fairness,
    deployment: Deployment,
    /// Replica acknowledgement: how many, and how long to wait (0: off).
    replicas: (u32, Duration),
    /// Certificates for `rediss://` beyond the system's trust store.
    tls: Option<Tls>,
}

/// How the servers in [`Builder::urls`] are deployed.
#[derive(Clone)]
enum Deployment {
    /// One server, or Redlock over several independent ones.
    Direct,
    /// A Redis Cluster; the URLs are seeds.
    Cluster,
    /// Redis Sentinel; the one URL gives the master's scheme, credentials
    /// and db, and the sentinels its address.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            urls: vec![DEFAULT_URL.to_string()],
            prefix: DEFAULT_PREFIX.to_string(),
            ttl: DEFAULT_TTL,
            pool_size: 16,
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(2),
            max_hold: None,
            max_retry_interval: Duration::from_millis(500),
            fairness: Fairness {
                enabled: true,
                handoffs: 16,
                budget: Duration::from_millis(20),
            },
            deployment: Deployment::Direct,
            replicas: (0, Duration::ZERO),
            tls: None,
        }
    }
}

impl Builder {
    /// Trusts this CA certificate (PEM) for `rediss://` servers, instead of
    /// the system's trust store: for servers with a private CA or a
    /// self-signed certificate. Single node and Redlock.
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(Tls::default).root_ca = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) to `rediss://`
    /// servers that require client authentication (mutual TLS). Single
    /// node and Redlock. The key never appears in Debug output.
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.get_or_insert_with(Tls::default).client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Server URL (default [`DEFAULT_URL`]): `redis://` or `rediss://` (TLS),
    /// with optional `user:password@` and `/db`.
    pub fn url(mut self, url: &str) -> Self {
        self.urls = vec![url.to_string()];
        self
    }

    /// Redlock: the URLs of several independent Redis nodes (at least 3;
    /// 5 is usual). A lock is owned only while a majority of them grant
    /// it; see the README for what this buys and costs. Replaces
    /// [`url`](Builder::url). The command timeout is the per-node timeout:
    /// keep it well below the TTL.
    pub fn nodes<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.urls = urls.into_iter().map(|u| u.as_ref().to_string()).collect();
        self
    }

    /// Redis Cluster: the URLs of some of its nodes (seeds; list several,
    /// so that the client can start, and its release feed listen, while one
    /// is down). The client learns the slot map from the first seed that
    /// answers and follows MOVED and ASK redirections; a later
    /// [`url`](Builder::url) or [`nodes`](Builder::nodes) replaces the
    /// seeds. All seeds must share credentials and TLS, and use db 0. A
    /// lock's keys share one hash slot (see the README on key layout).
    pub fn cluster<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.urls = urls.into_iter().map(|u| u.as_ref().to_string()).collect();
        self.deployment = Deployment::Cluster;
        self
    }

    /// Redis Sentinel: `sentinels` (`host:port`, or
    /// `redis://[user:password@]host:port` when the sentinels need
    /// credentials of their own) watch the master they know as `master`.
    /// Every new connection asks them where the master is, so after a
    /// failover the client moves to the promoted replica by itself.
    /// The scheme, credentials and db for the master come from
    /// [`url`](Builder::url) (its host and port are not used).
    pub fn sentinel<S: AsRef<str>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: &str,
    ) -> Self {
        self.deployment = Deployment::Sentinel {
            sentinels: sentinels
                .into_iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            master: master.to_string(),
        };
        self
    }

    /// Replica acknowledgement (default off; `count` 0 turns it off): after
    /// the write that takes a lock, keeps a lease at the end of local
    /// hand-offs, or renews leases, the server is asked with `WAIT` to
    /// confirm that at least `count` replicas have it, waiting at most
    /// `timeout` (1 ms to 1 hour). If fewer confirm, an acquisition is given
    /// back and fails with [`Error::Connection`] saying how many did (and,
    /// being transient, is retried like a lost reply until the acquire's
    /// deadline); a renewal counts as failed, so the lease is not extended
    /// and is reported lost if its deadline passes before a renewal is
    /// confirmed. With Redlock, every node waits for its own replicas.
    /// The README says what this does and does not guarantee.
    pub fn replicas(mut self, count: u32, timeout: Duration) -> Self {
        self.replicas = (count, timeout);
        self
    }

    /// Key prefix (default `"distlock"`): a lock named `k` lives at
    /// `<prefix>:k`. Non-empty, at most [`MAX_PREFIX_LEN`] bytes, no braces.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Default lease of each lock (30 s); locks can override it with
    /// [`Lock::ttl`]. With auto-renewal the lease is extended every third of
    /// it, so it bounds how long a crashed holder blocks others.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Most connections open at once (default 16). Waiters hold a connection
    /// only while a command runs.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size;
        self
    }

    /// How long opening a connection, or waiting for a free one in the pool,
    /// may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its reply (default 2 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Caps the total time an auto-renewed lock is held (default: no cap).
    /// At the cap renewal stops and the guard reports the lock lost, so a
    /// stuck holder cannot keep a lock forever. A cap must be positive and
    /// at most 365 days; `None` means no cap.
    pub fn max_hold(mut self, cap: Option<Duration>) -> Self {
        self.max_hold = cap;
        self
    }

    /// Longest a waiting acquirer goes without looking at the lock again
    /// (default 500 ms). Waiters are woken by release notifications, and
    /// otherwise look again when the holder's lease runs out; this bounds
    /// what a lost notification can cost. 1 ms to 1 hour.
    pub fn max_retry_interval(mut self, interval: Duration) -> Self {
        self.max_retry_interval = interval;
        self
    }

    /// Whether threads of this client that want the same lock queue locally
    /// and pass the lease among themselves (default true). Off, every
    /// thread asks the server on its own.
    pub fn fast_path(mut self, on: bool) -> Self {
        self.fairness.enabled = on;
        self
    }

    /// Most local hand-offs in a row (default 16, at most 63) before the
    /// holder asks the server whether other clients wait; 0 never hands
    /// off. See the README on fairness.
    pub fn handoff_limit(mut self, handoffs: u32) -> Self {
        self.fairness.handoffs = handoffs;
        self
    }

    /// Longest time (default 20 ms, at most 1 hour) a lease may circulate
    /// among this client's threads before the holder asks the server
    /// whether other clients wait; 0 asks at every release that has a local
    /// waiter.
    pub fn handoff_budget(mut self, budget: Duration) -> Self {
        self.fairness.budget = budget;
        self
    }

    /// Checks every setting and parses every URL without connecting to
    /// anything: the errors `build` would give before it connects (among
    /// them a missing URL, two Redlock nodes, and sentinel settings).
    pub fn check(&self) -> Result<()> {
        self.validate()?;
        if matches!(self.deployment, Deployment::Cluster) {
            let seeds = crate::store::cluster::ClusterStore::parse_seeds(
                &self.urls,
                self.connect_timeout,
                self.command_timeout,
            );
            return seeds.map(drop);
        }
        for url in &self.urls {
            redis::Client::open(url.as_str()).map_err(|e| {
                Error::invalid(format!("cannot parse the Redis URL ({})", e.category()))
            })?;
        }
        Ok(())
    }

    /// Checks the settings, connects, and starts the renewal thread.
    pub fn build(self) -> Result<Client> {
        self.validate()?;
        let replicas = (self.replicas.0 > 0).then_some(Replicas {
            count: self.replicas.0,
            timeout: self.replicas.1,
        });
        let mut cfgs: Vec<RedisConfig> = self
            .urls
            .iter()
            .map(|url| RedisConfig {
                url: url.clone(),
                prefix: self.prefix.clone(),
                pool_size: self.pool_size,
                connect_timeout: self.connect_timeout,
                command_timeout: self.command_timeout,
                replicas,
                sentinel: None,
                tls: self.tls.clone(),
            })
            .collect();
        let store: Arc<dyn Store> = match (&self.deployment, cfgs.as_mut_slice()) {
            (Deployment::Cluster, [first, ..]) => {
                Arc::new(ClusterStore::connect(&self.urls, first)?)
            }
            (Deployment::Sentinel { sentinels, master }, [one]) => {
                one.sentinel = Some(SentinelConfig {
                    sentinels: sentinels.clone(),
                    master: master.clone(),
                });
                Arc::new(RedisStore::connect(one)?)
            }
            (Deployment::Direct, [one]) => Arc::new(RedisStore::connect(one)?),
            (Deployment::Direct, many @ [_, _, ..]) => Arc::new(RedlockStore::connect(many)?),
            // No servers, or several with sentinel: refused by
            // validate_servers above, with the message for each.
            _ => {
                return Err(self
                    .validate_servers()
                    .err()
                    .unwrap_or_else(|| Error::invalid("no usable list of servers")))
            }
        };
        let renewer = Renewer::spawn(store.clone())
            .map_err(|e| Error::Connection(format!("cannot start the renewal thread: {e}")))?;
        let notifier = Notifier::new(store.clone());
        Ok(Client {
            inner: Arc::new(Inner {
                store,
                settings: Settings {
                    ttl: self.ttl,
                    max_hold: self.max_hold,
                    max_retry_interval: self.max_retry_interval,
                },
                prefix: self.prefix,
                local: LocalLocks::new(self.fairness),
                notifier,
                renewer,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    fn validate(&self) -> Result<()> {
        if self.tls.is_some() && !matches!(self.deployment, Deployment::Direct) {
            return Err(Error::invalid(
                "custom TLS certificates work with a single node or Redlock, not Cluster or Sentinel",
            ));
        }
        let p = &self.prefix;
        if p.is_empty() || p.len() > MAX_PREFIX_LEN || p.contains(['{', '}']) {
            return Err(Error::invalid(format!(
                "prefix must be 1 to {MAX_PREFIX_LEN} bytes without '{{' or '}}', got {} bytes{}",
                p.len(),
                if p.contains(['{', '}']) {
                    " with a brace"
                } else {
                    ""
                }
            )));
        }
        validate_ttl(self.ttl)?;
        if self.pool_size == 0 || self.pool_size > 1024 {
            return Err(Error::invalid(format!(
                "pool_size must be between 1 and 1024, got {}",
                self.pool_size
            )));
        }
        for (name, t) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("max_retry_interval", self.max_retry_interval),
        ] {
            if t < Duration::from_millis(1) || t > MAX_SETTING {
                return Err(Error::invalid(format!(
                    "{name} must be between 1 ms and 1 hour, got {}",
                    shown(t)
                )));
            }
        }
        if let Some(cap) = self.max_hold.filter(|c| c.is_zero() || *c > MAX_HOLD_CAP) {
            return Err(Error::invalid(format!(
                "max_hold must be positive and at most 365 days (or None for no cap), got {}",
                shown(cap)
            )));
        }
        if self.fairness.handoffs > MAX_HANDOFFS {
            return Err(Error::invalid(format!(
                "handoff_limit must be at most {MAX_HANDOFFS}, got {}",
                self.fairness.handoffs
            )));
        }
        if self.fairness.budget > MAX_SETTING {
            return Err(Error::invalid(format!(
                "handoff_budget must be at most 1 hour, got {}",
                shown(self.fairness.budget)
            )));
        }
        let (count, wait) = self.replicas;
        if count > 0 && (wait < Duration::from_millis(1) || wait > MAX_SETTING) {
            return Err(Error::invalid(format!(
                "the replica acknowledgement timeout must be between 1 ms and 1 hour, got {}",
                shown(wait)
            )));
        }
        self.validate_servers()
    }

    /// The checks on the list of servers that need no connection.
    fn validate_servers(&self) -> Result<()> {
        match (&self.deployment, self.urls.len()) {
            (_, 0) => Err(Error::invalid("no server URL given")),
            (Deployment::Direct, 2) => Err(Error::invalid(
                "Redlock needs at least 3 independent nodes (5 is usual); 2 given",
            )),
            (Deployment::Sentinel { .. }, 2..) => Err(Error::invalid(
                "with sentinel, give one URL (for the master's credentials and db), not nodes",
            )),
            (Deployment::Sentinel { sentinels, master }, _) => {
                crate::store::sentinel::Sentinels::new(&SentinelConfig {
                    sentinels: sentinels.clone(),
                    master: master.clone(),
                })
                .map(drop)
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_hold", &self.max_hold)
            .field(
                "tls",
                &self.tls.as_ref().map(|t| {
                    (
                        t.root_ca.as_ref().map(|_| "root CA"),
                        t.client.as_ref().map(|_| "client certificate and key"),
                    )
                }),
            )
            .field("max_retry_interval", &self.max_retry_interval)
            .field("fast_path", &self.fairness)
            .field("deployment", &self.deployment)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deployment::Direct => f.write_str("Direct"),
            Deployment::Cluster => f.write_str("Cluster"),
            Deployment::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field(
                    "sentinels",
                    &sentinels
                        .iter()
                        .map(|s| {
                            if s.contains("://") {
                                redact_url(s)
                            } else {
                                // A bare `host:port`; any `user:pw@` is hidden too.
                                redact_url(&format!("redis://{s}"))
                            }
                        })
                        .collect::<Vec<_>>(),
                )
                .field("master", master)
                .finish(),
        }
    }
}

/// A duration for a message: in milliseconds, or "an unbounded time" for
/// values no clock could reach.
fn shown(d: Duration) -> String {
    if d >= Duration::from_secs(u64::MAX / 1000) {
        "an unbounded time".to_string()
    } else {
        format!("{} ms", d.as_millis())
    }
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

    #[test]
    fn builder_rejects_bad_settings_before_connecting() {
        let bad = [
            Client::builder().prefix(""),
            Client::builder().prefix("a{b}"),
            Client::builder().ttl(Duration::ZERO),
            Client::builder().pool_size(0),
            Client::builder().command_timeout(Duration::ZERO),
            Client::builder().max_hold(Some(Duration::ZERO)),
        ];
        for b in bad {
            let err = b.url("redis://127.0.0.1:1/0").build().unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
    }

    #[test]
    fn deployment_settings_are_checked_before_connecting() {
        let bad = [
            Client::builder().replicas(1, Duration::ZERO),
            Client::builder().replicas(1, Duration::from_secs(7200)),
            Client::builder()
                .sentinel(["127.0.0.1:1"], "m")
                .nodes(["redis://127.0.0.1:1", "redis://127.0.0.1:2"]),
            Client::builder().sentinel(["127.0.0.1:1"], ""),
            Client::builder().sentinel(Vec::<String>::new(), "m"),
            Client::builder().cluster(Vec::<String>::new()),
            Client::builder().cluster(["not a url"]),
            Client::builder().cluster(["redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1"]),
        ];
        for b in bad {
            // check() foresees what build() refuses before connecting.
            let checked = b.check().unwrap_err();
            let err = b.build().unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert_eq!(checked, err);
        }
        // TLS seeds parse without a connection (or a crypto provider set up
        // by an earlier connect).
        let tls = Client::builder().cluster(["rediss://127.0.0.1:1", "rediss://127.0.0.1:2"]);
        assert_eq!(tls.check(), Ok(()));
        // Off: no timeout needed.
        let off = Client::builder().replicas(0, Duration::ZERO);
        assert!(off.validate().is_ok());
        let b =
            Client::builder().sentinel(["redis://:hunter2@127.0.0.1:1", "u:pw2@127.0.0.1:2"], "m");
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw2"),
            "{shown}"
        );
    }
}
