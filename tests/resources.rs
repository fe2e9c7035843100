//! Threads, file descriptors and connections a client owns come and go
//! with it, and do not grow with use or with faults.
//!
//! Alone in its own test binary, so that no other test's threads or files
//! disturb the counts.

mod support;

use distlock::Client;
use std::time::{Duration, Instant};
use support::{thread_count, RedisServer};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `(threads, fds)` once they settle to `want`, or the last seen after two
/// seconds. Detached pool threads exit shortly after their pool is dropped
/// and sockets close as connections are retired; nothing signals either,
/// so this watches /proc.
fn settle(want: (usize, usize)) -> (usize, usize) {
    let start = Instant::now();
    loop {
        let now = (thread_count(), fd_count());
        if now == want || start.elapsed() > Duration::from_secs(2) {
            return now;
        }
        std::thread::yield_now();
    }
}

#[test]
fn use_and_faults_leak_nothing_and_dropping_the_client_stops_its_threads() {
    let mut server = RedisServer::start();
    let baseline = (thread_count(), fd_count());

    let client = Client::builder()
        .url(&server.url())
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let lock = client.lock("cycles");
    drop(lock.acquire().unwrap());
    let steady = (thread_count(), fd_count());
    let pool = client.pool_state();
    assert!(steady.0 > baseline.0, "the client runs its own threads");

    for _ in 0..10_000 {
        let g = lock.acquire().unwrap();
        assert!(g.is_held());
        g.release().unwrap();
    }
    assert_eq!((thread_count(), fd_count()), steady, "after 10,000 cycles");
    assert_eq!(client.pool_state(), pool, "pool after 10,000 cycles");

    // A fault: the server dies and comes back empty. The dead connection is
    // retired and replaced; nothing accumulates.
    server.restart();
    let g = lock.acquire_timeout(Duration::from_secs(5)).unwrap();
    g.release().unwrap();
    for _ in 0..100 {
        lock.acquire().unwrap().release().unwrap();
    }
    assert_eq!(settle(steady), steady, "after a restart");
    assert_eq!(client.pool_state(), pool, "pool after a restart");

    let clone = client.clone();
    drop(client);
    assert_eq!(thread_count(), steady.0, "a clone keeps the client alive");
    drop(lock);
    drop(clone);
    assert_eq!(settle(baseline), baseline, "after the last drop");
}
