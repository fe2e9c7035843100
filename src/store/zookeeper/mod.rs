//! A ZooKeeper ensemble (3.6 or later) holding locks, through a small
//! client of our own: [`ZkStore`] implements [`Store`] with ephemeral
//! nodes, whose lease is the session that created them.
//!
//! - [`proto`]: the jute wire format of the requests and answers used;
//! - [`client`]: one session over a `TcpStream`, with its I/O thread
//!   (pings, reconnects within the session, watch events).
//!
//! The tree, below the URL's chroot (`zk://host:port,…/chroot`):
//!
//! | path | node |
//! | --- | --- |
//! | `/<prefix>/locks/<name>` | the lock: ephemeral, holding `token\nholder` |
//! | `/<prefix>/waiters/<name>/<feed>` | a client waiting for `<name>`: ephemeral, under a container node |
//! | `/<prefix>/cache/<name>` | a loader's cached value, its expiry in front |
//!
//! Names are percent-encoded into one path component each (every byte
//! outside `A-Z a-z 0-9 - _ :` as `%XX`), so any lock name is one node.
//!
//! How each operation works:
//! - acquire: one `create2` of the ephemeral lock node. Its creation zxid
//!   (ensemble-wide, increasing, kept across restarts) × [`FENCE_BLOCK`]
//!   is the fence. A retry after a lost reply that meets "node exists"
//!   reads the node: our token on our session's node is a win with the
//!   same fence;
//! - release: the node is read, and deleted at the version read if it
//!   holds our token (two round trips). A delete at the version the
//!   session wrote, without the read, would also delete a node another
//!   client created since: a recreated node starts at the same version.
//!   (ZooKeeper's delete compares a version, not a value: a node deleted
//!   by someone else and created again by another client between the read
//!   and the delete, within one round trip, would be deleted. Only an
//!   operator's delete of a held lock opens that window; the guard of the
//!   lock deleted reports it lost either way);
//! - pass_on: the waiters' folder is listed; with other clients in it the
//!   node is deleted, else its data is written again at its version: the
//!   write's zxid × 64 is the next block of fences;
//! - extend: every node of the batch is read (one pipelined round trip per
//!   session): still ours if it holds our token on our session;
//! - the release feed: a persistent recursive watch on the locks folder
//!   (armed again after every reconnect, since a new connection has no
//!   watches), whose deletes wake the waiters; a poke is a local channel.
//!
//! # The session is the lease
//!
//! On Redis, etcd and memcached every lock has a TTL of its own on the
//! server. ZooKeeper has sessions instead: a client's ephemeral nodes live
//! while the ensemble hears from the session (any request or ping) and
//! are deleted together when it has not heard from it for the session
//! timeout, or at once when the session is closed. So:
//! - locks with the same TTL share one session, whose timeout is asked
//!   for as that TTL (rounded up to 100 ms, or whole seconds past 10 s). A
//!   server that grants a longer timeout (its `minSessionTimeout`) is
//!   accepted: a crashed holder's locks are then freed later, never too
//!   early; one that grants a shorter one (its `maxSessionTimeout`) is
//!   refused, since it could free locks while their guards still claim
//!   them;
//! - the release feed's waiter nodes and the loader's cache live on one
//!   more session, of 10 s, opened at connect;
//! - a session only ends when the client is gone or cut off, so a lock
//!   that is not renewed (`auto_renew(false)`, a passed hold cap) is
//!   deleted by its own client when its TTL runs out;
//! - a disconnected client keeps its session while it reconnects within
//!   the timeout, to any server of the list: its locks survive a server's
//!   failure. Meanwhile they are in doubt: renewals fail, and each guard
//!   reports its lock lost once its TTL passes since the last confirmed
//!   renewal. A session found expired on reconnect has lost every lock
//!   it held (the next renewal sees the nodes gone);
//! - a paused or crashed holder loses its locks one session timeout after
//!   the ensemble last heard from it.

mod client;
mod proto;

use self::client::{Event, Pending, Session, SessionConfig};
use self::proto::{err, event, mode, op, Reader, Stat};
use super::glob::glob_match;
use super::holder::{lock_value, owns, split_value};
use super::{Acquired, Extend, FeedHandler, LockInfo, PassOn, Store, FENCE_BLOCK};
use crate::clock::BootInstant;
use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The scheme of ZooKeeper URLs.
pub(crate) const SCHEME: &str = "zk";
/// ZooKeeper's client port when the URL gives none.
const DEFAULT_PORT: u16 = 2181;
/// The timeout of the session that runs the release feed and the cache.
const MAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the feed waits before checking its connection.
const FEED_TICK: Duration = Duration::from_secs(1);
/// How soon a failed delete of an expired lock is tried again.
const RETRY_DELETE: Duration = Duration::from_millis(200);
/// Most sessions (distinct TTLs) one client opens.
const MAX_SESSIONS: usize = 32;

