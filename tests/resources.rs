//! Threads and connections a client owns come and go with it.
//!
//! Alone in its own test binary, so that no other test's threads disturb
//! the counts.

mod support;

use distlock::Client;
use std::time::{Duration, Instant};
use support::{thread_count, RedisServer};

/// Threads of this process once they settle to `want`, or the last count
/// seen after two seconds. Detached pool threads exit shortly after their
/// pool is dropped; nothing signals that, so this watches /proc.
fn settle_threads(want: usize) -> usize {
    let start = Instant::now();
    loop {
        let n = thread_count();
        if n == want || start.elapsed() > Duration::from_secs(2) {
            return n;
        }
        std::thread::yield_now();
    }
}

#[test]
fn cycles_leak_nothing_and_dropping_the_client_stops_its_threads() {
    let server = RedisServer::start();
    let baseline = thread_count();

    let client = Client::open(&server.url()).unwrap();
    let lock = client.lock("cycles");
    drop(lock.acquire().unwrap());
    let threads = thread_count();
    let pool = client.pool_state();
    assert!(threads > baseline, "the client runs its own threads");

    for _ in 0..1_000 {
        let g = lock.acquire().unwrap();
        assert!(g.is_held());
        g.release().unwrap();
    }
    assert_eq!(thread_count(), threads, "threads after 1,000 cycles");
    assert_eq!(client.pool_state(), pool, "pool after 1,000 cycles");

    let clone = client.clone();
    drop(client);
    assert_eq!(thread_count(), threads, "a clone keeps the client alive");
    drop(lock);
    drop(clone);
    let left = settle_threads(baseline);
    assert_eq!(left, baseline, "threads after the last drop");
}
