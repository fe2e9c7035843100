//! The Lua scripts (in `src/lua/`) and what their replies mean: how each is
//! called, and how each reply turns into the [`Store`](super::Store)'s
//! answers.

use super::holder::split_value;
use super::keys::fence_key;
use super::LockInfo;
use super::Released;
use super::{millis, Acquired, PassOn, FENCE_BLOCK};
use crate::error::{Error, Result};
use crate::mutant::{self, Mutant};
use redis::{ConnectionLike, RedisError, Value};
use std::time::Duration;

/// The text of a script of `src/lua/` with `owns.lua` (the ownership
/// compare) before it.
macro_rules! with_owns {
    ($name:literal) => {
        concat!(
            include_str!("../lua/owns.lua"),
            include_str!(concat!("../lua/", $name, ".lua"))
        )
    };
}

/// The lock scripts, each sent by SHA and loaded again on NOSCRIPT.
pub(crate) struct Scripts {
    /// `acquire.lua`: take the lock or report the holder's lease.
    acquire: redis::Script,
    /// `release.lua`: delete the lock if ours, and tell the waiters.
    release: redis::Script,
    /// `extend.lua`: restart the lease if ours.
    extend: redis::Script,
    /// `pass_on.lua`: release to waiting clients, or keep with new fences.
    pass_on: redis::Script,
    /// `raise_fence.lua`: Redlock's second phase.
    raise_fence: redis::Script,
    /// `fence.lua`: the fence of a hold taken without one.
    fence: redis::Script,
}

impl Scripts {
    /// The scripts, hashed and ready to send.
    pub(crate) fn new() -> Self {
        let acquire = mutant::script(
            with_owns!("acquire"),
            Mutant::FenceResets,
            "math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)",
            "(tonumber(redis.call('GET', KEYS[2])) or 0) + 1",
        );
        let fence = mutant::script(
            with_owns!("fence"),
            Mutant::FenceResets,
            "math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)",
            "(tonumber(redis.call('GET', KEYS[2])) or 0) + 1",
        );
        let release = mutant::script(
            with_owns!("release"),
            Mutant::ReleaseNoCompare,
            "if owns(redis.call('GET', KEYS[1]), ARGV[1]) then",
            "if redis.call('GET', KEYS[1]) then",
        );
        Scripts {
            acquire: redis::Script::new(&acquire),
            release: redis::Script::new(&release),
            extend: redis::Script::new(with_owns!("extend")),
            pass_on: redis::Script::new(with_owns!("pass_on")),
            raise_fence: redis::Script::new(with_owns!("raise_fence")),
            fence: redis::Script::new(&fence),
        }
    }

    /// Runs the acquire script for the lock key `key`: `value` is what it
    /// writes (the token and the holder's description).
    pub(crate) fn run_acquire(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
        value: &str,
        ttl: Duration,
    ) -> std::result::Result<Value, RedisError> {
        self.acquire
            .key(key)
            .key(fence_key(key))
            .arg(token)
            .arg(millis(ttl))
            .arg(FENCE_BLOCK)
            .arg(value)
            .invoke(c)
    }

    /// Runs the fence script: a fresh block's first fence for the hold of
    /// `token` on `key`, or `None` if the lock is not held with it.
    pub(crate) fn run_fence(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
    ) -> std::result::Result<Option<u64>, RedisError> {
        let v: Value = self
            .fence
            .key(key)
            .key(fence_key(key))
            .arg(token)
            .arg(FENCE_BLOCK)
            .invoke(c)?;
        let fence = match &v {
            Value::Nil => return Ok(None),
            Value::BulkString(text) => parse_fence(text),
            _ => None,
        };
        fence.map(Some).ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected reply to the fence script",
                format!("{v:?}"),
            ))
        })
    }

    /// Runs the release script; true if it deleted the key.
    pub(crate) fn run_release(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
    ) -> std::result::Result<Released, RedisError> {
        let n: i64 = self.release.key(key).arg(token).invoke(c)?;
        Ok(released(n))
    }

    /// One release call by SHA, to send without waiting for its reply
    /// (which cannot load a missing script: NOSCRIPT comes back instead).
    pub(crate) fn release_cmd(&self, key: &str, token: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.release.get_hash()).arg(1).arg(key).arg(token);
        cmd
    }

    /// Runs the pass-on script; `waiting` overrides the script's own count
    /// of subscribers (a cluster counts them over all nodes).
    pub(crate) fn run_pass_on(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
        ttl: Duration,
        waiting: Option<i64>,
    ) -> std::result::Result<Value, RedisError> {
        let mut call = self.pass_on.prepare_invoke();
        call.key(key)
            .key(fence_key(key))
            .arg(token)
            .arg(millis(ttl))
            .arg(FENCE_BLOCK);
        if let Some(n) = waiting {
            call.arg(n);
        }
        call.invoke(c)
    }

    /// Runs the raise-fence script (Redlock's second phase): raises the
    /// counter of `key` to the end of the block starting at `fence` if
    /// `token` still holds the lock; false if it does not.
    pub(crate) fn run_raise_fence(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        token: &str,
        fence: u64,
    ) -> std::result::Result<bool, RedisError> {
        let n: i64 = self
            .raise_fence
            .key(key)
            .key(fence_key(key))
            .arg(token)
            .arg(fence + FENCE_BLOCK - 1)
            .invoke(c)?;
        Ok(n == 1)
    }

    /// One extend call by SHA, for a pipeline (which cannot load a missing
    /// script: see [`load_extend`](Self::load_extend)).
    pub(crate) fn extend_cmd(&self, key: &str, token: &str, ttl: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.extend.get_hash())
            .arg(1)
            .arg(key)
            .arg(token)
            .arg(millis(ttl));
        cmd
    }

    /// Loads the extend script into the server (on a cluster: every node),
    /// after a pipeline met NOSCRIPT.
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
        token: &str,
        ttl: Duration,
    ) -> std::result::Result<i64, RedisError> {
        self.extend.key(key).arg(token).arg(millis(ttl)).invoke(c)
    }
}

