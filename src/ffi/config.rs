//! The extensible way to open a client from C: a `distlock_config` handle
//! collects settings one call at a time (so that new settings never change
//! a struct's layout), then `distlock_client_open_config` opens a client
//! with them.
//!
//! Each setter checks its own value at once, with the Rust builder's rules,
//! so a mistake is reported by the call that made it. The choice of servers
//! (one URL, Redlock nodes, cluster seeds or sentinels) is the builder's
//! own value, changed by the server setters as the Rust builder's are (the
//! last kind given wins), and checked as a whole by `Builder::check` when
//! the client is opened, before anything connects.

use super::args::{check_out, read_str};
use super::handles::Registry;
use super::outcome::{quiet_call, status_call, Failure, Outcome};
use super::{distlock_client, put, CLIENTS, DISTLOCK_MAX_URL_LEN};
use crate::servers::{check_server_url, check_url, Servers};
use crate::{Builder, MAX_PREFIX_LEN};
use parking_lot::Mutex;
use std::ffi::c_char;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Most entries in each list of a `distlock_config`: Redlock nodes, cluster
/// seed URLs, sentinel addresses.
pub const DISTLOCK_MAX_SERVERS: usize = 64;
/// Longest accepted sentinel master name, in bytes.
pub const DISTLOCK_MAX_MASTER_NAME_LEN: usize = 256;

/// Settings for `distlock_client_open_config` (opaque). Made by
/// `distlock_config_new`, filled by the `distlock_config_*` setters, freed
/// by `distlock_config_free`. Opening copies what it needs: the config may
/// be changed, reused or freed afterwards.
pub struct distlock_config {
    settings: Mutex<Builder>,
}

static CONFIGS: LazyLock<Registry<distlock_config>> = LazyLock::new(Registry::new);

pub(super) fn config_of(handle: *const distlock_config) -> Result<Arc<distlock_config>, Failure> {
    CONFIGS
        .get(handle)
        .ok_or_else(|| Failure::invalid(super::unknown("config", handle.is_null())))
}

/// Applies `change` to the settings of `cfg` unless it makes them fail the
/// builder's checks; otherwise leaves them as they were.
///
/// A choice of servers still being built (two Redlock nodes so far, a
/// sentinel address before its master's name) fails the checks too, but
/// that is not this change's fault: a change is refused only if the checks
/// say something else of the changed settings than of the settings before.
fn set(cfg: *mut distlock_config, change: impl FnOnce(Builder) -> Builder) -> Outcome {
    let cfg = config_of(cfg)?;
    let mut settings = cfg.settings.lock();
    let changed = change(settings.clone());
    if let Err(e) = changed.check() {
        if settings.check().err() != Some(e.clone()) {
            return Err(e.into());
        }
    }
    *settings = changed;
    Ok(())
}

/// Applies `change` to the settings of `cfg` without checking the result
/// (for setters that check their own values, and whose fit with the rest
/// is left to `distlock_config_check`).
pub(super) fn apply(cfg: *mut distlock_config, change: impl FnOnce(Builder) -> Builder) -> Outcome {
    let cfg = config_of(cfg)?;
    let mut settings = cfg.settings.lock();
    *settings = change(settings.clone());
    Ok(())
}

/// Changes the choice of servers of `cfg` with `change`, which adds one
/// entry to a list (or refuses it), within the size limit of each list.
fn add(
    cfg: *mut distlock_config,
    what: &str,
    change: impl FnOnce(&Servers) -> Result<Servers, Failure>,
) -> Outcome {
    let cfg = config_of(cfg)?;
    let mut settings = cfg.settings.lock();
    let servers = change(settings.servers())?;
    if servers.list_len() > DISTLOCK_MAX_SERVERS {
        return Err(Failure::invalid(format!(
            "at most {DISTLOCK_MAX_SERVERS} {what} may be given"
        )));
    }
    *settings = settings.clone().with_servers(servers);
    Ok(())
}

/// The number the next entry of a list gets when added to `servers`: one
/// more than the list's length if `servers` is that kind of list already
/// (`same`), else 1 (the entry starts a new list).
fn next_entry(servers: &Servers, same: fn(&Servers) -> bool) -> usize {
    if same(servers) {
        servers.list_len() + 1
    } else {
        1
    }
}

/// A new config holding every default (the server is
/// `redis://127.0.0.1:6379/0`), owned by the caller: free it with
/// `distlock_config_free`. Returns NULL only if the library failed
/// internally.
///
/// Choose the servers in one of these ways: `distlock_config_set_url`
/// (one server); three or more `distlock_config_add_node` (Redlock);
/// `distlock_config_add_cluster_url` (Redis Cluster); or
/// `distlock_config_set_sentinel` with `distlock_config_add_sentinel`
/// (Redis Sentinel; a `distlock_config_set_url` just before gives the
/// master's credentials and db). As with the Rust builder, the last kind
/// given replaces the choice: a `distlock_config_set_url` after nodes
/// means one server, and the first `distlock_config_add_node` after a URL
/// starts a list of nodes.
#[no_mangle]
pub extern "C" fn distlock_config_new() -> *mut distlock_config {
    quiet_call("distlock_config_new", std::ptr::null_mut(), || {
        CONFIGS.insert(distlock_config {
            settings: Mutex::new(Builder::default()),
        })
    })
}

