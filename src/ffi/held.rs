//! Listing the locks held under a client's prefix, for operators and
//! tools: `Client::held` for C, as an opaque result read one entry at a
//! time.

use super::args::{check_out, millis, read_str};
use super::handles::Registry;
use super::outcome::{quiet_call, status_call, Failure};
use super::{client_of, distlock_client, put, DISTLOCK_MAX_KEY_LEN};
use crate::{HeldLock, Holder};
use std::ffi::{c_char, CString};
use std::sync::{Arc, LazyLock};

/// What `distlock_client_held` found (opaque): read its entries with
/// `distlock_held_get`, free it with `distlock_held_free`. It owns every
/// string its entries point to.
pub struct distlock_held {
    locks: Vec<Entry>,
}

/// One held lock, with its strings as C strings.
struct Entry {
    name: CString,
    token: CString,
    remaining_ms: Option<u64>,
    fence: Option<u64>,
    holder: Option<(CString, u32, Option<CString>)>,
}

static HELDS: LazyLock<Registry<distlock_held>> = LazyLock::new(Registry::new);

/// `text` as a C string, each NUL replaced by U+FFFD (a key or value set
/// by something other than distlock may hold one).
pub(super) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

impl Entry {
    fn new(lock: HeldLock) -> Entry {
        let info = lock.info;
        Entry {
            name: c_string(&lock.name),
            token: c_string(info.token.as_deref().unwrap_or_default()),
            remaining_ms: info.remaining.map(millis),
            fence: info.fence,
            holder: info.holder.map(|Holder { host, pid, label }| {
                (c_string(&host), pid, label.as_deref().map(c_string))
            }),
        }
    }
}

/// One entry of a `distlock_held`, filled by `distlock_held_get`. The
/// strings belong to the `distlock_held` and stay valid until
/// `distlock_held_free`: never free them, and copy what you keep longer.
///
/// Set `struct_size` to `sizeof(distlock_held_lock)` before the call:
/// later versions may append fields, and the library writes no byte past
/// `struct_size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct distlock_held_lock {
    /// Set by the caller: `sizeof(distlock_held_lock)`.
    pub struct_size: usize,
    /// The lock's name, as given to `distlock_acquire` (without the
    /// prefix). NUL-terminated.
    pub name: *const c_char,
    /// The holder's token: what `distlock_client_release_token` takes.
    /// NUL-terminated.
    pub token: *const c_char,
    /// Whether `remaining_ms` is known: false when the key has no expiry
    /// (set by something other than distlock).
    pub has_remaining: bool,
    /// Whether `fence` is set: false if no fencing token was ever handed
    /// out for this key.
    pub has_fence: bool,
    /// Whether the holder described itself (`holder_*` below): false for a
    /// lock taken by an older distlock, or set by something else.
    pub has_holder: bool,
    /// The holder's remaining lease in milliseconds, if `has_remaining`.
    pub remaining_ms: u64,
    /// The highest fencing token handed out for this key so far, if
    /// `has_fence`.
    pub fence: u64,
    /// The holder's process id, if `has_holder` (else 0).
    pub holder_pid: u32,
    /// The holder's host name, if `has_holder` (else NULL). NUL-terminated.
    pub holder_host: *const c_char,
    /// The holder's label (`distlock_config_set_holder_label`), or NULL
    /// when it set none or `has_holder` is false. NUL-terminated.
    pub holder_label: *const c_char,
}

