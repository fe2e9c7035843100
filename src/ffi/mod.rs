//! The C ABI: `include/distlock.h` is generated from this module by
//! cbindgen (see `build.rs` and `cbindgen.toml`).
//!
//! Conventions, shared by the C, Go and Python bindings:
//!
//! - Every fallible function returns a `distlock_status` as `int32_t`; on
//!   failure, `distlock_last_error()` describes what went wrong.
//! - Handles (`distlock_client`, `distlock_guard`, `distlock_cancel`,
//!   `distlock_config`, `distlock_held`) are opaque. Each is checked against a registry of live handles before use,
//!   so NULL, unknown and already-freed handles give
//!   `DISTLOCK_INVALID_ARGUMENT` (or nothing, for the free functions) rather
//!   than undefined behaviour. The one blind spot: the address of a freed
//!   handle may be reused by a newer handle of the same kind.
//! - Every handle may be used from any thread, and concurrently.
//! - No Rust panic crosses the boundary: a caught panic becomes
//!   `DISTLOCK_INTERNAL`.
//! - Strings passed in are NUL-terminated UTF-8 and only borrowed for the
//!   call; strings returned are owned by the library and never freed by the
//!   caller.
//! - Timeouts in milliseconds: negative waits forever, 0 does not wait,
//!   positive waits at most that long (anything above ten years counts as
//!   forever).
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

mod args;
mod config;
mod handles;
mod held;
mod inspect;
mod kinds;
mod log;
mod outcome;
mod stats;
#[cfg(test)]
mod test_support;
mod tls;
mod version;

pub use config::{
    distlock_client_open_config, distlock_config, distlock_config_add_cluster_url,
    distlock_config_add_node, distlock_config_add_sentinel, distlock_config_check,
    distlock_config_free, distlock_config_new, distlock_config_set_command_timeout_ms,
    distlock_config_set_connect_timeout_ms, distlock_config_set_fast_path,
    distlock_config_set_handoff_budget_ms, distlock_config_set_handoff_limit,
    distlock_config_set_holder_label, distlock_config_set_max_hold_ms,
    distlock_config_set_max_retry_interval_ms, distlock_config_set_pool_size,
    distlock_config_set_prefix, distlock_config_set_replicas, distlock_config_set_sentinel,
    distlock_config_set_ttl_ms, distlock_config_set_url, DISTLOCK_MAX_HOLDER_LABEL_INPUT_LEN,
    DISTLOCK_MAX_MASTER_NAME_LEN, DISTLOCK_MAX_SERVERS,
};
pub use held::{
    distlock_client_held, distlock_held, distlock_held_free, distlock_held_get, distlock_held_lock,
};
pub use inspect::{
    distlock_client_inspect, distlock_client_release_token, distlock_lock_info,
    DISTLOCK_MAX_HOLDER_HOST_LEN, DISTLOCK_MAX_HOLDER_LABEL_LEN, DISTLOCK_MAX_TOKEN_LEN,
};
pub use kinds::{
    distlock_acquire_kind, DISTLOCK_KIND_FAIR, DISTLOCK_KIND_PERMIT, DISTLOCK_KIND_PLAIN,
    DISTLOCK_KIND_READ, DISTLOCK_KIND_WRITE, DISTLOCK_MAX_PERMITS,
};
pub use log::{
    distlock_log_fn, distlock_set_log_callback, DISTLOCK_LOG_DEBUG, DISTLOCK_LOG_ERROR,
    DISTLOCK_LOG_INFO, DISTLOCK_LOG_OFF, DISTLOCK_LOG_TRACE, DISTLOCK_LOG_WARN,
};
pub use stats::{distlock_client_stats, distlock_stats};
pub use tls::{
    distlock_config_set_tls_ca_file, distlock_config_set_tls_ca_pem,
    distlock_config_set_tls_client_cert_files, distlock_config_set_tls_client_cert_pem,
    DISTLOCK_MAX_PATH_LEN, DISTLOCK_MAX_PEM_LEN,
};
pub use version::{DISTLOCK_VERSION_MAJOR, DISTLOCK_VERSION_MINOR, DISTLOCK_VERSION_PATCH};

