//! Which servers a client uses: the one home of that choice.
//!
//! A [`Servers`] value is replaced whole by each of the builder's server
//! setters (`url`, `nodes`, `cluster`, `sentinel`): the last one called
//! wins. The C config (and so Go and Python) builds the same value with
//! the same calls, and [`Servers::check`] is the only place that decides
//! whether a choice is usable, so every language refuses the same choices
//! with the same words.
//!
//! The URL scheme picks the backend. `redis://` and `rediss://` (and
//! redis-rs's `unix://` / `redis+unix://` sockets) reach Redis;
//! `memcache://host:port` reaches one memcached server (a single server
//! only); `etcd://host:port[,host:port…]` (`etcds://` for TLS) reaches an
//! etcd cluster through any of the members listed;
//! `zk://host:port[,host:port…][/chroot]` reaches a ZooKeeper ensemble
//! through any of the servers listed.

use crate::client::redact_url;
use crate::error::{Error, Result};
use crate::store::cluster::ClusterStore;
use crate::store::etcd::{self, EtcdConfig, EtcdStore};
use crate::store::memcached::{self, MemcachedConfig, MemcachedStore};
use crate::store::redis::{RedisConfig, RedisStore};
use crate::store::redlock::RedlockStore;
use crate::store::sentinel::{SentinelConfig, Sentinels};
use crate::store::zookeeper::{self, ZkConfig, ZkStore};
use crate::store::Store;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The URL used when none is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

/// Fewest independent nodes Redlock accepts.
const MIN_REDLOCK_NODES: usize = 3;

/// Schemes that reach Redis.
const REDIS_SCHEMES: [&str; 4] = ["redis", "rediss", "unix", "redis+unix"];

/// The servers a client locks on.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Servers {
    /// One server.
    Single(String),
    /// Redlock over independent nodes: a lock is held while a majority
    /// grants it.
    Redlock(Vec<String>),
    /// A Redis Cluster, reached through these seed URLs.
    Cluster(Vec<String>),
    /// A master found through Redis Sentinel.
    Sentinel(SentinelChoice),
}

/// A Sentinel deployment as the setters build it up; [`Servers::check`]
/// refuses it until both the master's name and an address are given.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelChoice {
    /// `host:port`, or a `redis://` URL with the sentinels' own credentials.
    pub sentinels: Vec<String>,
    /// The name the sentinels know the master by (empty: not given yet).
    pub master: String,
    /// Gives the scheme, credentials and db used with the master; its host
    /// and port are not used.
    pub master_url: String,
}

impl Default for Servers {
    fn default() -> Self {
        Servers::Single(DEFAULT_URL.to_string())
    }
}

impl Servers {
    /// Sentinel, with the master's credentials taken from the URL of the
    /// choice it replaces when that was a single server (so
    /// `.url(u).sentinel(..)` means "the master at `u`'s credentials and
    /// db, found through these sentinels").
    pub(crate) fn sentinel(self, sentinels: Vec<String>, master: String) -> Servers {
        let master_url = match self {
            Servers::Single(url) => url,
            Servers::Sentinel(s) => s.master_url,
            _ => DEFAULT_URL.to_string(),
        };
        Servers::Sentinel(SentinelChoice {
            sentinels,
            master,
            master_url,
        })
    }

    /// The choice with one more Redlock node: a new Redlock list if this
    /// was another kind of choice (for setters that add one at a time).
    pub(crate) fn with_node(self, url: String) -> Servers {
        match self {
            Servers::Redlock(mut nodes) => {
                nodes.push(url);
                Servers::Redlock(nodes)
            }
            _ => Servers::Redlock(vec![url]),
        }
    }

    /// The choice with one more cluster seed, as [`with_node`](Self::with_node).
    pub(crate) fn with_seed(self, url: String) -> Servers {
        match self {
            Servers::Cluster(mut seeds) => {
                seeds.push(url);
                Servers::Cluster(seeds)
            }
            _ => Servers::Cluster(vec![url]),
        }
    }

    /// The choice with one more sentinel address: a Sentinel choice still
    /// without a master name if this was another kind of choice.
    pub(crate) fn with_sentinel(self, addr: String) -> Servers {
        match self {
            Servers::Sentinel(mut s) => {
                s.sentinels.push(addr);
                Servers::Sentinel(s)
            }
            other => other.sentinel(vec![addr], String::new()),
        }
    }

    /// The Sentinel choice with this master name (keeping addresses given
    /// before it).
    pub(crate) fn with_master(self, master: String) -> Servers {
        match self {
            Servers::Sentinel(mut s) => {
                s.master = master;
                Servers::Sentinel(s)
            }
            other => other.sentinel(Vec::new(), master),
        }
    }

