//! The builder: every client setting, its default and its bounds.

use crate::client::{Client, Settings};
use crate::error::{Error, Result};
use crate::limits::{
    check_prefix, check_setting, check_ttl, shown, MAX_HOLD_CAP, MAX_POOL_SIZE, MAX_SETTING,
};
use crate::local::{Fairness, MAX_HANDOFFS};
use crate::servers::Servers;
use crate::store::holder::Holder;
use crate::store::redis::{RedisConfig, Replicas, Tls};
use std::fmt;
use std::time::Duration;

/// The key prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "distlock";
/// The lease used when none is given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How often a polling release feed looks when none is set.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Builds a [`Client`]. Every setting has a default; see each method.
#[derive(Clone)]
pub struct Builder {
    servers: Servers,
    prefix: String,
    ttl: Duration,
    pool_size: u32,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_hold: Option<Duration>,
    max_retry_interval: Duration,
    fairness: Fairness,
    /// Replica acknowledgement: how many, and how long to wait (0: off).
    replicas: (u32, Duration),
    /// Certificates for `rediss://` beyond the system's trust store.
    tls: Option<Tls>,
    /// The label written with every acquisition, beside host and pid.
    holder_label: Option<String>,
    /// How often a polling release feed (memcached) looks.
    poll_interval: Duration,
    /// How long a released lock stays held for this client (zero: off).
    linger: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            servers: Servers::default(),
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
            replicas: (0, Duration::ZERO),
            tls: None,
            holder_label: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            linger: Duration::ZERO,
        }
    }
}

impl Builder {
    /// A label written with every acquisition, next to this machine's
    /// host name and this process's pid, so that operators can see who
    /// holds a lock ([`Client::inspect`](crate::Client::inspect), `distlock status`): a service
    /// name, a job id. Cut to 64 bytes, control characters turned into
    /// spaces; never put a secret in it. Default: none.
    pub fn holder_label(mut self, label: &str) -> Self {
        self.holder_label = Some(label.to_string());
        self
    }

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

    /// One server (the default: [`DEFAULT_URL`](crate::DEFAULT_URL)): `redis://` or `rediss://`
    /// (TLS), with optional `user:password@` and `/db`, or
    /// `memcache://host[:port]` for one memcached 1.6+ server (see the
    /// README's memcached section), or `etcd://[user:password@]host:port[,host:port…]`
    /// (`etcds://` for TLS) for an etcd cluster (see the README's etcd
    /// section), or `zk://host:port[,host:port…][/chroot]` for a ZooKeeper
    /// 3.6+ ensemble (a lock's lease is its client's session: one session
    /// per lock TTL, whose timeout is the TTL). The scheme picks the
    /// backend.
    ///
    /// Like [`nodes`](Builder::nodes), [`cluster`](Builder::cluster) and
    /// [`sentinel`](Builder::sentinel), this replaces the choice of servers
    /// whole: of these four, the last one called wins.
    pub fn url(mut self, url: &str) -> Self {
        self.servers = Servers::Single(url.to_string());
        self
    }