use crate::{Client, Guard, Lock, MAX_KEY_LEN, MAX_PREFIX_LEN};
use args::{check_out, deadline, millis, read_str, wait_limit};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use handles::Registry;
use outcome::{quiet_call, status_call, Failure, Outcome};
use parking_lot::{Mutex, RwLock};
use std::ffi::{c_char, CStr};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// The result of every fallible distlock function, returned as `int32_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum distlock_status {
    /// Success.
    DISTLOCK_OK = 0,
    /// A try (`timeout_ms == 0`) found the lock held by someone else.
    DISTLOCK_NOT_ACQUIRED = 1,
    /// The wait ran out before the lock was acquired (or, for
    /// `distlock_guard_wait_lost`, the lock was still held).
    DISTLOCK_TIMEOUT = 2,
    /// The lock is not (or no longer) held: its lease expired, its key was
    /// deleted, another owner holds it now, or the guard was released.
    DISTLOCK_LOST = 3,
    /// The wait was cancelled through a `distlock_cancel` handle.
    DISTLOCK_CANCELLED = 4,
    /// A NULL pointer, malformed UTF-8, a value out of range, an unknown or
    /// freed handle, a second release of the same guard, or a call the
    /// process's state does not allow (a log callback where another logger
    /// is installed).
    DISTLOCK_INVALID_ARGUMENT = 5,
    /// The server is unreachable, the connection failed, or a command timed
    /// out. Retrying later may succeed.
    DISTLOCK_CONNECTION = 6,
    /// The server refused the credentials.
    DISTLOCK_AUTH = 7,
    /// The server returned another error.
    DISTLOCK_REDIS = 8,
    /// A bug in distlock (for example a caught panic).
    DISTLOCK_INTERNAL = 9,
}

/// Length of a guard's token in bytes, without the terminating NUL.
pub const DISTLOCK_TOKEN_LEN: usize = 36;
/// Longest accepted lock key, in bytes.
pub const DISTLOCK_MAX_KEY_LEN: usize = 1024;
/// Longest accepted key prefix, in bytes.
pub const DISTLOCK_MAX_PREFIX_LEN: usize = 256;
/// Longest accepted server URL, in bytes.
pub const DISTLOCK_MAX_URL_LEN: usize = 4096;

const _: () = assert!(DISTLOCK_MAX_KEY_LEN == MAX_KEY_LEN);
const _: () = assert!(DISTLOCK_MAX_PREFIX_LEN == MAX_PREFIX_LEN);

/// Client settings for `distlock_client_open`. Zero or NULL fields mean
/// "use the default"; zero-initialise the struct and set what you need.
///
/// This struct's layout is fixed. Settings it lacks (Redlock nodes,
/// cluster, sentinel, TLS certificates, replica acknowledgement, the fast
/// path and more) are set through a `distlock_config` and
/// `distlock_client_open_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct distlock_options {
    /// Key prefix: the lock `k` lives at key `<prefix>:k`. NULL means
    /// `"distlock"`. At most 256 bytes, without `{` or `}`. Borrowed for
    /// the call only.
    pub prefix: *const c_char,
    /// Default lease of each lock in milliseconds (0 = 30000); between 10 ms
    /// and 24 hours. Leases are renewed automatically while held.
    pub ttl_ms: u64,
    /// Most connections open at once (0 = 16), at most 1024.
    pub pool_size: u32,
    /// Time allowed to open a connection or wait for a pooled one, in
    /// milliseconds (0 = 3000), at most one hour.
    pub connect_timeout_ms: u64,
    /// Time allowed for each command's reply, in milliseconds (0 = 2000), at
    /// most one hour.
    pub command_timeout_ms: u64,
}

/// An open client of one lock server, or of a Redlock, cluster or sentinel
/// deployment (opaque). Made by `distlock_client_open` or
/// `distlock_client_open_config`, freed by `distlock_client_close`.
pub struct distlock_client {
    client: Client,
}

