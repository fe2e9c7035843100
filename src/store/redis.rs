//! One Redis server holding locks, reached directly or through Sentinel:
//! its configuration, how its connections are opened and first checked,
//! and how commands travel on one node (see [`Route`]). The lock
//! operations themselves are [`ScriptStore`]'s.

use super::errors::{is_failover_error, unparsable, Secret};
use super::millis;
use super::ops::{Backend, ScriptStore};
use super::pool::Open;
pub(crate) use super::replicas::Replicas;
use super::route::Route;
use super::sentinel::{SentinelConfig, Sentinels};
use crate::error::{Error, Result};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult};
use std::time::Duration;

/// Everything needed to reach one Redis server.
#[derive(Clone)]
pub(crate) struct RedisConfig {
    /// `redis://` or `rediss://`, with credentials and db.
    pub url: String,
    /// Starts every lock key (`<prefix>:<name>`).
    pub prefix: String,
    /// Most connections the pool opens.
    pub pool_size: u32,
    /// Bounds opening a connection, and waiting for one from the pool.
    pub connect_timeout: Duration,
    /// Bounds each command's reply.
    pub command_timeout: Duration,
    /// Replica acknowledgement of lease writes (`WAIT`); `None`: off.
    pub replicas: Option<Replicas>,
    /// Find the server through Redis Sentinel; `url` then only gives the
    /// scheme, credentials and db used with the master.
    pub sentinel: Option<SentinelConfig>,
    /// Certificates for `rediss://` beyond the system's trust store.
    pub tls: Option<Tls>,
    /// This client's holder description, written after the token
    /// ([`holder`](super::holder)).
    pub holder: String,
    /// How often a polling release feed looks (memcached; Redis notifies).
    pub poll: Duration,
}

/// PEM certificates for TLS connections.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    /// A CA to trust instead of the system's trust store.
    pub root_ca: Option<Vec<u8>>,
    /// A client certificate and its key, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Opens the connections to one node: the one of the URL, or with Sentinel
/// the master of the moment.
pub(crate) struct Node {
    /// The URL's client: its address, or with Sentinel only its scheme,
    /// credentials and db.
    client: redis::Client,
    /// Bounds opening a connection.
    connect_timeout: Duration,
    /// The read and write timeouts of every connection.
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

impl Backend for Node {
    fn feed_connection(&self) -> RedisResult<redis::Connection> {
        self.open()
    }
}

/// A Redis node holding locks; its place (in messages) is `host:port/db`,
/// or the sentinels and the db.
pub(crate) type RedisStore = ScriptStore<Node>;

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
        self.pool()
            .opener()
            .open()
            .and_then(|mut probe| redis::cmd("PING").query::<()>(&mut probe))
            .map_err(|e| self.explain(&e))
    }

    /// A failed first contact, saying which server it was and, when the
    /// failure looks like a plain/TLS mismatch, what to check.
    fn explain(&self, e: &RedisError) -> Error {
        let node = self.pool().opener();
        let tls = matches!(
            node.client.get_connection_info().addr(),
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
                    millis(node.connect_timeout),
                    millis(node.command_timeout)
                )
            } else {
                msg
            };
            format!("{}: {msg}{hint}", self.pool().place())
        };
        match self.pool().secret().to_error(e) {
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
        .map_err(|e| unparsable(format_args!("the Redis URL"), &e))?;
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
        Ok(ScriptStore::new(node, secret, place, cfg))
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

    fn scan_keys(
        &mut self,
        pattern: &str,
        limit: usize,
    ) -> RedisResult<Option<(Vec<String>, bool)>> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(200)
                .query(self)?;
            keys.extend(batch);
            if keys.len() >= limit {
                keys.truncate(limit);
                return Ok(Some((keys, true)));
            }
            if next == 0 {
                return Ok(Some((keys, false)));
            }
            cursor = next;
        }
    }
}
