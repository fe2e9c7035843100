//! The lock operations of a Redis store, written once for one node and for
//! a cluster: [`ScriptStore`] implements [`Store`] over any [`Backend`],
//! whose connections say through [`Route`] where each command goes.

use super::feed::{feed_on, poke_cmd, publish_poke};
use super::holder::{lock_value, owns};
use super::keys::{fence_key, lock_key, value_key, want_channel};
use super::pool::{Lent, Open, Pool};
use super::redis::RedisConfig;
use super::replicas::Acks;
use super::route::Route;
use super::scripts::{
    lock_info, parse_acquire, parse_extend, parse_pass_on, released, reply_code_is, Scripts,
};
use super::shares::{self, ShareScripts};
use super::LockInfo;
use super::{millis, Acquired, Extend, FeedHandler, Kind, PassOn, Released, Store, LAZY_FENCE};
use crate::error::{Error, Result};
use redis::{ErrorKind, RedisResult, ServerErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where a [`ScriptStore`]'s connections come from: one node, or a cluster.
pub(crate) trait Backend: Open<Conn: Route> {
    /// Opens the release feed's dedicated connection, timeouts set.
    fn feed_connection(&self) -> RedisResult<redis::Connection>;

    /// Told that a release feed ended with an error, before the caller
    /// opens the next one. Nothing to do unless overridden.
    fn feed_failed(&self) {}
}

/// A store that keeps its locks with the Lua scripts, on the node or the
/// cluster its [`Backend`] connects to.
pub(crate) struct ScriptStore<B: Backend> {
    /// The connections, their opener and the secrets to scrub.
    pool: Pool<B>,
    /// Starts every lock key.
    prefix: String,
    /// The lock scripts.
    scripts: Scripts,
    /// The scripts of read-write locks and semaphores.
    shares: ShareScripts,
    /// Replica acknowledgement of lease writes.
    acks: Acks,
    /// This client's holder description, written after the token.
    holder: String,
    /// Whether the server takes `SET … NX … GET` (Redis 7.0 and later):
    /// cleared for good when it answers a syntax error.
    set_nx_get: AtomicBool,
}

impl<B: Backend> ScriptStore<B> {
    /// A store over `backend` with `cfg`'s prefix, pool size, timeouts and
    /// replica acknowledgement, connected to nothing yet. `secret` scrubs
    /// every message; `place` names the store in messages and Debug output.
    pub(crate) fn new(
        backend: B,
        secret: super::errors::Secret,
        place: String,
        cfg: &RedisConfig,
    ) -> Self {
        ScriptStore {
            pool: Pool::new(backend, secret, place, cfg.pool_size, cfg.connect_timeout),
            prefix: cfg.prefix.clone(),
            scripts: Scripts::new(),
            shares: ShareScripts::new(),
            acks: Acks::new(cfg.replicas, cfg.command_timeout),
            holder: cfg.holder.clone(),
            set_nx_get: AtomicBool::new(true),
        }
    }

    /// The store's pool (and through it, its backend).
    pub(crate) fn pool(&self) -> &Pool<B> {
        &self.pool
    }

    /// `<prefix>:<name>`: the key that holds the owner's token.
    fn lock_key(&self, name: &str) -> String {
        lock_key(&self.prefix, name)
    }

    /// The lock key of `name`, for a script that also touches its side
    /// keys; an error where the backend could not run such a script.
    fn script_key(&self, name: &str) -> Result<String> {
        let key = self.lock_key(name);
        B::Conn::check_script_key(&key)?;
        Ok(key)
    }

    /// Raises the fencing counter of `name` to at least the end of the block
    /// starting at `fence`, if `token` still holds the lock (Redlock's second
    /// phase). False if the lock was not held with `token`.
    pub(crate) fn raise_fence(&self, name: &str, token: &str, fence: u64) -> Result<bool> {
        let key = self.script_key(name)?;
        self.pool
            .with_conn(|c| self.scripts.run_raise_fence(c, &key, token, fence))
    }

    /// Extends every lease of `batch` in one pipeline on `c`; one reply each.
    fn extend_on(&self, c: &mut B::Conn, batch: &[Extend<'_>]) -> RedisResult<Vec<i64>> {
        let keys: Vec<String> = batch.iter().map(|e| self.lock_key(e.name)).collect();
        let mut pipe = redis::pipe();
        for (e, key) in batch.iter().zip(&keys) {
            pipe.add_command(match e.kind {
                Kind::Plain | Kind::Fair => self.scripts.extend_cmd(key, e.token, e.ttl),
                kind => self.shares.extend_cmd(key, kind, e.token, e.ttl),
            });
        }
        let replies = match c.query_pipeline(&pipe) {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                // Extending is idempotent: load the script (on a cluster, on
                // every node) and send them all again.
                self.scripts.load_extend(c)?;
                self.shares.load_extend(c)?;
                c.query_pipeline(&pipe)
            }
            other => other,
        };
        match replies {
            Err(e) if B::Conn::retry_one_by_one(&e) => batch
                .iter()
                .zip(&keys)
                .map(|(e, key)| match e.kind {
                    Kind::Plain | Kind::Fair => self.scripts.run_extend(c, key, e.token, e.ttl),
                    kind => self.shares.run_extend(c, key, kind, e.token, e.ttl),
                })
                .collect(),
            other => other,
        }
    }
}

/// The lazy acquire's pipeline: `SET NX PX … GET`, which says what the key
/// held before (`nil`: the lock is now ours), and the key's `PTTL`, in one
/// round trip.
fn lazy_acquire_pipe(key: &str, value: &str, ttl: Duration) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl))
        .arg("GET")
        .cmd("PTTL")
        .arg(key);
    pipe
}

