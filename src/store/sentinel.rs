//! Redis Sentinel: finding the master of a monitored group.
//!
//! The master is looked up again for every new connection, so after a
//! failover the pool's next connection (and the release feed's next
//! reconnect) goes to the promoted replica without the caller doing
//! anything. Connections to the old master fail (it is gone) or answer
//! READONLY (it came back as a replica); either way they are dropped, see
//! `breaks_connection` in [`errors`](super::errors).
//!
//! distlock asks the sentinels itself instead of using redis-rs's sentinel
//! client, whose blocking path opens its connections without timeouts: here
//! every step is bounded by the client's connect and command timeouts.

use super::errors::{is_auth_error, unparsable};
use crate::error::{Error, Result};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Where the sentinels are and which master they watch.
#[derive(Clone)]
pub(crate) struct SentinelConfig {
    /// `host:port`, or `redis://[user:password@]host:port` (`rediss://` for
    /// TLS) when the sentinels need credentials of their own.
    pub sentinels: Vec<String>,
    /// The name given to `sentinel monitor`.
    pub master: String,
}

/// One sentinel: a client for it and its `host:port` for messages.
struct Node {
    /// Opens connections to the sentinel.
    client: redis::Client,
    /// `host:port`, for messages.
    addr: String,
}

/// The sentinels of one master, asked in turn.
pub(crate) struct Sentinels {
    /// The sentinels, in the configured order.
    nodes: Vec<Node>,
    /// The name the sentinels monitor the master by.
    master: String,
    /// The sentinel to ask first: the last one that named a usable master.
    first: AtomicUsize,
    /// The sentinels' own passwords, to scrub out of messages.
    passwords: Vec<String>,
    /// The master's name and the sentinels, for Debug output.
    place: String,
}

