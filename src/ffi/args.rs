//! Reading C arguments: bounded strings, optional structs and out-pointers.

use super::outcome::Failure;
use std::ffi::c_char;
use std::time::{Duration, Instant};

/// Reads the NUL-terminated UTF-8 string at `ptr`, looking at no more than
/// `max + 1` bytes, so an unterminated or huge buffer is refused instead of
/// scanned.
///
/// # Safety
///
/// `ptr` is NULL, or points to readable memory that holds a NUL within its
/// first `max + 1` bytes or is at least `max + 1` bytes long.
pub(crate) unsafe fn read_str(
    ptr: *const c_char,
    what: &str,
    max: usize,
) -> Result<String, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `max + 1` readable bytes or a NUL
    // before them; strnlen reads no further than either.
    let len = unsafe { libc::strnlen(ptr, max + 1) };
    if len > max {
        return Err(Failure::invalid(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    // SAFETY: strnlen just found `len` readable bytes before the NUL.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(Failure::invalid(format!(
            "{what} is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))),
    }
}

/// Refuses a NULL out-pointer before any work is done, so that nothing is
/// acquired or allocated that could not be handed back.
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::invalid(format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// Timeouts past this are treated as "wait forever": no deadline that far
/// away can matter, and it keeps deadline arithmetic far from overflow.
const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The C timeout convention: `Some(None)` waits forever (negative or
/// absurdly long), `Some(Some(d))` waits at most `d`, and `None` means
/// "do not wait" (zero).
pub(crate) fn wait_limit(timeout_ms: i64) -> Option<Option<Duration>> {
    match u64::try_from(timeout_ms) {
        Err(_) => Some(None),
        Ok(0) => None,
        Ok(ms) => {
            let d = Duration::from_millis(ms);
            Some((d < FOREVER).then_some(d))
        }
    }
}

/// The deadline for a wait of `limit` (`None` = no deadline).
pub(crate) fn deadline(limit: Option<Duration>) -> Option<Instant> {
    limit.and_then(|d| Instant::now().checked_add(d))
}

/// `d` in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_bounded_checked_and_copied() {
        let ok = c"orders:42";
        // SAFETY: literal C strings are NUL-terminated.
        assert_eq!(
            unsafe { read_str(ok.as_ptr(), "key", 16) }.ok().as_deref(),
            Some("orders:42")
        );
        // SAFETY: as above.
        let long = unsafe { read_str(ok.as_ptr(), "key", 8) }.err().unwrap();
        assert!(long.message.contains("longer than 8"));
        let bad = b"ab\xffc\0";
        // SAFETY: a NUL-terminated byte string.
        let err = unsafe { read_str(bad.as_ptr().cast(), "key", 16) }
            .err()
            .unwrap();
        assert!(err.message.contains("UTF-8"), "{}", err.message);
        // SAFETY: NULL is allowed.
        assert!(unsafe { read_str(std::ptr::null(), "key", 16) }.is_err());
    }

    #[test]
    fn timeouts_follow_the_c_convention() {
        assert_eq!(wait_limit(-1), Some(None));
        assert_eq!(wait_limit(0), None);
        assert_eq!(wait_limit(5), Some(Some(Duration::from_millis(5))));
        assert_eq!(wait_limit(i64::MAX), Some(None));
    }
}
