//! Through the C ABI, a signal a runtime sends its own threads (Go's
//! preemption signal, a profiler's tick) must not break a command: a
//! socket read with a timeout is never restarted after a handler runs
//! (signal(7)), so it would fail with EINTR, and a release would report a
//! loss that was not one.

use distlock::ffi::{
    distlock_acquire, distlock_client_close, distlock_client_open, distlock_guard_free,
    distlock_guard_release,
};
use distlock_testkit::RedisServer;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static DELIVERED: AtomicU64 = AtomicU64::new(0);

extern "C" fn count(_: libc::c_int) {
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

/// Installs a counting handler for `sig` with `SA_RESTART`, as Go does.
fn install(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction with a handler that only touches an
    // atomic (async-signal-safe) and an emptied mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
fn lock_cycles_survive_signals_sent_to_the_calling_thread() {
    install(libc::SIGURG);
    install(libc::SIGPROF);
    let server = RedisServer::start();
    let url = CString::new(server.url()).unwrap();
    let mut client = std::ptr::null_mut();
    // SAFETY: a NUL-terminated URL and a valid place for the handle.
    assert_eq!(
        unsafe { distlock_client_open(url.as_ptr(), std::ptr::null(), &mut client) },
        0
    );
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                let sig = if sent.is_multiple_of(2) {
                    libc::SIGURG
                } else {
                    libc::SIGPROF
                };
                // SAFETY: `me` is the test thread, alive until `stop`.
                unsafe { libc::pthread_kill(me, sig) };
                sent += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            sent
        })
    };
    let mut failures = Vec::new();
    for i in 0..2_000 {
        let mut guard = std::ptr::null_mut();
        // SAFETY: a NUL-terminated key and a valid place for the handle.
        let got = unsafe {
            distlock_acquire(
                client,
                c"signals".as_ptr(),
                0,
                0,
                std::ptr::null_mut(),
                &mut guard,
            )
        };
        if got != 0 {
            failures.push((i, "acquire", got));
            continue;
        }
        let released = distlock_guard_release(guard);
        if released != 0 {
            failures.push((i, "release", released));
        }
        distlock_guard_free(guard);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    distlock_client_close(client);
    let delivered = DELIVERED.load(Ordering::Relaxed);
    println!("{sent} signals sent, {delivered} delivered, failures {failures:?}");
    assert!(delivered > 100, "the signals must have come: {delivered}");
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
}
