//! Lease caching (`Builder::linger`) on a real redis-server: a lock taken
//! again while it lingers costs no round trip, keeps its fences rising,
//! and goes at once to another client that announces it wants it.

use distlock_testkit as support;

use distlock::{Client, Error};
use std::time::{Duration, Instant};
use support::{spawn, wait_until_subscribed, RedisServer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn lingering(server: &RedisServer, linger: Duration) -> Client {
    Client::builder()
        .url(&server.url())
        .ttl(ms(5_000))
        .linger(linger)
        .build()
        .unwrap()
}

/// Commands the server has processed (this query included).
fn commands(server: &RedisServer) -> u64 {
    server.stat("total_commands_processed")
}

/// Scripts the server has run (`EVALSHA` calls, failed ones included).
fn script_calls(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits, at most five seconds, until at least `n` clients listen on
/// `channel`.
fn wait_until_listening(server: &RedisServer, channel: &str, n: u64) {
    let mut raw = server.conn();
    let start = Instant::now();
    loop {
        let (_, got): (Vec<u8>, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut raw)
            .unwrap();
        if got >= n {
            return;
        }
        assert!(start.elapsed() < ms(5_000), "{got} listen on {channel:?}");
        std::thread::yield_now();
    }
}

/// Waits until a client lingering on `name` hears the announcements of
/// those who want it.
fn wait_until_lingering(server: &RedisServer, name: &str) {
    wait_until_listening(server, &format!("{{distlock:{name}}}:want"), 1);
}

/// Waits until `n` clients listen for releases of `name`.
fn wait_until_listeners(server: &RedisServer, name: &str, n: u64) {
    wait_until_listening(server, &format!("distlock:{name}"), n);
}

/// Has `c` linger on `name`: its first release goes to the server and
/// starts hearing who wants the lock; once it hears them, a release stays.
fn linger_on(server: &RedisServer, c: &Client, name: &str) {
    c.lock(name).acquire().unwrap().release().unwrap();
    wait_until_lingering(server, name);
    let other = Client::open(&server.url()).unwrap();
    for _ in 0..100 {
        c.lock(name).acquire().unwrap().release().unwrap();
        if other.inspect(name).unwrap().token.is_some() {
            return;
        }
        std::thread::sleep(ms(10));
    }
    panic!("{name:?} never lingered");
}

#[test]
fn the_first_release_goes_to_the_server_and_starts_hearing() {
    let server = RedisServer::start();
    let c = lingering(&server, ms(30_000));
    let other = Client::open(&server.url()).unwrap();
    c.lock("first").acquire().unwrap().release().unwrap();
    // Nobody could have told this client it was wanted yet: no stay.
    assert_eq!(other.inspect("first").unwrap().token, None);
    wait_until_lingering(&server, "first");
}

#[test]
fn a_lock_taken_again_while_it_lingers_costs_no_round_trip() {
    let server = RedisServer::start();
    let c = lingering(&server, ms(2_000));
    linger_on(&server, &c, "shard");
    let before = commands(&server);
    for _ in 0..200 {
        let g = c.lock("shard").acquire().unwrap();
        assert!(g.is_held());
        g.release().unwrap();
    }
    // Two INFO queries; at most a refresh per fairness budget (20 ms).
    let used = commands(&server) - before - 1;
    assert!(used <= 5, "200 lingering cycles sent {used} commands");
    assert_eq!(c.stats().lingered, 200);
    // All the while the server holds the lock for this client.
    let other = Client::open(&server.url()).unwrap();
    assert!(other.inspect("shard").unwrap().token.is_some());
}

#[test]
fn fences_rise_through_lingering_grants_and_past_them() {
    let server = RedisServer::start();
    let c = lingering(&server, ms(5_000));
    linger_on(&server, &c, "fenced");
    let mut last = 0;
    let before = script_calls(&server);
    for i in 0..200 {
        let g = c.lock("fenced").acquire().unwrap();
        let fence = g.try_fence().unwrap();
        assert!(fence > last, "cycle {i}: fence {fence} after {last}");
        last = fence;
        g.release().unwrap();
    }
    // Once fences are read, a refresh gives the lingering lease a block
    // of 64: a few scripts, not one per cycle.
    let scripts = script_calls(&server) - before;
    assert!(scripts <= 10, "200 fenced cycles ran {scripts} scripts");
    assert_eq!(c.stats().lingered, 200);
    // Another client announces itself, gets the lock, and a larger fence.
    let other = Client::open(&server.url()).unwrap();
    let g = other.lock("fenced").acquire_timeout(ms(5_000)).unwrap();
    assert!(g.fence() > last);
}

#[test]
fn a_waiting_client_gets_a_lingering_lock_at_once() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(30_000));
    linger_on(&server, &a, "job");
    // A waiter that missed the holder would wait 10 s between looks.
    let b = Client::builder()
        .url(&server.url())
        .max_retry_interval(ms(10_000))
        .build()
        .unwrap();
    let asked = Instant::now();
    let g = b.lock("job").acquire_timeout(ms(20_000)).unwrap();
    let waited = asked.elapsed();
    assert!(waited < ms(2_000), "waited {waited:?} for a 30 s linger");
    // The stay is over: the lingering client has to wait like anyone.
    assert!(a.lock("job").try_acquire().unwrap().is_none());
    drop(g);
    let again = a.lock("job").acquire_timeout(ms(5_000)).unwrap();
    assert!(again.is_held());
    // The next stay keeps listening: the next waiter is heard at once.
    drop(again);
    let asked = Instant::now();
    let g = b.lock("job").acquire_timeout(ms(20_000)).unwrap();
    let waited = asked.elapsed();
    assert!(waited < ms(2_000), "the second waiter waited {waited:?}");
    assert!(g.is_held());
}