/// Everything needed to reach one ensemble.
#[derive(Clone, Debug)]
pub(crate) struct ZkConfig {
    /// `host:port` of every server.
    pub servers: Vec<String>,
    /// Starts every path (`""` or `/a/b`).
    pub chroot: String,
    /// Names the folder of this client's locks.
    pub prefix: String,
    /// Bounds opening a connection.
    pub connect_timeout: Duration,
    /// Bounds each reply.
    pub command_timeout: Duration,
    /// This client's holder description, written after the token.
    pub holder: String,
}

/// What a `zk://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZkUrl {
    /// `host:port` of every server.
    pub servers: Vec<String>,
    /// `""`, or the chroot path (`/a/b`).
    pub chroot: String,
}

/// Whether `url` names a ZooKeeper ensemble (`zk://`).
pub(crate) fn is_zk(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case(SCHEME))
}

/// Parses `zk://host[:port][,host[:port]…][/chroot]`.
pub(crate) fn parse_url(url: &str) -> Result<ZkUrl> {
    let bad = |why: &str| Error::invalid(format!("cannot parse the ZooKeeper URL: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(bad("the scheme is not zk://"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad(
            "a ZooKeeper URL has no query: zk://host:port[,host:port…][/chroot]",
        ));
    }
    let (hosts, chroot) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if hosts.contains('@') {
        return Err(bad(
            "distlock sends no ZooKeeper credentials: give zk://host:port without user@",
        ));
    }
    let chroot = chroot.strip_suffix('/').unwrap_or(chroot);
    if !chroot.is_empty() {
        for part in chroot[1..].split('/') {
            if part.is_empty() || part == "." || part == ".." || part.chars().any(char::is_control)
            {
                return Err(bad(
                    "the chroot must be a path like /a/b, without empty, `.` or `..` parts",
                ));
            }
        }
    }
    let servers = super::hosts::parse_hosts(hosts, "server", DEFAULT_PORT, bad)?;
    Ok(ZkUrl {
        servers,
        chroot: chroot.to_string(),
    })
}

/// `name` as one path component: bytes outside `A-Z a-z 0-9 - _ :` as
/// `%XX`.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a component encodes (`None` if it is not one of ours).
fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A fence from a zxid.
fn fence(zxid: i64) -> u64 {
    u64::try_from(zxid).unwrap_or(0).saturating_mul(FENCE_BLOCK)
}

/// The session timeout asked for locks of `ttl`: rounded up to 100 ms, or
/// to whole seconds past 10 s, so that close TTLs share a session.
fn session_timeout(ttl: Duration) -> Duration {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let step = if ms <= 10_000 { 100 } else { 1000 };
    Duration::from_millis(ms.div_ceil(step).saturating_mul(step))
}

/// This machine's wall clock in ms since 1970 (for cached values' expiry,
/// which other clients read).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A lock this client holds, as the expiry thread sees it.
struct Held {
    /// The lock's TTL (which session it is on).
    ttl: Duration,
    /// When its TTL runs out unrenewed: its own client deletes it then.
    deadline: BootInstant,
}

/// The folders of one prefix.
struct Paths {
    /// `<chroot>/<prefix>`.
    root: String,
    /// `<root>/locks`.
    locks: String,
    /// `<root>/waiters`.
    waiters: String,
    /// `<root>/cache`.
    cache: String,
    /// The chroot (`""` or `/a/b`).
    chroot: String,
}

impl Paths {
    fn new(chroot: &str, prefix: &str) -> Paths {
        let root = format!("{chroot}/{}", encode(prefix));
        Paths {
            locks: format!("{root}/locks"),
            waiters: format!("{root}/waiters"),
            cache: format!("{root}/cache"),
            root,
            chroot: chroot.to_string(),
        }
    }

    fn lock(&self, name: &str) -> String {
        format!("{}/{}", self.locks, encode(name))
    }

    fn waiting(&self, name: &str) -> String {
        format!("{}/{}", self.waiters, encode(name))
    }

    fn cached(&self, name: &str) -> String {
        format!("{}/{}", self.cache, encode(name))
    }

    /// Every folder, parents first.
    fn folders(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = String::new();
        for part in self.chroot.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            out.push(at.clone());
        }
        out.extend([
            self.root.clone(),
            self.locks.clone(),
            self.waiters.clone(),
            self.cache.clone(),
        ]);
        out
    }
}