    /// Redlock: the URLs of several independent Redis nodes (at least 3;
    /// 5 is usual). A lock is owned only while a majority of them grant
    /// it; see the README for what this buys and costs. Fewer than 3 nodes
    /// are refused (one node is a [`url`](Builder::url)). Replaces the
    /// choice of servers whole (see [`url`](Builder::url)). The command
    /// timeout is the per-node timeout: keep it well below the TTL.
    pub fn nodes<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.servers = Servers::Redlock(owned(urls));
        self
    }

    /// Redis Cluster: the URLs of some of its nodes (seeds; list several,
    /// so that the client can start, and its release feed listen, while one
    /// is down). The client learns the slot map from the first seed that
    /// answers and follows MOVED and ASK redirections. All seeds must
    /// share credentials and TLS, and use db 0. A lock's keys share one
    /// hash slot (see the README on key layout). Replaces the choice of
    /// servers whole (see [`url`](Builder::url)).
    pub fn cluster<S: AsRef<str>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.servers = Servers::Cluster(owned(urls));
        self
    }

    /// Redis Sentinel: `sentinels` (`host:port`, or
    /// `redis://[user:password@]host:port` when the sentinels need
    /// credentials of their own) watch the master they know as `master`.
    /// Every new connection asks them where the master is, so after a
    /// failover the client moves to the promoted replica by itself.
    ///
    /// Replaces the choice of servers whole (see [`url`](Builder::url)),
    /// with one carry-over: the scheme, credentials and db for the master
    /// come from the URL given to [`url`](Builder::url) just before (its
    /// host and port are not used), or from [`DEFAULT_URL`](crate::DEFAULT_URL) if there was
    /// none: `.url("redis://:pw@any/2").sentinel(addrs, "mymaster")`.
    pub fn sentinel<S: AsRef<str>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: &str,
    ) -> Self {
        self.servers = self.servers.sentinel(owned(sentinels), master.to_string());
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
    /// `<prefix>:k`. Non-empty, at most [`MAX_PREFIX_LEN`](crate::MAX_PREFIX_LEN) bytes, no braces.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Default lease of each lock (30 s); locks can override it with
    /// [`Lock::ttl`](crate::Lock::ttl). With auto-renewal the lease is extended every third of
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

    /// How often the release feed of a server without notifications
    /// (memcached) looks at the locks someone waits for: one pipelined
    /// read per round for all of them, however many threads wait
    /// (default 20 ms). A shorter interval hands a released lock on
    /// sooner and costs the server more reads. 1 ms to 1 hour; Redis
    /// servers notify, and ignore it.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Lease caching (default off: zero). A plain lock released while no
    /// thread of this client waits for it stays held on the server, its
    /// lease renewed, for up to `linger`; the client's next acquisition of
    /// it within that time is granted at once, without a round trip, with
    /// the next fence of its block (like a hand-off between threads).
    ///
    /// A client that waits for the lock announces that it wants it (one
    /// `PUBLISH`, sent with the poke of its subscription), and the
    /// lingering client then releases it at once, or at its next release
    /// if it holds it again; the release wakes the waiter as usual. A
    /// `try_acquire` does not announce: it finds the lock held until the
    /// stay ends. A waiter of an older version, which does not announce,
    /// gets the lock at the latest when the stay or the fairness budget
    /// ([`handoff_budget`](Builder::handoff_budget)) runs out. Dropping the
    /// last handle on the client releases the locks it lingers on.
    ///
    /// For the worker that owns a shard and takes its lock again and again.
    /// Redis only (one server, Sentinel or Cluster), with the local fast
    /// path on; at most 1 hour, and shorter than `max_hold` if that is
    /// set. Read-write locks, semaphores and fair locks never linger.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
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
        check_prefix(&self.prefix)?;
        check_ttl(self.ttl)?;
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(Error::invalid(format!(
                "pool_size must be between 1 and {MAX_POOL_SIZE}, got {}",
                self.pool_size
            )));
        }
        check_setting("connect_timeout", self.connect_timeout)?;
        check_setting("command_timeout", self.command_timeout)?;
        check_setting("max_retry_interval", self.max_retry_interval)?;
        check_setting("poll_interval", self.poll_interval)?;
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
        if !self.linger.is_zero() {
            check_setting("linger", self.linger)?;
            if !self.fairness.enabled {
                return Err(Error::invalid(
                    "linger needs the local fast path: turn fast_path back on, or linger off",
                ));
            }
            if self.max_hold.is_some_and(|cap| self.linger >= cap) {
                return Err(Error::invalid(format!(
                    "linger ({}) must be shorter than max_hold",
                    shown(self.linger)
                )));
            }
            self.servers.check_linger()?;
        }
        let (count, wait) = self.replicas;
        if count > 0 {
            check_setting("the replica acknowledgement timeout", wait)?;
            self.servers.check_replicas()?;
        }
        self.servers.check(
            self.tls.is_some(),
            (self.connect_timeout, self.command_timeout),
        )
    }

    /// Checks the settings, connects, and starts the renewal thread.
    pub fn build(self) -> Result<Client> {
        self.check()?;
        let base = RedisConfig {
            url: String::new(),
            prefix: self.prefix.clone(),
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            replicas: (self.replicas.0 > 0).then_some(Replicas {
                count: self.replicas.0,
                timeout: self.replicas.1,
            }),
            sentinel: None,
            tls: self.tls.clone(),
            holder: Holder::this_process(self.holder_label.as_deref()).encode(),
            poll: self.poll_interval,
        };
        let store = self.servers.connect(&base)?;
        Client::start(
            store,
            Settings {
                ttl: self.ttl,
                max_hold: self.max_hold,
                max_retry_interval: self.max_retry_interval,
                linger: (!self.linger.is_zero()).then_some(self.linger),
            },
            self.prefix,
            self.fairness,
        )
    }

    /// The choice of servers, for the C config to build on.
    pub(crate) fn servers(&self) -> &Servers {
        &self.servers
    }

    /// Replaces the choice of servers (for the C config, which adds servers
    /// one call at a time).
    pub(crate) fn with_servers(mut self, servers: Servers) -> Self {
        self.servers = servers;
        self
    }
}

/// Owned copies of the strings of `items`.
fn owned<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("servers", &self.servers)
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
            .field("replicas", &self.replicas)
            .field("holder_label", &self.holder_label)
            .field("poll_interval", &self.poll_interval)
            .field("linger", &self.linger)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Client;

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
        assert!(off.check().is_ok());
        let b =
            Client::builder().sentinel(["redis://:hunter2@127.0.0.1:1", "u:pw2@127.0.0.1:2"], "m");
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw2"),
            "{shown}"
        );
    }
}
