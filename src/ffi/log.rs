//! The library's log lines for C: one process-wide callback fed by the
//! `log` facade, `distlock_set_log_callback`.
//!
//! The bridge is installed with `log::set_logger` the first time a callback
//! is set, and stays installed; setting another callback swaps the target
//! under a lock, and removing it turns `log`'s maximum level back to `Off`,
//! so that the library's `log` calls cost one comparison again.

use super::outcome::{status_call, Failure};
use ::log::{LevelFilter, Log, Metadata, Record};
use parking_lot::RwLock;
use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// No log lines (as a `level` for `distlock_set_log_callback`: removes the
/// callback).
pub const DISTLOCK_LOG_OFF: i32 = 0;
/// Errors.
pub const DISTLOCK_LOG_ERROR: i32 = 1;
/// Warnings: a renewal that failed, a lock lost (with why), a
/// release-feed reconnect, a failover. Worth an operator's attention.
pub const DISTLOCK_LOG_WARN: i32 = 2;
/// Information.
pub const DISTLOCK_LOG_INFO: i32 = 3;
/// Debug lines: each acquisition (name, fence, wait), release and local
/// hand-off. Several per lock cycle: for debugging, not for production.
pub const DISTLOCK_LOG_DEBUG: i32 = 4;
/// Everything.
pub const DISTLOCK_LOG_TRACE: i32 = 5;

/// A log callback: `level` is one of `DISTLOCK_LOG_ERROR` (1) to
/// `DISTLOCK_LOG_TRACE` (5); `target` names the part of the library that
/// wrote the line (`"distlock"` or `"distlock::<module>"`); `message` is
/// the line itself, without a newline, with any password in it already
/// scrubbed; `user` is the pointer given to `distlock_set_log_callback`.
/// `target` and `message` are NUL-terminated UTF-8 copies, valid only
/// during the call: copy what you keep.
pub type distlock_log_fn = Option<
    unsafe extern "C" fn(
        level: i32,
        target: *const c_char,
        message: *const c_char,
        user: *mut c_void,
    ),
>;

/// Where log lines go: the callback, its `user` pointer and the most
/// verbose level passed on.
#[derive(Clone, Copy)]
struct Sink {
    level: LevelFilter,
    call: unsafe extern "C" fn(i32, *const c_char, *const c_char, *mut c_void),
    /// The caller's `user` pointer, only ever handed back to it.
    user: usize,
}

/// The current callback. Read (shared) for each line delivered; written by
/// `distlock_set_log_callback`, which therefore waits for the deliveries in
/// progress.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Whether the bridge is `log`'s logger: decided by the first callback set
/// (false if the program had installed another logger already).
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// Set while this thread runs the callback: lines logged meanwhile (by
    /// distlock called from the callback) are dropped instead of
    /// delivered recursively.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// The `log` logger that forwards the library's own records to the sink.
struct Bridge;

static BRIDGE: Bridge = Bridge;

/// Whether `target` is the library's own: its dependencies' records are
/// not passed on, since nothing vouches that they keep secrets out.
fn ours(target: &str) -> bool {
    target == "distlock" || target.starts_with("distlock::")
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata.target())
            && SINK
                .read()
                .is_some_and(|sink| metadata.level() <= sink.level)
    }

    fn log(&self, record: &Record<'_>) {
        // A library thread (renewal, feed) must not die of a bad record.
        let _ = catch_unwind(AssertUnwindSafe(|| deliver(record)));
    }

    fn flush(&self) {}
}

/// Clears this thread's `IN_CALLBACK` when dropped.
struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|flag| flag.set(false));
    }
}

/// `text` as a C string, each NUL replaced by U+FFFD.
fn c_text(text: &str) -> CString {
    let text = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    };
    CString::new(text).unwrap_or_default()
}

/// Passes `record` to the sink, if it wants it.
fn deliver(record: &Record<'_>) {
    if !ours(record.target()) {
        return;
    }
    // Nested (or the thread is exiting): dropped.
    if IN_CALLBACK
        .try_with(|flag| flag.replace(true))
        .unwrap_or(true)
    {
        return;
    }
    let _leave = Leave;
    let slot = SINK.read();
    let Some(sink) = *slot else { return };
    if record.level() > sink.level {
        return;
    }
    let target = c_text(record.target());
    let message = c_text(&record.args().to_string());
    // `log::Level` counts from Error = 1 to Trace = 5, as the C levels do.
    let level = record.level() as i32;
    // SAFETY: the caller of distlock_set_log_callback guarantees that the
    // callback may be called from any thread with these arguments, until
    // it is replaced (which waits for this read lock to go).
    unsafe {
        (sink.call)(
            level,
            target.as_ptr(),
            message.as_ptr(),
            sink.user as *mut c_void,
        )
    };
}

