//! Redis Cluster: the same scripts and key layout as the single-node store,
//! sent through redis-rs's blocking cluster client, which routes each
//! command to the master of its key's slot and follows MOVED and ASK
//! redirections (refreshing its slot map on MOVED).
//!
//! Slots: a script may only touch keys of one slot. The lock key
//! `<prefix>:<name>` and its side keys (`{<prefix>:<name>}:fence`,
//! `{<prefix>:<name>}:value`) hash alike because the side keys carry the
//! whole lock key as their hash tag; a name that has a `{tag}` of its own
//! makes every key hash on that tag instead (see `side_key`). So names
//! like `user:{42}:cart` and `user:{42}:orders` are in one slot, on purpose.
//!
//! Release notifications use regular pub/sub, not sharded pub/sub: in a
//! cluster a PUBLISH is forwarded over the cluster bus to every node, so a
//! client hears every release by subscribing on any one node, with one
//! connection, whatever the slots and however they move. The feed takes the
//! first seed URL and moves to the next one whenever its connection fails.
//! Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7) would cost a connection per
//! master, resubscribing on every slot move or failover, and redis-rs's
//! blocking cluster client has no pub/sub; the price of regular pub/sub is
//! bus traffic for each release, which lock releases can afford.
//!
//! Because waiters may subscribe on any node, the pass-on check ("does any
//! other client wait?") sums `PUBSUB NUMSUB` over all nodes before running
//! its script, instead of the script asking its own node.
//!
//! Replica acknowledgement: `WAIT` is sent to the master of the key's slot,
//! on the very connection that made the write; for a batch of renewals, to
//! every master (the minimum counts).

