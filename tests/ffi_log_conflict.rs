//! `distlock_set_log_callback` in a process whose Rust code installed a
//! `log` logger of its own first: refused with a message that says so, and
//! the program's logger and level are left alone. (A test binary of its
//! own: the logger of a process can be set only once.)

use distlock::ffi::{
    distlock_last_error, distlock_set_log_callback, distlock_status, DISTLOCK_LOG_DEBUG,
    DISTLOCK_LOG_OFF,
};
use log::{LevelFilter, Log, Metadata, Record};
use std::ffi::{c_char, c_void, CStr};

struct Theirs;

impl Log for Theirs {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &Record<'_>) {}
    fn flush(&self) {}
}

static THEIRS: Theirs = Theirs;

unsafe extern "C" fn unused(_: i32, _: *const c_char, _: *const c_char, _: *mut c_void) {}

#[test]
fn a_logger_installed_first_is_reported_and_kept() {
    log::set_logger(&THEIRS).unwrap();
    log::set_max_level(LevelFilter::Info);
    let got = distlock_set_log_callback(DISTLOCK_LOG_DEBUG, Some(unused), std::ptr::null_mut());
    assert_eq!(got, distlock_status::DISTLOCK_INVALID_ARGUMENT as i32);
    // SAFETY: a failed call left a NUL-terminated message on this thread.
    let message = unsafe { CStr::from_ptr(distlock_last_error()) }.to_string_lossy();
    assert!(message.contains("another logger is installed"), "{message}");
    // Removing is a no-op that succeeds, and leaves the program's level.
    for (level, callback) in [
        (DISTLOCK_LOG_OFF, Some(unused as _)),
        (DISTLOCK_LOG_DEBUG, None),
    ] {
        let got = distlock_set_log_callback(level, callback, std::ptr::null_mut());
        assert_eq!(got, distlock_status::DISTLOCK_OK as i32);
    }
    assert_eq!(log::max_level(), LevelFilter::Info);
    // And it stays refused.
    let got = distlock_set_log_callback(DISTLOCK_LOG_DEBUG, Some(unused), std::ptr::null_mut());
    assert_eq!(got, distlock_status::DISTLOCK_INVALID_ARGUMENT as i32);
}