/// What the store shares with its expiry thread.
struct Core {
    cfg: ZkConfig,
    paths: Paths,
    /// Where, for messages.
    place: String,
    /// The session of the feed, the cache and reads of other clients' locks.
    main: Arc<Session>,
    /// One session per lock TTL (rounded), by its timeout.
    sessions: Mutex<HashMap<Duration, Arc<Session>>>,
    /// The locks this client holds, by name and token.
    held: Mutex<HashMap<(String, String), Held>>,
    /// Wakes the expiry thread.
    wake: Sender<()>,
    /// When the expiry thread looks next, in boot-clock nanoseconds: a
    /// later deadline needs no wake-up.
    next_look: AtomicU64,
    /// The control name of the feed running now.
    feed_control: Mutex<Option<String>>,
    /// Wakes the feed running with a control name.
    pokes: Mutex<HashMap<String, Sender<()>>>,
    /// The names the feed has a waiter node for (they outlive a feed that
    /// failed, on the same session).
    own_waiters: Mutex<HashSet<String>>,
}

/// A ZooKeeper ensemble holding locks.
pub(crate) struct ZkStore {
    core: Arc<Core>,
    expiry: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Dropped on drop: ends the expiry thread.
    stop: Mutex<Option<Sender<()>>>,
}

impl Drop for ZkStore {
    fn drop(&mut self) {
        self.stop.lock().take();
        let _ = self.core.wake.try_send(());
        if let Some(t) = self.expiry.lock().take() {
            let _ = t.join();
        }
    }
}

impl ZkStore {
    /// Connects: opens the main session on the first server that answers,
    /// and creates the folders of the prefix.
    pub(crate) fn connect(cfg: &ZkConfig) -> Result<Self> {
        let place = format!("zk://{}{}", cfg.servers.join(","), cfg.chroot);
        let main = Arc::new(Session::open(session_config(cfg, &place, MAIN_TIMEOUT))?);
        let (wake, wake_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let core = Arc::new(Core {
            paths: Paths::new(&cfg.chroot, &cfg.prefix),
            cfg: cfg.clone(),
            place,
            main,
            sessions: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            wake,
            next_look: AtomicU64::new(u64::MAX),
            feed_control: Mutex::new(None),
            pokes: Mutex::new(HashMap::new()),
            own_waiters: Mutex::new(HashSet::new()),
        });
        core.ensure_folders(&core.main)?;
        let weak = Arc::downgrade(&core);
        let expiry = std::thread::Builder::new()
            .name("distlock-zk-expiry".into())
            .spawn(move || expire_loop(&weak, &wake_rx, &stop_rx))
            .map_err(|e| Error::Connection(format!("cannot start the expiry thread: {e}")))?;
        Ok(ZkStore {
            core,
            expiry: Mutex::new(Some(expiry)),
            stop: Mutex::new(Some(stop_tx)),
        })
    }
}

fn session_config(cfg: &ZkConfig, place: &str, timeout: Duration) -> SessionConfig {
    SessionConfig {
        servers: cfg.servers.clone(),
        timeout,
        connect_timeout: cfg.connect_timeout,
        command_timeout: cfg.command_timeout,
        place: place.to_string(),
    }
}

/// The expiry thread: deletes this client's locks whose TTL ran out
/// unrenewed (their session would keep them forever).
fn expire_loop(core: &Weak<Core>, wake: &Receiver<()>, stop: &Receiver<()>) {
    loop {
        let next = match core.upgrade() {
            Some(c) => {
                let held = c.held.lock();
                let next = held.values().map(|h| h.deadline).min();
                // Set under the lock that hold() inserts under: a deadline
                // sooner than this wakes the thread.
                c.next_look
                    .store(next.map_or(u64::MAX, BootInstant::nanos), Ordering::SeqCst);
                next
            }
            None => return,
        };
        let pause = next.map_or(Duration::from_secs(3600), BootInstant::remaining);
        crossbeam_channel::select! {
            recv(wake) -> _ => {}
            recv(stop) -> _ => return,
            default(pause) => {}
        }
        let Some(c) = core.upgrade() else { return };
        let due: Vec<((String, String), Held)> = {
            let mut held = c.held.lock();
            let keys: Vec<(String, String)> = held
                .iter()
                .filter(|(_, h)| h.deadline.has_passed())
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| held.remove(&k).map(|h| (k, h)))
                .collect()
        };
        for ((name, token), h) in due {
            if c.delete_if_ours(&name, &token, h.ttl).is_err() {
                c.hold_until(&name, &token, h.ttl, BootInstant::now().add(RETRY_DELETE));
            }
        }
    }
}

