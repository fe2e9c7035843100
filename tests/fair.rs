//! The FIFO-fair lock against a real redis-server: arrival order across
//! clients, dead waiters' places running out, giving up, and what fairness
//! costs beside the default (barging) lock.

use distlock_testkit as support;

use distlock::{Client, Error};
use redis::Commands;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::RedisServer;

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// Waiters in the line of the fair lock `name` (default prefix).
fn line_len(raw: &mut redis::Connection, name: &str) -> usize {
    raw.zcard(format!("{{distlock:{name}}}:line")).unwrap()
}

/// Waits (at most five seconds) until the line of `name` is `n` long.
fn until_line(server: &RedisServer, name: &str, n: usize) {
    let mut raw = server.conn();
    let start = Instant::now();
    while line_len(&mut raw, name) != n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the line of {name} never got {n} long"
        );
        std::thread::yield_now();
    }
}

#[test]
fn waiters_of_every_client_are_served_in_arrival_order() {
    let server = RedisServer::start();
    let holder = client(&server);
    let first = holder.lock("fifo").fair().acquire().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..5 {
        // Each waiter on its own client, queued before the next arrives.
        let c = client(&server);
        let order = order.clone();
        threads.push(std::thread::spawn(move || {
            let g = c.lock("fifo").fair().acquire().unwrap();
            order.lock().unwrap().push(i);
            g.release().unwrap();
        }));
        until_line(&server, "fifo", i + 1);
    }
    first.release().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    let mut raw = server.conn();
    assert_eq!(line_len(&mut raw, "fifo"), 0, "the line empties");
}

#[test]
fn a_dead_waiters_place_runs_out_and_the_line_moves_on() {
    let server = RedisServer::start();
    let c = client(&server);
    // A waiter that took a place and died: it is first in line, kept for
    // another 300 ms, and nobody will ever ask for it again.
    let mut raw = server.conn();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut raw).unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    let _: () = raw
        .zadd(
            "{distlock:dead}:line",
            "dead-waiter",
            secs * 1_000_000 + micros,
        )
        .unwrap();
    let _: () = raw
        .zadd("{distlock:dead}:places", "dead-waiter", now_ms + 300)
        .unwrap();
    let lock = c.lock("dead").fair();
    assert!(
        lock.try_acquire().unwrap().is_none(),
        "the dead waiter is ahead"
    );
    assert_eq!(line_len(&mut raw, "dead"), 1, "a try keeps no place");
    let started = Instant::now();
    let g = lock.acquire_timeout(Duration::from_secs(5)).unwrap();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    assert!(g.is_held());
    assert_eq!(line_len(&mut raw, "dead"), 0);
}

#[test]
fn a_waiter_that_gives_up_leaves_the_line_and_lets_the_next_go() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let held = a.lock("giveup").fair().acquire().unwrap();
    assert!(matches!(
        b.lock("giveup")
            .fair()
            .acquire_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    let mut raw = server.conn();
    assert_eq!(line_len(&mut raw, "giveup"), 0, "the place went with it");
    held.release().unwrap();
    let _g = b
        .lock("giveup")
        .fair()
        .try_acquire()
        .unwrap()
        .expect("free");
}

#[test]
fn fair_is_for_plain_locks_only_and_a_fair_guard_renews() {
    let server = RedisServer::start();
    let c = client(&server);
    let e = c.rw_lock("x").read().fair().try_acquire().unwrap_err();
    assert!(
        e.to_string().contains("fair() applies to plain locks only"),
        "{e}"
    );
    let g = c
        .lock("renewed")
        .fair()
        .ttl(Duration::from_millis(150))
        .acquire()
        .unwrap();
    assert!(g
        .lost()
        .recv_timeout(Duration::from_millis(600))
        .is_err_and(|e| e.is_timeout()));
    assert!(g.is_held());
    g.extend().unwrap();
    g.release().unwrap();
}

/// The cost of fairness beside the default lock, in the same run: an
/// uncontended cycle (one round trip each way in both), and a contended
/// run of 4 clients taking turns. Printed, and bounded loosely.
#[test]
fn fairness_costs_little_uncontended_and_serves_everyone_contended() {
    let server = RedisServer::start();
    let c = client(&server);
    let cycle = |fair: bool| {
        let lock = if fair {
            c.lock("cost").fair()
        } else {
            c.lock("cost")
        };
        let start = Instant::now();
        for _ in 0..200 {
            lock.acquire().unwrap().release().unwrap();
        }
        start.elapsed() / 200
    };
    let _ = cycle(false);
    let (plain, fair) = (cycle(false), cycle(true));
    let contended = |fair: bool| {
        let start = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = client(&server);
                std::thread::spawn(move || {
                    let lock = if fair {
                        c.lock("turns").fair()
                    } else {
                        c.lock("turns")
                    };
                    for _ in 0..25 {
                        lock.acquire().unwrap().release().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        start.elapsed() / 100
    };
    let (plain_turns, fair_turns) = (contended(false), contended(true));
    println!(
        "uncontended cycle: plain {plain:?}, fair {fair:?} ({:.2}x); \
         4 clients contended, per acquisition: plain {plain_turns:?}, fair {fair_turns:?} ({:.2}x)",
        fair.as_secs_f64() / plain.as_secs_f64(),
        fair_turns.as_secs_f64() / plain_turns.as_secs_f64()
    );
    assert!(
        fair < plain * 5,
        "uncontended fair cycle {fair:?} vs {plain:?}"
    );
}

#[test]
fn a_release_wakes_the_head_of_the_line_alone() {
    let server = RedisServer::start();
    let holder = client(&server);
    let first = holder.lock("head").fair().acquire().unwrap();
    let (won_tx, won_rx) = crossbeam_channel::unbounded::<(usize, String)>();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    for i in 0..3 {
        // Waiters that would look again only after an hour: only a release
        // message can wake them soon.
        let c = Client::builder()
            .url(&server.url())
            .max_retry_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let (won_tx, (go_tx, go_rx)) = (won_tx.clone(), crossbeam_channel::bounded::<()>(1));
        go.push(go_tx);
        threads.push(std::thread::spawn(move || {
            let g = c.lock("head").fair().acquire().unwrap();
            won_tx.send((i, g.token().to_string())).unwrap();
            let _ = go_rx.recv();
            g.release().unwrap();
        }));
        until_line(&server, "head", i + 1);
    }
    let mut raw = server.conn();
    let mut feed = raw.as_pubsub();
    feed.subscribe("distlock:head").unwrap();
    feed.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    first.release().unwrap();
    for turn in 0..3 {
        let told: String = feed.get_message().unwrap().get_payload().unwrap();
        let (i, token) = won_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(i, turn, "arrival order");
        assert_eq!(told, format!("to:{token}"), "only the head was told");
        go[i].send(()).unwrap();
    }
    let told: String = feed.get_message().unwrap().get_payload().unwrap();
    assert_eq!(told, "released", "an empty line wakes everybody");
    for t in threads {
        t.join().unwrap();
    }
}