impl Sentinels {
    /// Parses the sentinel addresses; connects to nothing yet.
    pub(crate) fn new(cfg: &SentinelConfig) -> Result<Self> {
        if cfg.sentinels.is_empty() {
            return Err(Error::invalid(
                "sentinel mode needs at least one sentinel address",
            ));
        }
        if cfg.master.is_empty() || cfg.master.len() > 256 {
            return Err(Error::invalid(
                "the sentinel master name must be 1 to 256 bytes",
            ));
        }
        let mut nodes = Vec::with_capacity(cfg.sentinels.len());
        let mut passwords = Vec::new();
        for (i, s) in cfg.sentinels.iter().enumerate() {
            let url = if s.contains("://") {
                s.clone()
            } else {
                format!("redis://{s}")
            };
            let client = redis::Client::open(url.as_str())
                .map_err(|e| unparsable(format_args!("sentinel address #{}", i + 1), &e))?;
            let info = client.get_connection_info();
            if let Some(p) = info.redis_settings().password() {
                passwords.push(p.to_string());
            }
            let addr = info.addr().to_string();
            nodes.push(Node { client, addr });
        }
        let place = format!(
            "sentinel master `{}` via {}",
            cfg.master,
            nodes
                .iter()
                .map(|n| n.addr.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Sentinels {
            nodes,
            master: cfg.master.clone(),
            first: AtomicUsize::new(0),
            passwords,
            place,
        })
    }

    /// The sentinels' passwords, to scrub out of messages.
    pub(crate) fn passwords(&self) -> impl Iterator<Item = &str> {
        self.passwords.iter().map(String::as_str)
    }

    /// The master name and the sentinels, for Debug output.
    pub(crate) fn describe(&self) -> &str {
        &self.place
    }

    /// Asks the sentinels in turn (the last good one first) where the master
    /// is, connects to it with `template`'s scheme, credentials and db, and
    /// checks with `ROLE` that it really is a master (a sentinel may not
    /// have seen a failover yet). Each sentinel costs at most two connects
    /// and two commands.
    pub(crate) fn connect_master(
        &self,
        template: &ConnectionInfo,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisResult<redis::Connection> {
        let n = self.nodes.len();
        let start = self.first.load(Ordering::Relaxed);
        let mut failures = Vec::with_capacity(n);
        let mut unknown = 0;
        for k in 0..n {
            let i = (start + k) % n;
            let node = &self.nodes[i];
            match self.ask(node, connect_timeout, command_timeout) {
                Ok(Some((host, port))) => {
                    match open_master(template, &host, port, connect_timeout, command_timeout) {
                        Ok(conn) => {
                            self.first.store(i, Ordering::Relaxed);
                            return Ok(conn);
                        }
                        Err(e) if is_auth_error(&e) => return Err(e),
                        Err(e) => failures.push(format!(
                            "sentinel {} named {host}:{port}, which failed: {e}",
                            node.addr
                        )),
                    }
                }
                Ok(None) => {
                    unknown += 1;
                    failures.push(format!(
                        "sentinel {} does not monitor `{}`",
                        node.addr, self.master
                    ));
                }
                Err(e) if is_auth_error(&e) => return Err(e),
                Err(e) => failures.push(format!("sentinel {}: {e}", node.addr)),
            }
        }
        // Every sentinel answered that it does not know the name: a
        // configuration mistake, not an outage.
        let kind = if unknown == n {
            ErrorKind::InvalidClientConfig
        } else {
            ErrorKind::Io
        };
        Err(RedisError::from((
            kind,
            "no sentinel named a reachable master",
            failures.join("; "),
        )))
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME` on one sentinel.
    fn ask(
        &self,
        node: &Node,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisResult<Option<(String, u16)>> {
        let mut c = node.client.get_connection_with_timeout(connect_timeout)?;
        c.set_read_timeout(Some(command_timeout))?;
        c.set_write_timeout(Some(command_timeout))?;
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master)
            .query(&mut c)
    }
}

/// A connection to `host:port` with `template`'s other settings, checked to
/// be a master.
fn open_master(
    template: &ConnectionInfo,
    host: &str,
    port: u16,
    connect_timeout: Duration,
    command_timeout: Duration,
) -> RedisResult<redis::Connection> {
    let addr = match template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    let client = redis::Client::open(template.clone().set_addr(addr))?;
    let mut conn = client.get_connection_with_timeout(connect_timeout)?;
    conn.set_read_timeout(Some(command_timeout))?;
    conn.set_write_timeout(Some(command_timeout))?;
    let role: Value = redis::cmd("ROLE").query(&mut conn)?;
    if is_master(&role) {
        Ok(conn)
    } else {
        Err(RedisError::from((
            ErrorKind::Io,
            "not a master (a failover is under way)",
        )))
    }
}

/// Whether a `ROLE` reply says "master".
fn is_master(role: &Value) -> bool {
    match role {
        Value::Array(items) => {
            matches!(
                items.first(),
                Some(Value::BulkString(b)) if b.as_slice() == b"master"
            ) || matches!(
                items.first(),
                Some(Value::SimpleString(s)) if s == "master"
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_replies_parse() {
        let master = Value::Array(vec![
            Value::BulkString(b"master".to_vec()),
            Value::Int(0),
            Value::Array(vec![]),
        ]);
        assert!(is_master(&master));
        let replica = Value::Array(vec![Value::BulkString(b"slave".to_vec())]);
        assert!(!is_master(&replica));
        assert!(!is_master(&Value::Nil));
    }

    #[test]
    fn addresses_parse_and_passwords_are_kept_for_scrubbing() {
        let s = Sentinels::new(&SentinelConfig {
            sentinels: vec![
                "127.0.0.1:26379".into(),
                "redis://:s3cret@127.0.0.1:26380".into(),
            ],
            master: "m".into(),
        })
        .unwrap();
        assert_eq!(s.passwords().collect::<Vec<_>>(), ["s3cret"]);
        assert!(!s.describe().contains("s3cret"), "{}", s.describe());
        assert!(s.describe().contains("`m`"));
        let none = Sentinels::new(&SentinelConfig {
            sentinels: vec![],
            master: "m".into(),
        });
        assert!(matches!(none, Err(Error::InvalidArgument(_))));
        let unnamed = Sentinels::new(&SentinelConfig {
            sentinels: vec!["127.0.0.1:1".into()],
            master: String::new(),
        });
        assert!(matches!(unnamed, Err(Error::InvalidArgument(_))));
    }
}
