//! Replica acknowledgement: after a write that takes or extends a lease,
//! `WAIT` on the connection that wrote, and an error when too few replicas
//! confirm.

use super::millis;
use super::route::Route;
use crate::error::{Error, Result};
use redis::RedisResult;
use std::time::Duration;

/// Replica acknowledgement: after a write that takes or extends a lease,
/// `WAIT count timeout` on the same connection; fewer acknowledgements make
/// the operation fail (an acquisition is given back first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replicas {
    /// How many replicas must confirm.
    pub count: u32,
    /// How long the server waits for them (at least 1 ms: `WAIT` with 0
    /// would wait forever).
    pub timeout: Duration,
}

impl Replicas {
    /// The timeout as `WAIT` takes it: whole milliseconds, at least 1.
    fn wait_millis(self) -> u64 {
        millis(self.timeout).max(1)
    }
}

/// What a store asks of its replicas, and its usual reply timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acks {
    /// `None`: no acknowledgement asked for.
    replicas: Option<Replicas>,
    /// The read timeout to restore after a `WAIT`.
    command_timeout: Duration,
}

impl Acks {
    /// Acknowledgement by `replicas` (if any) on connections whose reads
    /// time out after `command_timeout`.
    pub(crate) fn new(replicas: Option<Replicas>, command_timeout: Duration) -> Self {
        Acks {
            replicas,
            command_timeout,
        }
    }

    /// Whether writes wait for replicas.
    pub(crate) fn asked(&self) -> bool {
        self.replicas.is_some()
    }

    /// When acknowledgement is asked for and the write just took or kept a
    /// lease (`took`), asks the node that wrote `key` (`None`: every node)
    /// how many replicas have the write; `None` when not asked.
    pub(crate) fn wait_if<C: Route>(
        &self,
        took: bool,
        c: &mut C,
        key: Option<&str>,
    ) -> RedisResult<Option<u32>> {
        match self.replicas {
            Some(r) if took => self.wait(c, key, r).map(Some),
            _ => Ok(None),
        }
    }

    /// `WAIT`, with the read timeout stretched for as long as it may take.
    fn wait<C: Route>(&self, c: &mut C, key: Option<&str>, r: Replicas) -> RedisResult<u32> {
        c.set_reply_timeout(self.command_timeout + r.timeout)?;
        let mut wait = redis::cmd("WAIT");
        wait.arg(r.count).arg(r.wait_millis());
        let acked = c.route_wait(&wait, key);
        c.set_reply_timeout(self.command_timeout)?;
        Ok(u32::try_from(acked?).unwrap_or(0))
    }

    /// An error when fewer replicas acknowledged `what` than were asked for
    /// (`acked` is the answer of [`wait_if`](Self::wait_if)): a connection
    /// error, since it is worth retrying once the replicas catch up.
    pub(crate) fn check(&self, acked: Option<u32>, what: &str) -> Result<()> {
        match (self.replicas, acked) {
            (Some(r), Some(acked)) if acked < r.count => Err(Error::Connection(format!(
                "only {acked} of {} replica(s) acknowledged the {what} within {} ms",
                r.count,
                r.wait_millis()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_acknowledgements_are_a_connection_error() {
        let r = Replicas {
            count: 2,
            timeout: Duration::ZERO,
        };
        let acks = Acks::new(Some(r), Duration::from_secs(1));
        assert!(acks.check(Some(2), "lock").is_ok());
        assert!(acks.check(None, "lock").is_ok());
        match acks.check(Some(1), "renewal") {
            Err(Error::Connection(m)) => {
                assert_eq!(
                    m,
                    "only 1 of 2 replica(s) acknowledged the renewal within 1 ms"
                )
            }
            other => panic!("{other:?}"),
        }
        let off = Acks::new(None, Duration::from_secs(1));
        assert!(off.check(Some(0), "lock").is_ok());
    }
}
