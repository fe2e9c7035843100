//! Helpers the C ABI's unit tests share.

use super::distlock_last_error;
use std::ffi::{CStr, CString};

/// The calling thread's last error message, which a failed call must have
/// set.
pub(super) fn last() -> String {
    let p = distlock_last_error();
    assert!(!p.is_null());
    // SAFETY: a non-NULL last error is a NUL-terminated string that stays
    // valid until this thread's next failed call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `s` as a C string (test inputs hold no NUL).
pub(super) fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}