/// Lists the locks held now under the client's prefix whose names match
/// the glob `pattern` (`"*"` for all; `?`, `[abc]` and `\` escapes as in
/// Redis `SCAN MATCH`), at most `limit` of them: for operators and tools.
/// Found with `SCAN`, a bounded number of keys per step, so it is safe on
/// a busy server; it is a snapshot that may miss locks taken or include
/// locks freed while it runs. Not available on Redis Cluster or memcached;
/// with Redlock the list comes from the first node that answers.
///
/// On success `*out` receives a new result handle, owned by the caller:
/// read its entries with `distlock_held_get` (index 0 to `*count - 1`, in
/// no particular order) and free it with `distlock_held_free`. `*more` is
/// true when the listing stopped at `limit`: there may be more locks. On
/// failure `*out` is NULL, `*count` 0 and `*more` false.
///
/// Returns `DISTLOCK_OK`; `DISTLOCK_INVALID_ARGUMENT` for a NULL or unknown
/// client, a NULL `out`, `count` or `more`, a NULL, empty, non-UTF-8 or
/// over-long (`DISTLOCK_MAX_KEY_LEN`) pattern, a `limit` of 0, or a
/// deployment that cannot list (cluster, memcached); or
/// `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or `DISTLOCK_REDIS`.
///
/// # Safety
///
/// `pattern` is NULL or a NUL-terminated string; `out`, `count` and `more`
/// are NULL or valid for writing a pointer, a `size_t` and a `bool`.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_held(
    client: *mut distlock_client,
    pattern: *const c_char,
    limit: usize,
    out: *mut *mut distlock_held,
    count: *mut usize,
    more: *mut bool,
) -> i32 {
    status_call("distlock_client_held", || {
        check_out(out, "out")?;
        check_out(count, "count")?;
        check_out(more, "more")?;
        // SAFETY: all three are non-NULL, and the caller guarantees they
        // are writable.
        unsafe {
            put(out, std::ptr::null_mut());
            put(count, 0);
            put(more, false);
        }
        let client = client_of(client)?;
        // SAFETY: the caller guarantees `pattern` is NULL or NUL-terminated.
        let pattern = unsafe { read_str(pattern, "pattern", DISTLOCK_MAX_KEY_LEN) }?;
        let found = client.client.held(&pattern, limit)?;
        let locks: Vec<Entry> = found.locks.into_iter().map(Entry::new).collect();
        let n = locks.len();
        let handle = HELDS.insert(distlock_held { locks });
        // SAFETY: as above.
        unsafe {
            put(out, handle);
            put(count, n);
            put(more, found.truncated);
        }
        Ok(())
    })
}

fn held_of(handle: *const distlock_held) -> Result<Arc<distlock_held>, Failure> {
    HELDS
        .get(handle)
        .ok_or_else(|| Failure::invalid(super::unknown("held", handle.is_null())))
}

/// Fills `*out` with entry `index` of `held` (0 to the count that
/// `distlock_client_held` gave, minus one). Its strings point into `held`:
/// valid until `distlock_held_free(held)`.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown `held`, an `index` out of range, a NULL `out`, or an
/// `out->struct_size` smaller than `sizeof(distlock_held_lock)` (then
/// nothing is written).
///
/// # Safety
///
/// `out` is NULL, or points to a `distlock_held_lock` whose first
/// `out->struct_size` bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn distlock_held_get(
    held: *const distlock_held,
    index: usize,
    out: *mut distlock_held_lock,
) -> i32 {
    status_call("distlock_held_get", || {
        check_out(out, "out")?;
        // SAFETY: `out` is non-NULL, and the caller guarantees it points to
        // a distlock_held_lock, whose first field is `struct_size`.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        let ours = std::mem::size_of::<distlock_held_lock>();
        if size < ours {
            return Err(Failure::invalid(format!(
                "out->struct_size is {size}; set it to sizeof(distlock_held_lock), {ours}"
            )));
        }
        let held = held_of(held)?;
        let Some(e) = held.locks.get(index) else {
            return Err(Failure::invalid(format!(
                "index {index} is out of range: the listing has {} locks",
                held.locks.len()
            )));
        };
        let (has_holder, holder_pid, holder_host, holder_label) = match &e.holder {
            Some((host, pid, label)) => (
                true,
                *pid,
                host.as_ptr(),
                label.as_ref().map_or(std::ptr::null(), |l| l.as_ptr()),
            ),
            None => (false, 0, std::ptr::null(), std::ptr::null()),
        };
        let entry = distlock_held_lock {
            struct_size: size,
            name: e.name.as_ptr(),
            token: e.token.as_ptr(),
            has_remaining: e.remaining_ms.is_some(),
            has_fence: e.fence.is_some(),
            has_holder,
            remaining_ms: e.remaining_ms.unwrap_or(0),
            fence: e.fence.unwrap_or(0),
            holder_pid,
            holder_host,
            holder_label,
        };
        // SAFETY: `struct_size` covers this struct, which the caller
        // guarantees writable. The strings live in the registry's value
        // until distlock_held_free removes it.
        unsafe { put(out, entry) };
        Ok(())
    })
}

