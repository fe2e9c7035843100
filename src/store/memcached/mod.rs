//! A memcached server (1.6 or later) holding locks, through the meta
//! protocol: [`MemcachedStore`] implements [`Store`] with items that
//! memcached adds, compares and deletes atomically.
//!
//! - [`proto`]: the requests, the reply parser and one connection;
//! - [`keys`]: the item keys of a lock.
//!
//! How each operation works (the README's "memcached" section says what
//! it guarantees):
//! - acquire: `ms ME` (add) of the lock item with the token; on a win the
//!   fencing counter is raised by a block with `ma`, and the fence written
//!   beside the token with a compare-and-set (`<token> <fence>`, then a
//!   newline and the holder's description). A retry that finds its own
//!   token wins with the fence stored there (or, if the first try never
//!   stored one, reserves one now);
//! - release, extend and pass on: `mg` for the token and the CAS, then
//!   `md C<cas>` or `ms C<cas>`: an item that changed in between (another
//!   holder) is never touched. Renewal skips the `mg` for the items this
//!   client wrote last on the same run of the server (it keeps their CAS):
//!   one pipelined `ms C<cas>` per round for every held lock. A CAS is
//!   only ever sent to the run of the server that gave it: memcached's
//!   CAS counter restarts with the server, so a CAS kept from before a
//!   restart could match another holder's item on the new server. Each
//!   connection learns the run (pid and start time, from `stats`) when it
//!   opens;
//! - TTLs are whole seconds: a lease of `ttl` is sent as `ceil(ttl) + 1`
//!   seconds, since an item set for `T2` lived 1.01 to 1.96 s; the guard
//!   keeps its own deadline from the requested TTL;
//! - the release feed polls, with one pipelined `mg` per round for every
//!   name someone waits for, and writes waiter markers that pass on reads.

mod keys;
mod proto;

use self::keys::Keys;
use self::proto::{McError, McResult, Reply, Req};
use super::holder::{lock_value, split_value, Holder};
use super::pool::r2d2_builder;
use super::{Acquired, Extend, FeedHandler, LockInfo, PassOn, Store, FENCE_BLOCK};
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The scheme of memcached URLs.
pub(crate) const SCHEME: &str = "memcache";
/// memcached's port when the URL gives none.
const DEFAULT_PORT: u16 = 11211;
/// TTLs from 30 days on are read by memcached as absolute Unix times.
const MAX_EXPTIME: u64 = 30 * 24 * 3600;
/// How long a waiter marker lives, and how often the feed rewrites it.
const MARKER_SECS: u32 = 3;
/// How often the feed rewrites its waiter markers.
const MARKER_EVERY: Duration = Duration::from_secs(1);
/// Attempts an acquire makes when the item comes and goes under it.
const ACQUIRE_ROUNDS: usize = 4;

/// Everything needed to reach one memcached server.
#[derive(Clone, Debug)]
pub(crate) struct MemcachedConfig {
    /// `host:port`.
    pub addr: String,
    /// Starts every lock key (`<prefix>:<name>`).
    pub prefix: String,
    /// Most connections the pool opens.
    pub pool_size: u32,
    /// Bounds opening a connection, and waiting for one from the pool.
    pub connect_timeout: Duration,
    /// Bounds each command's reply.
    pub command_timeout: Duration,
    /// How often the release feed polls.
    pub poll: Duration,
    /// This client's holder description, written after the token.
    pub holder: String,
}

