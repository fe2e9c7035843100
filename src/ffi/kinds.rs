//! The other kinds of lock for C: a read-write lock's two sides, a
//! semaphore's permits and the FIFO-fair lock, all taken by
//! `distlock_acquire_kind` as ordinary guards.
//!
//! Only the kind is new at this boundary: every acquisition is a
//! `distlock_guard` that every `distlock_guard_*` function takes, and every
//! refusal (a permit count out of range, a name in use by another kind, a
//! server that has no such kind) is the Rust library's, with its words.

use super::args::read_str;
use super::outcome::{status_call, Failure};
use super::{acquire_into, distlock_cancel, distlock_client, distlock_guard};
use crate::{Client, Lock, MAX_KEY_LEN, MAX_PERMITS};
use std::ffi::c_char;

/// A plain lock, as `distlock_acquire` takes: one holder at a time.
pub const DISTLOCK_KIND_PLAIN: u32 = 0;
/// The read side of a read-write lock: shared with other readers, never
/// with a writer. Once a writer waits, new readers wait behind it.
pub const DISTLOCK_KIND_READ: u32 = 1;
/// The write side of a read-write lock: alone, without readers or another
/// writer.
pub const DISTLOCK_KIND_WRITE: u32 = 2;
/// One permit of a counting semaphore of `permits` permits: at most that
/// many holders at once, each permit coming back after its lease if its
/// holder dies.
pub const DISTLOCK_KIND_PERMIT: u32 = 3;
/// A FIFO-fair plain lock: waiters that use this kind on a name are served
/// in the order they first asked, across clients (a plain acquirer of the
/// same name does not queue and may barge in).
pub const DISTLOCK_KIND_FAIR: u32 = 4;
/// Most permits a semaphore may have (`DISTLOCK_KIND_PERMIT`).
pub const DISTLOCK_MAX_PERMITS: u32 = 10_000;

const _: () = assert!(DISTLOCK_MAX_PERMITS == MAX_PERMITS);

/// What `distlock_acquire_kind` was asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Read,
    Write,
    Permit(u32),
    Fair,
}

impl Kind {
    /// The C arguments `kind` and `permits` as a kind. Counts are checked
    /// by the library when the permit is asked for, not here; a count with
    /// any other kind is refused, as it would otherwise be ignored.
    fn from_c(kind: u32, permits: u32) -> Result<Kind, Failure> {
        let k = match kind {
            DISTLOCK_KIND_PLAIN => Kind::Plain,
            DISTLOCK_KIND_READ => Kind::Read,
            DISTLOCK_KIND_WRITE => Kind::Write,
            DISTLOCK_KIND_PERMIT => return Ok(Kind::Permit(permits)),
            DISTLOCK_KIND_FAIR => Kind::Fair,
            other => {
                return Err(Failure::invalid(format!(
                    "kind is {other}; expected DISTLOCK_KIND_PLAIN (0) to DISTLOCK_KIND_FAIR (4)"
                )))
            }
        };
        if permits != 0 {
            return Err(Failure::invalid(format!(
                "permits is {permits}, but only DISTLOCK_KIND_PERMIT takes a permit count: pass 0"
            )));
        }
        Ok(k)
    }

    /// The lock handle whose acquisitions are of this kind, and what a try
    /// that finds no room says.
    fn lock(self, client: &Client, name: String) -> (Lock, &'static str) {
        match self {
            Kind::Plain => (client.lock(name), "the lock is held by someone else"),
            Kind::Fair => (
                client.lock(name).fair(),
                "the lock is held, or other fair waiters are ahead",
            ),
            Kind::Read => (
                client.rw_lock(name).read(),
                "a writer holds the lock or waits for it",
            ),
            Kind::Write => (
                client.rw_lock(name).write(),
                "the lock is held by readers or a writer",
            ),
            Kind::Permit(n) => (
                client.semaphore(name, n).as_lock().clone(),
                "every permit of the semaphore is taken",
            ),
        }
    }
}

