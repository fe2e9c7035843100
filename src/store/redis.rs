//! The Redis implementation of [`Store`]: connections and scripts (the key
//! layout is in [`keys`](super::keys)).

use super::errors::{is_failover_error, Secret};
use super::feed::{feed_on, publish_poke};
use super::keys::{fence_key, lock_key, value_key};
use super::pool::{Open, Pool};
use super::replicas::Acks;
pub(crate) use super::replicas::Replicas;
use super::route::Route;
use super::scripts::{
    lock_info, parse_acquire, parse_extend, parse_pass_on, reply_code_is, Scripts,
};
use super::sentinel::{SentinelConfig, Sentinels};
use super::{millis, Acquired, Extend, FeedHandler, PassOn, Store};
use crate::error::{Error, Result};
use crate::LockInfo;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};
use redis::{ConnectionLike, ErrorKind, RedisError, ServerErrorKind};
use std::time::Duration;

/// Everything needed to reach one Redis server.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    pub url: String,
    pub prefix: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Replica acknowledgement of lease writes (`WAIT`); `None`: off.
    pub replicas: Option<Replicas>,
    /// Find the server through Redis Sentinel; `url` then only gives the
    /// scheme, credentials and db used with the master.
    pub sentinel: Option<SentinelConfig>,
    /// Certificates for `rediss://` beyond the system's trust store.
    pub tls: Option<Tls>,
}

/// PEM certificates for TLS connections.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    /// A CA to trust instead of the system's trust store.
    pub root_ca: Option<Vec<u8>>,
    /// A client certificate and its key, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Reads the value a loader cached beside the lock key `key`.
pub(crate) fn read_value(
    c: &mut dyn ConnectionLike,
    key: &str,
) -> std::result::Result<Option<Vec<u8>>, RedisError> {
    redis::cmd("GET").arg(value_key(key)).query(c)
}

/// Caches `value` beside the lock key `key` for `ttl`.
pub(crate) fn write_value(
    c: &mut dyn ConnectionLike,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> std::result::Result<(), RedisError> {
    redis::cmd("SET")
        .arg(value_key(key))
        .arg(value)
        .arg("PX")
        .arg(millis(ttl))
        .query(c)
}

/// Opens the connections to one node: the one of the URL, or with Sentinel
/// the master of the moment.
pub(crate) struct Node {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// With Sentinel, every new connection goes to the master of the moment.
    sentinel: Option<Sentinels>,
}

impl Open for Node {
    type Conn = redis::Connection;

    /// A server restart closes every connection at once.
    const SHARED_FATE: bool = true;

    fn open(&self) -> RedisResult<redis::Connection> {
        let conn = match &self.sentinel {
            Some(s) => s.connect_master(
                self.client.get_connection_info(),
                self.connect_timeout,
                self.command_timeout,
            )?,
            None => self
                .client
                .get_connection_with_timeout(self.connect_timeout)?,
        };
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }
}

/// A Redis node holding locks.
pub(crate) struct RedisStore {
    /// Its place is `host:port/db`, or the sentinels and db.
    pool: Pool<Node>,
    prefix: String,
    scripts: Scripts,
    acks: Acks,
}

impl RedisStore {
    /// Parses the URL, checks that the server answers (and accepts the
    /// credentials) within the timeouts, and builds the pool.
    pub(crate) fn connect(cfg: &RedisConfig) -> Result<Self> {
        let store = Self::open(cfg)?;
        store.probe()?;
        Ok(store)
    }

    /// One direct connection and a PING: reports a wrong password or an
    /// unreachable server with its real kind, bounded by the timeouts.
    pub(crate) fn probe(&self) -> Result<()> {
        self.pool
            .opener()
            .open()
            .and_then(|mut probe| redis::cmd("PING").query::<()>(&mut probe))
            .map_err(|e| self.explain(&e))
    }

    /// A failed first contact, saying which server it was and, when the
    /// failure looks like a plain/TLS mismatch, what to check.
    fn explain(&self, e: &RedisError) -> Error {
        let tls = matches!(
            self.pool.opener().client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        );
        let timeout = e.is_timeout() && !is_failover_error(e);
        let dropped = e.is_connection_dropped() && !e.is_connection_refusal();
        let hint = match (tls, timeout, dropped) {
            (true, true, _) | (true, _, true) => {
                " (no TLS handshake: is this port serving TLS? rediss:// is TLS, use redis:// \
                 for a plain server)"
            }
            (false, false, true) => {
                " (the server closed the connection: if this port expects TLS, use rediss://)"
            }
            _ => "",
        };
        let what = |msg: String| {
            let msg = if timeout {
                format!(
                    "no reply in time (connect timeout {} ms, command timeout {} ms)",
                    millis(self.pool.opener().connect_timeout),
                    millis(self.pool.opener().command_timeout)
                )
            } else {
                msg
            };
            format!("{}: {msg}{hint}", self.pool.place())
        };
        match self.pool.secret().to_error(e) {
            Error::Connection(m) => Error::Connection(what(m)),
            Error::Auth(m) => Error::Auth(what(m)),
            Error::Redis(m) => Error::Redis(what(m)),
            other => other,
        }
    }

    /// Parses the URL and builds the pool without connecting yet.
    pub(crate) fn open(cfg: &RedisConfig) -> Result<Self> {
        crate::tls::install_crypto_provider();
        // Certificates only concern TLS URLs.
        let tls = cfg
            .tls
            .as_ref()
            .filter(|_| cfg.url.starts_with("rediss://"));
        let client = match tls {
            None => redis::Client::open(cfg.url.as_str()),
            Some(t) => redis::Client::build_with_tls(
                cfg.url.as_str(),
                redis::TlsCertificates {
                    client_tls: t.client.clone().map(|(client_cert, client_key)| {
                        redis::ClientTlsConfig {
                            client_cert,
                            client_key,
                        }
                    }),
                    root_cert: t.root_ca.clone(),
                },
            ),
        }
        .map_err(|e| Error::invalid(format!("cannot parse the Redis URL ({})", e.category())))?;
        let info = client.get_connection_info();
        let mut secret = Secret::default();
        secret.add(info.redis_settings().password());
        let (place, sentinel) = match &cfg.sentinel {
            Some(s) => {
                let sentinels = Sentinels::new(s)?;
                for p in sentinels.passwords() {
                    secret.add(Some(p));
                }
                let place = format!(
                    "{}, db {}",
                    sentinels.describe(),
                    info.redis_settings().db()
                );
                (place, Some(sentinels))
            }
            None => (
                format!("{}/{}", info.addr(), info.redis_settings().db()),
                None,
            ),
        };
        let node = Node {
            client,
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            sentinel,
        };
        Ok(RedisStore {
            pool: Pool::new(node, secret, place, cfg.pool_size, cfg.connect_timeout),
            prefix: cfg.prefix.clone(),
            scripts: Scripts::new(),
            acks: Acks::new(cfg.replicas, cfg.command_timeout),
        })
    }

    /// `<prefix>:<name>`: the key that holds the owner's token.
    fn lock_key(&self, name: &str) -> String {
        lock_key(&self.prefix, name)
    }
}

impl RedisStore {
    /// Raises the fencing counter of `name` to at least the end of the block
    /// starting at `fence`, if `token` still holds the lock (Redlock's second
    /// phase). False if the lock was not held with `token`.
    pub(crate) fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
        let key = self.lock_key(name);
        self.pool
            .with_conn(|c| self.scripts.run_raise_fence(c, &key, token, fence))
    }
}