/// Frees a config. NULL or an unknown handle is a no-op. Clients opened
/// with it are not affected.
#[no_mangle]
pub extern "C" fn distlock_config_free(cfg: *mut distlock_config) {
    quiet_call("distlock_config_free", (), || {
        drop(CONFIGS.remove(cfg));
    })
}

/// Uses one server, at this URL (`redis://[[user]:password@]host[:port][/db]`,
/// or `rediss://` for TLS), replacing the earlier choice of servers. Set
/// just before `distlock_config_set_sentinel` or
/// `distlock_config_add_sentinel`, it gives the master's scheme,
/// credentials and db instead (its host and port are then not used).
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL, non-UTF-8, over-long (`DISTLOCK_MAX_URL_LEN`) or
/// malformed URL.
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_url(
    cfg: *mut distlock_config,
    url: *const c_char,
) -> i32 {
    status_call("distlock_config_set_url", || {
        // SAFETY: the caller guarantees `url` is NULL or NUL-terminated.
        let url = unsafe { read_str(url, "url", DISTLOCK_MAX_URL_LEN) }?;
        let cfg = config_of(cfg)?;
        // Named as the builder's check names it, for the same message.
        check_server_url(&url)?;
        let mut settings = cfg.settings.lock();
        *settings = settings.clone().url(&url);
        Ok(())
    })
}

/// Adds the URL of one independent Redis node for Redlock: a lock is owned
/// only while a majority of the nodes grant it. Give at least 3 (5 is
/// usual), at most `DISTLOCK_MAX_SERVERS`. The first one replaces a URL,
/// cluster seeds or sentinel given before.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL, non-UTF-8, over-long or malformed URL, or one
/// node too many.
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_add_node(
    cfg: *mut distlock_config,
    url: *const c_char,
) -> i32 {
    status_call("distlock_config_add_node", || {
        // SAFETY: the caller guarantees `url` is NULL or NUL-terminated.
        let url = unsafe { read_str(url, "node url", DISTLOCK_MAX_URL_LEN) }?;
        add(cfg, "Redlock nodes", |s| {
            let n = next_entry(s, |s| matches!(s, Servers::Redlock(_)));
            // Named as the builder's check names the node, for the same
            // message.
            check_url(&url, &format!("Redlock node #{n}"))?;
            Ok(s.clone().with_node(url))
        })
    })
}

/// Adds the URL of one Redis Cluster node, used as a seed: the client
/// learns the slot map from the first seed that answers. Give several, so
/// that the client can start while one is down; all share credentials and
/// TLS, and use db 0. The first one replaces a URL, Redlock nodes or
/// sentinel given before.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL, non-UTF-8, over-long or malformed URL, or one
/// URL too many (`DISTLOCK_MAX_SERVERS`).
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_add_cluster_url(
    cfg: *mut distlock_config,
    url: *const c_char,
) -> i32 {
    status_call("distlock_config_add_cluster_url", || {
        // SAFETY: the caller guarantees `url` is NULL or NUL-terminated.
        let url = unsafe { read_str(url, "cluster url", DISTLOCK_MAX_URL_LEN) }?;
        add(cfg, "cluster seed URLs", |s| {
            // The seeds as they would be, checked as the builder checks
            // them (each seed's scheme and syntax, and that they agree
            // with each other), for the same message. Custom TLS
            // certificates, which do not fit a cluster, are left to the
            // check of the whole config; the timeouts only configure.
            let seeds = s.clone().with_seed(url);
            seeds.check(false, (Duration::from_secs(3), Duration::from_secs(2)))?;
            Ok(seeds)
        })
    })
}

/// Uses Redis Sentinel: the sentinels added with
/// `distlock_config_add_sentinel` watch the master they know as
/// `master_name` (1 to `DISTLOCK_MAX_MASTER_NAME_LEN` bytes), and every new
/// connection asks them where it is, so the client follows a failover by
/// itself. Replaces an earlier master name, and keeps sentinel addresses
/// added before; replaces Redlock nodes or cluster seeds.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, or a NULL, empty, non-UTF-8 or over-long name.
///
/// # Safety
///
/// `master_name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_sentinel(
    cfg: *mut distlock_config,
    master_name: *const c_char,
) -> i32 {
    status_call("distlock_config_set_sentinel", || {
        // SAFETY: the caller guarantees a NULL or NUL-terminated string.
        let name = unsafe { read_str(master_name, "master_name", DISTLOCK_MAX_MASTER_NAME_LEN) }?;
        if name.is_empty() {
            return Err(Failure::invalid("master_name is empty"));
        }
        add(cfg, "sentinel addresses", |s| {
            Ok(s.clone().with_master(name))
        })
    })
}

