//! Read-write locks and counting semaphores on Redis: the holder set, the
//! writers' queue, their scripts (`src/lua/share_*.lua`) and what their
//! replies mean.
//!
//! # Key layout
//!
//! For the name `<name>` under the prefix `<prefix>` (`K` = `<prefix>:<name>`,
//! the key a plain lock of that name would use, so the kinds exclude each
//! other while live):
//! - `K` is a sorted set of holders: one member per share, `r:<token>` for a
//!   reader, `w:<token>` for the writer, `p:<token>` for a semaphore permit;
//!   its score is that share's lease deadline in server milliseconds (from
//!   `TIME`). The key's own TTL is at least the latest deadline, so a set
//!   nobody renews disappears;
//! - `{K}:fence` (or `{tag}:fence:K`), the fencing counter, shared with the
//!   plain lock scheme: fence = max(counter + 1, server µs), a block of
//!   [`FENCE_BLOCK`] at a time;
//! - `{K}:writers` (or `{tag}:writers:K`), a sorted set of waiting writers
//!   (member = token, score = until when the place is kept).
//!
//! All three share `K`'s cluster slot (see [`keys`](super::keys)), so each
//! operation is one script on one node: one round trip.
//!
//! # The rules the scripts keep
//!
//! - Every script first removes the shares whose deadline has passed: a
//!   crashed holder frees its own share after its lease, never another's.
//! - Readers share; a writer excludes everybody (so while a writer holds,
//!   it is the set's only member).
//! - Writer preference: a writer that finds the set busy takes a place in
//!   `writers`, kept for the wait ahead plus two of its leases and renewed
//!   by each of its attempts; while any place is kept, new readers wait.
//!   A writer that gives up withdraws its place; a crashed writer's place
//!   runs out. Among writers, whoever asks first once the set is empty wins.
//! - A semaphore grants a permit while the set has fewer members than the
//!   permit count *the acquirer passes*: a new count applies to new
//!   acquisitions at once, existing holders keep their permits, and with a
//!   lowered count nobody new gets one until the holders are fewer.
//! - Releases publish on `K` (the plain lock's channel, heard by the
//!   notifier) when they may let a waiter in: a writer's release, a
//!   permit's, the last reader's, and the withdrawal of the last writer's
//!   place.
//! - The member's role letter tells the kinds apart: a read-write lock on
//!   a live semaphore (or the reverse) is refused, and a plain lock on
//!   either (or either on a plain lock) meets Redis' `WRONGTYPE`, mapped to
//!   a message naming the conflict.
//!
//! The holder description that plain locks write after their token is not
//! kept for shares (members carry only the token).

use super::keys::{fence_key, line_key, places_key, writers_key};
use super::{millis, Acquired, Kind, LockInfo, Share, ShareKind, FENCE_BLOCK};
use crate::error::{Error, Result};
use redis::{ConnectionLike, RedisError, Value};
use std::time::Duration;

/// Describes the holder set at `key` (a read-write lock's or a
/// semaphore's), in one round trip: every live share with its remaining
/// lease in server time, the writers waiting and the fence counter.
pub(crate) fn inspect(c: &mut dyn ConnectionLike, key: &str) -> redis::RedisResult<LockInfo> {
    type Reply = ((u64, u64), Vec<(String, f64)>, usize, Option<u64>);
    let ((secs, micros), members, writers, fence): Reply = redis::pipe()
        .cmd("TIME")
        .cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .cmd("ZCARD")
        .arg(writers_key(key))
        .cmd("GET")
        .arg(fence_key(key))
        .query(c)?;
    let now = secs * 1000 + micros / 1000;
    let shares: Vec<Share> = members
        .into_iter()
        .filter_map(|(member, deadline)| {
            let (role, token) = member.split_once(':')?;
            let kind = match role {
                "r" => ShareKind::Read,
                "w" => ShareKind::Write,
                _ => ShareKind::Permit,
            };
            // Scores are whole server milliseconds.
            let left = (deadline as u64).checked_sub(now).filter(|ms| *ms > 0)?;
            Some(Share {
                kind,
                token: token.to_string(),
                remaining: Duration::from_millis(left),
            })
        })
        .collect();
    Ok(LockInfo {
        key: key.to_string(),
        token: None,
        remaining: shares.iter().map(|s| s.remaining).max(),
        fence,
        holder: None,
        shares,
        writers_waiting: writers,
    })
}