/// Proof of holding one lock, or a share of one (opaque). Made by
/// `distlock_acquire` or `distlock_acquire_kind`, freed by
/// `distlock_guard_free`.
pub struct distlock_guard {
    /// `None` once released.
    guard: RwLock<Option<Guard>>,
    /// The fence once known (0: not asked for yet; see `Guard::fence`).
    fence: std::sync::atomic::AtomicU64,
    token: String,
    /// Disconnected once the lease ends (lost or released).
    lost: Receiver<()>,
}

/// A cancellation signal for waits (opaque). Made by `distlock_cancel_new`,
/// fired by `distlock_cancel_trigger`, freed by `distlock_cancel_free`.
pub struct distlock_cancel {
    /// Dropped when triggered, which disconnects `rx`.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl distlock_cancel {
    fn trigger(&self) {
        self.tx.lock().take();
    }

    fn is_triggered(&self) -> bool {
        self.tx.lock().is_none()
    }
}

static CLIENTS: LazyLock<Registry<distlock_client>> = LazyLock::new(Registry::new);
static GUARDS: LazyLock<Registry<distlock_guard>> = LazyLock::new(Registry::new);
static CANCELS: LazyLock<Registry<distlock_cancel>> = LazyLock::new(Registry::new);

fn client_of(handle: *const distlock_client) -> Result<Arc<distlock_client>, Failure> {
    CLIENTS
        .get(handle)
        .ok_or_else(|| Failure::invalid(unknown("client", handle.is_null())))
}

fn guard_of(handle: *const distlock_guard) -> Result<Arc<distlock_guard>, Failure> {
    GUARDS
        .get(handle)
        .ok_or_else(|| Failure::invalid(unknown("guard", handle.is_null())))
}

fn cancel_of(handle: *const distlock_cancel) -> Result<Arc<distlock_cancel>, Failure> {
    CANCELS
        .get(handle)
        .ok_or_else(|| Failure::invalid(unknown("cancel", handle.is_null())))
}

fn unknown(kind: &str, null: bool) -> String {
    if null {
        format!("{kind} handle is NULL")
    } else {
        format!("unknown or already freed {kind} handle")
    }
}

/// Writes `value` through an out-pointer already checked by `check_out`.
///
/// # Safety
///
/// `out` is non-NULL, aligned and valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: guaranteed by the caller.
    unsafe { out.write(value) }
}

/// The library version, e.g. `"0.1.0"`.
///
/// Returns a static NUL-terminated string: never free it.
#[no_mangle]
pub extern "C" fn distlock_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    quiet_call("distlock_version", c"unknown".as_ptr(), || VERSION.as_ptr())
}

/// The name of a status code, e.g. `"DISTLOCK_TIMEOUT"`; `"DISTLOCK_UNKNOWN"`
/// for a value that is not a status.
///
/// Returns a static NUL-terminated string: never free it.
#[no_mangle]
pub extern "C" fn distlock_status_name(status: i32) -> *const c_char {
    quiet_call("distlock_status_name", c"DISTLOCK_UNKNOWN".as_ptr(), || {
        status_name(status).as_ptr()
    })
}

fn status_name(status: i32) -> &'static CStr {
    match status {
        0 => c"DISTLOCK_OK",
        1 => c"DISTLOCK_NOT_ACQUIRED",
        2 => c"DISTLOCK_TIMEOUT",
        3 => c"DISTLOCK_LOST",
        4 => c"DISTLOCK_CANCELLED",
        5 => c"DISTLOCK_INVALID_ARGUMENT",
        6 => c"DISTLOCK_CONNECTION",
        7 => c"DISTLOCK_AUTH",
        8 => c"DISTLOCK_REDIS",
        9 => c"DISTLOCK_INTERNAL",
        _ => c"DISTLOCK_UNKNOWN",
    }
}

/// A message describing the last failed call (any non-`DISTLOCK_OK` status)
/// made on the calling thread, or NULL if no call on this thread has failed.
///
/// The string is owned by the library: never free it. It stays valid until
/// the next distlock call on this thread (in practice, until the next
/// failure replaces it); copy it to keep it. It never contains a password.
#[no_mangle]
pub extern "C" fn distlock_last_error() -> *const c_char {
    quiet_call("distlock_last_error", std::ptr::null(), outcome::last_error)
}