/// Adds one sentinel's address: `host:port`, or
/// `redis://[user:password@]host:port` when the sentinels need credentials
/// of their own. At most `DISTLOCK_MAX_SERVERS`. Checked when the client is
/// opened. Replaces Redlock nodes or cluster seeds given before.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL, empty, non-UTF-8 or over-long address, or one
/// address too many.
///
/// # Safety
///
/// `addr` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_add_sentinel(
    cfg: *mut distlock_config,
    addr: *const c_char,
) -> i32 {
    status_call("distlock_config_add_sentinel", || {
        // SAFETY: the caller guarantees `addr` is NULL or NUL-terminated.
        let addr = unsafe { read_str(addr, "sentinel address", DISTLOCK_MAX_URL_LEN) }?;
        if addr.is_empty() {
            return Err(Failure::invalid("sentinel address is empty"));
        }
        add(cfg, "sentinel addresses", |s| {
            Ok(s.clone().with_sentinel(addr))
        })
    })
}

/// Replica acknowledgement: after the write that takes a lock, and after
/// each renewal, the server must confirm (Redis `WAIT`) that at least
/// `count` replicas have it, within `timeout_ms` (1 ms to 1 hour). An
/// acquisition fewer replicas confirm is given back and fails with
/// `DISTLOCK_CONNECTION`; an unconfirmed renewal does not extend the lease.
/// `count` 0 turns it off (the default; `timeout_ms` is then ignored).
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a timeout out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_replicas(
    cfg: *mut distlock_config,
    count: u32,
    timeout_ms: u64,
) -> i32 {
    status_call("distlock_config_set_replicas", || {
        set(cfg, |b| {
            b.replicas(count, Duration::from_millis(timeout_ms))
        })
    })
}

/// Key prefix (default `"distlock"`): the lock `k` lives at key
/// `<prefix>:k`. 1 to 256 bytes, without `{` or `}`.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, or a NULL, empty, non-UTF-8, over-long or braced prefix.
///
/// # Safety
///
/// `prefix` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_prefix(
    cfg: *mut distlock_config,
    prefix: *const c_char,
) -> i32 {
    status_call("distlock_config_set_prefix", || {
        // SAFETY: the caller guarantees a NULL or NUL-terminated string.
        let prefix = unsafe { read_str(prefix, "prefix", MAX_PREFIX_LEN) }?;
        set(cfg, |b| b.prefix(&prefix))
    })
}

/// Longest label `distlock_config_set_holder_label` accepts, in bytes (the
/// first `DISTLOCK_MAX_HOLDER_LABEL_LEN` are kept).
pub const DISTLOCK_MAX_HOLDER_LABEL_INPUT_LEN: usize = 1024;

/// A label written with every acquisition, next to this machine's host
/// name and this process's pid, so that operators can see who holds a
/// lock (`distlock_client_inspect`, `distlock_client_held`, `distlock
/// status`): a service name, a job id. Cut to
/// `DISTLOCK_MAX_HOLDER_LABEL_LEN` bytes, control characters turned into
/// spaces; never put a secret in it. An empty label sets none (the
/// default).
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, or a NULL, non-UTF-8 or over-long
/// (`DISTLOCK_MAX_HOLDER_LABEL_INPUT_LEN`) label.
///
/// # Safety
///
/// `label` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_holder_label(
    cfg: *mut distlock_config,
    label: *const c_char,
) -> i32 {
    status_call("distlock_config_set_holder_label", || {
        // SAFETY: the caller guarantees a NULL or NUL-terminated string.
        let label = unsafe { read_str(label, "label", DISTLOCK_MAX_HOLDER_LABEL_INPUT_LEN) }?;
        set(cfg, |b| b.holder_label(&label))
    })
}

/// Default lease of each lock in milliseconds (default 30000), between
/// 10 ms and 24 hours. Leases are renewed automatically while held.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_ttl_ms(cfg: *mut distlock_config, ttl_ms: u64) -> i32 {
    status_call("distlock_config_set_ttl_ms", || {
        set(cfg, |b| b.ttl(Duration::from_millis(ttl_ms)))
    })
}

/// Most connections open at once, per server (default 16), 1 to 1024.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_pool_size(cfg: *mut distlock_config, pool_size: u32) -> i32 {
    status_call("distlock_config_set_pool_size", || {
        set(cfg, |b| b.pool_size(pool_size))
    })
}

/// Time allowed to open a connection or wait for a pooled one, in
/// milliseconds (default 3000), 1 ms to 1 hour.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_connect_timeout_ms(
    cfg: *mut distlock_config,
    timeout_ms: u64,
) -> i32 {
    status_call("distlock_config_set_connect_timeout_ms", || {
        set(cfg, |b| {
            b.connect_timeout(Duration::from_millis(timeout_ms))
        })
    })
}