    /// How many addresses of each list the choice holds: for bounding
    /// lists built one entry at a time.
    pub(crate) fn list_len(&self) -> usize {
        match self {
            Servers::Single(_) => 1,
            Servers::Redlock(urls) | Servers::Cluster(urls) => urls.len(),
            Servers::Sentinel(s) => s.sentinels.len(),
        }
    }

    /// Everything about the choice that can be checked without connecting:
    /// the number of servers, every URL's scheme and syntax, the sentinel
    /// settings, and whether custom TLS certificates (`tls`) fit.
    pub(crate) fn check(&self, tls: bool, timeouts: (Duration, Duration)) -> Result<()> {
        if tls && matches!(self, Servers::Cluster(_) | Servers::Sentinel(_)) {
            return Err(Error::invalid(
                "custom TLS certificates work with a single node or Redlock, not Cluster or Sentinel",
            ));
        }
        match self {
            Servers::Single(url) => check_server_url(url),
            Servers::Redlock(urls) => {
                if urls.is_empty() {
                    return Err(Error::invalid("no server URL given"));
                }
                if urls.len() < MIN_REDLOCK_NODES {
                    return Err(Error::invalid(format!(
                        "Redlock needs at least {MIN_REDLOCK_NODES} independent nodes (5 is usual); {} given",
                        urls.len()
                    )));
                }
                for (i, url) in urls.iter().enumerate() {
                    check_url(url, &format!("Redlock node #{}", i + 1))?;
                }
                Ok(())
            }
            Servers::Cluster(urls) => {
                if urls.is_empty() {
                    return Err(Error::invalid("no server URL given"));
                }
                for (i, url) in urls.iter().enumerate() {
                    check_scheme(url, &format!("cluster seed URL #{}", i + 1))?;
                }
                ClusterStore::parse_seeds(urls, timeouts.0, timeouts.1).map(drop)
            }
            Servers::Sentinel(s) => {
                if s.master.is_empty() && !s.sentinels.is_empty() {
                    return Err(Error::invalid(
                        "sentinel addresses were given without a master name",
                    ));
                }
                Sentinels::new(&s.config())?;
                check_url(&s.master_url, "the master's URL")
            }
        }
    }