/// The `host:port` of a `memcache://host[:port][/]` URL; refuses
/// credentials (memcached's text protocol has none), paths and queries,
/// without echoing the URL.
pub(crate) fn parse_url(url: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("cannot parse the memcached URL: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(bad("the scheme is not memcache://"));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(bad(
            "memcached's meta protocol has no authentication: remove the user:password@ part",
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(bad(
            "a memcached URL has no path or query: memcache://host:port",
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 address without a port: `[::1]`.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        None => DEFAULT_PORT,
    };
    Ok(format!("{host}:{port}"))
}

/// The TTL memcached is sent for a lease of `ttl`: whole seconds, rounded
/// up, plus one (an item set for `T<n>` may live only `n - 1` seconds and
/// a bit). Refuses what memcached would read as an absolute time.
pub(crate) fn exptime(ttl: Duration, extra: u64) -> Result<u32> {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0) + extra;
    if secs >= MAX_EXPTIME {
        return Err(Error::invalid(format!(
            "memcached cannot keep an item for {} s: TTLs from 30 days on are read as \
             absolute times",
            secs
        )));
    }
    Ok(u32::try_from(secs.max(1)).unwrap_or(u32::MAX))
}

/// The token and fence a lock item holds: `<token>[ <fence>]`, then
/// (from clients that record it) a newline and the holder's description.
fn holder(data: &[u8]) -> (&[u8], Option<u64>) {
    let head = match data.iter().position(|b| *b == b'\n') {
        Some(i) => &data[..i],
        None => data,
    };
    match head.iter().position(|b| *b == b' ') {
        Some(i) => (
            &head[..i],
            std::str::from_utf8(&head[i + 1..])
                .ok()
                .and_then(|s| s.parse().ok()),
        ),
        None => (head, None),
    }
}

/// The description after the first newline of a lock item, if readable.
fn holder_of(data: &[u8]) -> Option<Holder> {
    split_value(&String::from_utf8_lossy(data)).1
}

/// A lock item's data: `<token>[ <fence>]`, a newline, `holder`.
fn item(token: &str, fence: Option<u64>, holder: &str) -> String {
    match fence {
        Some(fence) => lock_value(&format!("{token} {fence}"), holder),
        None => lock_value(token, holder),
    }
}

/// A reply the request cannot have had.
fn unexpected(what: &str, r: &Reply) -> McError {
    McError::Protocol(format!("to {what}: {r:?}"))
}

/// A pooled connection and whether it can still be trusted.
pub(crate) struct Pooled {
    /// The connection.
    conn: proto::Conn,
    /// Set after a failure: r2d2 drops it when it comes back.
    broken: bool,
    /// The failure count when it was opened (see `store::pool`).
    opened_after: u64,
}

/// Opens connections; shared by the pool and the store.
struct Opener {
    /// `host:port`.
    addr: String,
    /// Bounds connecting.
    connect_timeout: Duration,
    /// Bounds each reply.
    command_timeout: Duration,
    /// Connection failures so far: a restart closes every connection, so
    /// a connection opened before the latest failure is thrown away unused.
    failures: AtomicU64,
}

impl Opener {
    /// A connection that knows which run of the server it talks to.
    fn open(&self) -> McResult<proto::Conn> {
        let mut c = proto::connect(&self.addr, self.connect_timeout, self.command_timeout)?;
        c.identify()?;
        Ok(c)
    }
}

/// A lock item this client wrote last, so that renewal can rewrite it with
/// one compare-and-set instead of a read and a compare-and-set.
struct Kept {
    /// The owner's token.
    token: String,
    /// The item's data as written.
    data: Vec<u8>,
    /// The CAS memcached gave the write.
    cas: u64,
    /// The run of the server that gave it ([`proto::Conn::server`]): a CAS
    /// is only ever sent back to the same run.
    server: u64,
}

/// The r2d2 error: a message.
#[derive(Debug)]
pub(crate) struct PoolError(String);

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PoolError {}

/// The pool's handle on the opener.
struct Manager(Arc<Opener>);

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = PoolError;

    fn connect(&self) -> std::result::Result<Pooled, PoolError> {
        let opened_after = self.0.failures.load(Ordering::SeqCst);
        self.0
            .open()
            .map(|conn| Pooled {
                conn,
                broken: false,
                opened_after,
            })
            .map_err(|e| PoolError(e.to_string()))
    }

    fn is_valid(&self, c: &mut Pooled) -> std::result::Result<(), PoolError> {
        match c.conn.one(Req::noop()) {
            Ok(Reply::Noop) => Ok(()),
            Ok(r) => Err(PoolError(unexpected("mn", &r).to_string())),
            Err(e) => Err(PoolError(e.to_string())),
        }
    }

    fn has_broken(&self, c: &mut Pooled) -> bool {
        c.broken
    }
}