/// What the lazy acquire's pipeline found: the lock taken, or held by
/// another with `pttl` ms left; `None` when the key already held `token`
/// (a retry after a lost reply), which takes a call more to settle.
fn lazy_answer(before: Option<Vec<u8>>, pttl: i64, token: &str) -> Option<Acquired> {
    match before {
        None => Some(Acquired::Yes { fence: LAZY_FENCE }),
        Some(v) if owns(&v, token) => None,
        Some(_) => Some(Acquired::No {
            remaining: u64::try_from(pttl).ok().map(Duration::from_millis),
        }),
    }
}

/// What a command sent on a [`Lent`] connection came to.
pub(crate) enum Split<T> {
    /// The answer the whole operation would have given.
    Done(Result<T>),
    /// Not settled by that command alone: a retried acquire that found its
    /// own token, a script the server has not loaded, a server older than
    /// Redis 7.0. Run the operation the ordinary way.
    Redo,
}

/// The operations Redlock sends to every node from one thread before it
/// reads any reply: each `send_*` writes the command on an idle connection
/// whose read timeout is `timeout` (`None`: none is idle, or the operation
/// is not that one command here), and its `finish_*` reads the replies by
/// a deadline.
impl<B: Backend<Conn = redis::Connection>> ScriptStore<B> {
    /// Sends [`Store::acquire_lazy`]'s pipeline.
    pub(crate) fn send_acquire_lazy(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Option<Result<Lent<B>>> {
        if self.acks.asked() || !self.set_nx_get.load(Ordering::Relaxed) {
            return None;
        }
        let key = match self.script_key(name) {
            Ok(key) => key,
            Err(e) => return Some(Err(e)),
        };
        let mut lent = self.pool.try_lend(timeout)?;
        let packed =
            lazy_acquire_pipe(&key, &lock_value(token, &self.holder), ttl).get_packed_pipeline();
        Some(lent.send(&packed, 2).map(|()| lent))
    }

    /// Reads the replies of [`send_acquire_lazy`](Self::send_acquire_lazy).
    pub(crate) fn finish_acquire_lazy(
        &self,
        lent: &mut Lent<B>,
        token: &str,
        by: Instant,
    ) -> Split<Acquired> {
        let replies = lent.recv(by).and_then(|set| Ok((set, lent.recv(by)?)));
        let parsed = replies.and_then(|(set, pttl)| Ok((value(set)?, value(pttl)?)));
        match parsed {
            Ok((before, pttl)) => {
                lazy_answer(before, pttl, token).map_or(Split::Redo, |a| Split::Done(Ok(a)))
            }
            Err(e) => split_error(e),
        }
    }

    /// Sends [`Store::release`]'s script call.
    pub(crate) fn send_release(
        &self,
        name: &str,
        token: &str,
        timeout: Duration,
    ) -> Option<Result<Lent<B>>> {
        let mut lent = self.pool.try_lend(timeout)?;
        let packed = self
            .scripts
            .release_cmd(&self.lock_key(name), token)
            .get_packed_command();
        Some(lent.send(&packed, 1).map(|()| lent))
    }

    /// Reads the reply of [`send_release`](Self::send_release).
    pub(crate) fn finish_release(&self, lent: &mut Lent<B>, by: Instant) -> Split<bool> {
        match lent.recv(by).and_then(value::<i64>) {
            Ok(n) => Split::Done(Ok(released(n).deleted)),
            Err(e) => split_error(e),
        }
    }
}

/// A reply as `T`; an error if it is not one.
fn value<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    redis::from_redis_value(v).map_err(|e| Error::Redis(format!("unexpected reply: {e}")))
}