    /// Refuses replica acknowledgement where the servers have no replicas
    /// to wait for.
    pub(crate) fn check_replicas(&self) -> Result<()> {
        match self {
            Servers::Single(url) if is_memcached(url) => Err(Error::invalid(
                "replica acknowledgement (WAIT) is a Redis feature: memcached has no \
                 replicas; turn it off for a memcache:// server",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a linger setting where waiters cannot announce themselves to
    /// a lingering holder: anywhere but one Redis server (directly or
    /// through Sentinel) or a Redis Cluster.
    pub(crate) fn check_linger(&self) -> Result<()> {
        let other = match self {
            Servers::Single(url) if is_memcached(url) => Some("memcached"),
            Servers::Single(url) if etcd::is_etcd(url) => Some("etcd"),
            Servers::Single(url) if zookeeper::is_zk(url) => Some("ZooKeeper"),
            Servers::Redlock(_) => Some("Redlock"),
            _ => None,
        };
        match other {
            Some(what) => Err(Error::invalid(format!(
                "linger needs Redis, where a waiting client tells the lingering holder to give the lock up; {what} cannot: turn linger off"
            ))),
            None => Ok(()),
        }
    }

    /// Connects to the chosen servers. `base` gives every setting but the
    /// URL.
    pub(crate) fn connect(&self, base: &RedisConfig) -> Result<Arc<dyn Store>> {
        let with_url = |url: &str| RedisConfig {
            url: url.to_string(),
            ..base.clone()
        };
        Ok(match self {
            Servers::Single(url) if is_memcached(url) => {
                if base.replicas.is_some() {
                    self.check_replicas()?;
                }
                Arc::new(MemcachedStore::connect(&MemcachedConfig {
                    addr: memcached::parse_url(url)?,
                    prefix: base.prefix.clone(),
                    pool_size: base.pool_size,
                    connect_timeout: base.connect_timeout,
                    command_timeout: base.command_timeout,
                    poll: base.poll,
                    holder: base.holder.clone(),
                })?)
            }
            Servers::Single(url) if etcd::is_etcd(url) => {
                if base.replicas.is_some() {
                    return Err(Error::invalid(
                        "replica acknowledgement (WAIT) is a Redis feature: etcd commits every \
                         write to a majority of its members already; turn it off for an etcd:// \
                         server",
                    ));
                }
                let parsed = etcd::parse_url(url)?;
                if base.tls.is_some() && !parsed.tls {
                    return Err(Error::invalid(
                        "TLS certificates were given for an etcd:// URL: use etcds:// for TLS",
                    ));
                }
                Arc::new(EtcdStore::connect(&EtcdConfig {
                    members: parsed.members,
                    tls: parsed.tls.then(|| base.tls.clone().unwrap_or_default()),
                    credentials: parsed.credentials,
                    prefix: base.prefix.clone(),
                    pool_size: base.pool_size,
                    connect_timeout: base.connect_timeout,
                    command_timeout: base.command_timeout,
                    holder: base.holder.clone(),
                })?)
            }
            Servers::Single(url) if zookeeper::is_zk(url) => {
                if base.replicas.is_some() {
                    return Err(Error::invalid(
                        "replica acknowledgement (WAIT) is a Redis feature: ZooKeeper commits \
                         every write to a majority of its servers already; turn it off for a \
                         zk:// server",
                    ));
                }
                if base.tls.is_some() {
                    return Err(Error::invalid(
                        "TLS certificates were given for a zk:// URL: distlock speaks to \
                         ZooKeeper without TLS",
                    ));
                }
                let parsed = zookeeper::parse_url(url)?;
                Arc::new(ZkStore::connect(&ZkConfig {
                    servers: parsed.servers,
                    chroot: parsed.chroot,
                    prefix: base.prefix.clone(),
                    connect_timeout: base.connect_timeout,
                    command_timeout: base.command_timeout,
                    holder: base.holder.clone(),
                })?)
            }
            Servers::Single(url) => Arc::new(RedisStore::connect(&with_url(url))?),
            Servers::Redlock(urls) => {
                let cfgs: Vec<RedisConfig> = urls.iter().map(|u| with_url(u)).collect();
                Arc::new(RedlockStore::connect(&cfgs)?)
            }
            Servers::Cluster(urls) => Arc::new(ClusterStore::connect(urls, &with_url(&urls[0]))?),
            Servers::Sentinel(s) => Arc::new(RedisStore::connect(&RedisConfig {
                sentinel: Some(s.config()),
                ..with_url(&s.master_url)
            })?),
        })
    }
}

impl SentinelChoice {
    fn config(&self) -> SentinelConfig {
        SentinelConfig {
            sentinels: self.sentinels.clone(),
            master: self.master.clone(),
        }
    }
}

/// Whether `url` names a memcached server (`memcache://`).
fn is_memcached(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(memcached::SCHEME))
}

/// Refuses a URL whose scheme is not Redis's, saying where memcached,
/// etcd and ZooKeeper URLs go.
/// `what` says which URL, since the URL itself may hold a password.
fn check_scheme(url: &str, what: &str) -> Result<()> {
    let Some((scheme, _)) = url.split_once("://") else {
        // No scheme at all: the parser says what is wrong.
        return Ok(());
    };
    let scheme = scheme.to_ascii_lowercase();
    if REDIS_SCHEMES.contains(&scheme.as_str()) {
        return Ok(());
    }
    if scheme == memcached::SCHEME {
        return Err(Error::invalid(format!(
            "{what}: memcache:// names a single memcached server (give it alone, as the \
             server URL); Redlock, Cluster and Sentinel need redis:// or rediss://"
        )));
    }
    if scheme == etcd::SCHEME || scheme == etcd::TLS_SCHEME {
        return Err(Error::invalid(format!(
            "{what}: {scheme}:// names one etcd cluster (give it alone, as the server URL, \
             listing its members: {scheme}://host:port,host:port); Redlock, Cluster and \
             Sentinel need redis:// or rediss://"
        )));
    }
    if scheme == zookeeper::SCHEME {
        return Err(Error::invalid(format!(
            "{what}: zk:// names one ZooKeeper ensemble (give it alone, as the server URL, \
             listing its servers: zk://host:port,host:port[/chroot]); Redlock, Cluster and \
             Sentinel need redis:// or rediss://"
        )));
    }
    // Only the scheme is shown: it holds no secret, and a bad one might be
    // a typo of the whole URL.
    let shown: String = scheme.chars().take(32).collect();
    Err(Error::invalid(format!(
        "{what}: unsupported scheme {shown:?}; use redis:// or rediss://"
    )))
}

/// The URL of a single server, of any backend: what `url()` accepts.
pub(crate) fn check_server_url(url: &str) -> Result<()> {
    if is_memcached(url) {
        memcached::parse_url(url).map(drop)
    } else if etcd::is_etcd(url) {
        etcd::parse_url(url).map(drop)
    } else if zookeeper::is_zk(url) {
        zookeeper::parse_url(url).map(drop)
    } else {
        check_url(url, "the server URL")
    }
}

/// A URL for one Redis server: a known scheme, and parseable. `what` says
/// which URL in messages.
pub(crate) fn check_url(url: &str, what: &str) -> Result<()> {
    check_scheme(url, what)?;
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| Error::invalid(format!("cannot parse the Redis URL ({})", e.category())))
}

/// A sentinel address as it may appear in Debug output.
fn redact_addr(addr: &str) -> String {
    if addr.contains("://") {
        redact_url(addr)
    } else {
        // A bare `host:port`; any `user:pw@` is hidden too.
        redact_url(&format!("redis://{addr}"))
    }
}

impl fmt::Debug for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        match self {
            Servers::Single(url) => f.debug_tuple("Single").field(&redact_url(url)).finish(),
            Servers::Redlock(urls) => f.debug_tuple("Redlock").field(&redacted(urls)).finish(),
            Servers::Cluster(urls) => f.debug_tuple("Cluster").field(&redacted(urls)).finish(),
            Servers::Sentinel(s) => f
                .debug_struct("Sentinel")
                .field(
                    "sentinels",
                    &s.sentinels
                        .iter()
                        .map(|a| redact_addr(a))
                        .collect::<Vec<_>>(),
                )
                .field("master", &s.master)
                .field("master_url", &redact_url(&s.master_url))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(1));

    fn refusal(s: &Servers) -> String {
        s.check(false, T).unwrap_err().to_string()
    }

    #[test]
    fn setters_that_add_start_a_new_choice_of_their_kind() {
        let s = Servers::default().with_node("redis://a".into());
        assert_eq!(s, Servers::Redlock(vec!["redis://a".into()]));
        let s = s
            .with_seed("redis://b".into())
            .with_seed("redis://c".into());
        assert_eq!(
            s,
            Servers::Cluster(vec!["redis://b".into(), "redis://c".into()])
        );
        // Address first, then the master: one Sentinel choice, carrying the
        // single server's URL as the master's.
        let s = Servers::Single("redis://:pw@h/3".into())
            .with_sentinel("127.0.0.1:1".into())
            .with_master("m".into());
        let Servers::Sentinel(c) = &s else {
            panic!("{s:?}")
        };
        assert_eq!(
            (c.sentinels.len(), c.master.as_str(), c.master_url.as_str()),
            (1, "m", "redis://:pw@h/3")
        );
        assert!(!format!("{s:?}").contains("pw"), "{s:?}");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let one = Servers::Redlock(vec!["redis://127.0.0.1:1".into()]);
        assert_eq!(
            refusal(&one),
            "invalid argument: Redlock needs at least 3 independent nodes (5 is usual); 1 given"
        );
        for (url, needle) in [
            ("etcd://h:1,:2", "member #2 has no host"),
            ("etcds://u:secret@h:1/x", "no path or query"),
            ("zk://h:1,:2/chroot", "server #2 has no host"),
            ("http://u:secret@h:1", "unsupported scheme \"http\""),
        ] {
            let msg = refusal(&Servers::Single(url.into()));
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(!msg.contains("secret"), "{msg}");
        }
        assert_eq!(
            Servers::Single("memcache://h:1".into()).check(false, T),
            Ok(())
        );
        let msg = refusal(&Servers::Single("memcache://u:secret@h:1".into()));
        assert!(
            msg.contains("no authentication") && !msg.contains("secret"),
            "{msg}"
        );
        assert_eq!(
            Servers::Single("etcd://h:1,h:2".into()).check(false, T),
            Ok(())
        );
        let mixed = Servers::Redlock(vec!["etcd://h:1".into(); 3]);
        assert!(refusal(&mixed).contains("Redlock node #1: etcd:// names one etcd cluster"));
        let mixed = Servers::Redlock(vec!["memcache://h:1".into(); 3]);
        assert!(refusal(&mixed).contains("Redlock node #1: memcache:// names a single"));
        assert_eq!(
            Servers::Single("zk://h:1,h:2/chroot".into()).check(false, T),
            Ok(())
        );
        let three = |u: &str| Servers::Redlock(vec![u.into(), u.into(), "zk://h".into()]);
        assert!(refusal(&three("redis://h")).contains("Redlock node #3: zk:// names one"));
        let headless = Servers::default().with_sentinel("127.0.0.1:1".into());
        assert!(refusal(&headless).contains("without a master name"));
        let tls = Servers::Cluster(vec!["redis://h".into()]).check(true, T);
        assert!(tls.unwrap_err().to_string().contains("custom TLS"));
    }
}