/// The server's clock as last read, to seed fencing counters.
struct ServerClock {
    /// The server's Unix time in seconds when read.
    secs: u64,
    /// When it was read, here.
    at: Instant,
}

/// A memcached server holding locks.
pub(crate) struct MemcachedStore {
    /// The connections.
    pool: r2d2::Pool<Manager>,
    /// What the pool opens connections with.
    opener: Arc<Opener>,
    /// Starts every lock key.
    prefix: String,
    /// `memcache://host:port`, for messages and Debug output.
    place: String,
    /// The server's clock at connect.
    clock: ServerClock,
    /// How often the feed polls.
    poll: Duration,
    /// Pokes for the feed: a count, and the feed's wait.
    poked: (Mutex<u64>, Condvar),
    /// The control name of the feed running now: its own waiter markers
    /// do not count as other clients waiting.
    feed_control: Mutex<Option<String>>,
    /// This client's holder description, written after token and fence.
    holder: String,
    /// The lock items last written by this client, by key.
    kept: Mutex<HashMap<String, Kept>>,
}

impl MemcachedStore {
    /// Connects, checks the server (version, CAS on, evictions off) and
    /// reads its clock, within the timeouts.
    pub(crate) fn connect(cfg: &MemcachedConfig) -> Result<Self> {
        let place = format!("{SCHEME}://{}", cfg.addr);
        let opener = Arc::new(Opener {
            addr: cfg.addr.clone(),
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            failures: AtomicU64::new(0),
        });
        let clock = probe(&opener).map_err(|e| match e {
            Probe::Refused(m) => Error::invalid(format!("{place}: {m}")),
            Probe::Failed(e) => to_error(&place, &e, cfg),
        })?;
        let pool = r2d2_builder(cfg.pool_size, cfg.connect_timeout)
            .build_unchecked(Manager(opener.clone()));
        Ok(MemcachedStore {
            pool,
            opener,
            prefix: cfg.prefix.clone(),
            holder: cfg.holder.clone(),
            place,
            clock,
            poll: cfg.poll,
            poked: (Mutex::new(0), Condvar::new()),
            feed_control: Mutex::new(None),
            kept: Mutex::new(HashMap::new()),
        })
    }

    fn keys(&self, name: &str) -> Keys {
        Keys::new(&self.prefix, name)
    }

    /// Notes that this client wrote `data` for `token` at `key`, with the
    /// new CAS `cas` (if the reply carried it), on `c`'s server.
    fn remember(&self, c: &proto::Conn, key: &str, token: &str, data: &[u8], cas: Option<u64>) {
        let mut kept = self.kept.lock();
        match (cas, c.server) {
            (Some(cas), Some(server)) => {
                kept.insert(
                    key.to_string(),
                    Kept {
                        token: token.to_string(),
                        data: data.to_vec(),
                        cas,
                        server,
                    },
                );
            }
            _ => {
                kept.remove(key);
            }
        }
    }

    /// Forgets what this client wrote at `key`.
    fn forget(&self, key: &str) {
        self.kept.lock().remove(key);
    }

    /// An error of ours for `e`, naming the server.
    fn error(&self, e: &McError) -> Error {
        match e {
            McError::Server(m) => Error::Redis(format!("{}: {m}", self.place)),
            _ => Error::Connection(format!("{}: {e}", self.place)),
        }
    }

