//! An etcd cluster (3.4 or later) holding locks, through its JSON gateway
//! over blocking HTTP: [`EtcdStore`] implements [`Store`] with keys on
//! leases and transactions that compare before they write.
//!
//! - [`http`]: the gateway client (members, auth token, errors, base64);
//! - [`keys`]: the key layout and the glob `held` filters with.
//!
//! How each operation works (the README's "etcd" section says what it
//! guarantees):
//! - acquire: a lease of the TTL rounded up to whole seconds is granted,
//!   then one transaction writes the lock key on it only if the key does
//!   not exist, and reads the holder otherwise. The fence is the write's
//!   revision × [`FENCE_BLOCK`]: revisions are cluster-wide and survive
//!   restarts, so fences keep increasing. A retry that finds its own token
//!   (after a lost reply) restarts that key's lease and wins with the same
//!   fence; a lease granted for an attempt that lost is revoked;
//! - release: a transaction deletes the key only if its value is still this
//!   client's `token\nholder`; an operator's `release_token` (another
//!   holder description, or a bare token) reads the key, checks the token
//!   with [`owns`], and deletes only if the key's `mod_revision` is still
//!   the one read. The lease of the client's own release is kept for its
//!   next acquisition (at most a few, restarted by a keepalive, which
//!   etcd's leader answers without a raft write); others are revoked in
//!   the background;
//! - extend: one transaction reads every key of the round, and one
//!   keepalive request (every lease in one body of the streaming RPC)
//!   restarts the leases whose keys still hold their tokens. A lease that
//!   comes back with TTL 0 is gone: the lock is lost;
//! - the release feed: one watch stream on the lock key range (deletes
//!   only, so expiries count too) and on the feed's own control key, which
//!   a poke deletes; resumed from the last revision seen when it is
//!   reopened. While a client waits for a lock, the feed keeps a waiter
//!   key for it on the feed's own lease: that is how `pass_on` learns that
//!   other clients wait.

mod http;
mod keys;

use self::http::{b64, num, unb64, Failure, Gateway, GatewayConfig, Stream};
use self::keys::{feed_key, prefix_end, Keys};
use super::glob::glob_match;
use super::holder::{lock_value, owns, split_value};
use super::redis::Tls;
use super::{Acquired, Extend, FeedHandler, LockInfo, PassOn, Store, FENCE_BLOCK};
use crate::error::{Error, Result};
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The scheme of etcd URLs.
pub(crate) const SCHEME: &str = "etcd";
/// The scheme of etcd URLs over TLS.
pub(crate) const TLS_SCHEME: &str = "etcds";
/// etcd's client port when the URL gives none.
const DEFAULT_PORT: u16 = 2379;
/// Most operations etcd accepts in one transaction (`--max-txn-ops`).
const MAX_TXN_OPS: usize = 128;
/// The longest lease etcd grants, in seconds.
const MAX_LEASE_SECS: u64 = 9_000_000_000;
/// The release feed's lease (at least the server's minimum).
const FEED_LEASE_SECS: i64 = 10;
/// How long the feed reads before it renews its lease and reopens the
/// watch (from the next revision: nothing is missed).
const FEED_TICK: Duration = Duration::from_secs(2);
/// Keys one `held` range reads at a time.
const HELD_PAGE: usize = 500;
/// Leases kept for reuse (keyless: released, or of an attempt that lost).
const MAX_SPARES: usize = 4;

/// Everything needed to reach one etcd cluster.
#[derive(Clone)]
pub(crate) struct EtcdConfig {
    /// `host:port` of every member to use.
    pub members: Vec<String>,
    /// TLS (`etcds://`), and the certificates beyond the system's.
    pub tls: Option<Tls>,
    /// The user and password of the URL.
    pub credentials: Option<(String, String)>,
    /// Starts every lock key (`<prefix>:<name>`).
    pub prefix: String,
    /// Most idle connections kept per member.
    pub pool_size: u32,
    /// Bounds opening a connection.
    pub connect_timeout: Duration,
    /// Bounds each reply.
    pub command_timeout: Duration,
    /// This client's holder description, written after the token.
    pub holder: String,
}

/// What an `etcd://` or `etcds://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcdUrl {
    /// `etcds://`.
    pub tls: bool,
    /// `host:port` of every member.
    pub members: Vec<String>,
    /// `user:password@`, if given.
    pub credentials: Option<(String, String)>,
}