/// A split command's error: one the server answered (`NOSCRIPT`, a syntax
/// error of an old server, a key of the wrong type) is left to the
/// ordinary way, which handles or explains it; any other is the answer.
fn split_error<T>(e: Error) -> Split<T> {
    match e {
        Error::Redis(_) => Split::Redo,
        e => Split::Done(Err(e)),
    }
}

impl<B: Backend> Store for ScriptStore<B> {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let key = self.script_key(name)?;
        let value = lock_value(token, &self.holder);
        let replied = self.pool.with_conn(|c| {
            let reply = self.scripts.run_acquire(c, &key, token, &value, ttl)?;
            let acked = self.acks.wait_if(reply_code_is(&reply, 1), c, Some(&key))?;
            Ok((reply, acked))
        });
        let (reply, acked) = replied.map_err(|e| shares::wrong_type(e, name, Kind::Plain))?;
        let got = parse_acquire(reply)?;
        if let Err(e) = self.acks.check(acked, "lock (it was given back)") {
            // Not durable enough: give it back rather than hold a lock a
            // failover could hand to someone else.
            let _ = self.release(name, token);
            return Err(e);
        }
        Ok(got)
    }

    /// One `SET NX PX … GET` and a `PTTL` instead of the acquire script
    /// (a tenth of its server time): the fence is given by the fence
    /// script when first read. A key that already holds our token (a retry
    /// after a lost reply) has its lease restarted; a server older than
    /// Redis 7.0 gets the acquire script from then on.
    fn acquire_lazy(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        if !self.set_nx_get.load(Ordering::Relaxed) {
            return self.acquire(name, token, ttl);
        }
        let key = self.script_key(name)?;
        let value = lock_value(token, &self.holder);
        let replied = self.pool.with_conn(|c| {
            let (before, pttl): (Option<Vec<u8>>, i64) =
                c.query_pipeline(&lazy_acquire_pipe(&key, &value, ttl))?;
            let acked = self.acks.wait_if(before.is_none(), c, Some(&key))?;
            Ok((before, pttl, acked))
        });
        let (before, pttl, acked) = match replied {
            Ok(r) => r,
            Err(Error::Redis(m)) if m.contains("syntax error") => {
                log::debug!(
                    "distlock: {} refuses SET NX GET; acquiring with the script",
                    self.pool.place()
                );
                self.set_nx_get.store(false, Ordering::Relaxed);
                return self.acquire(name, token, ttl);
            }
            Err(e) => return Err(shares::wrong_type(e, name, Kind::Plain)),
        };
        match lazy_answer(before, pttl, token) {
            Some(Acquired::Yes { fence }) => {
                if let Err(e) = self.acks.check(acked, "lock (it was given back)") {
                    let _ = self.release(name, token);
                    return Err(e);
                }
                Ok(Acquired::Yes { fence })
            }
            Some(no) => Ok(no),
            // Ours from a try whose reply was lost (also lazy: the same
            // call never switches): restart the lease if it is still ours.
            // The acquire script's own retry branch would give the fence of
            // the counter's last block, another hold's.
            None => {
                let extended = self
                    .pool
                    .with_conn(|c| self.scripts.run_extend(c, &key, token, ttl))?;
                Ok(if extended == 1 {
                    Acquired::Yes { fence: LAZY_FENCE }
                } else {
                    Acquired::No { remaining: None }
                })
            }
        }
    }

    fn assign_fence(&self, name: &str, token: &str) -> Result<Option<u64>> {
        let key = self.script_key(name)?;
        let (fence, acked) = self.pool.with_conn(|c| {
            let fence = self.scripts.run_fence(c, &key, token)?;
            let acked = self.acks.wait_if(fence.is_some(), c, Some(&key))?;
            Ok((fence, acked))
        })?;
        self.acks.check(acked, "fence")?;
        Ok(fence)
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        Ok(self.release_heard(name, token)?.deleted)
    }

    fn release_heard(&self, name: &str, token: &str) -> Result<Released> {
        let key = self.lock_key(name);
        self.pool
            .with_conn(|c| self.scripts.run_release(c, &key, token))
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let key = self.script_key(name)?;
        let (reply, acked) = self.pool.with_conn(|c| {
            let waiting = c.waiters(&key)?;
            let reply = self.scripts.run_pass_on(c, &key, token, ttl, waiting)?;
            let acked = self.acks.wait_if(reply_code_is(&reply, 2), c, Some(&key))?;
            Ok((reply, acked))
        })?;
        // The caller releases the lock on an error.
        self.acks.check(acked, "kept lease")?;
        parse_pass_on(reply)
    }

    /// One `PUBLISH` on the lock's want channel (nobody need listen),
    /// pipelined with the poke when there is one.
    fn announce(&self, name: &str, poke: Option<&str>) -> Result<()> {
        let channel = want_channel(&self.lock_key(name));
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH").arg(&channel).arg("want").ignore();
        if let Some(control) = poke {
            pipe.add_command(poke_cmd(control)).ignore();
        }
        self.pool.with_conn(|c| c.query_pipeline::<()>(&pipe))
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (replies, acked) = self.pool.with_conn(|c| {
            let replies = self.extend_on(c, batch)?;
            let acked = self.acks.wait_if(replies.contains(&1), c, None)?;
            Ok((replies, acked))
        })?;
        // On an error the leases stay as they were acknowledged before: the
        // renewal thread tries again, and reports them lost if their
        // deadlines pass first.
        self.acks.check(acked, "renewal")?;
        parse_extend(replies, batch.len())
    }

    fn acquire_share(
        &self,
        name: &str,
        kind: Kind,
        token: &str,
        ttl: Duration,
    ) -> Result<Acquired> {
        let key = self.script_key(name)?;
        let value = lock_value(token, &self.holder);
        let replied = self.pool.with_conn(|c| {
            let reply = match kind {
                Kind::Fair => self.shares.run_fair_acquire(c, &key, token, &value, ttl)?,
                _ => self.shares.run_acquire(c, &key, kind, token, ttl)?,
            };
            let acked = self.acks.wait_if(reply_code_is(&reply, 1), c, Some(&key))?;
            Ok((reply, acked))
        });
        let (reply, acked) = replied.map_err(|e| shares::wrong_type(e, name, kind))?;
        let got = match kind {
            Kind::Fair => parse_acquire(reply)?,
            _ => shares::parse_acquire(reply, name, kind)?,
        };
        if let Err(e) = self.acks.check(acked, "share (it was given back)") {
            let _ = self.release_share(name, kind, token);
            return Err(e);
        }
        Ok(got)
    }

    fn release_share(&self, name: &str, kind: Kind, token: &str) -> Result<bool> {
        let key = self.script_key(name)?;
        self.pool
            .with_conn(|c| match kind {
                Kind::Fair => self.shares.run_fair_release(c, &key, token),
                _ => self.shares.run_release(c, &key, kind, token),
            })
            .map_err(|e| shares::wrong_type(e, name, kind))
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        let (backend, secret) = (self.pool.opener(), self.pool.secret());
        let outcome = backend
            .feed_connection()
            .map_err(|e| secret.to_error(&e))
            .and_then(|mut conn| feed_on(&mut conn, &self.prefix, control, handler, secret));
        if outcome.is_err() {
            backend.feed_failed();
        }
        outcome
    }

    /// Reaches the feed whichever node it listens on (in a cluster, every
    /// node hears every PUBLISH).
    fn poke(&self, control: &str) -> Result<()> {
        self.pool.with_conn(|c| publish_poke(c, control))
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let key = value_key(&self.lock_key(name));
        self.pool
            .with_conn(|c| redis::cmd("GET").arg(&key).query(c))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let key = value_key(&self.lock_key(name));
        self.pool.with_conn(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query(c)
        })
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let key = self.lock_key(name);
        // All these keys share a slot: in a cluster one node answers.
        let plain = self.pool.with_conn(|c| {
            c.query_pipeline(
                redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .cmd("GET")
                    .arg(fence_key(&key)),
            )
        });
        match plain {
            Ok((value, pttl, fence)) => Ok(lock_info(key, value, pttl, fence)),
            // A read-write lock's or a semaphore's holder set.
            Err(Error::Redis(m)) if m.contains("WRONGTYPE") => {
                self.pool.with_conn(|c| shares::inspect(c, &key))
            }
            Err(e) => Err(e),
        }
    }

    fn held(&self, pattern: &str, limit: usize) -> Result<(Vec<LockInfo>, bool)> {
        let scanned = self.pool.with_conn(|c| c.scan_keys(pattern, limit))?;
        let Some((keys, truncated)) = scanned else {
            return Err(Error::invalid(format!(
                "listing held locks is not supported with {} (a cluster's keys are on \
                 several nodes)",
                self.pool.place()
            )));
        };
        // Plain locks are strings; the holder sets of read-write locks and
        // semaphores are sorted sets, described share by share.
        let mut types = redis::pipe();
        for key in &keys {
            types.cmd("TYPE").arg(key);
        }
        let kinds: Vec<String> = if keys.is_empty() {
            Vec::new()
        } else {
            self.pool.with_conn(|c| c.query_pipeline(&types))?
        };
        let (mut plain, mut sets) = (Vec::new(), Vec::new());
        for (key, kind) in keys.into_iter().zip(kinds) {
            match kind.as_str() {
                "string" => plain.push(key),
                "zset" => sets.push(key),
                _ => {}
            }
        }
        let mut held = Vec::new();
        if !plain.is_empty() {
            // One pipeline for every key's holder, lease and fence.
            let mut pipe = redis::pipe();
            for key in &plain {
                pipe.cmd("GET")
                    .arg(key)
                    .cmd("PTTL")
                    .arg(key)
                    .cmd("GET")
                    .arg(fence_key(key));
            }
            let answers: Vec<(Option<String>, i64, Option<u64>)> =
                self.pool.with_conn(|c| c.query_pipeline(&pipe))?;
            held.extend(
                plain
                    .into_iter()
                    .zip(answers)
                    .map(|(key, (token, pttl, fence))| lock_info(key, token, pttl, fence)),
            );
        }
        for key in sets {
            held.push(self.pool.with_conn(|c| shares::inspect(c, &key))?);
        }
        // Released or expired since the scan.
        held.retain(|info| info.token.is_some() || !info.shares.is_empty());
        Ok((held, truncated))
    }

    fn pool_state(&self) -> (u32, u32) {
        self.pool.state()
    }

    fn describe(&self) -> &str {
        self.pool.place()
    }
}