/// Connects to the Redis server at `url` (`redis://[[user]:password@]host[:port][/db]`,
/// or `rediss://` for TLS) and checks that it answers.
///
/// `opts` may be NULL for all defaults. On success `*out` receives a new
/// client handle, owned by the caller: close it with
/// `distlock_client_close`. On failure `*out` is set to NULL.
///
/// Returns `DISTLOCK_OK`, `DISTLOCK_INVALID_ARGUMENT` (NULL `url` or `out`,
/// malformed URL, bad option), `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS`.
///
/// # Safety
///
/// `url` is NULL or a NUL-terminated string; `opts` is NULL or points to a
/// `distlock_options` whose `prefix` is NULL or a NUL-terminated string;
/// `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_open(
    url: *const c_char,
    opts: *const distlock_options,
    out: *mut *mut distlock_client,
) -> i32 {
    status_call("distlock_client_open", || {
        check_out(out, "out")?;
        // SAFETY: `out` is non-NULL and the caller guarantees it is writable.
        unsafe { put(out, std::ptr::null_mut()) };
        // SAFETY: the caller guarantees `url` is NULL or NUL-terminated.
        let url = unsafe { read_str(url, "url", DISTLOCK_MAX_URL_LEN) }?;
        let mut builder = Client::builder().url(&url);
        if !opts.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it points to a
            // distlock_options; it is copied, not kept.
            let o = unsafe { opts.read() };
            if !o.prefix.is_null() {
                // SAFETY: the caller guarantees a NUL-terminated prefix.
                let prefix = unsafe { read_str(o.prefix, "prefix", MAX_PREFIX_LEN) }?;
                builder = builder.prefix(&prefix);
            }
            if o.ttl_ms > 0 {
                builder = builder.ttl(Duration::from_millis(o.ttl_ms));
            }
            if o.pool_size > 0 {
                builder = builder.pool_size(o.pool_size);
            }
            if o.connect_timeout_ms > 0 {
                builder = builder.connect_timeout(Duration::from_millis(o.connect_timeout_ms));
            }
            if o.command_timeout_ms > 0 {
                builder = builder.command_timeout(Duration::from_millis(o.command_timeout_ms));
            }
        }
        let client = builder.build().map_err(tls::explain_open)?;
        let handle = CLIENTS.insert(distlock_client { client });
        // SAFETY: checked above.
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// Closes a client handle. NULL or an unknown handle is a no-op.
///
/// Guards acquired through the client stay valid: they keep what they need
/// of it alive, and the connections and background threads stop once the
/// last of them is freed. A call still running on the client on another
/// thread finishes normally.
#[no_mangle]
pub extern "C" fn distlock_client_close(client: *mut distlock_client) {
    quiet_call("distlock_client_close", (), || {
        drop(CLIENTS.remove(client));
    })
}

/// Acquires the lock `key` (stored at Redis key `<prefix>:<key>`). For a
/// read-write lock's side, a semaphore's permit or a fair lock, see
/// `distlock_acquire_kind`.
///
/// - `ttl_ms`: the lease in milliseconds, 0 for the client's default;
///   between 10 ms and 24 hours. The lease is renewed automatically while
///   the guard is held.
/// - `timeout_ms`: negative waits until acquired; 0 tries once and returns
///   `DISTLOCK_NOT_ACQUIRED` if someone else holds the lock; positive waits
///   at most that long, then returns `DISTLOCK_TIMEOUT`.
/// - `cancel`: NULL, or a cancel handle; once it is triggered the call
///   returns `DISTLOCK_CANCELLED` (at once if it already was).
///
/// On success `*out` receives a new guard handle, owned by the caller: free
/// it with `distlock_guard_free` (which also releases the lock if still
/// held). On failure `*out` is set to NULL.
///
/// Returns `DISTLOCK_OK`, `DISTLOCK_NOT_ACQUIRED`, `DISTLOCK_TIMEOUT`,
/// `DISTLOCK_CANCELLED`, `DISTLOCK_INVALID_ARGUMENT` (NULL, empty, longer
/// than 1024 bytes or non-UTF-8 key; bad `ttl_ms`; unknown handle; NULL
/// `out`), `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or `DISTLOCK_REDIS`.
///
/// # Safety
///
/// `key` is NULL or a NUL-terminated string (or at least 1025 readable
/// bytes); `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn distlock_acquire(
    client: *mut distlock_client,
    key: *const c_char,
    ttl_ms: u64,
    timeout_ms: i64,
    cancel: *mut distlock_cancel,
    out: *mut *mut distlock_guard,
) -> i32 {
    status_call("distlock_acquire", || {
        let make = |c: &Client| {
            // SAFETY: the caller guarantees `key` is NULL or NUL-terminated.
            let key = unsafe { read_str(key, "key", MAX_KEY_LEN) }?;
            Ok((c.lock(key), "the lock is held by someone else"))
        };
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { acquire_into(client, out, ttl_ms, timeout_ms, cancel, make) }
    })
}

/// The body of `distlock_acquire` and `distlock_acquire_kind`: clears
/// `*out`, checks the handles, makes the lock with `make` (which reads the
/// key and whatever else names the lock, and says what a try that finds no
/// room reports), then tries or waits as `timeout_ms` says and hands the
/// guard out.
///
/// # Safety
///
/// `out` is NULL or valid for writing a pointer.
unsafe fn acquire_into(
    client: *mut distlock_client,
    out: *mut *mut distlock_guard,
    ttl_ms: u64,
    timeout_ms: i64,
    cancel: *mut distlock_cancel,
    make: impl FnOnce(&Client) -> Result<(Lock, &'static str), Failure>,
) -> Outcome {
    check_out(out, "out")?;
    // SAFETY: `out` is non-NULL and the caller guarantees it is writable.
    unsafe { put(out, std::ptr::null_mut()) };
    let client = client_of(client)?;
    let (mut lock, busy) = make(&client.client)?;
    let cancel = if cancel.is_null() {
        None
    } else {
        Some(cancel_of(cancel)?)
    };
    if ttl_ms > 0 {
        lock = lock.ttl(Duration::from_millis(ttl_ms));
    }
    let guard = match (wait_limit(timeout_ms), &cancel) {
        (_, Some(c)) if c.is_triggered() => {
            // Given up because the cancel fired, as the Rust wait
            // would have given up (and counted it) at its first look.
            crate::stats::add(&client.client.inner().counters().cancelled, 1);
            return Err(crate::Error::Cancelled.into());
        }
        (None, _) => lock
            .try_acquire()?
            .ok_or_else(|| Failure::new(distlock_status::DISTLOCK_NOT_ACQUIRED, busy))?,
        (Some(limit), Some(c)) => lock.acquire_cancellable(limit, &c.rx)?,
        (Some(Some(limit)), None) => lock.acquire_timeout(limit)?,
        (Some(None), None) => lock.acquire()?,
    };
    let handle = GUARDS.insert(distlock_guard {
        fence: std::sync::atomic::AtomicU64::new(guard.given_fence()),
        token: guard.token().to_owned(),
        lost: guard.lost(),
        guard: RwLock::new(Some(guard)),
    });
    // SAFETY: checked above.
    unsafe { put(out, handle) };
    Ok(())
}

/// A new, untriggered cancel handle, owned by the caller: free it with
/// `distlock_cancel_free`. One handle may serve any number of waits, on any
/// threads. Returns NULL only if the library failed internally.
#[no_mangle]
pub extern "C" fn distlock_cancel_new() -> *mut distlock_cancel {
    quiet_call("distlock_cancel_new", std::ptr::null_mut(), || {
        let (tx, rx) = crossbeam_channel::bounded(0);
        CANCELS.insert(distlock_cancel {
            tx: Mutex::new(Some(tx)),
            rx,
        })
    })
}

/// Triggers a cancel handle: every `distlock_acquire` waiting with it, now
/// or later, returns `DISTLOCK_CANCELLED`. Thread-safe and idempotent; a
/// triggered handle stays triggered.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown handle.
#[no_mangle]
pub extern "C" fn distlock_cancel_trigger(cancel: *mut distlock_cancel) -> i32 {
    status_call("distlock_cancel_trigger", || {
        cancel_of(cancel)?.trigger();
        Ok(())
    })
}

/// Frees a cancel handle. NULL or an unknown handle is a no-op. Waits still
/// using the handle are cancelled, as by `distlock_cancel_trigger`.
#[no_mangle]
pub extern "C" fn distlock_cancel_free(cancel: *mut distlock_cancel) {
    quiet_call("distlock_cancel_free", (), || {
        if let Some(c) = CANCELS.remove(cancel) {
            c.trigger();
        }
    })
}

/// Releases the lock, but does not free the guard: its fence and token stay
/// readable, and `distlock_guard_free` must still be called.
///
/// Returns `DISTLOCK_OK` if the lock was held and is now released;
/// `DISTLOCK_LOST` if it was no longer ours (nothing that belongs to
/// someone else was deleted); `DISTLOCK_CONNECTION` or `DISTLOCK_REDIS` if
/// the release could not be confirmed (the lease then simply runs out);
/// `DISTLOCK_INVALID_ARGUMENT` for a NULL or unknown handle or a guard
/// already released. In every case but the last, the guard is released
/// afterwards.
#[no_mangle]
pub extern "C" fn distlock_guard_release(guard: *mut distlock_guard) -> i32 {
    status_call("distlock_guard_release", || {
        let handle = guard_of(guard)?;
        let taken = handle.guard.write().take();
        match taken {
            Some(g) => Ok(g.release()?),
            None => Err(Failure::invalid("the guard was already released")),
        }
    })
}

/// Releases the lock if still held, then frees the guard. NULL or an
/// unknown handle is a no-op.
#[no_mangle]
pub extern "C" fn distlock_guard_free(guard: *mut distlock_guard) {
    quiet_call("distlock_guard_free", (), || {
        if let Some(handle) = GUARDS.remove(guard) {
            // Release now, even if another thread still uses the handle.
            let taken = handle.guard.write().take();
            drop(taken);
        }
    })
}

/// Sets `*out` to whether the lock is still held: not released, not lost,
/// and within its lease as this process sees it.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown handle or a NULL `out`.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `bool`.
#[no_mangle]
pub unsafe extern "C" fn distlock_guard_is_held(
    guard: *const distlock_guard,
    out: *mut bool,
) -> i32 {
    status_call("distlock_guard_is_held", || {
        check_out(out, "out")?;
        let handle = guard_of(guard)?;
        let held = held(&handle);
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { put(out, held) };
        Ok(())
    })
}

/// Sets `*out` to the guard's fencing token: strictly greater than that of
/// every earlier acquisition of the same key. Pass it to the storage you
/// protect and have it reject writes with a smaller one.
///
/// A lock taken from Redis 7 or later may be granted without its fence:
/// the first call then asks the server for it (one round trip, while the
/// lock is held), and later acquisitions of the key by this client take
/// it at once. Once read, it is still readable after release.
///
/// Returns `DISTLOCK_OK`; `DISTLOCK_LOST` if the lock was lost, or
/// released, before its fence was first read; the error of the server
/// request (try again); or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown handle or a NULL `out`.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn distlock_guard_fence(guard: *const distlock_guard, out: *mut u64) -> i32 {
    status_call("distlock_guard_fence", || {
        check_out(out, "out")?;
        let handle = guard_of(guard)?;
        let mut fence = handle.fence.load(std::sync::atomic::Ordering::Acquire);
        if fence == 0 {
            fence = match &*handle.guard.read() {
                Some(g) => g.try_fence()?,
                None => return Err(crate::Error::Lost.into()),
            };
            handle
                .fence
                .store(fence, std::sync::atomic::Ordering::Release);
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { put(out, fence) };
        Ok(())
    })
}

/// Copies the guard's random token (the value stored in the lock key, 36
/// characters) and a terminating NUL into `buf`, which must hold at least
/// `DISTLOCK_TOKEN_LEN + 1` bytes. Still readable after release.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown handle, a NULL `buf`, or a `buf_len` too small (then nothing is
/// written).
///
/// # Safety
///
/// `buf` is NULL or valid for writing `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn distlock_guard_token(
    guard: *const distlock_guard,
    buf: *mut c_char,
    buf_len: usize,
) -> i32 {
    status_call("distlock_guard_token", || {
        check_out(buf, "buf")?;
        let handle = guard_of(guard)?;
        let token = handle.token.as_bytes();
        if buf_len <= token.len() {
            return Err(Failure::invalid(format!(
                "buf_len is {buf_len}; the token needs {} bytes with its NUL",
                token.len() + 1
            )));
        }
        // SAFETY: `buf` is non-NULL and the caller guarantees `buf_len`
        // writable bytes, more than the token's length; the token is our
        // own allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(token.as_ptr(), buf.cast::<u8>(), token.len());
            buf.add(token.len()).write(0);
        }
        Ok(())
    })
}