/// Whether a script reply is an array whose first element is `code`.
pub(crate) fn reply_code_is(v: &Value, code: i64) -> bool {
    matches!(v, Value::Array(items) if matches!(items.first(), Some(Value::Int(c)) if *c == code))
}

/// The release script's reply: 0 (not ours), 1 (deleted) or 2 (deleted,
/// and someone listened).
pub(crate) fn released(n: i64) -> Released {
    Released {
        deleted: n >= 1,
        heard: n == 2,
    }
}

/// The error for a reply none of the scripts gives.
fn unexpected(what: &str, v: &Value) -> Error {
    Error::Redis(format!("unexpected reply to {what}: {v:?}"))
}

/// A fence as the scripts send it: decimal text (Lua numbers are doubles).
fn parse_fence(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The acquire script's reply: `{1, fence}` or `{0, pttl}`.
pub(crate) fn parse_acquire(v: Value) -> Result<Acquired> {
    let Value::Array(items) = &v else {
        return Err(unexpected("acquire", &v));
    };
    match items.as_slice() {
        [Value::Int(1), Value::BulkString(fence)] => parse_fence(fence)
            .map(|fence| Acquired::Yes { fence })
            .ok_or_else(|| unexpected("acquire", &v)),
        [Value::Int(0), Value::Int(pttl)] => Ok(Acquired::No {
            remaining: u64::try_from(*pttl).ok().map(Duration::from_millis),
        }),
        _ => Err(unexpected("acquire", &v)),
    }
}

/// The pass-on script's reply: `{0}`, `{1}` or `{2, fence}`.
pub(crate) fn parse_pass_on(v: Value) -> Result<PassOn> {
    let Value::Array(items) = &v else {
        return Err(unexpected("pass-on", &v));
    };
    match items.as_slice() {
        [Value::Int(0)] => Ok(PassOn::NotOwner),
        [Value::Int(1)] => Ok(PassOn::Released),
        [Value::Int(2), Value::BulkString(fence)] => parse_fence(fence)
            .map(|fence| PassOn::Kept { fence })
            .ok_or_else(|| unexpected("pass-on", &v)),
        _ => Err(unexpected("pass-on", &v)),
    }
}

/// The extend scripts' replies for a batch of `asked` leases: one answer
/// each, true if extended.
pub(crate) fn parse_extend(replies: Vec<i64>, asked: usize) -> Result<Vec<bool>> {
    if replies.len() != asked {
        return Err(Error::Redis(format!(
            "extend pipeline returned {} replies for {asked} leases",
            replies.len()
        )));
    }
    Ok(replies.into_iter().map(|n| n == 1).collect())
}

/// What `GET key` (the lock's `value`), `PTTL key` and `GET <fence key>`
/// say about a lock.
pub(crate) fn lock_info(
    key: String,
    value: Option<String>,
    pttl: i64,
    fence: Option<u64>,
) -> LockInfo {
    let (token, holder) = match value.as_deref().map(split_value) {
        Some((token, holder)) => (Some(token), holder),
        None => (None, None),
    };
    LockInfo {
        key,
        remaining: token
            .as_ref()
            .and_then(|_| u64::try_from(pttl).ok())
            .map(Duration::from_millis),
        token,
        fence,
        holder,
        shares: Vec::new(),
        writers_waiting: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_replies_parse() {
        let yes = Value::Array(vec![Value::Int(1), Value::BulkString(b"17".to_vec())]);
        assert_eq!(parse_acquire(yes).unwrap(), Acquired::Yes { fence: 17 });
        let no = Value::Array(vec![Value::Int(0), Value::Int(250)]);
        assert_eq!(
            parse_acquire(no).unwrap(),
            Acquired::No {
                remaining: Some(Duration::from_millis(250))
            }
        );
        let no_ttl = Value::Array(vec![Value::Int(0), Value::Int(-1)]);
        assert_eq!(
            parse_acquire(no_ttl).unwrap(),
            Acquired::No { remaining: None }
        );
        assert!(matches!(parse_acquire(Value::Nil), Err(Error::Redis(_))));
    }

    #[test]
    fn pass_on_and_extend_replies_parse() {
        let kept = Value::Array(vec![Value::Int(2), Value::BulkString(b"99".to_vec())]);
        assert_eq!(parse_pass_on(kept).unwrap(), PassOn::Kept { fence: 99 });
        let gone = Value::Array(vec![Value::Int(1)]);
        assert_eq!(parse_pass_on(gone).unwrap(), PassOn::Released);
        let bad = Value::Array(vec![Value::Int(2), Value::BulkString(b"x".to_vec())]);
        assert!(matches!(parse_pass_on(bad), Err(Error::Redis(_))));
        assert_eq!(parse_extend(vec![1, 0], 2).unwrap(), [true, false]);
        assert!(matches!(parse_extend(vec![1], 2), Err(Error::Redis(_))));
    }
}