use super::errors::{unparsable, Secret};
use super::keys::check_one_slot;
use super::ops::{Backend, ScriptStore};
use super::pool::Open;
use super::redis::RedisConfig;
use super::route::Route;
use crate::error::{Error, Result};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route as SlotRoute, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};
use redis::{ErrorKind, RedisError, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often the cluster client retries a command (after MOVED, ASK,
/// TRYAGAIN or a lost node connection) before giving up.
const RETRIES: u32 = 5;
/// Its shortest and longest pause between retries, in milliseconds.
const RETRY_WAIT_MS: (u64, u64) = (5, 250);

/// Opens cluster connections (one socket per node each has talked to),
/// and the release feed's connection to one seed node.
pub(crate) struct Nodes {
    /// Opens the pooled cluster connections.
    client: ClusterClient,
    /// Plain clients for the seed nodes: the release feed listens on one.
    seeds: Vec<redis::Client>,
    /// The seed the feed uses; the next one after a failure.
    feed_node: AtomicUsize,
    /// Bounds opening the feed's connection.
    connect_timeout: Duration,
    /// The feed connection's write timeout.
    command_timeout: Duration,
}

impl Open for Nodes {
    type Conn = ClusterConnection;

    /// A cluster connection reconnects to a node that failed (within its
    /// retries): one node's failure says nothing of the other connections.
    const SHARED_FATE: bool = false;

    fn open(&self) -> RedisResult<ClusterConnection> {
        self.client.get_connection()
    }
}

impl Backend for Nodes {
    /// Any node hears every PUBLISH of the cluster: the current seed.
    fn feed_connection(&self) -> RedisResult<redis::Connection> {
        let i = self.feed_node.load(Ordering::Relaxed) % self.seeds.len();
        let conn = self.seeds[i].get_connection_with_timeout(self.connect_timeout)?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        Ok(conn)
    }

    /// The next attempt uses the next seed.
    fn feed_failed(&self) {
        self.feed_node.fetch_add(1, Ordering::Relaxed);
    }
}

/// A Redis Cluster holding locks; its place (in messages) is
/// `cluster via <seed>, ...`.
pub(crate) type ClusterStore = ScriptStore<Nodes>;

impl ClusterStore {
    /// Parses the seed URLs and configures the cluster client, without
    /// connecting: every error `connect` gives before it connects.
    pub(crate) fn parse_seeds(
        urls: &[String],
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<(Vec<redis::Client>, ClusterClient, Secret)> {
        crate::tls::install_crypto_provider();
        if urls.is_empty() {
            return Err(Error::invalid("a cluster needs at least one seed URL"));
        }
        let mut secret = Secret::default();
        let mut seeds = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            let client = redis::Client::open(url.as_str())
                .map_err(|e| unparsable(format_args!("cluster seed URL #{}", i + 1), &e))?;
            secret.add(client.get_connection_info().redis_settings().password());
            seeds.push(client);
        }
        let client = ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout)
            .retries(RETRIES)
            .min_retry_wait(RETRY_WAIT_MS.0)
            .max_retry_wait(RETRY_WAIT_MS.1)
            .build()
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidClientConfig => {
                    Error::invalid(secret.scrub(format!("cluster seed URLs: {e}")))
                }
                _ => secret.to_error(&e),
            })?;
        Ok((seeds, client, secret))
    }

    /// Parses the seed URLs, connects to the first one that answers, reads
    /// the slot map (which fails on a server without cluster mode) and
    /// builds the pool. `cfg` gives everything but the URLs.
    pub(crate) fn connect(urls: &[String], cfg: &RedisConfig) -> Result<Self> {
        let (seeds, client, secret) =
            Self::parse_seeds(urls, cfg.connect_timeout, cfg.command_timeout)?;
        // The probe: a seed must be in cluster mode (the cluster client
        // does not notice when it is not) ...
        let mut last = None;
        for (i, seed) in seeds.iter().enumerate() {
            let answer = seed
                .get_connection_with_timeout(cfg.connect_timeout)
                .and_then(|mut c| {
                    c.set_read_timeout(Some(cfg.command_timeout))?;
                    redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c)
                });
            match answer {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => {
                    if let err @ Error::Auth(_) = secret.to_error(&e) {
                        return Err(err);
                    }
                    return Err(Error::invalid(secret.scrub(format!(
                        "cluster seed #{} is not a Redis Cluster node: {e}",
                        i + 1
                    ))));
                }
                Err(e) => last = Some(secret.to_error(&e)),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        // ... and the cluster client must read the slot map.
        let probe = client.get_connection().map_err(|e| secret.to_error(&e))?;
        drop(probe);
        let place = format!(
            "cluster via {}",
            seeds
                .iter()
                .map(|c| c.get_connection_info().addr().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let nodes = Nodes {
            client,
            seeds,
            feed_node: AtomicUsize::new(0),
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
        };
        Ok(ScriptStore::new(nodes, secret, place, cfg))
    }
}

impl Route for ClusterConnection {
    fn check_script_key(key: &str) -> Result<()> {
        check_one_slot(key)
    }

    fn set_reply_timeout(&mut self, timeout: Duration) -> RedisResult<()> {
        self.set_read_timeout(Some(timeout))
    }

    /// To the master of `key`'s slot, over the node connection that just
    /// wrote `key`; `None`: to every master, the minimum counts.
    fn route_wait(&mut self, wait: &Cmd, key: Option<&str>) -> RedisResult<i64> {
        match key {
            Some(key) => self
                .route_command(
                    wait,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        SlotRoute::with_key(key, SlotAddr::Master),
                    )),
                )
                .and_then(|v| redis::from_redis_value::<i64>(v).map_err(RedisError::from)),
            // Routed to all masters, with the smallest answer.
            None => wait.query(self),
        }
    }

    /// Over all nodes: a waiter may subscribe on any of them.
    fn waiters(&mut self, key: &str) -> RedisResult<Option<i64>> {
        // Routed to every node; the replies are summed per channel.
        let v: Value = redis::cmd("PUBSUB").arg("NUMSUB").arg(key).query(self)?;
        // One count after each channel name, as a map (RESP3) or a flat array.
        let counts: Vec<&Value> = match &v {
            Value::Map(pairs) => pairs.iter().map(|(_, n)| n).collect(),
            Value::Array(items) => items.iter().skip(1).step_by(2).collect(),
            _ => Vec::new(),
        };
        Ok(Some(
            counts
                .into_iter()
                .filter_map(|n| match n {
                    Value::Int(n) => Some(*n),
                    _ => None,
                })
                .sum(),
        ))
    }

    /// Grouped per node: one round trip per master.
    fn query_pipeline<T: FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        let mut per_node = redis::cluster::cluster_pipe();
        for cmd in pipe.cmd_iter() {
            per_node.add_command(cmd.clone());
        }
        per_node.query(self)
    }

    /// The blocking cluster pipeline reports a redirection, a retry or a
    /// cluster reconfiguration instead of following it; each command on its
    /// own follows MOVED/ASK (and refreshes the slot map for the next
    /// pipeline).
    fn retry_one_by_one(e: &RedisError) -> bool {
        matches!(e.kind(), ErrorKind::Server(_)) && !e.is_io_error()
    }
}