/// Sets `*out` to how many milliseconds the lock is certainly still held
/// without another renewal; 0 once it is released or lost.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown handle or a NULL `out`.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn distlock_guard_remaining_ms(
    guard: *const distlock_guard,
    out: *mut u64,
) -> i32 {
    status_call("distlock_guard_remaining_ms", || {
        check_out(out, "out")?;
        let handle = guard_of(guard)?;
        let left = remaining(&handle);
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { put(out, millis(left)) };
        Ok(())
    })
}

/// Restarts the lease at its full TTL now (renewal is automatic; this is
/// for callers that want certainty before a long step).
///
/// Returns `DISTLOCK_OK`; `DISTLOCK_LOST` if the lock is no longer held
/// (including after release); `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS` if the server could not confirm; or
/// `DISTLOCK_INVALID_ARGUMENT` for a NULL or unknown handle.
#[no_mangle]
pub extern "C" fn distlock_guard_extend(guard: *mut distlock_guard) -> i32 {
    status_call("distlock_guard_extend", || {
        let handle = guard_of(guard)?;
        let slot = handle.guard.read();
        match slot.as_ref() {
            Some(g) => Ok(g.extend()?),
            None => Err(crate::Error::Lost.into()),
        }
    })
}

/// Waits until the lock is lost: its lease ran out, its key was deleted or
/// taken over (noticed at the next automatic renewal, within a third of the
/// TTL), or it was released.
///
/// `timeout_ms`: negative waits as long as it takes; 0 only looks; positive
/// waits at most that long.
///
/// Returns `DISTLOCK_LOST` once the lock is lost (at once if it already is,
/// or was released); `DISTLOCK_TIMEOUT` if it is still held when the time
/// is up; `DISTLOCK_INVALID_ARGUMENT` for a NULL or unknown handle.
#[no_mangle]
pub extern "C" fn distlock_guard_wait_lost(guard: *const distlock_guard, timeout_ms: i64) -> i32 {
    status_call("distlock_guard_wait_lost", || {
        let handle = guard_of(guard)?;
        let until = match wait_limit(timeout_ms) {
            None => Some(Instant::now()),
            Some(limit) => deadline(limit),
        };
        wait_lost(&handle, until)
    })
}

/// Held right now, by the guard's own account.
fn held(handle: &distlock_guard) -> bool {
    handle.guard.read().as_ref().is_some_and(Guard::is_held)
}

/// The guaranteed rest of the lease (zero when not held).
fn remaining(handle: &distlock_guard) -> Duration {
    handle
        .guard
        .read()
        .as_ref()
        .map_or(Duration::ZERO, Guard::remaining)
}

/// Waits on the guard's loss signal until `until` (`None`: no limit).
fn wait_lost(handle: &distlock_guard, until: Option<Instant>) -> Outcome {
    let lost = || Err(crate::Error::Lost.into());
    loop {
        if !held(handle) {
            return lost();
        }
        let now = Instant::now();
        if until.is_some_and(|u| u <= now) {
            return Err(Failure::new(
                distlock_status::DISTLOCK_TIMEOUT,
                "the lock is still held",
            ));
        }
        // The loss signal fires when the renewal thread notices a loss; a
        // lease that merely runs out is noticed by looking again at its end.
        let mut pause = remaining(handle) + Duration::from_millis(1);
        if let Some(u) = until {
            pause = pause.min(u - now);
        }
        match handle.lost.recv_timeout(pause) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return lost(),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