/// Time allowed for each command's reply, in milliseconds (default 2000),
/// 1 ms to 1 hour. With Redlock it is the per-node timeout: keep it well
/// below the TTL.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_command_timeout_ms(
    cfg: *mut distlock_config,
    timeout_ms: u64,
) -> i32 {
    status_call("distlock_config_set_command_timeout_ms", || {
        set(cfg, |b| {
            b.command_timeout(Duration::from_millis(timeout_ms))
        })
    })
}

/// Caps the total time an auto-renewed lock is held, in milliseconds: at
/// the cap renewal stops and the lock is reported lost. 0 means no cap
/// (the default); a cap is at most 365 days.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a cap over 365 days.
#[no_mangle]
pub extern "C" fn distlock_config_set_max_hold_ms(cfg: *mut distlock_config, cap_ms: u64) -> i32 {
    status_call("distlock_config_set_max_hold_ms", || {
        let cap = (cap_ms > 0).then(|| Duration::from_millis(cap_ms));
        set(cfg, |b| b.max_hold(cap))
    })
}

/// Longest a waiting acquirer goes without looking at the lock again, in
/// milliseconds (default 500), 1 ms to 1 hour. Waiters are woken by release
/// notifications; this bounds what a lost notification can cost.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_max_retry_interval_ms(
    cfg: *mut distlock_config,
    interval_ms: u64,
) -> i32 {
    status_call("distlock_config_set_max_retry_interval_ms", || {
        set(cfg, |b| {
            b.max_retry_interval(Duration::from_millis(interval_ms))
        })
    })
}

/// How often the release feed of a server without notifications
/// (memcached) looks at the locks someone waits for, in milliseconds
/// (default 20), 1 ms to 1 hour; Redis servers notify and ignore it.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_poll_interval_ms(
    cfg: *mut distlock_config,
    interval_ms: u64,
) -> i32 {
    status_call("distlock_config_set_poll_interval_ms", || {
        set(cfg, |b| b.poll_interval(Duration::from_millis(interval_ms)))
    })
}

/// Lease caching, in milliseconds (default 0: off), at most 1 hour. A
/// plain lock released while no thread of the client waits for it stays
/// held on the server, its lease renewed, for up to `linger_ms`; the
/// client's next acquisition of it within that time is granted at once,
/// without a round trip (counted in `distlock_stats.lingered`). Another
/// client that wants the lock announces itself, and the lingering client
/// then releases it at once; closing the client releases the locks it
/// lingers on. The client lingers only while it hears those
/// announcements: its first release of a name goes to the server and
/// starts hearing them. Read-write locks, semaphores and fair locks never
/// linger.
///
/// Redis only (one server, Sentinel or Cluster), with the fast path on
/// (`distlock_config_set_fast_path`), and shorter than the max hold
/// (`distlock_config_set_max_hold_ms`) if one is set. Choose the servers
/// first: a later setter that contradicts a linger (the fast path off, a
/// max hold no longer than it) is refused in turn, and a later server
/// setter that does (a `memcache://` URL) is taken, but the config is then
/// refused by `distlock_config_check` and when opened.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a value over 1 hour, or one the other settings do not
/// allow (servers other than Redis, the fast path off, a max hold no
/// longer than it).
#[no_mangle]
pub extern "C" fn distlock_config_set_linger_ms(cfg: *mut distlock_config, linger_ms: u64) -> i32 {
    status_call("distlock_config_set_linger_ms", || {
        set(cfg, |b| b.linger(Duration::from_millis(linger_ms)))
    })
}

/// Whether threads of one client that want the same lock queue locally and
/// pass the lease among themselves (default true). Off, every thread asks
/// the server on its own.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config.
#[no_mangle]
pub extern "C" fn distlock_config_set_fast_path(cfg: *mut distlock_config, on: bool) -> i32 {
    status_call("distlock_config_set_fast_path", || {
        set(cfg, |b| b.fast_path(on))
    })
}

/// Most local hand-offs in a row (default 16, at most 63) before the holder
/// asks the server whether other clients wait; 0 never hands off.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value out of range.
#[no_mangle]
pub extern "C" fn distlock_config_set_handoff_limit(
    cfg: *mut distlock_config,
    handoffs: u32,
) -> i32 {
    status_call("distlock_config_set_handoff_limit", || {
        set(cfg, |b| b.handoff_limit(handoffs))
    })
}

/// Longest time a lease may circulate among one client's threads before
/// the holder asks the server whether other clients wait, in milliseconds
/// (default 20, at most one hour); 0 asks at every release that has a
/// local waiter.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config or a value over one hour.
#[no_mangle]
pub extern "C" fn distlock_config_set_handoff_budget_ms(
    cfg: *mut distlock_config,
    budget_ms: u64,
) -> i32 {
    status_call("distlock_config_set_handoff_budget_ms", || {
        set(cfg, |b| b.handoff_budget(Duration::from_millis(budget_ms)))
    })
}