/// The refusal of a store without shares.
pub(crate) fn unsupported(kind: Kind, place: &str) -> Error {
    let what = match kind {
        Kind::Permit(_) => "semaphores are",
        Kind::Fair => "fair locks are",
        _ => "read-write locks are",
    };
    Error::invalid(format!("{what} not supported with {place}"))
}

/// The role letter of `kind` in the holder set.
fn role(kind: Kind) -> &'static str {
    match kind {
        Kind::Read => "r",
        Kind::Write => "w",
        // Never sent for plain and fair locks: they have scripts of their own.
        Kind::Plain | Kind::Fair | Kind::Permit(_) => "p",
    }
}

/// The family of lock that `kind` belongs to, in messages.
fn family(kind: Kind) -> &'static str {
    match kind {
        Kind::Plain => "a plain lock",
        Kind::Fair => "a fair lock",
        Kind::Read | Kind::Write => "a read-write lock",
        Kind::Permit(_) => "a semaphore",
    }
}

/// `e` with Redis' `WRONGTYPE` (the name's key is of another type: a plain
/// lock's string, or the holder set of a read-write lock or semaphore)
/// turned into a message that names the conflict; other errors unchanged.
pub(crate) fn wrong_type(e: Error, name: &str, kind: Kind) -> Error {
    match &e {
        Error::Redis(m) if m.contains("WRONGTYPE") => {
            let other = match kind {
                Kind::Plain | Kind::Fair => "a read-write lock or a semaphore",
                _ => "a plain lock",
            };
            Error::invalid(format!(
                "the lock name {name:?} is in use by {other}; {} cannot share its name",
                family(kind)
            ))
        }
        _ => e,
    }
}

/// The scripts of read-write locks and semaphores, each sent by SHA.
pub(crate) struct ShareScripts {
    /// `share_acquire.lua`.
    acquire: redis::Script,
    /// `share_release.lua`.
    release: redis::Script,
    /// `share_extend.lua`.
    extend: redis::Script,
    /// `fair_acquire.lua`.
    fair_acquire: redis::Script,
    /// `fair_release.lua`.
    fair_release: redis::Script,
}

impl ShareScripts {
    /// The scripts, hashed and ready to send.
    pub(crate) fn new() -> Self {
        ShareScripts {
            acquire: redis::Script::new(include_str!("../lua/share_acquire.lua")),
            release: redis::Script::new(include_str!("../lua/share_release.lua")),
            extend: redis::Script::new(include_str!("../lua/share_extend.lua")),
            fair_acquire: redis::Script::new(concat!(
                include_str!("../lua/owns.lua"),
                include_str!("../lua/fair_acquire.lua")
            )),
            fair_release: redis::Script::new(concat!(
                include_str!("../lua/owns.lua"),
                include_str!("../lua/fair_release.lua")
            )),
        }
    }

    /// Runs the fair lock's acquire script for the lock key `key`; `value`
    /// is what it writes (token and holder description).
    pub(crate) fn run_fair_acquire(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
        value: &str,
        ttl: Duration,
    ) -> std::result::Result<Value, RedisError> {
        self.fair_acquire
            .key(key)
            .key(fence_key(key))
            .key(line_key(key))
            .key(places_key(key))
            .arg(token)
            .arg(millis(ttl))
            .arg(FENCE_BLOCK)
            .arg(value)
            .invoke(c)
    }

    /// Runs the fair lock's release script (which also gives up a place in
    /// the line); true if the lock was held with `token`.
    pub(crate) fn run_fair_release(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
    ) -> std::result::Result<bool, RedisError> {
        let n: i64 = self
            .fair_release
            .key(key)
            .key(line_key(key))
            .key(places_key(key))
            .arg(token)
            .invoke(c)?;
        Ok(n == 1)
    }