    /// Runs `f` on a pooled connection; a failure retires it (and every
    /// connection opened before it).
    fn with_conn<T>(&self, f: impl FnOnce(&mut proto::Conn) -> McResult<T>) -> Result<T> {
        let failures = &self.opener.failures;
        let mut rounds = self.pool.max_size();
        let mut conn = loop {
            let mut conn = self.pool.get().map_err(|e| {
                Error::Connection(format!(
                    "{}: no connection available within the connect timeout ({} ms): {e}",
                    self.place,
                    self.opener.connect_timeout.as_millis()
                ))
            })?;
            if conn.opened_after >= failures.load(Ordering::SeqCst) || rounds == 0 {
                break conn;
            }
            conn.broken = true;
            rounds -= 1;
        };
        f(&mut conn.conn).map_err(|e| {
            if e.breaks_connection() {
                conn.broken = true;
                failures.fetch_max(conn.opened_after + 1, Ordering::SeqCst);
            }
            self.error(&e)
        })
    }

    /// The value a fencing counter starts from when it is missing (new, or
    /// lost with a restart): the last fence of a block starting at the
    /// current time in microseconds times [`FENCE_BLOCK`]. The time is this
    /// machine's, but never earlier than the server's clock read at
    /// connect (plus the time since).
    fn fence_seed(&self) -> u64 {
        let here = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let server = self
            .clock
            .secs
            .saturating_mul(1_000_000)
            .saturating_add(u64::try_from(self.clock.at.elapsed().as_micros()).unwrap_or(0));
        here.max(server)
            .saturating_mul(FENCE_BLOCK)
            .saturating_add(FENCE_BLOCK - 1)
    }

    /// Reserves the next block of fences of `keys`: its first fence.
    fn next_fence(&self, c: &mut proto::Conn, keys: &Keys) -> McResult<u64> {
        match c.one(Req::incr(&keys.fence, self.fence_seed(), FENCE_BLOCK))? {
            Reply::Value { data, .. } => std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|last| last - (FENCE_BLOCK - 1).min(last))
                .ok_or_else(|| McError::Protocol("the fencing counter is not a number".into())),
            r => Err(unexpected("ma", &r)),
        }
    }

    /// With the lock item's CAS `cas` in hand: reserves a block of fences
    /// and writes `<token> <fence>` with a fresh lease. `None` if the item
    /// changed meanwhile (it is no longer ours).
    fn take_fence(
        &self,
        c: &mut proto::Conn,
        keys: &Keys,
        token: &str,
        cas: u64,
        secs: u32,
    ) -> McResult<Option<u64>> {
        let fence = self.next_fence(c, keys)?;
        let value = item(token, Some(fence), &self.holder);
        match c.one(Req::cas_set(&keys.lock, value.as_bytes(), cas, secs))? {
            Reply::Done { cas } => {
                self.remember(c, &keys.lock, token, value.as_bytes(), cas);
                Ok(Some(fence))
            }
            Reply::Exists | Reply::NotFound => Ok(None),
            r => Err(unexpected("ms", &r)),
        }
    }

    /// The lock item of `keys` if `token` holds it: its CAS and data.
    fn owned(c: &mut proto::Conn, keys: &Keys, token: &str) -> McResult<Option<(u64, Vec<u8>)>> {
        match c.one(Req::get(&keys.lock))? {
            Reply::Value {
                data,
                cas: Some(cas),
                ..
            } if holder(&data).0 == token.as_bytes() => Ok(Some((cas, data))),
            Reply::Value { .. } | Reply::Miss => Ok(None),
            r => Err(unexpected("mg", &r)),
        }
    }
}

/// Why a first contact failed.
enum Probe {
    /// The server is unfit for locks: why.
    Refused(String),
    /// It could not be reached or answered badly.
    Failed(McError),
}

impl From<McError> for Probe {
    fn from(e: McError) -> Self {
        Probe::Failed(e)
    }
}

