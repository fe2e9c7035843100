//! The Redis implementation of [`Store`]: connections and scripts (the key
//! layout is in [`keys`](super::keys)).

use super::errors::{breaks_connection, is_failover_error, Secret};
use super::feed::{feed_on, publish_poke};
use super::keys::{fence_key, lock_key, value_key};
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// A pooled connection that remembers whether it can still be trusted.
///
/// After an I/O error or a timeout the reply to our command may still be in
/// flight; reusing the socket could hand that stale reply to the next
/// command. Such a connection is marked broken and r2d2 throws it away.
///
/// A failure also casts doubt on every connection opened before it: a
/// server restart closes them all at once, and trying them one by one
/// would spend each attempt (and its retry) on a dead socket. So every
/// connection remembers the manager's failure count when it was opened,
/// and one older than the latest failure is thrown away unused.
pub(crate) struct Conn {
    inner: redis::Connection,
    broken: bool,
    /// [`Manager::failures`] when this connection was opened.
    opened_after: u64,
}

/// Opens connections for the r2d2 pool.
pub(crate) struct Manager {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    secret: Secret,
    /// With Sentinel, every new connection goes to the master of the moment.
    sentinel: Option<Sentinels>,
    /// Connection failures so far (see [`Conn`]).
    failures: AtomicU64,
}

impl Manager {
    fn open(&self) -> std::result::Result<Conn, RedisError> {
        let opened_after = self.failures.load(Ordering::SeqCst);
        let inner = match &self.sentinel {
            Some(s) => s.connect_master(
                self.client.get_connection_info(),
                self.connect_timeout,
                self.command_timeout,
            )?,
            None => self
                .client
                .get_connection_with_timeout(self.connect_timeout)?,
        };
        inner.set_read_timeout(Some(self.command_timeout))?;
        inner.set_write_timeout(Some(self.command_timeout))?;
        Ok(Conn {
            inner,
            broken: false,
            opened_after,
        })
    }
}

/// The r2d2 error type: our [`Error`], so that pool failures keep their kind
/// and never carry the password.
#[derive(Debug)]
pub(crate) struct PoolError(pub(crate) Error);

impl std::fmt::Display for PoolError {
    /// Only the detail: r2d2 quotes it inside the pool's own message, which
    /// ends up inside one of our errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.detail())
    }
}

impl std::error::Error for PoolError {}

/// The pool's handle on the [`Manager`] it shares with the release feed.
pub(crate) struct SharedManager(Arc<Manager>);

impl r2d2::ManageConnection for SharedManager {
    type Connection = Conn;
    type Error = PoolError;

    fn connect(&self) -> std::result::Result<Conn, PoolError> {
        self.0
            .open()
            .map_err(|e| PoolError(self.0.secret.to_error(&e)))
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), PoolError> {
        redis::cmd("PING")
            .query::<()>(&mut conn.inner)
            .map_err(|e| PoolError(self.0.secret.to_error(&e)))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.inner.is_open()
    }
}

/// A Redis node holding locks.
pub(crate) struct RedisStore {
    pool: r2d2::Pool<SharedManager>,
    /// Opens the release feed's dedicated connection.
    manager: Arc<Manager>,
    prefix: String,
    scripts: Scripts,
    secret: Secret,
    /// `host:port/db`, for Debug output.
    place: String,
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
        self.manager
            .open()
            .and_then(|mut probe| redis::cmd("PING").query::<()>(&mut probe.inner))
            .map_err(|e| self.explain(&e))
    }

    /// A failed first contact, saying which server it was and, when the
    /// failure looks like a plain/TLS mismatch, what to check.
    fn explain(&self, e: &RedisError) -> Error {
        let tls = matches!(
            self.manager.client.get_connection_info().addr(),
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
                    millis(self.manager.connect_timeout),
                    millis(self.manager.command_timeout)
                )
            } else {
                msg
            };
            format!("{}: {msg}{hint}", self.place)
        };
        match self.secret.to_error(e) {
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
        let manager = Arc::new(Manager {
            client,
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            secret: secret.clone(),
            sentinel,
            failures: AtomicU64::new(0),
        });
        let threads = scheduled_thread_pool::ScheduledThreadPool::builder()
            .num_threads(1)
            .thread_name_pattern("distlock-pool")
            // Otherwise the thread lingers until the next reaper run (30 s).
            .on_drop_behavior(scheduled_thread_pool::OnPoolDropBehavior::DiscardPendingScheduled)
            .build();
        let pool = r2d2::Pool::builder()
            .max_size(cfg.pool_size)
            .min_idle(Some(0))
            .connection_timeout(cfg.connect_timeout)
            .test_on_check_out(false)
            .thread_pool(Arc::new(threads))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(SharedManager(manager.clone()));
        Ok(RedisStore {
            pool,
            manager,
            prefix: cfg.prefix.clone(),
            scripts: Scripts::new(),
            secret,
            place,
            acks: Acks::new(cfg.replicas, cfg.command_timeout),
        })
    }

    /// `<prefix>:<name>`: the key that holds the owner's token.
    fn lock_key(&self, name: &str) -> String {
        lock_key(&self.prefix, name)
    }

    /// Runs `f` on a pooled connection; an I/O failure retires the connection.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> std::result::Result<T, RedisError>,
    ) -> Result<T> {
        let failures = &self.manager.failures;
        // Each round throws one connection older than the latest failure
        // away; the pool holds at most max_size of them, and opens new ones.
        let mut rounds = self.pool.max_size();
        let mut conn = loop {
            let mut conn = self.pool.get().map_err(|e| {
                Error::Connection(self.secret.scrub(format!(
                    "{}: no connection available within the connect timeout ({} ms): {e}",
                    self.place,
                    millis(self.manager.connect_timeout)
                )))
            })?;
            if conn.opened_after >= failures.load(Ordering::SeqCst) || rounds == 0 {
                break conn;
            }
            conn.broken = true;
            rounds -= 1;
        };
        f(&mut conn.inner).map_err(|e| {
            if breaks_connection(&e) {
                conn.broken = true;
                failures.fetch_max(conn.opened_after + 1, Ordering::SeqCst);
            }
            self.secret.to_error(&e)
        })
    }
}

impl RedisStore {
    /// Raises the fencing counter of `name` to at least the end of the block
    /// starting at `fence`, if `token` still holds the lock (Redlock's second
    /// phase). False if the lock was not held with `token`.
    pub(crate) fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
        let key = self.lock_key(name);
        self.with_conn(|c| self.scripts.run_raise_fence(c, &key, token, fence))
    }
}

impl Store for RedisStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let key = self.lock_key(name);
        let (reply, acked) = self.with_conn(|c| {
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
        self.with_conn(|c| self.scripts.run_release(c, &key, token))
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let key = self.lock_key(name);
        let (reply, acked) = self.with_conn(|c| {
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
        let (replies, acked): (Vec<i64>, _) = self.with_conn(|c| {
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
        let mut conn = self.manager.open().map_err(|e| self.secret.to_error(&e))?;
        feed_on(
            &mut conn.inner,
            &self.prefix,
            control,
            handler,
            &self.secret,
        )
    }

    fn poke(&self, control: &str) -> Result<()> {
        self.with_conn(|c| publish_poke(c, control))
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.with_conn(|c| read_value(c, &self.lock_key(name)))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.with_conn(|c| write_value(c, &self.lock_key(name), value, ttl))
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let key = self.lock_key(name);
        let (token, pttl, fence): (Option<String>, i64, Option<u64>) = self.with_conn(|c| {
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
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    fn describe(&self) -> &str {
        &self.place
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