impl Core {
    /// Creates every folder that is missing.
    fn ensure_folders(&self, s: &Session) -> Result<()> {
        for path in self.paths.folders() {
            let r = s.call(op::CREATE2, |w| {
                w.string(&path).bytes(&[]).open_acl().int(mode::PERSISTENT);
            })?;
            match r.err {
                err::OK | err::NODE_EXISTS => {}
                code => return Err(s.refused(&format!("creating {path}"), code)),
            }
        }
        Ok(())
    }

    /// The session for locks of `ttl`, opened on first use.
    fn session(&self, ttl: Duration) -> Result<Arc<Session>> {
        let timeout = session_timeout(ttl);
        let mut sessions = self.sessions.lock();
        if let Some(s) = sessions.get(&timeout) {
            return Ok(s.clone());
        }
        if sessions.len() >= MAX_SESSIONS {
            return Err(Error::invalid(format!(
                "a ZooKeeper client keeps one session per lock TTL, and this one has \
                 {MAX_SESSIONS} already: use fewer distinct TTLs"
            )));
        }
        let s = Session::open(session_config(&self.cfg, &self.place, timeout))?;
        if s.negotiated() < ttl {
            return Err(Error::invalid(format!(
                "{} granted a session timeout of {} ms, shorter than the lock TTL of {} ms \
                 (its maxSessionTimeout): a lock could be freed while its guard still holds it; \
                 use a TTL of at most {} ms, or raise the server's maxSessionTimeout",
                self.place,
                s.negotiated().as_millis(),
                ttl.as_millis(),
                s.negotiated().as_millis()
            )));
        }
        let s = Arc::new(s);
        sessions.insert(timeout, s.clone());
        Ok(s)
    }

    /// The session a held lock is on (the main one when unknown: another
    /// client's lock).
    fn session_of(&self, name: &str, token: &str) -> Result<Arc<Session>> {
        let ttl = self
            .held
            .lock()
            .get(&(name.to_string(), token.to_string()))
            .map(|h| h.ttl);
        match ttl {
            Some(ttl) => self.session(ttl),
            None => Ok(self.main.clone()),
        }
    }

    /// Records (or restarts) a lock held for `ttl` from `sent`.
    fn hold(&self, name: &str, token: &str, ttl: Duration, sent: BootInstant) {
        self.hold_until(name, token, ttl, sent.add(ttl));
    }

    /// Records a lock of `ttl` to delete at `deadline` unless renewed.
    fn hold_until(&self, name: &str, token: &str, ttl: Duration, deadline: BootInstant) {
        let mut held = self.held.lock();
        held.insert(
            (name.to_string(), token.to_string()),
            Held { ttl, deadline },
        );
        if deadline.nanos() < self.next_look.load(Ordering::SeqCst) {
            self.next_look.store(deadline.nanos(), Ordering::SeqCst);
            drop(held);
            let _ = self.wake.try_send(());
        }
    }

    fn forget(&self, name: &str, token: &str) -> Option<Held> {
        self.held
            .lock()
            .remove(&(name.to_string(), token.to_string()))
    }

    /// A node's data and stat, `None` if it is not there.
    fn read(&self, s: &Session, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        let pending = send_get(s, path)?;
        read_reply(s, path, &pending)
    }

    /// Deletes the lock `name` if `token` holds it: whether it did.
    fn delete_if_ours(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        let s = self.session(ttl)?;
        let path = self.paths.lock(name);
        // Always read before deleting: a delete at the version this
        // session wrote would also delete a node another client created
        // since (a recreated node starts at the same version). That
        // happened to a holder stopped past its session: on resume its
        // release deleted the new owner's lock (tests/processes.rs).
        self.delete_read(&s, &path, token)
    }

    /// Deletes `path` if it holds `token`, at the version read.
    fn delete_read(&self, s: &Session, path: &str, token: &str) -> Result<bool> {
        for _ in 0..8 {
            let Some((data, stat)) = self.read(s, path)? else {
                return Ok(false);
            };
            if !owns(&data, token) {
                return Ok(false);
            }
            let r = s.call(op::DELETE, |w| {
                w.string(path).int(stat.version);
            })?;
            match r.err {
                err::OK => return Ok(true),
                err::NO_NODE => return Ok(false),
                // Written in between (a pass_on of ours): read again.
                err::BAD_VERSION => continue,
                code => return Err(s.refused("deleting a lock", code)),
            }
        }
        Ok(false)
    }