/// One connection: the version (1.6 or later: the meta protocol), the
/// settings (CAS on, evictions off) and the server's clock.
fn probe(opener: &Opener) -> std::result::Result<ServerClock, Probe> {
    let mut c = opener.open()?;
    let version = c.version()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (1, 6) {
        return Err(Probe::Refused(format!(
            "memcached {version} has no meta protocol: distlock needs 1.6 or later"
        )));
    }
    let settings = c.stats("settings")?;
    let setting = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    if setting("evictions") == Some("on") {
        return Err(Probe::Refused(
            "the server evicts items when its memory is full (evictions on), which would \
             delete held locks: start memcached with -M (and enough -m memory)"
                .into(),
        ));
    }
    if setting("cas_enabled") == Some("no") {
        return Err(Probe::Refused(
            "the server runs without CAS (-C), which the lock needs to compare before it \
             changes an item: start memcached without -C"
                .into(),
        ));
    }
    let stats = c.stats("")?;
    let secs = stats
        .iter()
        .find(|(n, _)| n == "time")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| McError::Protocol("stats without a time".into()))?;
    Ok(ServerClock {
        secs,
        at: Instant::now(),
    })
}

/// A failed first contact as our error, with the timeouts when it timed out.
fn to_error(place: &str, e: &McError, cfg: &MemcachedConfig) -> Error {
    match e {
        McError::Server(m) => Error::Redis(format!("{place}: {m}")),
        _ if e.is_timeout() => Error::Connection(format!(
            "{place}: no reply in time (connect timeout {} ms, command timeout {} ms)",
            cfg.connect_timeout.as_millis(),
            cfg.command_timeout.as_millis()
        )),
        _ => Error::Connection(format!("{place}: {e}")),
    }
}