/// Frees a result of `distlock_client_held`, and the strings its entries
/// point to. NULL or an unknown handle is a no-op.
#[no_mangle]
pub extern "C" fn distlock_held_free(held: *mut distlock_held) {
    quiet_call("distlock_held_free", (), || {
        drop(HELDS.remove(held));
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{c, last};
    use super::super::{
        distlock_acquire, distlock_client_close, distlock_client_open, distlock_guard_fence,
        distlock_guard_free, distlock_guard_token, distlock_status, DISTLOCK_TOKEN_LEN,
    };
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::CStr;

    const OK: i32 = distlock_status::DISTLOCK_OK as i32;
    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;

    fn text(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: the library's strings are NUL-terminated and live until
        // distlock_held_free.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    }

    /// Lists `pattern`: (name -> (token, fence, remaining)), more.
    fn list(
        client: *mut distlock_client,
        pattern: &str,
        limit: usize,
    ) -> (BTreeMap<String, (String, u64, u64)>, bool) {
        let pattern = c(pattern);
        let (mut held, mut count, mut more) = (std::ptr::null_mut(), 99, true);
        // SAFETY: valid places for the results; a NUL-terminated pattern.
        let got = unsafe {
            distlock_client_held(
                client,
                pattern.as_ptr(),
                limit,
                &mut held,
                &mut count,
                &mut more,
            )
        };
        assert_eq!(got, OK, "{}", last());
        let mut found = BTreeMap::new();
        for i in 0..count {
            // SAFETY: all-zero is a valid distlock_held_lock (NULL
            // pointers, false, 0).
            let mut e: distlock_held_lock = unsafe { std::mem::zeroed() };
            e.struct_size = std::mem::size_of::<distlock_held_lock>();
            // SAFETY: a writable, sized struct.
            assert_eq!(unsafe { distlock_held_get(held, i, &mut e) }, OK);
            assert!(e.has_remaining && e.has_fence && e.remaining_ms > 0);
            assert!(e.has_holder);
            assert_eq!(e.holder_pid, std::process::id());
            assert!(!text(e.holder_host).is_empty());
            assert!(e.holder_label.is_null());
            found.insert(text(e.name), (text(e.token), e.fence, e.remaining_ms));
        }
        // Past the end: refused, nothing written.
        // SAFETY: as above.
        let mut e: distlock_held_lock = unsafe { std::mem::zeroed() };
        e.struct_size = std::mem::size_of::<distlock_held_lock>();
        // SAFETY: as above.
        assert_eq!(unsafe { distlock_held_get(held, count, &mut e) }, INVALID);
        assert!(last().contains("out of range"), "{}", last());
        assert!(e.name.is_null());
        distlock_held_free(held);
        // SAFETY: as above.
        assert_eq!(unsafe { distlock_held_get(held, 0, &mut e) }, INVALID);
        (found, more)
    }

    #[test]
    fn held_lists_the_locks_under_the_prefix_with_tokens_and_fences() {
        let server = distlock_testkit::RedisServer::start();
        let url = c(&server.url());
        let mut client = std::ptr::null_mut();
        // SAFETY: a NUL-terminated URL and a valid place for the handle.
        let got = unsafe { distlock_client_open(url.as_ptr(), std::ptr::null(), &mut client) };
        assert_eq!(got, OK);
        let mut guards = Vec::new();
        let (mut tokens, mut fences) = (BTreeMap::new(), BTreeMap::new());
        for name in ["held:a", "held:b", "other"] {
            let key = c(name);
            let mut g = std::ptr::null_mut();
            // SAFETY: a NUL-terminated key and a valid place for the handle.
            let got = unsafe {
                distlock_acquire(client, key.as_ptr(), 5000, 0, std::ptr::null_mut(), &mut g)
            };
            assert_eq!(got, OK);
            let mut buf = [0 as c_char; DISTLOCK_TOKEN_LEN + 1];
            // SAFETY: the buffer's length is given.
            assert_eq!(
                unsafe { distlock_guard_token(g, buf.as_mut_ptr(), buf.len()) },
                OK
            );
            tokens.insert(name.to_owned(), text(buf.as_ptr()));
            // The fence (asked for now, the first time: the lock was taken
            // without one) is what puts a counter on the server.
            let mut fence = 0u64;
            // SAFETY: a live guard and a writable u64.
            assert_eq!(unsafe { distlock_guard_fence(g, &mut fence) }, OK);
            assert!(fence > 0);
            fences.insert(name.to_owned(), fence);
            guards.push(g);
        }

        let (all, more) = list(client, "*", 100);
        assert!(!more);
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["held:a", "held:b", "other"]
        );
        for (name, (token, fence, remaining)) in &all {
            assert_eq!(token, &tokens[name]);
            // The counter: the last fence of the guard's block.
            assert_eq!(*fence, fences[name] + 63);
            assert!(*remaining <= 5000);
        }
        let (some, more) = list(client, "held:*", 100);
        assert_eq!(some.keys().collect::<Vec<_>>(), ["held:a", "held:b"]);
        assert!(!more);
        let (one, more) = list(client, "*", 1);
        assert_eq!((one.len(), more), (1, true));

        // Bad arguments.
        let (mut held, mut count, mut more) = (std::ptr::null_mut(), 7, true);
        // SAFETY: valid places; NUL-terminated patterns.
        unsafe {
            let star = c("*");
            let got =
                distlock_client_held(client, star.as_ptr(), 0, &mut held, &mut count, &mut more);
            assert_eq!(got, INVALID);
            assert!(last().contains("limit"), "{}", last());
            assert!(held.is_null() && count == 0 && !more);
            let empty = c("");
            let got =
                distlock_client_held(client, empty.as_ptr(), 5, &mut held, &mut count, &mut more);
            assert_eq!(got, INVALID);
            let got = distlock_client_held(
                client,
                std::ptr::null(),
                5,
                &mut held,
                &mut count,
                &mut more,
            );
            assert_eq!(got, INVALID);
            assert!(last().contains("pattern is NULL"), "{}", last());
            let got = distlock_client_held(
                client,
                star.as_ptr(),
                5,
                &mut held,
                std::ptr::null_mut(),
                &mut more,
            );
            assert_eq!(got, INVALID);
            assert!(last().contains("count is NULL"), "{}", last());
            let got = distlock_client_held(
                std::ptr::null_mut(),
                star.as_ptr(),
                5,
                &mut held,
                &mut count,
                &mut more,
            );
            assert_eq!(got, INVALID);
            assert!(last().contains("client handle is NULL"), "{}", last());
            // A short struct is refused before anything is written.
            let mut e: distlock_held_lock = std::mem::zeroed();
            e.struct_size = std::mem::size_of::<distlock_held_lock>() - 1;
            assert_eq!(distlock_held_get(std::ptr::null(), 0, &mut e), INVALID);
            assert!(last().contains("struct_size"), "{}", last());
            e.struct_size = std::mem::size_of::<distlock_held_lock>();
            assert_eq!(distlock_held_get(std::ptr::null(), 0, &mut e), INVALID);
            assert!(last().contains("held handle is NULL"), "{}", last());
        }
        distlock_held_free(std::ptr::null_mut());
        for g in guards {
            distlock_guard_free(g);
        }
        let (none, more) = list(client, "*", 100);
        assert!(none.is_empty() && !more);
        distlock_client_close(client);
    }
}