    /// Whether a client other than the feed `own` waits for `name`.
    fn others_wait(&self, s: &Session, name: &str) -> Result<bool> {
        let folder = self.paths.waiting(name);
        let r = s.call(op::GET_CHILDREN, |w| {
            w.string(&folder).bool(false);
        })?;
        match r.err {
            err::OK => {}
            err::NO_NODE => return Ok(false),
            code => return Err(s.refused("listing waiters", code)),
        }
        let children = Reader::new(&r.body).strings().map_err(|m| s.malformed(m))?;
        let own = self.feed_control.lock().clone();
        Ok(children.iter().any(|c| Some(c) != own.as_ref()))
    }

    /// Creates the waiter node of the feed `control` for `name`.
    fn add_waiter(&self, s: &Session, name: &str, control: &str) -> Result<()> {
        let folder = self.paths.waiting(name);
        let node = format!("{folder}/{control}");
        for _ in 0..3 {
            let r = s.call(op::CREATE2, |w| {
                w.string(&node).bytes(&[]).open_acl().int(mode::EPHEMERAL);
            })?;
            match r.err {
                err::OK | err::NODE_EXISTS => return Ok(()),
                err::NO_NODE => {
                    let r = s.call(op::CREATE_CONTAINER, |w| {
                        w.string(&folder).bytes(&[]).open_acl().int(mode::CONTAINER);
                    })?;
                    match r.err {
                        err::OK | err::NODE_EXISTS => {}
                        err::NO_NODE => self.ensure_folders(s)?,
                        code => return Err(s.refused("creating a waiters folder", code)),
                    }
                }
                code => return Err(s.refused("creating a waiter node", code)),
            }
        }
        Ok(())
    }

    /// The name of a lock node's path, if it is one.
    fn lock_name(&self, path: &str) -> Option<String> {
        let rest = path.strip_prefix(&self.paths.locks)?.strip_prefix('/')?;
        if rest.contains('/') {
            return None;
        }
        decode(rest)
    }

    /// The feed's loop (see [`Store::run_feed`]).
    fn feed(
        &self,
        control: &str,
        events: &Receiver<Event>,
        pokes: &Receiver<()>,
        handler: &mut dyn FeedHandler,
    ) -> Result<()> {
        let s = &self.main;
        self.ensure_folders(s)?;
        let locks = &self.paths.locks;
        let r = s.call(op::ADD_WATCH, |w| {
            w.string(locks).int(proto::PERSISTENT_RECURSIVE);
        })?;
        if r.err != err::OK {
            return Err(s.refused("adding the watch on the locks", r.err));
        }
        // Waiter nodes left by a feed that failed: those no longer wanted
        // go now (the handler asks again for every name still waited for).
        let mut waiting = std::mem::take(&mut *self.own_waiters.lock());
        let outcome = self.feed_loop(control, events, pokes, handler, &mut waiting);
        *self.own_waiters.lock() = waiting;
        outcome
    }

    /// The body of [`feed`](Self::feed), keeping `waiting` up to date.
    fn feed_loop(
        &self,
        control: &str,
        events: &Receiver<Event>,
        pokes: &Receiver<()>,
        handler: &mut dyn FeedHandler,
        waiting: &mut HashSet<String>,
    ) -> Result<()> {
        let s = &self.main;
        let mut first = true;
        loop {
            let mut changes = handler.changes();
            if std::mem::take(&mut first) {
                let stale: Vec<String> = waiting
                    .iter()
                    .filter(|n| !changes.subscribe.contains(n))
                    .cloned()
                    .collect();
                changes.unsubscribe.extend(stale);
            }
            if changes.stop {
                for name in waiting.drain() {
                    let node = format!("{}/{control}", self.paths.waiting(&name));
                    let _ = s.send(op::DELETE, |w| {
                        w.string(&node).int(-1);
                    });
                }
                return Ok(());
            }
            for name in &changes.subscribe {
                self.add_waiter(s, name, control)?;
                waiting.insert(name.clone());
                handler.subscribed(name);
            }
            for name in &changes.unsubscribe {
                if waiting.remove(name) {
                    let node = format!("{}/{control}", self.paths.waiting(name));
                    let r = s.call(op::DELETE, |w| {
                        w.string(&node).int(-1);
                    })?;
                    if !matches!(r.err, err::OK | err::NO_NODE) {
                        return Err(s.refused("deleting a waiter node", r.err));
                    }
                }
            }
            crossbeam_channel::select! {
                recv(events) -> ev => match ev {
                    Ok(Event::Watch { kind, path }) => {
                        if kind == event::NODE_DELETED {
                            if let Some(name) = self.lock_name(&path) {
                                if waiting.contains(&name) {
                                    handler.released(&name);
                                }
                            }
                        }
                    }
                    Ok(Event::Disconnected) | Err(_) => {
                        return Err(Error::Connection(format!(
                            "{}: the connection dropped (the watch is armed again)",
                            self.place
                        )));
                    }
                },
                recv(pokes) -> _ => {}
                default(FEED_TICK) => {
                    if !s.connected() {
                        return Err(Error::Connection(format!(
                            "{}: not connected",
                            self.place
                        )));
                    }
                }
            }
        }
    }
}