#[test]
fn a_want_heard_while_held_again_ends_the_stay_at_the_next_release() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(30_000));
    linger_on(&server, &a, "busy");
    let held = a.lock("busy").acquire().unwrap();
    assert_eq!(a.stats().lingered, 1);
    let waiter = {
        let b = Client::open(&server.url()).unwrap();
        spawn(move || {
            let asked = Instant::now();
            b.lock("busy")
                .acquire_timeout(ms(10_000))
                .map(|_| asked.elapsed())
        })
    };
    // The waiter announced itself before it subscribed.
    wait_until_subscribed(&server, "busy");
    held.release().unwrap();
    let waited = waiter.recv_timeout(ms(10_000)).unwrap().unwrap();
    assert!(waited < ms(5_000), "waited {waited:?} for a 30 s linger");
}

#[test]
fn a_stay_ends_after_the_linger_time() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(300));
    let other = Client::open(&server.url()).unwrap();
    let released = Instant::now();
    linger_on(&server, &a, "brief");
    assert!(other.inspect("brief").unwrap().token.is_some());
    while other.inspect("brief").unwrap().token.is_some() {
        assert!(released.elapsed() < ms(5_000), "the stay never ended");
        std::thread::sleep(ms(10));
    }
    let stayed = released.elapsed();
    assert!(stayed >= ms(290), "released after {stayed:?}, not 300 ms");
}

#[test]
fn dropping_the_client_releases_what_it_lingers_on() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(60_000));
    linger_on(&server, &a, "left");
    let other = Client::open(&server.url()).unwrap();
    assert!(other.inspect("left").unwrap().token.is_some());
    drop(a);
    assert_eq!(other.inspect("left").unwrap().token, None);
}

#[test]
fn a_lingering_lock_deleted_on_the_server_gives_no_fence() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(30_000));
    linger_on(&server, &a, "gone");
    let _: i64 = redis::cmd("DEL")
        .arg("distlock:gone")
        .query(&mut server.conn())
        .unwrap();
    // Granted locally before the renewal thread could notice; the fence
    // is asked for while held, and the server says it is not.
    let g = a.lock("gone").acquire().unwrap();
    assert!(matches!(g.try_fence(), Err(Error::Lost)));
    assert!(!g.is_held());
    assert_eq!(g.fence(), 0);
}

#[test]
fn linger_is_refused_where_it_cannot_work() {
    let refused = |b: distlock::Builder, what: &str| match b.linger(ms(100)).check() {
        Err(Error::InvalidArgument(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("{what}: {other:?}"),
    };
    let redis = || Client::builder().url("redis://127.0.0.1:1");
    refused(Client::builder().url("memcache://127.0.0.1:1"), "memcached");
    refused(Client::builder().url("etcd://127.0.0.1:1"), "etcd");
    refused(
        Client::builder().nodes([
            "redis://127.0.0.1:1",
            "redis://127.0.0.1:2",
            "redis://127.0.0.1:3",
        ]),
        "Redlock",
    );
    refused(redis().fast_path(false), "fast path");
    refused(redis().max_hold(Some(ms(100))), "shorter than max_hold");
    match redis().linger(Duration::from_secs(7_200)).check() {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("linger must be between"), "{m}"),
        other => panic!("{other:?}"),
    }
    redis().linger(ms(100)).check().unwrap();
    redis()
        .linger(Duration::ZERO)
        .fast_path(false)
        .check()
        .unwrap();
}

#[test]
fn a_try_does_not_end_a_stay() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(30_000));
    linger_on(&server, &a, "tried");
    let b = Client::open(&server.url()).unwrap();
    for _ in 0..3 {
        assert!(b.lock("tried").try_acquire().unwrap().is_none());
    }
    // Still lingering: the next acquisition needs no server.
    let g = a.lock("tried").acquire().unwrap();
    assert_eq!(a.stats().lingered, 1);
    drop(g);
}

#[test]
fn a_waiter_that_announced_once_is_not_forgotten_when_the_holder_wins_again() {
    let server = RedisServer::start();
    let a = lingering(&server, ms(30_000));
    // Waiters that missed the holder would wait 20 s between looks.
    let patient = || {
        Client::builder()
            .url(&server.url())
            .max_retry_interval(ms(20_000))
            .build()
            .unwrap()
    };
    let (b, c) = (patient(), patient());
    // The lingering client and C both wait for B; whichever wins, the
    // other gets the lock at once after it (A must not keep it).
    // Who wins each round is a race: six rounds make a forgetful holder
    // fail one of them all but once in 64 runs.
    for round in 0..6 {
        let name = format!("race{round}");
        linger_on(&server, &a, &name);
        let held = b.lock(&name).acquire_timeout(ms(10_000)).unwrap();
        let waiter = |client: &Client| {
            let lock = client.lock(&name);
            spawn(move || {
                let asked = Instant::now();
                lock.acquire_timeout(ms(30_000))
                    .map(|g| (asked.elapsed(), g.release()))
            })
        };
        let from_c = waiter(&c);
        wait_until_listeners(&server, &name, 1);
        let from_a = waiter(&a);
        wait_until_listeners(&server, &name, 2);
        drop(held);
        for (who, rx) in [("C", from_c), ("A", from_a)] {
            let (waited, released) = rx.recv_timeout(ms(10_000)).unwrap().unwrap();
            released.unwrap();
            assert!(waited < ms(5_000), "round {round}: {who} waited {waited:?}");
        }
    }
}
