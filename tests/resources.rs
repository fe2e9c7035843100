//! Threads, file descriptors and connections a client owns come and go
//! with it, and do not grow with use or with faults.
//!
//! Alone in its own test binary, so that no other test's threads or files
//! disturb the counts.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error, Lock, PoolState};
use std::time::{Duration, Instant};
use support::{signal, thread_count, RedisServer};

/// `n` acquire/release cycles of `lock`, each asserted.
fn cycles(lock: &Lock, n: usize) {
    for _ in 0..n {
        lock.acquire().unwrap().release().unwrap();
    }
}

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

/// After a fault: the client's threads are where they were, every
/// connection is back in the pool, and every descriptor beyond the steady
/// state is one of its connections. The pool may keep one more than before
/// (the renewal thread's, opened while the caller's timed out), never more.
fn recovered(client: &Client, steady: (usize, usize), pool: PoolState, what: &str) {
    let now = client.pool_state();
    assert_eq!(
        now.idle, now.connections,
        "every connection idle after {what}"
    );
    assert!(
        now.connections <= pool.connections + 1,
        "pool after {what}: {now:?}, was {pool:?}"
    );
    let extra = now.connections.saturating_sub(pool.connections) as usize;
    let want = (steady.0, steady.1 + extra);
    assert_eq!(settle(want), want, "threads and descriptors after {what}");
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
    cycles(&lock, 100);
    recovered(&client, steady, pool, "a restart");

    // A fault: Redis paused beyond the lease of a held lock. The lease runs
    // out, the calls meanwhile time out, and what they broke is replaced.
    let short = client.lock("paused").ttl(Duration::from_millis(400));
    let g = short.acquire().unwrap();
    signal(server.pid(), libc::SIGSTOP);
    let lost = g.lost().recv_timeout(Duration::from_secs(3));
    signal(server.pid(), libc::SIGCONT);
    assert_eq!(lost, Err(RecvTimeoutError::Disconnected), "lease ran out");
    assert_eq!(g.release(), Err(Error::Lost));
    cycles(&lock, 100);
    recovered(&client, steady, pool, "a pause");

    // A fault: the server cuts every connection, the release feed's too.
    // The held lock survives; its release answers from a fresh connection.
    let g = short.acquire().unwrap();
    {
        let mut admin = server.conn();
        for kind in ["normal", "pubsub"] {
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(kind)
                .query(&mut admin)
                .unwrap();
        }
    }
    assert_eq!(g.release(), Ok(()), "release after the cut");
    cycles(&lock, 100);
    recovered(&client, steady, pool, "connections were cut");
    drop(short);

    let clone = client.clone();
    drop(client);
    assert_eq!(thread_count(), steady.0, "a clone keeps the client alive");
    drop(lock);
    drop(clone);
    assert_eq!(settle(baseline), baseline, "after the last drop");
}