/// The filter for a C level.
fn filter(level: i32) -> Result<LevelFilter, Failure> {
    Ok(match level {
        DISTLOCK_LOG_OFF => LevelFilter::Off,
        DISTLOCK_LOG_ERROR => LevelFilter::Error,
        DISTLOCK_LOG_WARN => LevelFilter::Warn,
        DISTLOCK_LOG_INFO => LevelFilter::Info,
        DISTLOCK_LOG_DEBUG => LevelFilter::Debug,
        DISTLOCK_LOG_TRACE => LevelFilter::Trace,
        _ => {
            return Err(Failure::invalid(format!(
                "log level {level} is out of range: 0 (off) to 5 (trace)"
            )))
        }
    })
}

/// Makes the bridge `log`'s logger if it is not yet; false if another
/// logger was there first.
fn install() -> bool {
    *INSTALLED.get_or_init(|| ::log::set_logger(&BRIDGE).is_ok())
}

/// Sends the library's log lines at `level` and more severe to `callback`,
/// for the whole process (every client), replacing the callback set
/// before. Without a callback nothing is logged, and the library's log
/// statements cost one comparison each.
///
/// - `level`: `DISTLOCK_LOG_ERROR` (1), `DISTLOCK_LOG_WARN` (2),
///   `DISTLOCK_LOG_INFO` (3), `DISTLOCK_LOG_DEBUG` (4) or
///   `DISTLOCK_LOG_TRACE` (5), the numbers of Rust's `log::Level`; a line
///   is passed on if its level is at most this. `DISTLOCK_LOG_OFF` (0)
///   removes the callback, as a NULL `callback` does.
/// - `callback`: see `distlock_log_fn`. It is called from whichever thread
///   logs: the caller's own (acquire, release) or one of the library's
///   background threads (lease renewal, release notifications), possibly
///   from several at once, so it must be thread-safe; and it must return
///   quickly and must not call distlock functions (it may run while the
///   library holds an internal lock; lines distlock would log during the
///   callback are dropped).
/// - `user`: passed back to every call, never read by the library.
///
/// Once this returns, the previous callback is not running and will not be
/// called again (this waits for calls in progress): its `user` may be
/// freed.
///
/// Only the library's own lines are passed on (targets `distlock` and
/// `distlock::…`), not those of the crates it is built on.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a `level` out
/// of range, for a call from inside the callback, or when the program's
/// Rust code installed a `log` logger of its own (a Rust program linking
/// distlock: its logger gets distlock's lines; remove the callback is then
/// a no-op that succeeds).
#[no_mangle]
pub extern "C" fn distlock_set_log_callback(
    level: i32,
    callback: distlock_log_fn,
    user: *mut c_void,
) -> i32 {
    status_call("distlock_set_log_callback", || {
        let level = filter(level)?;
        if IN_CALLBACK.try_with(Cell::get).unwrap_or(false) {
            return Err(Failure::invalid(
                "distlock_set_log_callback cannot be called from inside the log callback",
            ));
        }
        let sink = match callback {
            Some(call) if level != LevelFilter::Off => Some(Sink {
                level,
                call,
                user: user as usize,
            }),
            _ => None,
        };
        if sink.is_some() && !install() {
            return Err(Failure::invalid(
                "another logger is installed in this process (log::set_logger was called \
                 before): distlock's lines go to it, and no log callback can be set",
            ));
        }
        let mut slot = SINK.write();
        *slot = sink;
        if INSTALLED.get() == Some(&true) {
            ::log::set_max_level(sink.map_or(LevelFilter::Off, |s| s.level));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{c, last};
    use super::super::{
        distlock_acquire, distlock_client, distlock_client_close, distlock_client_open,
        distlock_guard_free, distlock_status,
    };
    use super::*;
    use parking_lot::Mutex;
    use std::ffi::CStr;

    const OK: i32 = distlock_status::DISTLOCK_OK as i32;
    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;

    /// One line the test callback saw: level, target, message, user.
    type Line = (i32, String, String, usize);

    static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());
    /// What a nested distlock_set_log_callback returned, from inside.
    static NESTED: Mutex<Option<i32>> = Mutex::new(None);

    unsafe extern "C" fn collect(
        level: i32,
        target: *const c_char,
        msg: *const c_char,
        user: *mut c_void,
    ) {
        // SAFETY: the bridge passes NUL-terminated strings valid for the call.
        let (target, msg) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(msg)) };
        let msg = msg.to_string_lossy().into_owned();
        if msg.contains("log-nested") {
            *NESTED.lock() = Some(distlock_set_log_callback(DISTLOCK_LOG_DEBUG, None, user));
        }
        LINES.lock().push((
            level,
            target.to_string_lossy().into_owned(),
            msg,
            user as usize,
        ));
    }

    /// The lines seen so far whose message contains `needle`.
    fn seen(needle: &str) -> Vec<Line> {
        LINES
            .lock()
            .iter()
            .filter(|l| l.2.contains(needle))
            .cloned()
            .collect()
    }

    fn acquire_once(client: *mut distlock_client, key: &str) {
        let key = c(key);
        let mut guard = std::ptr::null_mut();
        // SAFETY: a NUL-terminated key and a valid place for the handle.
        let got = unsafe {
            distlock_acquire(client, key.as_ptr(), 0, 0, std::ptr::null_mut(), &mut guard)
        };
        assert_eq!(got, OK);
        distlock_guard_free(guard);
    }

    // Every check of the process-wide callback in one test, so that no
    // other test of this module swaps it meanwhile.
    #[test]
    fn the_callback_gets_the_librarys_lines_at_its_level_until_removed() {
        let server = distlock_testkit::RedisServer::start();
        let url = c(&server.url());
        let mut client = std::ptr::null_mut();
        // SAFETY: a NUL-terminated URL and a valid place for the handle.
        let got = unsafe { distlock_client_open(url.as_ptr(), std::ptr::null(), &mut client) };
        assert_eq!(got, OK);
        let user = 0x5eed_usize as *mut c_void;

        // Out of range levels are refused, whatever the callback.
        for bad in [-1, 6, i32::MAX] {
            assert_eq!(distlock_set_log_callback(bad, Some(collect), user), INVALID);
            assert!(last().contains("out of range"), "{}", last());
        }

        // Debug: the acquisition's line, with the lock's name and our user.
        assert_eq!(
            distlock_set_log_callback(DISTLOCK_LOG_DEBUG, Some(collect), user),
            OK
        );
        assert_eq!(::log::max_level(), LevelFilter::Debug);
        acquire_once(client, "log-debug-k");
        let lines = seen("\"log-debug-k\"");
        assert!(
            lines
                .iter()
                .any(|(level, target, msg, u)| *level == DISTLOCK_LOG_DEBUG
                    && ours(target)
                    && msg.contains("acquired")
                    && *u == 0x5eed),
            "{lines:?}"
        );

        // Warnings only: no debug line for the next acquisition.
        assert_eq!(
            distlock_set_log_callback(DISTLOCK_LOG_WARN, Some(collect), user),
            OK
        );
        assert_eq!(::log::max_level(), LevelFilter::Warn);
        acquire_once(client, "log-warn-k");
        assert!(seen("\"log-warn-k\"").is_empty());
        assert!(!BRIDGE.enabled(
            &Metadata::builder()
                .level(::log::Level::Debug)
                .target("distlock")
                .build()
        ));
        assert!(BRIDGE.enabled(
            &Metadata::builder()
                .level(::log::Level::Warn)
                .target("distlock::lease")
                .build()
        ));
        // Other crates' lines are not ours to pass on.
        assert!(!BRIDGE.enabled(
            &Metadata::builder()
                .level(::log::Level::Error)
                .target("rustls")
                .build()
        ));

        // NULs in a message become U+FFFD; the callback cannot swap itself.
        let record = |msg: std::fmt::Arguments<'_>| {
            BRIDGE.log(
                &Record::builder()
                    .level(::log::Level::Warn)
                    .target("distlock::test")
                    .args(msg)
                    .build(),
            )
        };
        record(format_args!("log-nul a\0b"));
        record(format_args!("log-other"));
        BRIDGE.log(
            &Record::builder()
                .level(::log::Level::Warn)
                .target("rustls")
                .args(format_args!("log-foreign"))
                .build(),
        );
        assert_eq!(seen("log-nul")[0].2, "log-nul a\u{FFFD}b");
        assert_eq!(seen("log-other").len(), 1);
        assert!(seen("log-foreign").is_empty());
        record(format_args!("log-nested"));
        assert_eq!(*NESTED.lock(), Some(INVALID));
        assert_eq!(seen("log-nested").len(), 1);
        record(format_args!("log-still"));
        assert_eq!(
            seen("log-still").len(),
            1,
            "the nested call changed nothing"
        );

        // Removed (NULL, or level 0): nothing more, and log is off again.
        assert_eq!(
            distlock_set_log_callback(DISTLOCK_LOG_DEBUG, None, user),
            OK
        );
        assert_eq!(::log::max_level(), LevelFilter::Off);
        record(format_args!("log-gone"));
        acquire_once(client, "log-gone-k");
        assert!(seen("log-gone").is_empty());
        assert_eq!(
            distlock_set_log_callback(DISTLOCK_LOG_DEBUG, Some(collect), user),
            OK
        );
        assert_eq!(
            distlock_set_log_callback(DISTLOCK_LOG_OFF, Some(collect), user),
            OK
        );
        assert_eq!(::log::max_level(), LevelFilter::Off);
        record(format_args!("log-gone"));
        assert!(seen("log-gone").is_empty());
        distlock_client_close(client);
    }
}