/// Whether `url` names an etcd cluster (`etcd://` or `etcds://`).
pub(crate) fn is_etcd(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case(SCHEME) || scheme.eq_ignore_ascii_case(TLS_SCHEME)
    })
}

/// Parses `etcd[s]://[user:password@]host[:port][,host[:port]…][/]`,
/// without echoing the URL (it may hold a password).
pub(crate) fn parse_url(url: &str) -> Result<EtcdUrl> {
    let bad = |why: &str| Error::invalid(format!("cannot parse the etcd URL: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let tls = if scheme.eq_ignore_ascii_case(TLS_SCHEME) {
        true
    } else if scheme.eq_ignore_ascii_case(SCHEME) {
        false
    } else {
        return Err(bad("the scheme is not etcd:// or etcds://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            if user.is_empty() {
                return Err(bad(
                    "a password needs a user name: etcd://user:password@host",
                ));
            }
            (Some((user.to_owned(), password.to_owned())), hosts)
        }
        None => (None, rest),
    };
    if hosts.contains(['/', '?', '#']) {
        return Err(bad(
            "an etcd URL has no path or query: etcd://host:port[,host:port…]",
        ));
    }
    let members = super::hosts::parse_hosts(hosts, "member", DEFAULT_PORT, bad)?;
    Ok(EtcdUrl {
        tls,
        members,
        credentials,
    })
}

/// The rustls settings for `etcds://`: the CA given (or the system's trust
/// store) and the client certificate, if any.
fn tls_config(tls: Option<&Tls>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::tls::install_crypto_provider();
    let certs = |pem: &[u8], what: &str| {
        CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid(format!("cannot read the {what} PEM: {e}")))
    };
    let mut roots = rustls::RootCertStore::empty();
    match tls.and_then(|t| t.root_ca.as_deref()) {
        Some(pem) => {
            for cert in certs(pem, "CA certificate")? {
                roots
                    .add(cert)
                    .map_err(|e| Error::invalid(format!("cannot use the CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match tls.and_then(|t| t.client.as_ref()) {
        Some((cert, key)) => {
            let chain = certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| Error::invalid("cannot read the client key PEM"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::invalid(format!("cannot use the client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One key-value of a reply.
#[derive(Debug, Default)]
struct Kv {
    /// The key.
    key: Vec<u8>,
    /// The value.
    value: Vec<u8>,
    /// The revision of its last write.
    mod_revision: i64,
    /// The lease it is attached to (0: none).
    lease: i64,
}

impl Kv {
    fn from(v: &Value) -> Kv {
        Kv {
            key: unb64(&v["key"]),
            value: unb64(&v["value"]),
            mod_revision: num(&v["mod_revision"]),
            lease: num(&v["lease"]),
        }
    }
}

/// The key-values of a range reply (or of a transaction's range).
fn kvs(range: &Value) -> Vec<Kv> {
    range["kvs"]
        .as_array()
        .map(|a| a.iter().map(Kv::from).collect())
        .unwrap_or_default()
}

/// The responses of a transaction reply.
fn responses(reply: &Value) -> &[Value] {
    reply["responses"].as_array().map_or(&[], Vec::as_slice)
}

/// A put of `value` on `lease`.
fn put(key: &[u8], value: &[u8], lease: i64) -> Value {
    json!({"request_put": {"key": b64(key), "value": b64(value), "lease": lease.to_string()}})
}

/// A read of one key.
fn range(key: &[u8]) -> Value {
    json!({"request_range": {"key": b64(key)}})
}

/// A delete of one key, answering with what it held.
fn delete(key: &[u8]) -> Value {
    json!({"request_delete_range": {"key": b64(key), "prev_kv": true}})
}

/// "The key holds exactly `value`".
fn value_is(key: &[u8], value: &[u8]) -> Value {
    json!({"target": "VALUE", "key": b64(key), "value": b64(value)})
}

/// A fence from a revision.
fn fence(revision: i64) -> u64 {
    u64::try_from(revision)
        .unwrap_or(0)
        .saturating_mul(FENCE_BLOCK)
}

/// An etcd cluster holding locks.
pub(crate) struct EtcdStore {
    /// The members.
    gw: Arc<Gateway>,
    /// Starts every lock key.
    prefix: String,
    /// This client's holder description.
    holder: String,
    /// The shortest lease the server grants, in seconds.
    min_ttl: Mutex<i64>,
    /// The control name of the feed running now: its own waiter keys do
    /// not count as other clients waiting.
    feed_control: Mutex<Option<String>>,
    /// The revision the feed resumes its watch from (0: now).
    resume: Mutex<i64>,
    /// Leases with no key on them, kept to be reused: a keepalive (which
    /// etcd's leader answers without a raft write) instead of a grant and a
    /// revoke (two writes) per cycle.
    spares: Mutex<Vec<i64>>,
    /// Leases to revoke in the background, and the thread revoking them
    /// (joined on drop).
    revoker: Mutex<Option<(Sender<i64>, std::thread::JoinHandle<()>)>>,
}

impl Drop for EtcdStore {
    /// Waits for the revokes already queued; once one fails (the cluster
    /// is gone) the rest are dropped: those leases expire on their own.
    fn drop(&mut self) {
        for lease in std::mem::take(&mut *self.spares.lock()) {
            self.revoke_later(lease);
        }
        if let Some((tx, thread)) = self.revoker.lock().take() {
            self.gw.close();
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl EtcdStore {
    /// Connects: checks that a member answers (and accepts the credentials)
    /// within the timeouts, and learns the server's minimum lease TTL.
    pub(crate) fn connect(cfg: &EtcdConfig) -> Result<Self> {
        let scheme = if cfg.tls.is_some() {
            TLS_SCHEME
        } else {
            SCHEME
        };
        let place = format!("{scheme}://{}", cfg.members.join(","));
        let tls = match &cfg.tls {
            Some(t) => Some(tls_config(Some(t))?),
            None => None,
        };
        let gw = Arc::new(Gateway::new(GatewayConfig {
            members: &cfg.members,
            tls,
            credentials: cfg.credentials.clone(),
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            pool_size: cfg.pool_size,
            place,
        }));
        // The shortest lease: ask for one second and see what is granted.
        let probe = gw
            .call("/v3/lease/grant", &json!({"TTL": "1"}))
            .map_err(|f| match f {
                Failure::Refused(_, m) if m.starts_with("HTTP status 404") => {
                    Error::invalid(format!(
                        "{}: no etcd v3 JSON gateway at /v3 (distlock needs etcd 3.4 or later)",
                        gw.place()
                    ))
                }
                f => gw.error(f),
            })?;
        let min_ttl = num(&probe["TTL"]).max(1);
        let _ = gw.call(
            "/v3/lease/revoke",
            &json!({"ID": num(&probe["ID"]).to_string()}),
        );
        // Leases need no permission: a read under the prefix checks the
        // credentials (and that the user may read the locks).
        let locks = format!("{}:", cfg.prefix).into_bytes();
        gw.ask(
            "/v3/kv/range",
            &json!({"key": b64(&locks), "range_end": b64(prefix_end(&locks)), "count_only": true}),
        )?;
        let (revoker, revokes) = crossbeam_channel::unbounded::<i64>();
        let bg = gw.clone();
        let thread = std::thread::Builder::new()
            .name("distlock-etcd-revoke".into())
            .spawn(move || {
                // Ends once the store is gone and the queue is empty, or
                // at the first failure after the store is gone.
                while let Ok(id) = revokes.recv() {
                    let revoked = bg.call("/v3/lease/revoke", &json!({"ID": id.to_string()}));
                    if matches!(revoked, Err(Failure::Unreachable(_))) && bg.closing() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Connection(format!("cannot start the lease revoker: {e}")))?;
        Ok(EtcdStore {
            gw,
            prefix: cfg.prefix.clone(),
            holder: cfg.holder.clone(),
            min_ttl: Mutex::new(min_ttl),
            feed_control: Mutex::new(None),
            resume: Mutex::new(0),
            spares: Mutex::new(Vec::new()),
            revoker: Mutex::new(Some((revoker, thread))),
        })
    }

    fn keys(&self, name: &str) -> Keys {
        Keys::new(&self.prefix, name)
    }

    /// The lease etcd is asked for to hold a lock for `ttl`: whole seconds,
    /// rounded up; refused below the server's minimum.
    fn lease_secs(&self, ttl: Duration) -> Result<i64> {
        let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
        if secs > MAX_LEASE_SECS {
            return Err(Error::invalid(format!(
                "etcd grants leases of at most {MAX_LEASE_SECS} s"
            )));
        }
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let min = *self.min_ttl.lock();
        if secs < min {
            return Err(self.too_short(ttl, min));
        }
        Ok(secs)
    }

    /// The refusal of a TTL below the server's minimum lease.
    fn too_short(&self, ttl: Duration, min: i64) -> Error {
        Error::invalid(format!(
            "{} grants leases of at least {min} s (etcd's minimum TTL: 1.5 election \
             timeouts, rounded up), so it cannot honour a lock TTL of {} ms: use a TTL of at \
             least {min} s, or a shorter --election-timeout",
            self.gw.place(),
            ttl.as_millis()
        ))
    }

    /// A new lease of `secs` seconds: its ID.
    fn grant(&self, secs: i64, ttl: Duration) -> Result<i64> {
        let reply = self
            .gw
            .ask("/v3/lease/grant", &json!({"TTL": secs.to_string()}))?;
        let (id, granted) = (num(&reply["ID"]), num(&reply["TTL"]));
        if granted > secs {
            // A member with a longer minimum than the one probed.
            self.revoke_later(id);
            *self.min_ttl.lock() = granted;
            return Err(self.too_short(ttl, granted));
        }
        Ok(id)
    }

    /// A lease of `secs` seconds with no key on it, restarted now: a spare
    /// one if it is still alive with that TTL, else a new one.
    fn lease_for(&self, secs: i64, ttl: Duration) -> Result<i64> {
        let spare = self.spares.lock().pop();
        if let Some(id) = spare {
            // The keepalive answers the lease's granted TTL (0: gone).
            match self.keepalive(&[id])?.get(&id).copied().unwrap_or(0) {
                granted if granted == secs => return Ok(id),
                0 => {}
                _ => self.revoke_later(id),
            }
        }
        self.grant(secs, ttl)
    }

    /// Keeps `lease` (which no key is on) for reuse, or revokes it.
    fn give_back(&self, lease: i64) {
        let mut spares = self.spares.lock();
        if spares.len() < MAX_SPARES && lease != 0 {
            spares.push(lease);
        } else {
            drop(spares);
            self.revoke_later(lease);
        }
    }

    /// Revokes `lease` in the background (with every key on it).
    fn revoke_later(&self, lease: i64) {
        if lease != 0 {
            if let Some((tx, _)) = &*self.revoker.lock() {
                let _ = tx.send(lease);
            }
        }
    }

    /// Restarts every lease of `ids` in one keepalive request: the TTL each
    /// now has (0: gone).
    fn keepalive(&self, ids: &[i64]) -> Result<HashMap<i64, i64>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let bodies: Vec<Value> = ids.iter().map(|id| json!({"ID": id.to_string()})).collect();
        let results = self.gw.call_all("/v3/lease/keepalive", &bodies)?;
        Ok(results
            .iter()
            .map(|r| (num(&r["ID"]), num(&r["TTL"])))
            .collect())
    }

    /// One transaction.
    fn txn(&self, compare: Vec<Value>, success: Vec<Value>, failure: Vec<Value>) -> Result<Value> {
        self.gw.ask(
            "/v3/kv/txn",
            &json!({"compare": compare, "success": success, "failure": failure}),
        )
    }

    /// Deletes `key` if it still holds `value`: the lease it was on, or
    /// `None` if it did not.
    fn delete_if(&self, key: &[u8], value: &[u8]) -> Result<Option<i64>> {
        let reply = self.txn(vec![value_is(key, value)], vec![delete(key)], vec![])?;
        Ok(deleted_lease(&reply))
    }

    /// Deletes `key` if its last write is still `revision`.
    fn delete_at(&self, key: &[u8], revision: i64) -> Result<Option<i64>> {
        let compare =
            json!({"target": "MOD", "key": b64(key), "mod_revision": revision.to_string()});
        let reply = self.txn(vec![compare], vec![delete(key)], vec![])?;
        Ok(deleted_lease(&reply))
    }

    /// The remaining lease of `lease`, as etcd reports it (whole seconds).
    fn time_to_live(&self, lease: i64) -> Result<Option<Duration>> {
        if lease == 0 {
            return Ok(None);
        }
        let reply = self
            .gw
            .ask("/v3/lease/timetolive", &json!({"ID": lease.to_string()}))?;
        let ttl = num(&reply["TTL"]);
        Ok((ttl >= 0).then(|| Duration::from_secs(u64::try_from(ttl).unwrap_or(0))))
    }

    /// What a lock key holds, as [`LockInfo`] (its remaining lease asked
    /// of the server).
    fn info(&self, key: String, kv: Option<Kv>) -> Result<LockInfo> {
        let Some(kv) = kv else {
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
        let (token, holder) = split_value(&String::from_utf8_lossy(&kv.value));
        Ok(LockInfo {
            key,
            token: Some(token),
            remaining: self.time_to_live(kv.lease)?,
            fence: Some(fence(kv.mod_revision)),
            holder,
            shares: Vec::new(),
            writers_waiting: 0,
        })
    }
}

/// The lease of the key a delete-if transaction removed, if it did.
fn deleted_lease(reply: &Value) -> Option<i64> {
    if reply["succeeded"].as_bool() != Some(true) {
        return None;
    }
    let del = &responses(reply).first()?["response_delete_range"];
    if num(&del["deleted"]) == 0 {
        return None;
    }
    Some(
        del["prev_kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map_or(0, |kv| num(&kv["lease"])),
    )
}

impl Store for EtcdStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        let keys = self.keys(name);
        let key = keys.lock.as_bytes();
        let secs = self.lease_secs(ttl)?;
        let lease = self.lease_for(secs, ttl)?;
        let value = lock_value(token, &self.holder);
        let absent = json!({"target": "CREATE", "key": b64(key), "create_revision": "0"});
        let reply = match self.gw.call(
            "/v3/kv/txn",
            &json!({
                "compare": [absent],
                "success": [put(key, value.as_bytes(), lease)],
                "failure": [range(key)],
            }),
        ) {
            Ok(r) => r,
            Err(f @ Failure::Refused(..)) if f.is_not_found() => {
                // The lease ran out before the key was written (this
                // process was paused): ask again.
                return Err(Error::Connection(format!(
                    "{}: the lease ran out before the lock was written",
                    self.gw.place()
                )));
            }
            Err(f @ Failure::Refused(..)) => {
                self.revoke_later(lease);
                return Err(self.gw.error(f));
            }
            // The write may have happened: keep the lease, a retry with the
            // same token finds it (or it expires).
            Err(f) => return Err(self.gw.error(f)),
        };
        if reply["succeeded"].as_bool() == Some(true) {
            return Ok(Acquired::Yes {
                fence: fence(num(&reply["header"]["revision"])),
            });
        }
        // Nothing was written on it.
        self.give_back(lease);
        let held = responses(&reply)
            .first()
            .map(|r| kvs(&r["response_range"]))
            .and_then(|v| v.into_iter().next());
        match held {
            Some(kv) if owns(&kv.value, token) => {
                // Ours from a try whose reply was lost: restart its lease,
                // so that it lasts as long as this attempt's deadline.
                let ttls = self.keepalive(&[kv.lease])?;
                if ttls.get(&kv.lease).copied().unwrap_or(0) > 0 {
                    Ok(Acquired::Yes {
                        fence: fence(kv.mod_revision),
                    })
                } else {
                    Ok(Acquired::No { remaining: None })
                }
            }
            _ => Ok(Acquired::No { remaining: None }),
        }
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        let keys = self.keys(name);
        let key = keys.lock.as_bytes();
        let mine = lock_value(token, &self.holder);
        let reply = self.txn(
            vec![value_is(key, mine.as_bytes())],
            vec![delete(key)],
            vec![range(key)],
        )?;
        if let Some(lease) = deleted_lease(&reply) {
            // This client's own lease, keyless now.
            self.give_back(lease);
            return Ok(true);
        }
        // Another description with the same token (an operator's
        // release_token, an older client): compare the token, then delete
        // only the write that was read.
        let held = responses(&reply)
            .first()
            .map(|r| kvs(&r["response_range"]))
            .and_then(|v| v.into_iter().next());
        match held {
            Some(kv) if owns(&kv.value, token) => match self.delete_at(key, kv.mod_revision)? {
                Some(lease) => {
                    self.revoke_later(lease);
                    Ok(true)
                }
                None => Ok(false),
            },
            _ => Ok(false),
        }
    }

    fn pass_on(&self, name: &str, token: &str, ttl: Duration) -> Result<PassOn> {
        let keys = self.keys(name);
        let key = keys.lock.as_bytes();
        let mine = lock_value(token, &self.holder);
        let waiters_from = keys.waiters.as_bytes();
        let reply = self.txn(
            vec![value_is(key, mine.as_bytes())],
            vec![
                range(key),
                json!({"request_range": {
                    "key": b64(waiters_from),
                    "range_end": b64(prefix_end(waiters_from)),
                    "keys_only": true,
                    "limit": "2",
                }}),
            ],
            vec![],
        )?;
        if reply["succeeded"].as_bool() != Some(true) {
            return Ok(PassOn::NotOwner);
        }
        let rs = responses(&reply);
        let Some(kv) = rs
            .first()
            .and_then(|r| kvs(&r["response_range"]).into_iter().next())
        else {
            return Ok(PassOn::NotOwner);
        };
        let own = self
            .feed_control
            .lock()
            .as_deref()
            .map(|c| keys.waiter(c).into_bytes());
        let waiting = rs
            .get(1)
            .map(|r| kvs(&r["response_range"]))
            .unwrap_or_default()
            .iter()
            .any(|w| Some(&w.key) != own.as_ref());
        if waiting {
            return Ok(match self.delete_if(key, mine.as_bytes())? {
                Some(lease) => {
                    self.give_back(lease);
                    PassOn::Released
                }
                None => PassOn::NotOwner,
            });
        }
        // Keep it: write it again on its lease (a new revision: a new block
        // of fences) and restart the lease.
        let reply = self.txn(
            vec![value_is(key, mine.as_bytes())],
            vec![put(key, mine.as_bytes(), kv.lease)],
            vec![],
        )?;
        if reply["succeeded"].as_bool() != Some(true) {
            return Ok(PassOn::NotOwner);
        }
        self.lease_secs(ttl)?;
        let left = self.keepalive(&[kv.lease])?;
        if left.get(&kv.lease).copied().unwrap_or(0) <= 0 {
            return Ok(PassOn::NotOwner);
        }
        Ok(PassOn::Kept {
            fence: fence(num(&reply["header"]["revision"])),
        })
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Who holds each key now, and on which lease.
        let mut held: Vec<Option<i64>> = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_TXN_OPS) {
            let reads = chunk
                .iter()
                .map(|e| range(self.keys(e.name).lock.as_bytes()))
                .collect();
            let reply = self.txn(vec![], reads, vec![])?;
            let rs = responses(&reply);
            for (i, e) in chunk.iter().enumerate() {
                let kv = rs
                    .get(i)
                    .and_then(|r| kvs(&r["response_range"]).into_iter().next());
                held.push(kv.filter(|kv| owns(&kv.value, e.token)).map(|kv| kv.lease));
            }
        }
        let ids: Vec<i64> = held.iter().flatten().copied().collect();
        let ttls = self.keepalive(&ids)?;
        Ok(held
            .into_iter()
            .map(|lease| lease.is_some_and(|id| ttls.get(&id).copied().unwrap_or(0) > 0))
            .collect())
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        *self.feed_control.lock() = Some(control.to_string());
        let secs = FEED_LEASE_SECS.max(*self.min_ttl.lock());
        let reply = self
            .gw
            .ask("/v3/lease/grant", &json!({"TTL": secs.to_string()}))?;
        let lease = num(&reply["ID"]);
        let outcome = self.feed_on(control, lease, handler);
        // Its waiter keys and control key go with it.
        self.revoke_later(lease);
        outcome
    }

    fn poke(&self, control: &str) -> Result<()> {
        let key = feed_key(&self.prefix, control);
        self.gw
            .ask("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}))?;
        Ok(())
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let keys = self.keys(name);
        let reply = self
            .gw
            .ask("/v3/kv/range", &json!({"key": b64(keys.value.as_bytes())}))?;
        Ok(kvs(&reply).into_iter().next().map(|kv| kv.value))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let keys = self.keys(name);
        // A cached value may outlive its TTL up to the server's minimum
        // lease: it is only a cache.
        let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).clamp(1, MAX_LEASE_SECS);
        let reply = self
            .gw
            .ask("/v3/lease/grant", &json!({"TTL": secs.to_string()}))?;
        let lease = num(&reply["ID"]);
        self.txn(
            vec![],
            vec![put(keys.value.as_bytes(), value, lease)],
            vec![],
        )?;
        Ok(())
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let keys = self.keys(name);
        let reply = self
            .gw
            .ask("/v3/kv/range", &json!({"key": b64(keys.lock.as_bytes())}))?;
        self.info(keys.lock, kvs(&reply).into_iter().next())
    }

    fn held(&self, pattern: &str, limit: usize) -> Result<(Vec<LockInfo>, bool)> {
        let start = format!("{}:", self.prefix).into_bytes();
        let end = prefix_end(&start);
        let mut from = start.clone();
        let mut found = Vec::new();
        let mut truncated = false;
        'pages: loop {
            let reply = self.gw.ask(
                "/v3/kv/range",
                &json!({
                    "key": b64(&from),
                    "range_end": b64(&end),
                    "limit": HELD_PAGE.to_string(),
                }),
            )?;
            let page = kvs(&reply);
            let more = reply["more"].as_bool() == Some(true);
            let Some(last) = page.last().map(|kv| kv.key.clone()) else {
                break;
            };
            for kv in page {
                if glob_match(pattern.as_bytes(), &kv.key) {
                    if found.len() == limit {
                        truncated = true;
                        break 'pages;
                    }
                    found.push(kv);
                }
            }
            if !more {
                break;
            }
            // The next page starts just after the last key.
            from = last;
            from.push(0);
        }
        let infos = found
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                self.info(key, Some(kv))
            })
            .collect::<Result<_>>()?;
        Ok((infos, truncated))
    }

    fn pool_state(&self) -> (u32, u32) {
        // ureq keeps its idle connections to itself: the busy ones are
        // the requests in flight.
        let busy = self.gw.busy.load(std::sync::atomic::Ordering::Relaxed);
        (busy, 0)
    }

    fn describe(&self) -> &str {
        self.gw.place()
    }
}

/// The watch request of the feed: the lock keys and the control key,
/// deletes only, from `resume` (0: from now).
fn watch_body(prefix: &str, control_key: &[u8], resume: i64) -> Vec<u8> {
    let locks = format!("{prefix}:").into_bytes();
    let mut lock_watch = json!({
        "key": b64(&locks),
        "range_end": b64(prefix_end(&locks)),
        "filters": ["NOPUT"],
    });
    let mut control_watch = json!({"key": b64(control_key), "filters": ["NOPUT"]});
    if resume > 0 {
        lock_watch["start_revision"] = json!(resume.to_string());
        control_watch["start_revision"] = json!(resume.to_string());
    }
    let mut body = json!({"create_request": lock_watch}).to_string();
    body.push_str(&json!({"create_request": control_watch}).to_string());
    body.into_bytes()
}

impl EtcdStore {
    /// Opens the feed's watch from the resume revision, and reads until
    /// both watches are in place; what else came meanwhile is returned.
    fn open_watch(&self, control_key: &[u8]) -> Result<(Stream, VecDeque<Value>)> {
        let resume = *self.resume.lock();
        let mut stream = self
            .gw
            .open_stream(
                "/v3/watch",
                &watch_body(&self.prefix, control_key, resume),
                FEED_TICK,
            )
            .map_err(|f| self.gw.error(f))?;
        let mut early = VecDeque::new();
        let mut created = 0;
        while created < 2 {
            let msg = stream
                .next()
                .map_err(|e| {
                    Error::Connection(format!("{}: opening the watch: {e}", self.gw.place()))
                })?
                .ok_or_else(|| {
                    Error::Connection(format!("{}: the watch ended at once", self.gw.place()))
                })?;
            if msg["result"]["created"].as_bool() == Some(true) {
                created += 1;
                let rev = num(&msg["result"]["header"]["revision"]);
                let mut r = self.resume.lock();
                if *r == 0 {
                    *r = rev + 1;
                }
            } else {
                early.push_back(msg);
            }
        }
        Ok((stream, early))
    }

    /// The feed's loop (see [`Store::run_feed`]) with its lease.
    fn feed_on(&self, control: &str, lease: i64, handler: &mut dyn FeedHandler) -> Result<()> {
        let control_key = feed_key(&self.prefix, control).into_bytes();
        let lock_start = format!("{}:", self.prefix);
        self.txn(vec![], vec![put(&control_key, b"", lease)], vec![])?;
        let (mut stream, mut early) = self.open_watch(&control_key)?;
        let mut waiting: HashMap<String, Keys> = HashMap::new();
        let mut renewed = Instant::now();
        loop {
            let changes = handler.changes();
            if changes.stop {
                return Ok(());
            }
            // The waiter keys first, then the waiters are told to look.
            let fresh: Vec<&String> = changes
                .subscribe
                .iter()
                .filter(|n| !waiting.contains_key(*n))
                .collect();
            for chunk in fresh.chunks(MAX_TXN_OPS) {
                let puts = chunk
                    .iter()
                    .map(|n| put(self.keys(n).waiter(control).as_bytes(), b"", lease))
                    .collect();
                self.txn(vec![], puts, vec![])?;
            }
            for name in &changes.subscribe {
                waiting
                    .entry(name.clone())
                    .or_insert_with(|| self.keys(name));
                handler.subscribed(name);
            }
            let gone: Vec<Keys> = changes
                .unsubscribe
                .iter()
                .filter_map(|n| waiting.remove(n))
                .collect();
            for chunk in gone.chunks(MAX_TXN_OPS) {
                let dels = chunk
                    .iter()
                    .map(|k| json!({"request_delete_range": {"key": b64(k.waiter(control))}}))
                    .collect();
                self.txn(vec![], dels, vec![])?;
            }
            let msg = match early.pop_front() {
                Some(m) => Ok(Some(m)),
                None => stream.next(),
            };
            let mut reopen = false;
            match msg {
                Ok(Some(msg)) => {
                    let r = &msg["result"];
                    if msg.get("error").is_some() || r["canceled"].as_bool() == Some(true) {
                        let compacted = num(&r["compact_revision"]);
                        if compacted > 0 {
                            // Releases before this revision are gone: let
                            // every waiter look again.
                            *self.resume.lock() = compacted;
                            for name in waiting.keys() {
                                handler.released(name);
                            }
                        }
                        reopen = true;
                    }
                    let events = r["events"].as_array().map_or(&[][..], Vec::as_slice);
                    let mut poked = false;
                    let mut last = 0;
                    for ev in events {
                        let kv = Kv::from(&ev["kv"]);
                        last = last.max(kv.mod_revision);
                        if kv.key == control_key {
                            poked = true;
                        } else if let Some(name) = std::str::from_utf8(&kv.key)
                            .ok()
                            .and_then(|k| k.strip_prefix(&lock_start))
                        {
                            if waiting.contains_key(name) {
                                handler.released(name);
                            }
                        }
                    }
                    if last > 0 {
                        // Resumed after the last event seen.
                        let mut resume = self.resume.lock();
                        *resume = (*resume).max(last + 1);
                    }
                    if poked {
                        // Armed again before the handler is asked.
                        self.txn(vec![], vec![put(&control_key, b"", lease)], vec![])?;
                    }
                }
                // The member ended the watch, or the read timed out (a
                // chunked reply cannot be read on after that): open it again.
                Ok(None) | Err(_) => reopen = true,
            }
            if renewed.elapsed() >= FEED_TICK {
                let left = self.keepalive(&[lease])?;
                if left.get(&lease).copied().unwrap_or(0) <= 0 {
                    return Err(Error::Connection(format!(
                        "{}: the release feed's lease expired",
                        self.gw.place()
                    )));
                }
                renewed = Instant::now();
                reopen = true;
            }
            if reopen {
                drop(stream);
                (stream, early) = self.open_watch(&control_key)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_list_members_and_say_what_is_wrong() {
        let u = parse_url("etcd://127.0.0.1:2379,127.0.0.1:2380").unwrap();
        assert_eq!(
            (u.tls, u.members.as_slice(), u.credentials),
            (
                false,
                &["127.0.0.1:2379".to_string(), "127.0.0.1:2380".to_string()][..],
                None
            )
        );
        let u = parse_url("ETCDS://root:s3cret@h/").unwrap();
        assert!(u.tls);
        assert_eq!(u.members, ["h:2379"]);
        assert_eq!(u.credentials, Some(("root".into(), "s3cret".into())));
        assert_eq!(parse_url("etcd://[::1]").unwrap().members, ["[::1]:2379"]);
        for (url, why) in [
            ("etcd://u:s3cret@h:1/x", "no path"),
            ("etcd://h:1,:2", "member #2 has no host"),
            ("etcd://h:x", "port of member #1"),
            ("etcd://:s3cret@h", "needs a user"),
            ("redis://h", "not etcd"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn fences_scale_revisions_by_the_block() {
        assert_eq!(fence(3), 3 * FENCE_BLOCK);
        assert_eq!(fence(-1), 0);
    }

    #[test]
    fn the_watch_asks_for_deletes_of_locks_and_of_the_control_key() {
        let body = String::from_utf8(watch_body("p", b"{p}:feed:c", 7)).unwrap();
        let (a, b) = body.split_once("}}{").unwrap();
        let a: Value = serde_json::from_str(&format!("{a}}}}}")).unwrap();
        let b: Value = serde_json::from_str(&format!("{{{b}")).unwrap();
        assert_eq!(a["create_request"]["key"], b64("p:"));
        assert_eq!(a["create_request"]["range_end"], b64("p;"));
        assert_eq!(a["create_request"]["start_revision"], "7");
        assert_eq!(b["create_request"]["filters"][0], "NOPUT");
    }
}