/// Checks the settings in `cfg` exactly as `distlock_client_open_config`
/// does before it connects (a usable choice of servers, URLs that parse,
/// values in range), without connecting anywhere: for validating a
/// configuration at start-up, or offline. `cfg` is only read. The
/// messages are those of the Rust builder's `check` for the same settings.
///
/// Returns `DISTLOCK_OK` when `distlock_client_open_config` would go on to
/// connect, or `DISTLOCK_INVALID_ARGUMENT` with the same message it would
/// fail with (see `distlock_last_error`).
#[no_mangle]
pub extern "C" fn distlock_config_check(cfg: *const distlock_config) -> i32 {
    status_call("distlock_config_check", || {
        Ok(config_of(cfg)?.settings.lock().check()?)
    })
}

/// Opens a client with the settings in `cfg`: checks them as
/// `distlock_config_check` does, then connects and checks that the servers
/// answer (for Redlock, a majority of the nodes).
///
/// On success `*out` receives a new client handle, owned by the caller:
/// close it with `distlock_client_close`. On failure `*out` is set to NULL.
/// `cfg` is only read: it stays the caller's, to reuse or free.
///
/// Returns `DISTLOCK_OK`; `DISTLOCK_INVALID_ARGUMENT` (NULL or unknown
/// config, NULL `out`, fewer than 3 Redlock nodes, an incomplete sentinel
/// setting, custom TLS certificates with Cluster or Sentinel), before
/// anything connects; `DISTLOCK_CONNECTION` (among others for a TLS
/// server whose certificate is not trusted), `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS`.
///
/// # Safety
///
/// `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_open_config(
    cfg: *const distlock_config,
    out: *mut *mut distlock_client,
) -> i32 {
    status_call("distlock_client_open_config", || {
        check_out(out, "out")?;
        // SAFETY: `out` is non-NULL and the caller guarantees it is writable.
        unsafe { put(out, std::ptr::null_mut()) };
        // Copied, so that no lock is held while connecting.
        let settings = config_of(cfg)?.settings.lock().clone();
        let client = settings.build().map_err(super::tls::explain_open)?;
        let handle = CLIENTS.insert(distlock_client { client });
        // SAFETY: checked above.
        unsafe { put(out, handle) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{c, last};
    use super::super::{distlock_client_close, distlock_status};
    use super::*;
    use std::ffi::CString;

    const OK: i32 = distlock_status::DISTLOCK_OK as i32;
    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;

    /// A loopback URL on which nothing listens (port 1 needs root to bind,
    /// and nothing here does).
    fn dead(db: u32) -> CString {
        c(&format!("redis://127.0.0.1:1/{db}"))
    }

    /// Opens `cfg`, expecting `want`; checks `*out` is NULL on failure, and
    /// that `distlock_config_check` foresaw an invalid setting, with the
    /// same message, and passed everything else.
    fn open(cfg: *mut distlock_config, want: i32) -> String {
        let checked = distlock_config_check(cfg);
        let check_msg = last();
        if want == INVALID {
            assert_eq!(checked, INVALID, "check passed what open refuses");
        } else {
            assert_eq!(checked, OK, "{check_msg}");
        }
        let mut out = std::ptr::dangling_mut::<distlock_client>();
        // SAFETY: `out` is a valid place for a pointer.
        let got = unsafe { distlock_client_open_config(cfg, &mut out) };
        assert_eq!(got, want, "{}", last());
        if got != OK {
            assert!(out.is_null());
            if want == INVALID {
                assert_eq!(last(), check_msg, "check and open say the same");
            }
            last()
        } else {
            distlock_client_close(out);
            String::new()
        }
    }

    /// What `distlock_config_check` says of `cfg` (empty when it passes).
    fn check_message(cfg: *mut distlock_config) -> String {
        match distlock_config_check(cfg) {
            OK => String::new(),
            _ => last(),
        }
    }

    #[test]
    fn server_setters_build_the_builders_choice_and_the_last_kind_wins() {
        std::thread::spawn(|| {
            let node = |cfg, db| {
                // SAFETY: a NUL-terminated string.
                assert_eq!(
                    unsafe { distlock_config_add_node(cfg, dead(db).as_ptr()) },
                    OK
                );
            };
            let rust = |b: Builder| b.check().unwrap_err().to_string();
            let dead_url = |db: u32| format!("redis://127.0.0.1:1/{db}");
            // Nothing given: the builder's default server, as in Rust.
            let cfg = distlock_config_new();
            assert_eq!(check_message(cfg), "");
            // One node and two nodes are no Redlock: refused as Rust
            // refuses them, with the same words.
            node(cfg, 0);
            let one = open(cfg, INVALID);
            assert_eq!(one, rust(Builder::default().nodes([dead_url(0)])));
            assert!(
                one.contains("at least 3") && one.contains("1 given"),
                "{one}"
            );
            node(cfg, 1);
            let two = open(cfg, INVALID);
            assert!(two.contains("2 given"), "{two}");
            // SAFETY: NUL-terminated strings.
            unsafe {
                // A URL after the nodes replaces them ...
                assert_eq!(distlock_config_set_url(cfg, dead(0).as_ptr()), OK);
                assert_eq!(check_message(cfg), "");
                // ... and a node after the URL starts a new list.
                node(cfg, 2);
                assert!(check_message(cfg).contains("1 given"));
                // A master name with no sentinel address yet.
                assert_eq!(distlock_config_set_sentinel(cfg, c("m").as_ptr()), OK);
                assert_eq!(
                    open(cfg, INVALID),
                    rust(Builder::default().sentinel(Vec::<String>::new(), "m"))
                );
            }
            distlock_config_free(cfg);

            // SAFETY: NUL-terminated strings.
            unsafe {
                // Cluster seeds, then a sentinel address: a sentinel choice
                // still without its master's name.
                let cfg = distlock_config_new();
                assert_eq!(distlock_config_add_cluster_url(cfg, dead(0).as_ptr()), OK);
                assert_eq!(
                    distlock_config_add_sentinel(cfg, c("127.0.0.1:1").as_ptr()),
                    OK
                );
                assert!(open(cfg, INVALID).contains("without a master name"));
                // The name completes it, whichever came first.
                assert_eq!(distlock_config_set_sentinel(cfg, c("m").as_ptr()), OK);
                assert_eq!(check_message(cfg), "");
                distlock_config_free(cfg);
                // A zk:// URL is checked by the setter like any other.
                let cfg = distlock_config_new();
                let zk = c("zk://127.0.0.1:2181,:2/chroot");
                assert_eq!(distlock_config_set_url(cfg, zk.as_ptr()), INVALID);
                assert!(last().contains("server #2 has no host"), "{}", last());
                distlock_config_free(cfg);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn settings_may_come_between_server_setters() {
        std::thread::spawn(|| {
            // SAFETY: NUL-terminated strings.
            unsafe {
                let cfg = distlock_config_new();
                // A Redlock list still too short, then other settings.
                assert_eq!(distlock_config_add_node(cfg, dead(0).as_ptr()), OK);
                assert_eq!(distlock_config_set_prefix(cfg, c("p").as_ptr()), OK);
                assert_eq!(distlock_config_set_ttl_ms(cfg, 1000), OK);
                // A bad value is still refused, with its own message.
                assert_eq!(distlock_config_set_ttl_ms(cfg, 1), INVALID);
                assert!(last().contains("ttl"), "{}", last());
                assert_eq!(distlock_config_add_node(cfg, dead(1).as_ptr()), OK);
                assert_eq!(distlock_config_add_node(cfg, dead(2).as_ptr()), OK);
                assert_eq!(check_message(cfg), "");
                // A sentinel address before the master's name.
                assert_eq!(
                    distlock_config_add_sentinel(cfg, c("127.0.0.1:1").as_ptr()),
                    OK
                );
                assert_eq!(distlock_config_set_pool_size(cfg, 2), OK);
                assert_eq!(distlock_config_set_sentinel(cfg, c("m").as_ptr()), OK);
                assert_eq!(check_message(cfg), "");
                distlock_config_free(cfg);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn url_refusals_name_the_url_as_the_builder_does() {
        std::thread::spawn(|| {
            let rust = |b: Builder| b.check().unwrap_err().to_string();
            // SAFETY: NUL-terminated strings.
            unsafe {
                let cfg = distlock_config_new();
                let bad_zk = c("zk://h:x");
                assert_eq!(distlock_config_set_url(cfg, bad_zk.as_ptr()), INVALID);
                assert_eq!(last(), rust(Builder::default().url("zk://h:x")));
                let zk = c("zk://h:1");
                assert_eq!(distlock_config_add_node(cfg, dead(0).as_ptr()), OK);
                assert_eq!(distlock_config_add_node(cfg, zk.as_ptr()), INVALID);
                let nodes = ["redis://127.0.0.1:1/0", "zk://h:1", "redis://h/2"];
                assert_eq!(last(), rust(Builder::default().nodes(nodes)));
                let seeds = ["redis://127.0.0.1:1", "memcache://h:1"];
                assert_eq!(
                    distlock_config_add_cluster_url(cfg, c(seeds[0]).as_ptr()),
                    OK
                );
                assert_eq!(
                    distlock_config_add_cluster_url(cfg, c(seeds[1]).as_ptr()),
                    INVALID
                );
                assert_eq!(last(), rust(Builder::default().cluster(seeds)));
                let other_db = c("redis://127.0.0.1:2/3");
                assert_eq!(
                    distlock_config_add_cluster_url(cfg, other_db.as_ptr()),
                    INVALID
                );
                let mixed = ["redis://127.0.0.1:1", "redis://127.0.0.1:2/3"];
                assert_eq!(last(), rust(Builder::default().cluster(mixed)));
                distlock_config_free(cfg);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn setters_check_their_values_and_keep_the_old_ones() {
        std::thread::spawn(|| {
            let cfg = distlock_config_new();
            assert!(!cfg.is_null());
            assert_eq!(distlock_config_set_ttl_ms(cfg, 5), INVALID);
            assert_eq!(distlock_config_set_ttl_ms(cfg, 25 * 3600 * 1000), INVALID);
            assert_eq!(distlock_config_set_pool_size(cfg, 0), INVALID);
            assert_eq!(distlock_config_set_pool_size(cfg, 5000), INVALID);
            assert_eq!(distlock_config_set_connect_timeout_ms(cfg, 0), INVALID);
            assert_eq!(
                distlock_config_set_command_timeout_ms(cfg, u64::MAX),
                INVALID
            );
            assert_eq!(distlock_config_set_max_retry_interval_ms(cfg, 0), INVALID);
            assert_eq!(distlock_config_set_poll_interval_ms(cfg, 0), INVALID);
            assert!(last().contains("poll_interval must be between 1 ms and 1 hour"));
            assert_eq!(distlock_config_set_linger_ms(cfg, 3_600_001), INVALID);
            assert!(
                last().contains("linger must be between 1 ms and 1 hour, got 3600001 ms"),
                "{}",
                last()
            );
            assert_eq!(distlock_config_set_handoff_limit(cfg, 64), INVALID);
            assert!(last().contains("handoff_limit"));
            assert_eq!(distlock_config_set_replicas(cfg, 1, 0), INVALID);
            assert!(last().contains("replica"));
            for ok in [
                distlock_config_set_ttl_ms(cfg, 2000),
                distlock_config_set_pool_size(cfg, 4),
                distlock_config_set_connect_timeout_ms(cfg, 500),
                distlock_config_set_command_timeout_ms(cfg, 500),
                distlock_config_set_max_hold_ms(cfg, 0),
                distlock_config_set_max_hold_ms(cfg, 60_000),
                distlock_config_set_max_retry_interval_ms(cfg, 50),
                distlock_config_set_poll_interval_ms(cfg, 5),
                distlock_config_set_linger_ms(cfg, 0),
                distlock_config_set_fast_path(cfg, false),
                distlock_config_set_handoff_limit(cfg, 0),
                distlock_config_set_handoff_budget_ms(cfg, 5),
                distlock_config_set_replicas(cfg, 0, 0),
                distlock_config_set_replicas(cfg, 2, 100),
            ] {
                assert_eq!(ok, OK);
            }
            // SAFETY: NUL-terminated strings, or NULL.
            unsafe {
                assert_eq!(distlock_config_set_prefix(cfg, c("a{b}").as_ptr()), INVALID);
                assert_eq!(distlock_config_set_prefix(cfg, c("").as_ptr()), INVALID);
                assert_eq!(distlock_config_set_prefix(cfg, std::ptr::null()), INVALID);
                let bad = b"p\xff\0";
                assert_eq!(
                    distlock_config_set_prefix(cfg, bad.as_ptr().cast()),
                    INVALID
                );
                assert!(last().contains("UTF-8"));
                assert_eq!(distlock_config_set_prefix(cfg, c("ok").as_ptr()), OK);
                assert_eq!(
                    distlock_config_set_url(cfg, c("not a url").as_ptr()),
                    INVALID
                );
                assert_eq!(
                    distlock_config_add_node(cfg, c("http://127.0.0.1/").as_ptr()),
                    INVALID
                );
                let pw = c("redis://u:hunter2@127.0.0.1:1/x");
                assert_eq!(distlock_config_add_cluster_url(cfg, pw.as_ptr()), INVALID);
                assert!(!last().contains("hunter2"));
                assert_eq!(distlock_config_add_sentinel(cfg, c("").as_ptr()), INVALID);
                assert_eq!(distlock_config_set_sentinel(cfg, c("").as_ptr()), INVALID);
                let long = c(&"m".repeat(DISTLOCK_MAX_MASTER_NAME_LEN + 1));
                assert_eq!(distlock_config_set_sentinel(cfg, long.as_ptr()), INVALID);
                for db in 0..DISTLOCK_MAX_SERVERS {
                    let url = dead(u32::try_from(db % 16).unwrap());
                    assert_eq!(distlock_config_add_node(cfg, url.as_ptr()), OK);
                }
                assert_eq!(distlock_config_add_node(cfg, dead(0).as_ptr()), INVALID);
                assert!(last().contains("at most 64"));
            }
            // The good values survived the bad ones: the nodes are dead, so
            // opening gets as far as connecting.
            assert_eq!(distlock_config_set_connect_timeout_ms(cfg, 200), OK);
            open(cfg, distlock_status::DISTLOCK_CONNECTION as i32);
            distlock_config_free(cfg);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn linger_needs_redis_the_fast_path_and_a_longer_max_hold() {
        std::thread::spawn(|| {
            let rust = |b: Builder| b.check().unwrap_err().to_string();
            // SAFETY: NUL-terminated strings.
            unsafe {
                let cfg = distlock_config_new();
                assert_eq!(distlock_config_set_linger_ms(cfg, 1), OK);
                assert_eq!(distlock_config_set_linger_ms(cfg, 3_600_000), OK);
                assert_eq!(distlock_config_set_linger_ms(cfg, 250), OK);
                assert_eq!(check_message(cfg), "");
                // What contradicts it is refused, and the linger kept.
                assert_eq!(distlock_config_set_fast_path(cfg, false), INVALID);
                assert!(
                    last().contains("linger needs the local fast path"),
                    "{}",
                    last()
                );
                assert_eq!(distlock_config_set_max_hold_ms(cfg, 250), INVALID);
                assert!(
                    last().contains("must be shorter than max_hold"),
                    "{}",
                    last()
                );
                assert_eq!(distlock_config_set_max_hold_ms(cfg, 251), OK);
                // A server setter does not look at it: the check does.
                let mc = c("memcache://127.0.0.1:1");
                assert_eq!(distlock_config_set_url(cfg, mc.as_ptr()), OK);
                let refused = open(cfg, INVALID);
                let with = |b: Builder| b.linger(Duration::from_millis(250));
                assert_eq!(
                    refused,
                    rust(with(Builder::default().url("memcache://127.0.0.1:1")))
                );
                assert!(refused.contains("linger needs Redis"), "{refused}");
                assert!(refused.contains("memcached cannot"), "{refused}");
                // 0 turns it off, whatever the servers.
                assert_eq!(distlock_config_set_linger_ms(cfg, 0), OK);
                assert_eq!(check_message(cfg), "");
                assert_eq!(distlock_config_set_linger_ms(cfg, 250), INVALID);
                assert!(last().contains("memcached cannot"), "{}", last());
                assert_eq!(check_message(cfg), "");
                // Redlock cannot either, even while its list is short.
                assert_eq!(distlock_config_add_node(cfg, dead(0).as_ptr()), OK);
                assert_eq!(distlock_config_set_linger_ms(cfg, 250), INVALID);
                assert!(last().contains("Redlock cannot"), "{}", last());
                // Sentinel can, before its addresses are given.
                assert_eq!(distlock_config_set_sentinel(cfg, c("m").as_ptr()), OK);
                assert_eq!(distlock_config_set_linger_ms(cfg, 250), OK);
                assert_eq!(
                    distlock_config_add_sentinel(cfg, c("127.0.0.1:1").as_ptr()),
                    OK
                );
                assert_eq!(check_message(cfg), "");
                distlock_config_free(cfg);
                // The fast path off first: refused by the linger setter.
                let cfg = distlock_config_new();
                assert_eq!(distlock_config_set_fast_path(cfg, false), OK);
                assert_eq!(distlock_config_set_linger_ms(cfg, 250), INVALID);
                assert!(
                    last().contains("linger needs the local fast path"),
                    "{}",
                    last()
                );
                assert_eq!(
                    distlock_config_set_linger_ms(std::ptr::null_mut(), 0),
                    INVALID
                );
                assert!(last().contains("config handle is NULL"));
                distlock_config_free(cfg);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn null_unknown_and_freed_configs_are_refused() {
        std::thread::spawn(|| {
            let url = dead(0);
            // SAFETY: NULL and unknown handles are allowed; strings are
            // NUL-terminated.
            unsafe {
                assert_eq!(
                    distlock_config_set_url(std::ptr::null_mut(), url.as_ptr()),
                    INVALID
                );
                assert!(last().contains("config handle is NULL"));
                let mut bogus = 0u64;
                let bogus = std::ptr::addr_of_mut!(bogus).cast::<distlock_config>();
                assert_eq!(distlock_config_set_ttl_ms(bogus, 1000), INVALID);
                assert!(last().contains("unknown or already freed config"));
                let mut out = std::ptr::null_mut();
                assert_eq!(distlock_client_open_config(bogus, &mut out), INVALID);
                let cfg = distlock_config_new();
                assert_eq!(distlock_config_set_url(cfg, url.as_ptr()), OK);
                assert_eq!(
                    distlock_client_open_config(cfg, std::ptr::null_mut()),
                    INVALID
                );
                distlock_config_free(cfg);
                assert_eq!(distlock_config_set_url(cfg, url.as_ptr()), INVALID);
                assert_eq!(distlock_client_open_config(cfg, &mut out), INVALID);
                assert!(out.is_null());
                distlock_config_free(cfg);
                distlock_config_free(std::ptr::null_mut());
                distlock_config_free(bogus);
            }
        })
        .join()
        .unwrap();
    }
}
