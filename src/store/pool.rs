//! The connection pool: one r2d2 pool for any kind of Redis connection (a
//! single node's, or a cluster's), which retires the connections a failure
//! made untrustworthy.
//!
//! After an I/O error or a timeout the reply to our command may still be in
//! flight; reusing the socket could hand that stale reply to the next
//! command. Such a connection is marked broken (see
//! [`breaks_connection`]) and r2d2 throws it away.
//!
//! Where the connections share one server, a failure also casts doubt on
//! every connection opened before it: a server restart closes them all at
//! once, and trying them one by one would spend each attempt (and its
//! retry) on a dead socket. So every connection remembers the pool's
//! failure count when it was opened, and one older than the latest failure
//! is thrown away unused.

use super::errors::{breaks_connection, Secret};
use super::millis;
use crate::error::{Error, Result};
use redis::{ConnectionLike, RedisResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens the connections of one store.
pub(crate) trait Open: Send + Sync + 'static {
    /// The connection it opens.
    type Conn: ConnectionLike + Send + 'static;

    /// Whether one connection's failure casts doubt on all the connections
    /// opened before it (they lead to the same server, which may have
    /// closed them all). False where a connection repairs its own sockets.
    const SHARED_FATE: bool;

    /// A new connection, with the store's timeouts set.
    fn open(&self) -> RedisResult<Self::Conn>;
}

/// A pooled connection that remembers whether it can still be trusted.
pub(crate) struct Pooled<C> {
    /// The connection itself.
    inner: C,
    /// Set after a failure: r2d2 drops the connection when it comes back.
    broken: bool,
    /// The pool's failure count when this connection was opened.
    opened_after: u64,
}

/// What the pool and its owner share: the opener, the secrets to scrub out
/// of its errors and the failure count.
struct Shared<O> {
    /// Opens the connections.
    opener: O,
    /// Scrubs the passwords out of connection errors.
    secret: Secret,
    /// Connection failures so far (see the module docs).
    failures: AtomicU64,
}

/// The r2d2 error type: our [`Error`], so that pool failures keep their kind
/// and never carry the password.
#[derive(Debug)]
pub(crate) struct PoolError(Error);

impl std::fmt::Display for PoolError {
    /// Only the detail: r2d2 quotes it inside the pool's own message, which
    /// ends up inside one of our errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.detail())
    }
}

impl std::error::Error for PoolError {}

/// The pool's handle on what it shares with the store.
struct Manager<O>(Arc<Shared<O>>);

impl<O: Open> r2d2::ManageConnection for Manager<O> {
    type Connection = Pooled<O::Conn>;
    type Error = PoolError;

    fn connect(&self) -> std::result::Result<Self::Connection, PoolError> {
        let opened_after = self.0.failures.load(Ordering::SeqCst);
        self.0
            .opener
            .open()
            .map(|inner| Pooled {
                inner,
                broken: false,
                opened_after,
            })
            .map_err(|e| PoolError(self.0.secret.to_error(&e)))
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> std::result::Result<(), PoolError> {
        redis::cmd("PING")
            .query::<()>(&mut conn.inner)
            .map_err(|e| PoolError(self.0.secret.to_error(&e)))
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.broken || !conn.inner.is_open()
    }
}

/// The r2d2 settings every store's pool uses (this one and memcached's): at
/// most `size` connections, none kept idle, `connect_timeout` to wait for
/// one, no check on checkout (a broken connection is marked by its user),
/// errors reported to the caller rather than logged, and one maintenance
/// thread that ends with the pool.
pub(crate) fn r2d2_builder<M: r2d2::ManageConnection>(
    size: u32,
    connect_timeout: Duration,
) -> r2d2::Builder<M> {
    let threads = scheduled_thread_pool::ScheduledThreadPool::builder()
        .num_threads(1)
        .thread_name_pattern("distlock-pool")
        // Otherwise the thread lingers until the next reaper run (30 s).
        .on_drop_behavior(scheduled_thread_pool::OnPoolDropBehavior::DiscardPendingScheduled)
        .build();
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .thread_pool(Arc::new(threads))
        .error_handler(Box::new(r2d2::NopErrorHandler))
}

/// A store's pool of connections.
pub(crate) struct Pool<O: Open> {
    /// The r2d2 pool.
    pool: r2d2::Pool<Manager<O>>,
    /// The opener, the secrets and the failure count the pool uses.
    shared: Arc<Shared<O>>,
    /// Where the connections lead, for messages (never credentials).
    place: String,
    /// How long a caller waits for a connection.
    connect_timeout: Duration,
}

impl<O: Open> Pool<O> {
    /// A pool of at most `size` connections opened by `opener`, none open
    /// yet; `place` names the server in messages.
    pub(crate) fn new(
        opener: O,
        secret: Secret,
        place: String,
        size: u32,
        connect_timeout: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            opener,
            secret,
            failures: AtomicU64::new(0),
        });
        let pool = r2d2_builder(size, connect_timeout).build_unchecked(Manager(shared.clone()));
        Pool {
            pool,
            shared,
            place,
            connect_timeout,
        }
    }

    /// What opens the connections (also those kept out of the pool).
    pub(crate) fn opener(&self) -> &O {
        &self.shared.opener
    }

    /// The passwords to scrub out of messages.
    pub(crate) fn secret(&self) -> &Secret {
        &self.shared.secret
    }

    /// Where the connections lead, for messages and Debug output.
    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// Connections open, and how many of them are idle.
    pub(crate) fn state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// Runs `f` on a pooled connection; a failure that
    /// [breaks](breaks_connection) the connection retires it.
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&mut O::Conn) -> RedisResult<T>) -> Result<T> {
        let failures = &self.shared.failures;
        // Each round throws one connection older than the latest failure
        // away; the pool holds at most max_size of them, and opens new ones.
        let mut rounds = self.pool.max_size();
        let mut conn = loop {
            let mut conn = self.pool.get().map_err(|e| {
                Error::Connection(self.secret().scrub(format!(
                    "{}: no connection available within the connect timeout ({} ms): {e}",
                    self.place,
                    millis(self.connect_timeout)
                )))
            })?;
            let suspect = O::SHARED_FATE && conn.opened_after < failures.load(Ordering::SeqCst);
            if !suspect || rounds == 0 {
                break conn;
            }
            conn.broken = true;
            rounds -= 1;
        };
        f(&mut conn.inner).map_err(|e| self.shared.fail(&mut conn, &e))
    }

    /// An idle connection, lent for commands sent now and read later (see
    /// [`Lent`]), whose read timeout is `usual`; `None` unless one is idle
    /// and trusted right now. It never waits and never opens a connection:
    /// a caller that gets `None` takes the ordinary way,
    /// [`with_conn`](Self::with_conn).
    pub(crate) fn try_lend(&self, usual: Duration) -> Option<Lent<O>>
    where
        O: Open<Conn = redis::Connection>,
    {
        let mut conn = self.pool.try_get()?;
        if O::SHARED_FATE && conn.opened_after < self.shared.failures.load(Ordering::SeqCst) {
            conn.broken = true;
            return None;
        }
        Some(Lent {
            conn,
            shared: self.shared.clone(),
            pending: 0,
            usual,
            current: usual,
            late: false,
        })
    }
}