    /// Runs the acquire script for the holder set `key`.
    pub(crate) fn run_acquire(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        kind: Kind,
        token: &str,
        ttl: Duration,
    ) -> std::result::Result<Value, RedisError> {
        let permits = match kind {
            Kind::Permit(n) => n,
            _ => 0,
        };
        self.acquire
            .key(key)
            .key(fence_key(key))
            .key(writers_key(key))
            .arg(role(kind))
            .arg(token)
            .arg(millis(ttl))
            .arg(FENCE_BLOCK)
            .arg(permits)
            .invoke(c)
    }

    /// Runs the release script; true if the share was held.
    pub(crate) fn run_release(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        kind: Kind,
        token: &str,
    ) -> std::result::Result<bool, RedisError> {
        let n: i64 = self
            .release
            .key(key)
            .key(writers_key(key))
            .arg(role(kind))
            .arg(token)
            .invoke(c)?;
        Ok(n == 1)
    }

    /// One extend call by SHA, for the renewal pipeline.
    pub(crate) fn extend_cmd(
        &self,
        key: &str,
        kind: Kind,
        token: &str,
        ttl: Duration,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.extend.get_hash())
            .arg(1)
            .arg(key)
            .arg(role(kind))
            .arg(token)
            .arg(millis(ttl));
        cmd
    }

    /// Loads the extend script (after a pipeline met NOSCRIPT).
    pub(crate) fn load_extend(
        &self,
        c: &mut dyn ConnectionLike,
    ) -> std::result::Result<(), RedisError> {
        self.extend.prepare_invoke().load(c).map(drop)
    }

    /// Runs the extend script on its own; 1 if extended.
    pub(crate) fn run_extend(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        kind: Kind,
        token: &str,
        ttl: Duration,
    ) -> std::result::Result<i64, RedisError> {
        self.extend
            .key(key)
            .arg(role(kind))
            .arg(token)
            .arg(millis(ttl))
            .invoke(c)
    }
}

/// The acquire script's reply for `kind` on `name`: `{1, fence}`,
/// `{0, ms}`, or `{-1, what}` (the name is another kind's).
pub(crate) fn parse_acquire(v: Value, name: &str, kind: Kind) -> Result<Acquired> {
    let unexpected = || Error::Redis(format!("unexpected reply to acquire: {v:?}"));
    let Value::Array(items) = &v else {
        return Err(unexpected());
    };
    match items.as_slice() {
        [Value::Int(1), Value::BulkString(fence)] => std::str::from_utf8(fence)
            .ok()
            .and_then(|f| f.parse().ok())
            .map(|fence| Acquired::Yes { fence })
            .ok_or_else(unexpected),
        [Value::Int(0), Value::Int(ms)] => Ok(Acquired::No {
            remaining: u64::try_from(*ms).ok().map(Duration::from_millis),
        }),
        [Value::Int(-1), Value::BulkString(what)] => Err(Error::invalid(format!(
            "the lock name {name:?} is in use by a {}; {} cannot share its name",
            String::from_utf8_lossy(what),
            family(kind)
        ))),
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_conflicts_name_both_kinds() {
        let yes = Value::Array(vec![Value::Int(1), Value::BulkString(b"42".to_vec())]);
        assert_eq!(
            parse_acquire(yes, "n", Kind::Read).unwrap(),
            Acquired::Yes { fence: 42 }
        );
        let no = Value::Array(vec![Value::Int(0), Value::Int(-1)]);
        assert_eq!(
            parse_acquire(no, "n", Kind::Write).unwrap(),
            Acquired::No { remaining: None }
        );
        let other = Value::Array(vec![
            Value::Int(-1),
            Value::BulkString(b"semaphore".to_vec()),
        ]);
        let e = parse_acquire(other, "n", Kind::Read)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in use by a semaphore") && e.contains("a read-write lock cannot"),
            "{e}"
        );
        let wt = wrong_type(
            Error::Redis("WRONGTYPE Operation against a key".into()),
            "n",
            Kind::Permit(3),
        );
        assert!(
            wt.to_string()
                .contains("in use by a plain lock; a semaphore cannot"),
            "{wt}"
        );
        let kept = wrong_type(Error::Redis("ERR other".into()), "n", Kind::Plain);
        assert_eq!(kept, Error::Redis("ERR other".into()));
        assert!(unsupported(Kind::Permit(1), "memcached at x")
            .to_string()
            .contains("semaphores are not supported with memcached at x"));
    }
}