/// Acquires `key` as the given `kind` of lock: one of the
/// `DISTLOCK_KIND_*` constants. The result is an ordinary guard: with its
/// own token, lease, renewal and fence, read and released with the
/// `distlock_guard_*` functions like one from `distlock_acquire`.
///
/// - `DISTLOCK_KIND_PLAIN`: exactly `distlock_acquire`.
/// - `DISTLOCK_KIND_READ` / `DISTLOCK_KIND_WRITE`: the read or write side
///   of the read-write lock `key`: many readers or one writer. Writers are
///   preferred: once a writer waits, new readers wait too. Not re-entrant
///   and not upgradable: asking for the write side while holding the read
///   side waits on yourself.
/// - `DISTLOCK_KIND_PERMIT`: one permit of the semaphore `key` of
///   `permits` permits (1 to `DISTLOCK_MAX_PERMITS`). The count travels
///   with each acquisition: a new count applies to new acquisitions at
///   once, and holders keep their permits.
/// - `DISTLOCK_KIND_FAIR`: the plain lock `key`, with waiters served in
///   arrival order.
///
/// `permits` must be 0 for every kind but `DISTLOCK_KIND_PERMIT`. `ttl_ms`,
/// `timeout_ms`, `cancel` and `out` are as for `distlock_acquire`; a try
/// (`timeout_ms == 0`) that finds no room returns `DISTLOCK_NOT_ACQUIRED`.
///
/// On success `*out` receives a new guard handle, owned by the caller: free
/// it with `distlock_guard_free` (which also releases it if still held).
/// On failure `*out` is set to NULL.
///
/// Returns `DISTLOCK_OK`, `DISTLOCK_NOT_ACQUIRED`, `DISTLOCK_TIMEOUT`,
/// `DISTLOCK_CANCELLED`, `DISTLOCK_INVALID_ARGUMENT` (an unknown `kind`; a
/// permit count out of range, or given with another kind; a name in use
/// by another kind of lock; a kind the deployment does not support, as
/// memcached, etcd, ZooKeeper and Redlock support only plain locks; and what
/// `distlock_acquire` refuses), `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS`. `distlock_last_error` says which.
///
/// # Safety
///
/// As for `distlock_acquire`: `key` is NULL or a NUL-terminated string (or
/// at least 1025 readable bytes); `out` is NULL or valid for writing a
/// pointer.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn distlock_acquire_kind(
    client: *mut distlock_client,
    key: *const c_char,
    kind: u32,
    permits: u32,
    ttl_ms: u64,
    timeout_ms: i64,
    cancel: *mut distlock_cancel,
    out: *mut *mut distlock_guard,
) -> i32 {
    status_call("distlock_acquire_kind", || {
        let make = |c: &Client| {
            // SAFETY: the caller guarantees `key` is NULL or NUL-terminated.
            let key = unsafe { read_str(key, "key", MAX_KEY_LEN) }?;
            Ok(Kind::from_c(kind, permits)?.lock(c, key))
        };
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { acquire_into(client, out, ttl_ms, timeout_ms, cancel, make) }
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{c, last};
    use super::super::{
        distlock_acquire, distlock_cancel_free, distlock_cancel_new, distlock_cancel_trigger,
        distlock_client_close, distlock_client_open, distlock_guard_fence, distlock_guard_free,
        distlock_guard_release, distlock_status,
    };
    use super::*;

    const OK: i32 = distlock_status::DISTLOCK_OK as i32;
    const BUSY: i32 = distlock_status::DISTLOCK_NOT_ACQUIRED as i32;
    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;
    const TIMEOUT: i32 = distlock_status::DISTLOCK_TIMEOUT as i32;
    const CANCELLED: i32 = distlock_status::DISTLOCK_CANCELLED as i32;

    fn open(url: &str) -> *mut distlock_client {
        let url = c(url);
        let mut client = std::ptr::null_mut();
        // SAFETY: a NUL-terminated URL and a valid place for the handle.
        let got = unsafe { distlock_client_open(url.as_ptr(), std::ptr::null(), &mut client) };
        assert_eq!(got, OK, "{}", last());
        client
    }

    /// One try of `kind` on `key`: the status and the guard (NULL unless
    /// OK).
    fn take(
        client: *mut distlock_client,
        key: &str,
        kind: u32,
        permits: u32,
        timeout_ms: i64,
    ) -> (i32, *mut distlock_guard) {
        let key = c(key);
        let mut g = std::ptr::dangling_mut::<distlock_guard>();
        // SAFETY: a NUL-terminated key and a valid place for the handle.
        let got = unsafe {
            distlock_acquire_kind(
                client,
                key.as_ptr(),
                kind,
                permits,
                0,
                timeout_ms,
                std::ptr::null_mut(),
                &mut g,
            )
        };
        assert_eq!(got == OK, !g.is_null(), "out is set exactly on success");
        (got, g)
    }

    #[test]
    fn kinds_and_counts_are_checked_before_anything_is_asked() {
        assert_eq!(Kind::from_c(3, 7).ok(), Some(Kind::Permit(7)));
        assert_eq!(Kind::from_c(3, 0).ok(), Some(Kind::Permit(0)));
        assert_eq!(Kind::from_c(4, 0).ok(), Some(Kind::Fair));
        let e = Kind::from_c(5, 0).err().unwrap();
        assert!(e.message.contains("kind is 5"), "{}", e.message);
        let e = Kind::from_c(DISTLOCK_KIND_READ, 2).err().unwrap();
        assert!(e.message.contains("pass 0"), "{}", e.message);

        // NULL and unknown handles, NULL out: refused without a server.
        let key = c("k");
        let mut g = std::ptr::null_mut();
        // SAFETY: NULL handles are allowed; the key is NUL-terminated.
        unsafe {
            let got = distlock_acquire_kind(
                std::ptr::null_mut(),
                key.as_ptr(),
                DISTLOCK_KIND_READ,
                0,
                0,
                0,
                std::ptr::null_mut(),
                &mut g,
            );
            assert_eq!(got, INVALID);
            assert!(last().contains("client handle is NULL"), "{}", last());
            let got = distlock_acquire_kind(
                std::ptr::null_mut(),
                key.as_ptr(),
                DISTLOCK_KIND_READ,
                0,
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            assert_eq!(got, INVALID);
            assert!(last().contains("out is NULL"), "{}", last());
        }
    }

    #[test]
    fn every_kind_gives_a_guard_and_the_library_refuses_what_it_refuses() {
        let server = distlock_testkit::RedisServer::start();
        let (a, b) = (open(&server.url()), open(&server.url()));

        // Readers share; a writer waits for them.
        let (got, r1) = take(a, "rw", DISTLOCK_KIND_READ, 0, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, r2) = take(b, "rw", DISTLOCK_KIND_READ, 0, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, _) = take(b, "rw", DISTLOCK_KIND_WRITE, 0, 0);
        assert_eq!(got, BUSY);
        assert!(last().contains("readers or a writer"), "{}", last());
        let (got, _) = take(b, "rw", DISTLOCK_KIND_WRITE, 0, 50);
        assert_eq!(got, TIMEOUT);
        let (mut f1, mut f2) = (0, 0);
        // SAFETY: live guards and valid places for the fences.
        unsafe {
            assert_eq!(distlock_guard_fence(r1, &mut f1), OK);
            assert_eq!(distlock_guard_fence(r2, &mut f2), OK);
        }
        assert!(f2 > f1, "every share has its own fence");
        assert_eq!(distlock_guard_release(r1), OK);
        distlock_guard_free(r1);
        distlock_guard_free(r2);
        let (got, w) = take(b, "rw", DISTLOCK_KIND_WRITE, 0, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, _) = take(a, "rw", DISTLOCK_KIND_READ, 0, 0);
        assert_eq!(got, BUSY);
        assert!(last().contains("writer"), "{}", last());

        // A name in use as one kind is refused as another, in the
        // library's words.
        let (got, _) = take(a, "rw", DISTLOCK_KIND_PERMIT, 2, 0);
        assert_eq!(got, INVALID);
        assert!(
            last().contains("in use by a read-write lock; a semaphore"),
            "{}",
            last()
        );
        distlock_guard_free(w);

        // A semaphore of 2: two permits, then none.
        let (got, p1) = take(a, "sem", DISTLOCK_KIND_PERMIT, 2, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, p2) = take(b, "sem", DISTLOCK_KIND_PERMIT, 2, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, _) = take(b, "sem", DISTLOCK_KIND_PERMIT, 2, 0);
        assert_eq!(got, BUSY);
        assert!(last().contains("every permit"), "{}", last());
        for permits in [0, DISTLOCK_MAX_PERMITS + 1] {
            let (got, _) = take(a, "sem-bad", DISTLOCK_KIND_PERMIT, permits, 0);
            assert_eq!(got, INVALID);
            let want = format!("a semaphore must have 1 to 10000 permits, got {permits}");
            assert!(last().contains(&want), "{}", last());
        }
        distlock_guard_free(p1);
        distlock_guard_free(p2);

        // A fair lock, and the plain kind is distlock_acquire.
        let (got, fair) = take(a, "fair", DISTLOCK_KIND_FAIR, 0, 0);
        assert_eq!(got, OK, "{}", last());
        let (got, _) = take(b, "fair", DISTLOCK_KIND_FAIR, 0, 0);
        assert_eq!(got, BUSY);
        assert_eq!(distlock_guard_release(fair), OK);
        distlock_guard_free(fair);
        let (got, plain) = take(b, "fair", DISTLOCK_KIND_PLAIN, 0, 0);
        assert_eq!(got, OK, "{}", last());
        let key = c("fair");
        let mut g = std::ptr::null_mut();
        // SAFETY: a NUL-terminated key and a valid place for the handle.
        let got = unsafe { distlock_acquire(a, key.as_ptr(), 0, 0, std::ptr::null_mut(), &mut g) };
        assert_eq!(got, BUSY);
        distlock_guard_free(plain);

        // An already triggered cancel stops a wait for any kind.
        let cancel = distlock_cancel_new();
        assert_eq!(distlock_cancel_trigger(cancel), OK);
        let key = c("cancelled");
        // SAFETY: as above.
        let got = unsafe {
            distlock_acquire_kind(
                a,
                key.as_ptr(),
                DISTLOCK_KIND_READ,
                0,
                0,
                -1,
                cancel,
                &mut g,
            )
        };
        assert_eq!(got, CANCELLED);
        assert!(g.is_null());
        distlock_cancel_free(cancel);
        distlock_client_close(a);
        distlock_client_close(b);
    }

    #[test]
    fn stores_without_shares_refuse_them_in_the_librarys_words() {
        let mc = distlock_testkit::MemcachedServer::start();
        let client = open(&mc.url());
        let (got, _) = take(client, "x", DISTLOCK_KIND_READ, 0, 0);
        assert_eq!(got, INVALID);
        assert!(
            last().contains("read-write locks are not supported with"),
            "{}",
            last()
        );
        let (got, _) = take(client, "x", DISTLOCK_KIND_PERMIT, 3, 0);
        assert_eq!(got, INVALID);
        assert!(
            last().contains("semaphores are not supported with"),
            "{}",
            last()
        );
        let (got, _) = take(client, "x", DISTLOCK_KIND_FAIR, 0, 0);
        assert_eq!(got, INVALID, "{}", last());
        let (got, g) = take(client, "x", DISTLOCK_KIND_PLAIN, 0, 0);
        assert_eq!(got, OK, "{}", last());
        distlock_guard_free(g);
        distlock_client_close(client);
    }
}
