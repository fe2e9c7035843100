//! What differs between one Redis node and a Redis Cluster when a store
//! sends a command: which node it goes to, who counts the waiters, how a
//! batch travels. The single-node connection and the cluster connection
//! each implement [`Route`]; the store operations are written once over it
//! (see [`ops`](super::ops)).

use crate::error::Result;
use redis::{Cmd, ConnectionLike, FromRedisValue, Pipeline, RedisError, RedisResult};
use std::time::Duration;

/// A connection the lock commands can be sent on.
pub(crate) trait Route: ConnectionLike + Send + 'static {
    /// Refuses a lock key that the scripts, which also touch its side keys,
    /// could not be run on. Every key will do unless overridden.
    fn check_script_key(_key: &str) -> Result<()> {
        Ok(())
    }

    /// Sets how long a read waits for its reply (stretched for a `WAIT`).
    fn set_reply_timeout(&mut self, timeout: Duration) -> RedisResult<()>;

    /// Sends `wait` (a `WAIT`) to the node that just wrote `key`; with
    /// `None`, to every node that may have taken writes, and answers the
    /// smallest count.
    fn route_wait(&mut self, wait: &Cmd, key: Option<&str>) -> RedisResult<i64>;

    /// How many clients listen for releases of `key`, when the pass-on
    /// script cannot count them on its own node; `None` when it can.
    fn waiters(&mut self, key: &str) -> RedisResult<Option<i64>>;

    /// Sends the commands of `pipe` together and reads all their replies.
    fn query_pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T>;

    /// Up to about `limit` keys matching the glob `pattern`, found with
    /// `SCAN` (never `KEYS`, which blocks a busy server), and whether the
    /// scan was cut short at the limit; `None` where this connection cannot
    /// scan every key (a cluster spreads them over several nodes).
    fn scan_keys(
        &mut self,
        _pattern: &str,
        _limit: usize,
    ) -> RedisResult<Option<(Vec<String>, bool)>> {
        Ok(None)
    }

    /// Whether a pipeline that failed with `e` gets through when its
    /// commands are sent one at a time. Never, unless overridden.
    fn retry_one_by_one(_e: &RedisError) -> bool {
        false
    }
}