/// Sends a getData of `path` (no watch).
fn send_get(s: &Session, path: &str) -> Result<Pending> {
    s.send(op::GET_DATA, |w| {
        w.string(path).bool(false);
    })
}

/// The answer of [`send_get`].
fn read_reply(s: &Session, path: &str, pending: &Pending) -> Result<Option<(Vec<u8>, Stat)>> {
    let r = s.wait(pending)?;
    match r.err {
        err::OK => {
            let mut rd = Reader::new(&r.body);
            let data = rd.bytes().map_err(|m| s.malformed(m))?.to_vec();
            let stat = rd.stat().map_err(|m| s.malformed(m))?;
            Ok(Some((data, stat)))
        }
        err::NO_NODE => Ok(None),
        code => Err(s.refused(&format!("reading {path}"), code)),
    }
}

impl Store for ZkStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let c = &*self.core;
        let s = c.session(ttl)?;
        let path = c.paths.lock(name);
        let value = lock_value(token, &c.cfg.holder);
        for _ in 0..4 {
            let sent = BootInstant::now();
            let created = s.send(op::CREATE2, |w| {
                w.string(&path)
                    .bytes(value.as_bytes())
                    .open_acl()
                    .int(mode::EPHEMERAL);
            })?;
            let r = s.wait(&created)?;
            match r.err {
                err::OK => {
                    let mut rd = Reader::new(&r.body);
                    let _path = rd.string().map_err(|m| s.malformed(m))?;
                    let stat = rd.stat().map_err(|m| s.malformed(m))?;
                    c.hold(name, token, ttl, sent);
                    return Ok(Acquired::Yes {
                        fence: fence(stat.mzxid),
                    });
                }
                err::NO_NODE => c.ensure_folders(&s)?,
                err::NODE_EXISTS => match c.read(&s, &path)? {
                    // Ours, from a try whose reply was lost.
                    Some((data, stat)) if owns(&data, token) && stat.ephemeral_owner == s.id() => {
                        c.hold(name, token, ttl, sent);
                        return Ok(Acquired::Yes {
                            fence: fence(stat.mzxid),
                        });
                    }
                    Some(_) => return Ok(Acquired::No { remaining: None }),
                    // Released in between: try again.
                    None => {}
                },
                code => return Err(s.refused("creating a lock", code)),
            }
        }
        Ok(Acquired::No { remaining: None })
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        let c = &*self.core;
        let s = c.session_of(name, token)?;
        let held = c.forget(name, token);
        let ttl = held.as_ref().map(|h| h.ttl);
        let outcome = match ttl {
            Some(ttl) => c.delete_if_ours(name, token, ttl),
            None => {
                // Another client's token (an operator's release_token).
                let path = c.paths.lock(name);
                match c.read(&s, &path) {
                    Ok(Some((data, stat))) if owns(&data, token) => s
                        .call(op::DELETE, |w| {
                            w.string(&path).int(stat.version);
                        })
                        .map(|r| r.err == err::OK),
                    Ok(_) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        };
        if let (Err(_), Some(h)) = (&outcome, held) {
            // Not known to be gone: the expiry thread tries again.
            c.hold_until(name, token, h.ttl, BootInstant::now().add(RETRY_DELETE));
        }
        outcome
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let c = &*self.core;
        let s = c.session(ttl)?;
        let path = c.paths.lock(name);
        let Some((data, stat)) = c.read(&s, &path)? else {
            c.forget(name, token);
            return Ok(PassOn::NotOwner);
        };
        if !owns(&data, token) || stat.ephemeral_owner != s.id() {
            c.forget(name, token);
            return Ok(PassOn::NotOwner);
        }
        if c.others_wait(&s, name)? {
            c.forget(name, token);
            let deleted = s.send(op::DELETE, |w| {
                w.string(&path).int(stat.version);
            })?;
            let r = s.wait(&deleted)?;
            return Ok(match r.err {
                err::OK => PassOn::Released,
                _ => PassOn::NotOwner,
            });
        }
        // Keep it: write it again (a new zxid: a new block of fences).
        let sent = BootInstant::now();
        let written = s.send(op::SET_DATA, |w| {
            w.string(&path).bytes(&data).int(stat.version);
        })?;
        let r = s.wait(&written)?;
        match r.err {
            err::OK => {
                let stat = Reader::new(&r.body).stat().map_err(|m| s.malformed(m))?;
                c.hold(name, token, ttl, sent);
                Ok(PassOn::Kept {
                    fence: fence(stat.mzxid),
                })
            }
            err::NO_NODE | err::BAD_VERSION => {
                c.forget(name, token);
                Ok(PassOn::NotOwner)
            }
            code => Err(s.refused("rewriting a lock", code)),
        }
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        let c = &*self.core;
        let sent = BootInstant::now();
        // Known locks only (the expiry thread may have deleted one), each
        // restarted from now before it is read: the expiry thread never
        // deletes a lock while its renewal is under way.
        let mut asks: Vec<Option<(Arc<Session>, Pending)>> = Vec::with_capacity(batch.len());
        for e in batch {
            let known = {
                let mut held = c.held.lock();
                match held.get_mut(&(e.name.to_string(), e.token.to_string())) {
                    Some(h) => {
                        h.deadline = h.deadline.max(sent.add(e.ttl));
                        true
                    }
                    None => false,
                }
            };
            if !known {
                asks.push(None);
                continue;
            }
            let s = c.session(e.ttl)?;
            let path = c.paths.lock(e.name);
            let pending = s.send_now(op::GET_DATA, |w| {
                w.string(&path).bool(false);
            })?;
            asks.push(Some((s, pending)));
        }
        let mut out = Vec::with_capacity(batch.len());
        for (e, ask) in batch.iter().zip(asks) {
            let Some((s, pending)) = ask else {
                out.push(false);
                continue;
            };
            let ours = match read_reply(&s, e.name, &pending)? {
                Some((data, stat)) => owns(&data, e.token) && stat.ephemeral_owner == s.id(),
                None => false,
            };
            if !ours {
                c.forget(e.name, e.token);
            }
            out.push(ours);
        }
        Ok(out)
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        let c = &*self.core;
        *c.feed_control.lock() = Some(control.to_string());
        let (tx, events) = crossbeam_channel::unbounded();
        let (poke_tx, pokes) = crossbeam_channel::bounded(1);
        c.main.listen(Some(tx));
        c.pokes.lock().insert(control.to_string(), poke_tx);
        let outcome = c.feed(control, &events, &pokes, handler);
        c.pokes.lock().remove(control);
        c.main.listen(None);
        outcome
    }

    fn poke(&self, control: &str) -> Result<()> {
        if let Some(tx) = self.core.pokes.lock().get(control) {
            let _ = tx.try_send(());
        }
        Ok(())
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let c = &*self.core;
        let Some((data, _)) = c.read(&c.main, &c.paths.cached(name))? else {
            return Ok(None);
        };
        let Some((expiry, value)) = data.split_first_chunk::<8>() else {
            return Ok(None);
        };
        Ok((i64::from_be_bytes(*expiry) > unix_ms()).then(|| value.to_vec()))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let c = &*self.core;
        let s = &c.main;
        let path = c.paths.cached(name);
        let expiry = unix_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut data = expiry.to_be_bytes().to_vec();
        data.extend_from_slice(value);
        for _ in 0..3 {
            let r = s.call(op::SET_DATA, |w| {
                w.string(&path).bytes(&data).int(-1);
            })?;
            if r.err == err::OK {
                return Ok(());
            }
            if r.err != err::NO_NODE {
                return Err(s.refused("caching a value", r.err));
            }
            let r = s.call(op::CREATE2, |w| {
                w.string(&path)
                    .bytes(&data)
                    .open_acl()
                    .int(mode::PERSISTENT);
            })?;
            match r.err {
                err::OK => return Ok(()),
                err::NODE_EXISTS => {}
                err::NO_NODE => c.ensure_folders(s)?,
                code => return Err(s.refused("caching a value", code)),
            }
        }
        Ok(())
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let c = &*self.core;
        let key = format!("{}:{name}", c.cfg.prefix);
        let Some((data, stat)) = c.read(&c.main, &c.paths.lock(name))? else {
            return Ok(LockInfo {
                key,
                token: None,
                remaining: None,
                fence: None,
                holder: None,
                shares: Vec::new(),
                writers_waiting: 0,
            });
        };
        let (token, holder) = split_value(&String::from_utf8_lossy(&data));
        Ok(LockInfo {
            key,
            token: Some(token),
            remaining: None,
            fence: Some(fence(stat.mzxid)),
            holder,
            shares: Vec::new(),
            writers_waiting: 0,
        })
    }

    fn held(&self, pattern: &str, limit: usize) -> Result<(Vec<LockInfo>, bool)> {
        let c = &*self.core;
        let s = &c.main;
        let locks = &c.paths.locks;
        let r = s.call(op::GET_CHILDREN, |w| {
            w.string(locks).bool(false);
        })?;
        let mut children = match r.err {
            err::OK => Reader::new(&r.body).strings().map_err(|m| s.malformed(m))?,
            err::NO_NODE => Vec::new(),
            code => return Err(s.refused("listing the locks", code)),
        };
        children.sort();
        let mut names = Vec::new();
        let mut truncated = false;
        for child in children {
            let Some(name) = decode(&child) else { continue };
            let key = format!("{}:{name}", c.cfg.prefix);
            if glob_match(pattern.as_bytes(), key.as_bytes()) {
                if names.len() == limit {
                    truncated = true;
                    break;
                }
                names.push(name);
            }
        }
        // One pipelined round of reads; a lock released meanwhile is left out.
        let asks = names
            .iter()
            .map(|n| send_get(s, &c.paths.lock(n)))
            .collect::<Result<Vec<_>>>()?;
        let mut infos = Vec::with_capacity(names.len());
        for (name, pending) in names.iter().zip(asks) {
            if let Some((data, stat)) = read_reply(s, name, &pending)? {
                let (token, holder) = split_value(&String::from_utf8_lossy(&data));
                infos.push(LockInfo {
                    key: format!("{}:{name}", c.cfg.prefix),
                    token: Some(token),
                    remaining: None,
                    fence: Some(fence(stat.mzxid)),
                    holder,
                    shares: Vec::new(),
                    writers_waiting: 0,
                });
            }
        }
        Ok((infos, truncated))
    }

    fn pool_state(&self) -> (u32, u32) {
        let open = 1 + self.core.sessions.lock().len();
        (u32::try_from(open).unwrap_or(u32::MAX), 0)
    }

    fn describe(&self) -> &str {
        &self.core.place
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_list_servers_and_a_chroot_and_say_what_is_wrong() {
        let u = parse_url("zk://127.0.0.1:2181,127.0.0.1:2182/app/locks").unwrap();
        assert_eq!(u.servers, ["127.0.0.1:2181", "127.0.0.1:2182"]);
        assert_eq!(u.chroot, "/app/locks");
        let u = parse_url("ZK://h/").unwrap();
        assert_eq!(
            (u.servers.as_slice(), u.chroot.as_str()),
            (&["h:2181".to_string()][..], "")
        );
        assert_eq!(parse_url("zk://[::1]").unwrap().servers, ["[::1]:2181"]);
        for (url, why) in [
            ("zk://h:1,:2", "server #2 has no host"),
            ("zk://h:x", "port of server #1"),
            ("zk://u:s3cret@h", "no ZooKeeper credentials"),
            ("zk://h/a//b", "the chroot"),
            ("zk://h/a/../b", "the chroot"),
            ("zk://h?x=1", "no query"),
            ("redis://h", "not zk"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn names_are_one_path_component_and_come_back() {
        for name in ["plain", "a/b", ".", "..", "two words", "é%", "", "x:y-z_1"] {
            let enc = encode(name);
            assert!(!enc.contains('/') && enc != "." && enc != "..", "{enc}");
            assert_eq!(decode(&enc).as_deref(), Some(name));
        }
        assert_eq!(encode("a/b"), "a%2Fb");
        assert_eq!(decode("%zz"), None);
    }

    #[test]
    fn fences_scale_zxids_and_sessions_round_up() {
        assert_eq!(fence(3), 3 * FENCE_BLOCK);
        assert_eq!(fence(-1), 0);
        assert_eq!(
            session_timeout(Duration::from_millis(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            session_timeout(Duration::from_millis(1000)),
            Duration::from_millis(1000)
        );
        assert_eq!(
            session_timeout(Duration::from_millis(10_001)),
            Duration::from_secs(11)
        );
    }

    #[test]
    fn the_tree_lives_under_the_chroot() {
        let p = Paths::new("/a/b", "distlock");
        assert_eq!(p.lock("x/y"), "/a/b/distlock/locks/x%2Fy");
        assert_eq!(
            p.folders(),
            [
                "/a",
                "/a/b",
                "/a/b/distlock",
                "/a/b/distlock/locks",
                "/a/b/distlock/waiters",
                "/a/b/distlock/cache"
            ]
        );
        assert_eq!(Paths::new("", "p").folders()[0], "/p");
    }
}