impl Store for RedisStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let key = self.lock_key(name);
        let (reply, acked) = self.pool.with_conn(|c| {
            let reply = self.scripts.run_acquire(c, &key, token, ttl)?;
            let acked = self.acks.wait_if(reply_code_is(&reply, 1), c, Some(&key))?;
            Ok((reply, acked))
        })?;
        let got = parse_acquire(reply)?;
        if let Err(e) = self.acks.check(acked, "lock (it was given back)") {
            // Not durable enough: give it back rather than hold a lock a
            // failover could hand to someone else.
            let _ = self.release(name, token);
            return Err(e);
        }
        Ok(got)
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        let key = self.lock_key(name);
        self.pool
            .with_conn(|c| self.scripts.run_release(c, &key, token))
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let key = self.lock_key(name);
        let (reply, acked) = self.pool.with_conn(|c| {
            let reply = self.scripts.run_pass_on(c, &key, token, ttl, None)?;
            let acked = self.acks.wait_if(reply_code_is(&reply, 2), c, Some(&key))?;
            Ok((reply, acked))
        })?;
        // The caller releases the lock on an error.
        self.acks.check(acked, "kept lease")?;
        parse_pass_on(reply)
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for e in batch {
            pipe.add_command(
                self.scripts
                    .extend_cmd(&self.lock_key(e.name), e.token, e.ttl),
            );
        }
        let (replies, acked): (Vec<i64>, _) = self.pool.with_conn(|c| {
            let replies: Vec<i64> = match c.query_pipeline(&pipe) {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Extending is idempotent: load the script and send them all again.
                    self.scripts.load_extend(c)?;
                    c.query_pipeline(&pipe)
                }
                other => other,
            }?;
            let acked = self.acks.wait_if(replies.contains(&1), c, None)?;
            Ok((replies, acked))
        })?;
        // On an error the leases stay as they were acknowledged before: the
        // renewal thread tries again, and reports them lost if their
        // deadlines pass first.
        self.acks.check(acked, "renewal")?;
        parse_extend(replies, batch.len())
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        let secret = self.pool.secret();
        let mut conn = self.pool.opener().open().map_err(|e| secret.to_error(&e))?;
        feed_on(&mut conn, &self.prefix, control, handler, secret)
    }

    fn poke(&self, control: &str) -> Result<()> {
        self.pool.with_conn(|c| publish_poke(c, control))
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.pool.with_conn(|c| read_value(c, &self.lock_key(name)))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.pool
            .with_conn(|c| write_value(c, &self.lock_key(name), value, ttl))
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let key = self.lock_key(name);
        let (token, pttl, fence): (Option<String>, i64, Option<u64>) =
            self.pool.with_conn(|c| {
                c.query_pipeline(
                    redis::pipe()
                        .cmd("GET")
                        .arg(&key)
                        .cmd("PTTL")
                        .arg(&key)
                        .cmd("GET")
                        .arg(fence_key(&key)),
                )
            })?;
        Ok(lock_info(key, token, pttl, fence))
    }

    fn pool_state(&self) -> (u32, u32) {
        self.pool.state()
    }

    fn describe(&self) -> &str {
        self.pool.place()
    }
}

impl Route for redis::Connection {
    fn set_reply_timeout(&mut self, timeout: Duration) -> RedisResult<()> {
        self.set_read_timeout(Some(timeout))
    }

    /// One node: the `WAIT` goes where the write went.
    fn route_wait(&mut self, wait: &Cmd, _key: Option<&str>) -> RedisResult<i64> {
        wait.query(self)
    }

    /// One node: every waiter subscribes here, where the script counts them.
    fn waiters(&mut self, _key: &str) -> RedisResult<Option<i64>> {
        Ok(None)
    }

    fn query_pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        pipe.query(self)
    }
}
