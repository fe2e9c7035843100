//! Turning Rust results and panics into status codes and thread-local
//! error messages.

use super::distlock_status;
use crate::Error;
use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Why a C call did not succeed: the status to return and the message
/// `distlock_last_error` shows.
pub(crate) struct Failure {
    pub status: distlock_status,
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub(crate) fn new(status: distlock_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A bad argument: a NULL pointer, malformed string or value out of range.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(distlock_status::DISTLOCK_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Timeout => distlock_status::DISTLOCK_TIMEOUT,
            Error::Lost => distlock_status::DISTLOCK_LOST,
            Error::Cancelled => distlock_status::DISTLOCK_CANCELLED,
            Error::InvalidArgument(_) => distlock_status::DISTLOCK_INVALID_ARGUMENT,
            Error::Connection(_) => distlock_status::DISTLOCK_CONNECTION,
            Error::Auth(_) => distlock_status::DISTLOCK_AUTH,
            Error::Redis(_) => distlock_status::DISTLOCK_REDIS,
        };
        Failure::new(status, e.to_string())
    }
}

/// What a status-returning call body produces.
pub(crate) type Outcome = Result<(), Failure>;

/// Stores `message` as this thread's last error. Never panics: a message
/// with an interior NUL is cut there, and a thread that is exiting keeps
/// no message.
fn set_last_error(message: &str) {
    let cut = message.split('\0').next().unwrap_or_default();
    let text = CString::new(cut).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(text);
        }
    });
}

/// This thread's last error message, or NULL. The pointer stays valid until
/// the next failed call on this thread replaces the message.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| match slot.try_borrow() {
            Ok(slot) => slot.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()),
            Err(_) => std::ptr::null(),
        })
        .unwrap_or(std::ptr::null())
}

/// The text of a caught panic, as far as it can be recovered.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Records a caught panic as this thread's last error.
fn record_panic(function: &str, payload: Box<dyn Any + Send>) {
    set_last_error(&format!(
        "internal error: {function} panicked: {}",
        panic_text(&*payload)
    ));
    // Dropping a payload can itself panic; that must not unwind into C either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

/// The signals held back while a C function runs: those a runtime that
/// calls us sends its own threads at any moment, Go's preemption signal
/// (SIGURG) and a profiler's tick (SIGPROF). Every Redis command reads its
/// socket with a timeout (`SO_RCVTIMEO`), and such a read is never
/// restarted after a signal handler runs, `SA_RESTART` or not
/// (signal(7)): it fails with EINTR, which breaks the connection, and a
/// release whose reply was lost that way reports a loss that was not one.
/// Held back, they are delivered when the call returns. Other signals
/// (Ctrl-C's among them) are left alone.
struct HeldSignals(Option<libc::sigset_t>);

impl HeldSignals {
    fn hold() -> HeldSignals {
        // SAFETY: sigset_t is plain data that sigemptyset initialises;
        // pthread_sigmask only changes this thread's mask, and writes the
        // old one into `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGURG);
            libc::sigaddset(&mut set, libc::SIGPROF);
            let held = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) == 0;
            HeldSignals(held.then_some(old))
        }
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the mask this thread had before `hold`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
        }
    }
}

/// Runs the body of the status-returning C function `function`: success is
/// `DISTLOCK_OK`; a failure or a panic sets this thread's last error and
/// returns its status. Nothing unwinds out of here. [`HeldSignals`] are
/// held back meanwhile.
pub(crate) fn status_call(function: &str, body: impl FnOnce() -> Outcome) -> i32 {
    let _held = HeldSignals::hold();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => distlock_status::DISTLOCK_OK as i32,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status as i32
        }
        Err(payload) => {
            record_panic(function, payload);
            distlock_status::DISTLOCK_INTERNAL as i32
        }
    }
}

/// Runs the body of a C function that cannot report failure (a free or a
/// constructor): a panic is recorded as this thread's last error and
/// `fallback` returned instead.
pub(crate) fn quiet_call<T>(function: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    // A free may release a lock: the same signals are held back.
    let _held = HeldSignals::hold();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            record_panic(function, payload);
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> Option<String> {
        let p = last_error();
        // SAFETY: a non-NULL pointer from `last_error` names this thread's
        // stored CString, which nothing replaces during this read.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    #[test]
    fn failures_and_panics_become_statuses_and_messages() {
        std::thread::spawn(|| {
            assert_eq!(last(), None);
            assert_eq!(status_call("f", || Ok(())), 0);
            assert_eq!(last(), None);
            let lost = status_call("f", || Err(Error::Lost.into()));
            assert_eq!(lost, distlock_status::DISTLOCK_LOST as i32);
            assert!(last().unwrap().contains("not held"));
            let bad = status_call("f", || Err(Failure::invalid("a\0b")));
            assert_eq!(bad, distlock_status::DISTLOCK_INVALID_ARGUMENT as i32);
            assert_eq!(last().as_deref(), Some("a"));
            let boom = status_call("distlock_boom", || panic!("kaboom {}", 42));
            assert_eq!(boom, distlock_status::DISTLOCK_INTERNAL as i32);
            let msg = last().unwrap();
            assert!(
                msg.contains("distlock_boom") && msg.contains("kaboom 42"),
                "{msg}"
            );
            // Success leaves the last failure's message in place.
            assert_eq!(status_call("f", || Ok(())), 0);
            assert!(last().is_some());
            assert_eq!(quiet_call("g", 5, || -> i32 { panic!("x") }), 5);
        })
        .join()
        .unwrap();
    }
}