impl Store for MemcachedStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let keys = self.keys(name);
        let secs = exptime(ttl, 1)?;
        self.with_conn(|c| {
            for _ in 0..ACQUIRE_ROUNDS {
                let value = item(token, None, &self.holder);
                match c.one(Req::add(&keys.lock, value.as_bytes(), secs))? {
                    Reply::Done { cas: Some(cas) } => {
                        if let Some(fence) = self.take_fence(c, &keys, token, cas, secs)? {
                            return Ok(Acquired::Yes { fence });
                        }
                        // Deleted (or expired) at once: the lock is not ours.
                        return Ok(Acquired::No { remaining: None });
                    }
                    Reply::NotStored => {}
                    r => return Err(unexpected("ms", &r)),
                }
                match c.one(Req::get(&keys.lock))? {
                    Reply::Value {
                        data,
                        cas: Some(cas),
                        ttl: left,
                    } => {
                        let (holder, fence) = holder(&data);
                        if holder != token.as_bytes() {
                            let remaining = left
                                .and_then(|s| u64::try_from(s).ok())
                                .map(Duration::from_secs);
                            return Ok(Acquired::No { remaining });
                        }
                        // Ours already (a retry after a lost reply): restart
                        // the lease, keeping the fence if it was stored.
                        let got = match fence {
                            Some(fence) => {
                                let value = item(token, Some(fence), &self.holder);
                                match c.one(Req::cas_set(
                                    &keys.lock,
                                    value.as_bytes(),
                                    cas,
                                    secs,
                                ))? {
                                    Reply::Done { cas } => {
                                        let data = value.as_bytes();
                                        self.remember(c, &keys.lock, token, data, cas);
                                        Some(fence)
                                    }
                                    Reply::Exists | Reply::NotFound => None,
                                    r => return Err(unexpected("ms", &r)),
                                }
                            }
                            None => self.take_fence(c, &keys, token, cas, secs)?,
                        };
                        return Ok(match got {
                            Some(fence) => Acquired::Yes { fence },
                            None => Acquired::No { remaining: None },
                        });
                    }
                    // Gone between the two requests: try again.
                    Reply::Miss => {}
                    r => return Err(unexpected("mg", &r)),
                }
            }
            Ok(Acquired::No { remaining: None })
        })
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        let keys = self.keys(name);
        self.forget(&keys.lock);
        self.with_conn(|c| {
            let Some((cas, _)) = Self::owned(c, &keys, token)? else {
                return Ok(false);
            };
            match c.one(Req::cas_delete(&keys.lock, cas))? {
                Reply::Done { .. } => Ok(true),
                Reply::Exists | Reply::NotFound => Ok(false),
                r => Err(unexpected("md", &r)),
            }
        })
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let keys = self.keys(name);
        let secs = exptime(ttl, 1)?;
        let own = self.feed_control.lock().clone();
        self.with_conn(|c| {
            let mut replies = c.exec(&[Req::get(&keys.lock), Req::get(&keys.wait)])?;
            let marker = replies.pop();
            let cas = match replies.pop() {
                Some(Reply::Value {
                    data,
                    cas: Some(cas),
                    ..
                }) if holder(&data).0 == token.as_bytes() => cas,
                Some(Reply::Value { .. } | Reply::Miss) => return Ok(PassOn::NotOwner),
                r => return Err(McError::Protocol(format!("to mg: {r:?}"))),
            };
            let waiting = match marker {
                Some(Reply::Value { data, .. }) => {
                    own.as_deref().map(str::as_bytes) != Some(&data[..])
                }
                Some(Reply::Miss) => false,
                r => return Err(McError::Protocol(format!("to mg: {r:?}"))),
            };
            if waiting {
                self.forget(&keys.lock);
                return match c.one(Req::cas_delete(&keys.lock, cas))? {
                    Reply::Done { .. } => Ok(PassOn::Released),
                    Reply::Exists | Reply::NotFound => Ok(PassOn::NotOwner),
                    r => Err(unexpected("md", &r)),
                };
            }
            Ok(match self.take_fence(c, &keys, token, cas, secs)? {
                Some(fence) => PassOn::Kept { fence },
                None => PassOn::NotOwner,
            })
        })
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Keys> = batch.iter().map(|e| self.keys(e.name)).collect();
        let secs: Vec<u32> = batch
            .iter()
            .map(|e| exptime(e.ttl, 1))
            .collect::<Result<_>>()?;
        self.with_conn(|c| {
            let mut out = vec![false; batch.len()];
            // One round trip for the items this client wrote last on this
            // run of the server: rewrite each unchanged if its CAS still
            // matches (then nobody else has written it since).
            let mut sets = Vec::new();
            let mut which = Vec::new();
            {
                let kept = self.kept.lock();
                for (i, (k, e)) in keys.iter().zip(batch).enumerate() {
                    if let Some(w) = kept
                        .get(&k.lock)
                        .filter(|w| w.token == e.token && Some(w.server) == c.server)
                    {
                        sets.push(Req::cas_set(&k.lock, &w.data, w.cas, secs[i]));
                        which.push((i, w.data.clone()));
                    }
                }
            }
            let mut slow: Vec<usize> = (0..batch.len())
                .filter(|i| !which.iter().any(|(j, _)| j == i))
                .collect();
            if !sets.is_empty() {
                for ((i, data), reply) in which.into_iter().zip(c.exec(&sets)?) {
                    match reply {
                        Reply::Done { cas } => {
                            out[i] = true;
                            self.remember(c, &keys[i].lock, batch[i].token, &data, cas);
                        }
                        Reply::NotFound => self.forget(&keys[i].lock),
                        // Written since (a racing extend or hand-off of
                        // ours, or another holder): look before deciding.
                        Reply::Exists => slow.push(i),
                        r => return Err(unexpected("ms", &r)),
                    }
                }
            }
            if slow.is_empty() {
                return Ok(out);
            }
            // The rest: read token and CAS, then rewrite if still ours.
            let gets: Vec<Req> = slow.iter().map(|&i| Req::get(&keys[i].lock)).collect();
            let found = c.exec(&gets)?;
            let mut sets = Vec::new();
            let mut which = Vec::new();
            for (&i, reply) in slow.iter().zip(&found) {
                match reply {
                    Reply::Value {
                        data,
                        cas: Some(cas),
                        ..
                    } if holder(data).0 == batch[i].token.as_bytes() => {
                        sets.push(Req::cas_set(&keys[i].lock, data, *cas, secs[i]));
                        which.push((i, data));
                    }
                    Reply::Value { .. } | Reply::Miss => self.forget(&keys[i].lock),
                    r => return Err(unexpected("mg", r)),
                }
            }
            if sets.is_empty() {
                return Ok(out);
            }
            for ((i, data), reply) in which.into_iter().zip(c.exec(&sets)?) {
                out[i] = match reply {
                    Reply::Done { cas } => {
                        self.remember(c, &keys[i].lock, batch[i].token, data, cas);
                        true
                    }
                    Reply::Exists | Reply::NotFound => false,
                    r => return Err(unexpected("ms", &r)),
                };
            }
            Ok(out)
        })
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        *self.feed_control.lock() = Some(control.to_string());
        let mut conn = self.opener.open().map_err(|e| self.error(&e))?;
        let outcome = self.feed_on(&mut conn, control, handler);
        if outcome.is_err() {
            self.opener.failures.fetch_add(1, Ordering::SeqCst);
        }
        outcome.map_err(|e| self.error(&e))
    }

    fn poke(&self, _control: &str) -> Result<()> {
        // The feed runs in this process: wake it directly.
        let (count, cv) = &self.poked;
        *count.lock() += 1;
        cv.notify_all();
        Ok(())
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let keys = self.keys(name);
        self.with_conn(|c| match c.one(Req::get(&keys.value))? {
            Reply::Value { data, .. } => Ok(Some(data)),
            Reply::Miss => Ok(None),
            r => Err(unexpected("mg", &r)),
        })
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let keys = self.keys(name);
        let secs = exptime(ttl, 0)?;
        self.with_conn(|c| match c.one(Req::set(&keys.value, value, secs))? {
            Reply::Done { .. } => Ok(()),
            r => Err(unexpected("ms", &r)),
        })
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let keys = self.keys(name);
        let replies = self.with_conn(|c| c.exec(&[Req::get(&keys.lock), Req::get(&keys.fence)]))?;
        let (mut token, mut remaining, mut fence, mut by) = (None, None, None, None);
        if let Some(Reply::Value { data, ttl, .. }) = replies.first() {
            token = Some(String::from_utf8_lossy(holder(data).0).into_owned());
            by = holder_of(data);
            remaining = ttl
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs);
        }
        if let Some(Reply::Value { data, .. }) = replies.get(1) {
            fence = std::str::from_utf8(data).ok().and_then(|s| s.parse().ok());
        }
        Ok(LockInfo {
            key: keys.lock,
            token,
            remaining,
            fence,
            holder: by,
            shares: Vec::new(),
            writers_waiting: 0,
        })
    }

    fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    fn describe(&self) -> &str {
        &self.place
    }
}