impl<O: Open> Shared<O> {
    /// The error for `e` on `conn`; a failure that
    /// [breaks](breaks_connection) the connection retires it, and casts
    /// doubt on every connection opened before it.
    fn fail(&self, conn: &mut Pooled<O::Conn>, e: &redis::RedisError) -> Error {
        if breaks_connection(e) {
            conn.broken = true;
            self.failures
                .fetch_max(conn.opened_after + 1, Ordering::SeqCst);
        }
        self.secret.to_error(e)
    }
}

/// A pooled connection on which commands are sent now and their replies
/// read later, so that one thread can have a command in flight on several
/// servers at once (Redlock's fan-out). It goes back to the pool when
/// dropped, with its usual read timeout, unless replies are still unread
/// (the next user would get them): then it is retired instead.
pub(crate) struct Lent<O: Open<Conn = redis::Connection>> {
    /// The connection, back to the pool on drop.
    conn: r2d2::PooledConnection<Manager<O>>,
    /// The failure count and the secrets.
    shared: Arc<Shared<O>>,
    /// Replies sent for and not read yet.
    pending: usize,
    /// The connection's usual read timeout, set back on drop.
    usual: Duration,
    /// Its read timeout now.
    current: Duration,
    /// Whether a read ran out of time.
    late: bool,
}

impl<O: Open<Conn = redis::Connection>> Drop for Lent<O> {
    fn drop(&mut self) {
        let restored = self.pending == 0
            && (self.current == self.usual
                || self.conn.inner.set_read_timeout(Some(self.usual)).is_ok());
        if !restored {
            self.conn.broken = true;
        }
    }
}

impl<O: Open<Conn = redis::Connection>> Lent<O> {
    /// Writes a packed command, or a pipeline of `replies` commands,
    /// without reading the replies.
    pub(crate) fn send(&mut self, packed: &[u8], replies: usize) -> Result<()> {
        let conn = &mut *self.conn;
        self.pending += replies;
        conn.inner
            .send_packed_command(packed)
            .map_err(|e| self.shared.fail(conn, &e))
    }

    /// Reads and drops the replies not read yet, by `by` (as
    /// [`recv`](Self::recv)), so that the connection can go back to the
    /// pool.
    pub(crate) fn drain(mut self, by: Instant) {
        while self.pending > 0 {
            let before = self.pending;
            let _ = self.recv(by);
            if self.pending == before {
                break;
            }
        }
    }

    /// Whether a read ran out of time (the connection is then retired).
    pub(crate) fn late(&self) -> bool {
        self.late
    }

    /// Reads the next reply, a server error as an error, waiting until
    /// `by` at the latest (and no longer than the usual timeout).
    pub(crate) fn recv(&mut self, by: Instant) -> Result<redis::Value> {
        let conn = &mut *self.conn;
        let left = by.saturating_duration_since(Instant::now());
        if left < self.current {
            // Only ever shortened here: a slightly later `by` than the last
            // one makes no difference worth a system call.
            let shortened = if left.is_zero() {
                Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())
            } else {
                conn.inner.set_read_timeout(Some(left))
            };
            if let Err(e) = shortened {
                self.late = e.is_timeout();
                return Err(self.shared.fail(conn, &e));
            }
            self.current = left;
        }
        let reply = conn.inner.recv_response();
        match &reply {
            Ok(_) => self.pending -= 1,
            Err(e) => self.late = e.is_timeout(),
        }
        reply
            .and_then(|v| v.extract_error())
            .map_err(|e| self.shared.fail(conn, &e))
    }
}
