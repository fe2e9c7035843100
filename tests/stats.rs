//! `Client::stats` against a scripted workload: each counter moves by
//! exactly what the script did, on a real redis-server.

use distlock_testkit as support;

use distlock::{Client, Error, Guard, Stats};
use redis::Commands;
use std::time::{Duration, Instant};
use support::{spawn, RedisServer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits, at most `limit`, until `done(stats)`; returns the last stats.
fn stats_until(c: &Client, limit: Duration, done: impl Fn(&Stats) -> bool) -> Stats {
    let start = Instant::now();
    loop {
        let s = c.stats();
        if done(&s) || start.elapsed() > limit {
            return s;
        }
        std::thread::sleep(ms(5));
    }
}

#[test]
fn counters_follow_a_scripted_workload() {
    let server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .ttl(ms(300))
        .build()
        .unwrap();
    assert_eq!(c.stats(), Stats::default(), "a new client has done nothing");

    // Two uncontended cycles.
    for _ in 0..2 {
        c.lock("a").acquire().unwrap().release().unwrap();
    }
    let s = c.stats();
    assert_eq!((s.acquired, s.contended), (2, 0), "{s:?}");

    // A thread of this client waits for another's guard. Nothing shows
    // from outside when the waiter has joined the local queue, so each
    // round only checks that a hand-off happened exactly when the waiter
    // had to wait, and some round must have handed off.
    let mut rounds = 0;
    let mut before = c.stats();
    loop {
        rounds += 1;
        let held = c.lock("b").acquire().unwrap();
        let fence = held.fence();
        let waiter = {
            let lock = c.lock("b");
            spawn(move || lock.acquire().map(|g| g.fence()))
        };
        std::thread::sleep(ms(20 * rounds));
        held.release().unwrap();
        assert!(waiter.recv_timeout(ms(5000)).unwrap().unwrap() > fence);
        let s = c.stats();
        assert_eq!(s.acquired - before.acquired, 2, "{s:?}");
        let handoffs = s.local_handoffs - before.local_handoffs;
        assert_eq!(handoffs, s.contended - before.contended, "{s:?}");
        if handoffs == 1 {
            // The waiter waited about as long as the holder slept.
            assert!(s.wait_max >= ms(10), "{s:?}");
            assert!(
                s.wait_p50 <= s.wait_p99 && s.wait_p99 <= s.wait_max,
                "{s:?}"
            );
            break;
        }
        assert!(rounds < 10, "no hand-off in {rounds} rounds: {s:?}");
        before = s;
    }

    // Another client holds "c": a timeout, a cancel, and a try that finds
    // it held (not counted: it did not wait).
    let other = Client::open(&server.url()).unwrap();
    let theirs = other.lock("c").acquire().unwrap();
    assert_eq!(
        c.lock("c").acquire_timeout(ms(50)).unwrap_err(),
        Error::Timeout
    );
    let (cancel_tx, cancel_rx) = crossbeam_channel::bounded(1);
    cancel_tx.send(()).unwrap();
    assert_eq!(
        c.lock("c")
            .acquire_cancellable(None, &cancel_rx)
            .unwrap_err(),
        Error::Cancelled
    );
    assert!(c.lock("c").try_acquire().unwrap().is_none());
    let s = c.stats();
    assert_eq!((s.timed_out, s.cancelled), (1, 1), "{s:?}");
    let acquired = s.acquired;
    drop(theirs);

    // A held lock is renewed (every 100 ms for a 300 ms lease) ...
    let g = c.lock("d").acquire().unwrap();
    assert_eq!(c.stats().acquired, acquired + 1);
    let s = stats_until(&c, ms(5000), |s| s.renewals >= 2);
    assert!(s.renewals >= 2, "{s:?}");
    assert_eq!(s.renewal_failures, 0, "{s:?}");
    // ... until someone deletes its key: one loss.
    let _: i64 = server.conn().del("distlock:d").unwrap();
    assert!(g.lost().recv_timeout(ms(5000)).is_err());
    let s = stats_until(&c, ms(1000), |s| s.lost >= 1);
    assert_eq!(s.lost, 1, "{s:?}");
    drop(g);
    assert_eq!(
        c.stats().lost,
        1,
        "a release after the loss is not a second loss"
    );
}

#[test]
fn an_unreachable_server_counts_renewal_failures_and_feed_reconnects() {
    let mut server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .ttl(ms(600))
        .command_timeout(ms(100))
        .connect_timeout(ms(100))
        .build()
        .unwrap();
    // A waiter on another client's lock opens the release feed.
    let other = Client::open(&server.url()).unwrap();
    let theirs = other.lock("f").acquire().unwrap();
    assert_eq!(
        c.lock("f").acquire_timeout(ms(100)).unwrap_err(),
        Error::Timeout
    );
    drop(theirs);
    let g = c.lock("e").acquire().unwrap();
    server.stop();
    let s = stats_until(&c, ms(5000), |s| s.renewal_failures >= 1 && s.lost >= 1);
    assert!(s.renewal_failures >= 1, "{s:?}");
    assert_eq!(s.lost, 1, "the lease ran out unrenewed: {s:?}");
    assert!(!g.is_held());
    drop(g);
    let s = stats_until(&c, ms(5000), |s| s.feed_reconnects >= 1);
    assert!(s.feed_reconnects >= 1, "{s:?}");
}

#[test]
fn held_lists_the_locks_held_under_the_prefix_and_stops_at_its_limit() {
    let server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .prefix("ops*1")
        .build()
        .unwrap();
    let other_prefix = Client::builder()
        .url(&server.url())
        .prefix("ops")
        .build()
        .unwrap();
    let guards: Vec<_> = ["jobs:a", "jobs:b", "user:{42}:cart", "x"]
        .iter()
        .map(|n| c.lock(*n).acquire().unwrap())
        .collect();
    // Their fences, read now (they were left for later), are what the
    // listing shows the counters of.
    let fences: Vec<u64> = guards.iter().map(Guard::fence).collect();
    assert!(fences.iter().all(|&f| f > 0));
    let _elsewhere = other_prefix.lock("jobs:z").acquire().unwrap();
    drop(c.lock("jobs:released").acquire().unwrap());

    let all = c.held("*", 100).unwrap();
    let mut names: Vec<&str> = all.locks.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    // The prefix's '*' is matched literally: "ops" locks are not ours.
    assert_eq!(names, ["jobs:a", "jobs:b", "user:{42}:cart", "x"]);
    assert!(!all.truncated);
    for lock in &all.locks {
        let g = guards.iter().find(|g| g.name() == lock.name).unwrap();
        assert_eq!(lock.info.token.as_deref(), Some(g.token()));
        assert!(lock.info.remaining.is_some_and(|r| r > Duration::ZERO));
        assert!(lock.info.fence.is_some_and(|f| f >= g.fence()));
        assert!(fences.contains(&g.fence()));
    }
    let jobs = c.held("jobs:*", 100).unwrap();
    assert_eq!(jobs.locks.len(), 2);
    let one = c.held("*", 1).unwrap();
    assert_eq!((one.locks.len(), one.truncated), (1, true));
    assert!(matches!(c.held("", 1), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.held("*", 0), Err(Error::InvalidArgument(_))));
}