/// A name the feed watches.
struct Watched {
    /// Its keys.
    keys: Keys,
    /// The holder's token at the last look (`None`: free).
    last: Option<Vec<u8>>,
}

impl MemcachedStore {
    /// The feed's loop on `conn`: takes the handler's changes, looks at
    /// every watched lock in one pipeline, reports the ones whose holder
    /// left, then sleeps for the poll interval or until poked.
    fn feed_on(
        &self,
        conn: &mut proto::Conn,
        control: &str,
        handler: &mut dyn FeedHandler,
    ) -> McResult<()> {
        let mut watched: HashMap<String, Watched> = HashMap::new();
        let mut marked = Instant::now();
        loop {
            let changes = handler.changes();
            if changes.stop {
                return Ok(());
            }
            for name in &changes.unsubscribe {
                watched.remove(name);
            }
            let (known, fresh): (Vec<&String>, Vec<&String>) = changes
                .subscribe
                .iter()
                .partition(|n| watched.contains_key(*n));
            for name in known {
                handler.subscribed(name);
            }
            let mark_all = marked.elapsed() >= MARKER_EVERY;
            if mark_all {
                marked = Instant::now();
            }
            // One pipeline: a look at every lock (the new ones last), and
            // the waiter markers that are due.
            let names: Vec<String> = watched
                .keys()
                .cloned()
                .chain(fresh.iter().map(|n| n.to_string()))
                .collect();
            let mut reqs = Vec::new();
            let keys: Vec<Keys> = names
                .iter()
                .map(|n| {
                    watched
                        .get(n)
                        .map_or_else(|| self.keys(n), |w| w.keys.clone())
                })
                .collect();
            for k in &keys {
                reqs.push(Req::get(&k.lock));
            }
            let marks: Vec<&Keys> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| mark_all || *i >= names.len() - fresh.len())
                .map(|(_, k)| k)
                .collect();
            for k in &marks {
                reqs.push(Req::set(&k.wait, control.as_bytes(), MARKER_SECS));
            }
            let replies = if reqs.is_empty() {
                Vec::new()
            } else {
                conn.exec(&reqs)?
            };
            for ((name, k), reply) in names.into_iter().zip(keys).zip(&replies) {
                let now = match reply {
                    Reply::Value { data, .. } => Some(holder(data).0.to_vec()),
                    Reply::Miss => None,
                    r => return Err(unexpected("mg", r)),
                };
                match watched.get_mut(&name) {
                    Some(w) => {
                        if w.last.is_some() && w.last != now {
                            handler.released(&name);
                        }
                        w.last = now;
                    }
                    None => {
                        // Watched from this look on: the waiter may look again.
                        watched.insert(name.clone(), Watched { keys: k, last: now });
                        handler.subscribed(&name);
                    }
                }
            }
            if reqs.is_empty() && mark_all {
                // Nothing to look at: still check the connection now and then.
                match conn.one(Req::noop())? {
                    Reply::Noop => {}
                    r => return Err(unexpected("mn", &r)),
                }
            }
            let (count, cv) = &self.poked;
            let mut n = count.lock();
            if *n == 0 {
                let wait = if watched.is_empty() {
                    MARKER_EVERY
                } else {
                    self.poll
                };
                cv.wait_for(&mut n, wait);
            }
            *n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_host_and_port_or_say_what_is_wrong() {
        assert_eq!(
            parse_url("memcache://127.0.0.1:11311").unwrap(),
            "127.0.0.1:11311"
        );
        assert_eq!(parse_url("MEMCACHE://h/").unwrap(), "h:11211");
        assert_eq!(parse_url("memcache://[::1]").unwrap(), "[::1]:11211");
        assert_eq!(parse_url("memcache://[::1]:7").unwrap(), "[::1]:7");
        for (url, why) in [
            ("memcache://u:s3cret@h:1", "no authentication"),
            ("memcache://h:1/db", "no path"),
            ("memcache://h:x", "port"),
            ("memcache://h:0", "port"),
            ("memcache://:1", "no host"),
            ("redis://h", "not memcache"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn ttls_round_up_to_whole_seconds_plus_one() {
        let ms = Duration::from_millis;
        assert_eq!(exptime(ms(10), 1).unwrap(), 2);
        assert_eq!(exptime(ms(1000), 1).unwrap(), 2);
        assert_eq!(exptime(ms(1001), 1).unwrap(), 3);
        assert_eq!(exptime(ms(10), 0).unwrap(), 1);
        assert_eq!(exptime(Duration::from_secs(24 * 3600), 1).unwrap(), 86401);
        let e = exptime(Duration::from_secs(MAX_EXPTIME - 1), 1).unwrap_err();
        assert!(e.to_string().contains("absolute times"), "{e}");
    }

    #[test]
    fn lock_items_hold_the_token_and_the_fence() {
        assert_eq!(holder(b"tok 64"), (&b"tok"[..], Some(64)));
        assert_eq!(holder(b"tok"), (&b"tok"[..], None));
        assert_eq!(holder(b"tok x"), (&b"tok"[..], None));
        let full = item("tok", Some(64), "h\n7\nl");
        assert_eq!(holder(full.as_bytes()), (&b"tok"[..], Some(64)));
        assert_eq!(holder(b"tok\nh\n7\n"), (&b"tok"[..], None));
        let by = holder_of(full.as_bytes()).unwrap();
        assert_eq!(
            (by.host.as_str(), by.pid, by.label.as_deref()),
            ("h", 7, Some("l"))
        );
    }
}
