//! The bad input catalogue (issue 8), through the Rust API: every case gives
//! a clear error of the right kind, never a panic, and leaves nothing on
//! the server or connected to it.
//!
//! Cases covered elsewhere and not repeated here: an empty or 1025-byte
//! name, a zero or 25-hour lock TTL, malformed URLs and a wrong password
//! (`tests/lock.rs::bad_input_gets_clear_errors`,
//! `wrong_password_is_an_auth_error`), release after expiry
//! (`release_after_expiry_reports_lost_and_spares_the_new_owner`),
//! unreachable single servers at connect time
//! (`unreachable_servers_fail_within_the_timeouts`), and that TLS
//! mismatches fail fast (`tls_works_and_mismatches_fail_cleanly`; here,
//! which error they give and what it says). Cluster names whose fence
//! counter would cross slots: `tests/cluster.rs`.
//!
//! Not expressible in Rust: non-UTF-8 names, prefixes and URLs (every one
//! is a `&str`), NULL pointers, a second release of one guard
//! (`Guard::release` takes the guard by value) and use of a freed handle.
//! The C test program (`ffi-examples/c/test_distlock.c`) covers those at
//! the C ABI.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::{Builder, Client, Error, LoadError, MAX_KEY_LEN, MAX_TTL, MIN_TTL};
use redis::Commands;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{
    backends, dbsize, dead_port, spawn, wait_until_subscribed, AnyServer, Mode, RedisServer,
    TcpProxy, TlsServer,
};

/// Timeouts too long for any clock: each must mean "no limit".
const UNBOUNDED: [Duration; 2] = [Duration::MAX, Duration::from_secs(u64::MAX)];

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// A client of either backend.
fn any_client(server: &AnyServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// A client whose waiters look again only when woken (or after an hour):
/// a waiter that gets the lock soon after a release was woken by the
/// release notification.
fn notified_only(server: &RedisServer) -> Client {
    Client::builder()
        .url(&server.url())
        .max_retry_interval(Duration::from_secs(3600))
        .build()
        .expect("client")
}

/// The message of an `InvalidArgument`; panics on anything else.
#[track_caller]
fn invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::InvalidArgument(msg)) => msg,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// The message of a `Connection` error; panics on anything else.
#[track_caller]
fn connection<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Connection(msg)) => msg,
        other => panic!("expected Connection, got {other:?}"),
    }
}

/// The message of an `Auth` error; panics on anything else.
#[track_caller]
fn auth<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Auth(msg)) => msg,
        other => panic!("expected Auth, got {other:?}"),
    }
}

fn dead_url() -> String {
    format!("redis://127.0.0.1:{}/0", dead_port())
}

/// Connections the server has open, not counting the one asking.
fn other_connections(server: &RedisServer) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.conn())
        .unwrap();
    list.lines().count().saturating_sub(1)
}

/// Whether the server's count of other connections drops to zero within
/// two seconds. A closed socket is noticed by the server on its own time
/// and nothing tells us, so this looks every 10 ms.
fn nobody_connected(server: &RedisServer) -> bool {
    let start = Instant::now();
    loop {
        if other_connections(server) == 0 {
            return true;
        }
        if start.elapsed() > Duration::from_secs(2) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- names ----

backends!(
    empty_names_are_refused_by_every_entry_point_before_anything_is_sent,
    |server: &AnyServer| {
        let c = any_client(server);
        let lock = c.lock("");
        let (_keep, cancel) = crossbeam_channel::bounded::<()>(0);
        let outcomes = [
            lock.acquire().map(drop),
            lock.acquire_timeout(Duration::from_secs(5)).map(drop),
            lock.acquire_cancellable(None, &cancel).map(drop),
            lock.acquire_chan()
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .map(drop),
        ];
        for outcome in outcomes {
            assert_eq!(invalid(outcome), "lock name is empty");
        }
        assert_eq!(invalid(c.inspect("")), "lock name is empty");
        assert_eq!(invalid(c.release_token("", "token")), "lock name is empty");
        let loads = AtomicUsize::new(0);
        let err = c
            .loader()
            .get_or_load("", Duration::from_secs(60), || {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(b"v".to_vec())
            })
            .unwrap_err();
        assert_eq!(
            err,
            LoadError::Lock(Error::InvalidArgument("loader key is empty".into()))
        );
        assert_eq!(loads.load(Ordering::SeqCst), 0, "the loader never ran");
        assert_eq!(server.items(), 0, "nothing reached the server");
    }
);

backends!(
    oversized_names_are_measured_in_bytes_and_refused_before_anything_is_sent,
    |server: &AnyServer| {
        let c = any_client(server);
        // 513 characters, 1026 bytes.
        let wide = "é".repeat(MAX_KEY_LEN / 2 + 1);
        let msg = invalid(c.lock(wide.as_str()).try_acquire());
        assert!(msg.contains("1026 bytes") && msg.contains("1024"), "{msg}");
        // 16 MiB: refused without being sent anywhere.
        let huge = "k".repeat(16 << 20);
        let msg = invalid(c.lock(huge.as_str()).acquire());
        assert!(msg.contains(&format!("{} bytes", 16 << 20)), "{msg}");
        assert!(invalid(c.inspect(&huge)).contains("maximum"));
        assert!(invalid(c.release_token(&huge, "token")).contains("maximum"));
        // The loader's lock name is `loader:<key>`: its key may have 7 bytes less,
        // and the message speaks of the key the caller gave.
        let key = "k".repeat(MAX_KEY_LEN - 6);
        match c
            .loader()
            .get_or_load(&key, Duration::from_secs(60), || Ok::<_, String>(vec![]))
        {
            Err(LoadError::Lock(Error::InvalidArgument(msg))) => assert!(
                msg.contains("loader key is 1018 bytes; the maximum is 1017"),
                "{msg}"
            ),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert_eq!(server.items(), 0, "nothing reached the server");

        // Exactly 1024 bytes of two-byte characters is fine, and round-trips.
        let widest = "é".repeat(MAX_KEY_LEN / 2);
        let g = c
            .lock(widest.as_str())
            .try_acquire()
            .unwrap()
            .expect("free");
        // Its fence is what leaves the counter behind.
        assert!(g.fence() > 0);
        let info = c.inspect(&widest).unwrap();
        if !server.is_memcached() {
            // memcached hashes keys that are not printable ASCII.
            assert_eq!(info.key, format!("distlock:{widest}"));
        }
        assert_eq!(info.token.as_deref(), Some(g.token()));
        g.release().unwrap();
        assert_eq!(
            server.items(),
            usize::from(server.keeps_fence_counters()),
            "only the fence counter of the valid name"
        );
    }
);

/// Names that are awkward for a text protocol, a shell, a glob or Redis
/// Cluster hash tags: each is a lock of its own at exactly
/// `<prefix>:<name>`. (A `&str` cannot hold invalid UTF-8; U+FFFD, what a
/// lossy conversion leaves, is just another character.)
const ODD_NAMES: &[&str] = &[
    " ",
    "two words",
    "tab\there",
    "new\nline",
    "\r\n*1\r\n$4\r\nPING\r\n",
    "nul\0inside",
    "\0",
    "{",
    "}",
    "{}",
    "a}b",
    "}{",
    "{tag}",
    "x{tag}y",
    "*",
    "?",
    "[a-z]",
    "\\",
    "\"quoted\"",
    "ключ",
    "🔒",
    "\u{FFFD}",
    "zero\u{200B}width",
    ":",
];

#[test]
fn names_with_odd_characters_round_trip_exactly() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let mut raw = server.conn();
    for &name in ODD_NAMES {
        let key = format!("distlock:{name}");
        let g = a.lock(name).try_acquire().unwrap().expect(name);
        let fence = g.fence();
        let stored: Option<String> = raw.get(&key).unwrap();
        let stored = distlock_testkit::token_part(stored);
        assert_eq!(stored.as_deref(), Some(g.token()), "{name:?}");
        let info = a.inspect(name).unwrap();
        assert_eq!(info.key, key, "{name:?}");
        assert_eq!(info.token.as_deref(), Some(g.token()), "{name:?}");
        assert!(info.fence.unwrap() >= fence, "{name:?}");
        assert!(
            b.lock(name).try_acquire().unwrap().is_none(),
            "{name:?} is exclusive across clients"
        );
        g.release().unwrap();
        let exists: bool = raw.exists(&key).unwrap();
        assert!(!exists, "{name:?} released");
        assert_eq!(b.inspect(name).unwrap().token, None, "{name:?}");
    }
    // One fence counter per name, no two names sharing one.
    assert_eq!(dbsize(&server), ODD_NAMES.len());
}

#[test]
fn releases_of_odd_names_wake_their_waiters() {
    let server = RedisServer::start();
    let holder = client(&server);
    let waiter = notified_only(&server);
    for name in ["new\nline", "nul\0inside", "a}b", "{tag}", "*", "🔒"] {
        // The holder's lease (30 s) and the waiter's retry interval (1 h) are
        // far longer than the waiter's patience: only the notification can
        // get it the lock in time.
        let g = holder.lock(name).acquire().unwrap();
        let lock = waiter.lock(name);
        let got = spawn(move || lock.acquire_timeout(Duration::from_secs(10)).map(drop));
        wait_until_subscribed(&server, name);
        g.release().unwrap();
        let outcome = got.recv_timeout(Duration::from_secs(15)).unwrap();
        assert_eq!(outcome, Ok(()), "{name:?}: the waiter was not woken");
    }
}

#[test]
fn inspecting_an_unused_name_reports_it_free_and_writes_nothing() {
    let server = RedisServer::start();
    let c = client(&server);
    for name in ["never-used", "nul\0inside", "{tag}"] {
        let info = c.inspect(name).unwrap();
        assert_eq!(info.key, format!("distlock:{name}"));
        assert_eq!(
            (info.token, info.remaining, info.fence),
            (None, None, None),
            "{name:?}"
        );
    }
    assert_eq!(dbsize(&server), 0);
}

// ---- release ----

backends!(
    release_token_twice_deletes_once_and_the_guard_learns_it_lost,
    |server: &AnyServer| {
        let c = any_client(server);
        let g = c
            .lock("forced")
            .ttl(Duration::from_millis(300))
            .acquire()
            .unwrap();
        let token = g.token().to_string();
        assert_eq!(c.release_token("forced", &token), Ok(true));
        assert_eq!(c.release_token("forced", &token), Ok(false), "second time");
        assert_eq!(c.inspect("forced").unwrap().token, None);
        // The next renewal (a third of the TTL) finds the key gone.
        assert!(
            support::lost_within(&g.lost(), Duration::from_secs(2)),
            "loss noticed"
        );
        assert!(!g.is_held());
        // A later owner is not freed by the old token, nor by the old guard.
        let next = c.lock("forced").try_acquire().unwrap().expect("free again");
        assert_eq!(c.release_token("forced", &token), Ok(false));
        assert_eq!(g.release(), Err(Error::Lost));
        let stored = c.inspect("forced").unwrap().token;
        assert_eq!(stored.as_deref(), Some(next.token()));
    }
);

backends!(
    release_token_with_an_empty_or_wrong_token_leaves_the_lock_alone,
    |server: &AnyServer| {
        let c = any_client(server);
        let g = c.lock("kept").acquire().unwrap();
        assert!(g.fence() > 0, "a fence, and so a counter");
        let token = g.token().to_string();
        assert_eq!(invalid(c.release_token("kept", "")), "token is empty");
        let wrong = [
            " ".to_string(),
            "not-the-token".to_string(),
            token[..token.len() - 1].to_string(),
            format!("{token} "),
            token.to_uppercase(),
            "\0".to_string(),
            "*".to_string(),
        ];
        for w in &wrong {
            assert_eq!(c.release_token("kept", w), Ok(false), "{w:?}");
        }
        assert_eq!(c.release_token("never-held", &token), Ok(false));
        let stored = c.inspect("kept").unwrap().token;
        assert_eq!(stored.as_deref(), Some(token.as_str()));
        assert!(g.is_held());
        g.release().unwrap();
        assert_eq!(
            server.items(),
            usize::from(server.keeps_fence_counters()),
            "the fence counter of `kept`, nothing else"
        );
    }
);

#[test]
fn a_guard_used_after_its_lease_expired_is_lost_and_revives_nothing() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(200);
    let g = c
        .lock("expired")
        .ttl(ttl)
        .auto_renew(false)
        .acquire()
        .unwrap();
    assert!(
        support::lost_within(&g.lost(), Duration::from_secs(2)),
        "the lease ran out"
    );
    assert!(!g.is_held());
    assert_eq!(g.remaining(), Duration::ZERO);
    assert_eq!(g.extend(), Err(Error::Lost));
    assert_eq!(g.extend(), Err(Error::Lost), "and again");
    // The key is gone or about to be: extend did not restart its lease.
    let pttl: i64 = server.conn().pttl("distlock:expired").unwrap();
    assert!(pttl == -2 || pttl < 100, "pttl {pttl} ms");
    assert!(
        support::lost_within(&g.lost(), Duration::ZERO),
        "lost() stays ready"
    );
    assert_eq!(g.release(), Err(Error::Lost));
}

#[test]
fn a_guard_whose_key_was_taken_over_is_lost_and_spares_the_new_owner() {
    let server = RedisServer::start();
    let c = client(&server);
    let g = c
        .lock("taken")
        .ttl(Duration::from_secs(10))
        .auto_renew(false)
        .acquire()
        .unwrap();
    let mut raw = server.conn();
    let _: () = raw.set_ex("distlock:taken", "someone-else", 60).unwrap();
    // Locally still within the lease: extend asks the server, which says no.
    assert!(g.is_held());
    assert_eq!(g.extend(), Err(Error::Lost));
    assert!(!g.is_held());
    assert!(support::lost_within(&g.lost(), Duration::ZERO));
    assert_eq!(g.release(), Err(Error::Lost));
    let stored: Option<String> = raw.get("distlock:taken").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some("someone-else"));
    let ttl: i64 = raw.ttl("distlock:taken").unwrap();
    assert!(ttl > 50, "their lease was not touched: {ttl} s");
}

#[test]
fn a_guard_and_a_lock_outlive_every_clone_of_their_client() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(150);
    let g = c.lock("outlives").ttl(ttl).acquire().unwrap();
    let lock = c.lock("outlives-too");
    drop(c);
    // Still renewed: held for four TTLs.
    assert!(
        !support::lost_within(&g.lost(), ttl * 4),
        "lost after its client was dropped"
    );
    assert!(g.is_held());
    g.extend().unwrap();
    let mut raw = server.conn();
    let stored: Option<String> = raw.get("distlock:outlives").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some(g.token()));
    let g2 = lock
        .try_acquire()
        .unwrap()
        .expect("a Lock keeps its client too");
    g.release().unwrap();
    g2.release().unwrap();
    let left: usize = raw
        .exists(&["distlock:outlives", "distlock:outlives-too"][..])
        .unwrap();
    assert_eq!(left, 0);
    drop((lock, raw));
    // The last handle gone, the client's connections close.
    assert!(
        nobody_connected(&server),
        "{} left",
        other_connections(&server)
    );
}

// ---- timeouts ----

backends!(
    zero_timeouts_on_a_held_lock_time_out_at_once,
    |server: &AnyServer| {
        let (a, b) = (any_client(server), any_client(server));
        let held = a.lock("busy").acquire().unwrap();
        assert!(held.fence() > 0);
        let (_keep, cancel) = crossbeam_channel::bounded::<()>(0);
        // From another client (asks the server) and from the holder's own
        // client (queues locally).
        for c in [&b, &a] {
            let start = Instant::now();
            assert_eq!(
                c.lock("busy").acquire_timeout(Duration::ZERO).unwrap_err(),
                Error::Timeout
            );
            assert_eq!(
                c.lock("busy")
                    .acquire_cancellable(Some(Duration::ZERO), &cancel)
                    .unwrap_err(),
                Error::Timeout
            );
            let took = start.elapsed();
            assert!(took < Duration::from_secs(1), "{took:?}");
        }
        // A free lock is still taken by the one attempt a zero timeout allows.
        let free = b.lock("free").acquire_timeout(Duration::ZERO).unwrap();
        assert!(free.is_held() && free.fence() > 0);
        free.release().unwrap();
        let stored = a.inspect("busy").unwrap().token;
        assert_eq!(stored.as_deref(), Some(held.token()), "the holder kept it");
        // memcached may also keep the marker of the client that waited for busy
        // (if its feed got to write it before the wait ended).
        let markers = usize::from(server.is_memcached());
        let counters = 2 * usize::from(server.keeps_fence_counters());
        let n = server.items();
        assert!(
            (1 + counters..=1 + counters + markers).contains(&n),
            "busy's key and counter, free's counter: {n}"
        );
    }
);

backends!(
    timeouts_too_long_for_the_clock_acquire_a_free_lock,
    |server: &AnyServer| {
        let c = any_client(server);
        let (_keep, cancel) = crossbeam_channel::bounded::<()>(0);
        let thousand_years = Duration::from_secs(1000 * 365 * 24 * 3600);
        for t in UNBOUNDED.into_iter().chain([thousand_years]) {
            let g = c.lock("free").acquire_timeout(t).unwrap();
            assert!(g.is_held(), "{t:?}");
            g.release().unwrap();
            let g = c
                .lock("free")
                .acquire_cancellable(Some(t), &cancel)
                .unwrap();
            assert!(g.is_held(), "{t:?}");
            g.release().unwrap();
        }
    }
);

backends!(
    timeouts_too_long_for_the_clock_wait_for_the_holder_and_can_be_cancelled,
    |server: &AnyServer| {
        let (a, b) = (any_client(server), any_client(server));
        let held = a.lock("held").acquire().unwrap();
        let (cancel_tx, cancel_rx) = crossbeam_channel::bounded::<()>(0);
        // Waiting on the server (another client) and locally (the same one).
        let waits: Vec<_> = [(&b, UNBOUNDED[0]), (&a, UNBOUNDED[1])]
            .into_iter()
            .map(|(c, t)| {
                let (lock, cancel) = (c.lock("held"), cancel_rx.clone());
                spawn(move || lock.acquire_cancellable(Some(t), &cancel).map(drop))
            })
            .collect();
        for w in &waits {
            assert_eq!(
                w.recv_timeout(Duration::from_millis(300)),
                Err(RecvTimeoutError::Timeout),
                "still waiting: no instant timeout"
            );
        }
        drop(cancel_tx);
        for w in &waits {
            let outcome = w.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(outcome, Err(Error::Cancelled));
        }
        // Without a cancel channel, an unbounded wait ends when the holder lets go.
        let lock = b.lock("held");
        let got = spawn(move || {
            lock.acquire_timeout(Duration::MAX)
                .map(|g| g.token().to_string())
        });
        assert_eq!(
            got.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        );
        held.release().unwrap();
        let token = got.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(token.len(), 36);
    }
);

// ---- settings ----

/// A builder for a loopback port nothing listens on: `build` can only
/// fail, and an `InvalidArgument` proves it did not get as far as
/// connecting.
fn nowhere() -> Builder {
    Client::builder().url(&dead_url())
}

#[test]
fn absurd_settings_are_refused_by_check_and_build_before_connecting() {
    let hour = Duration::from_secs(3600);
    let over_an_hour = hour + Duration::from_millis(1);
    let cases: Vec<(Builder, &str)> = vec![
        (nowhere().ttl(Duration::MAX), "ttl must be between"),
        (nowhere().ttl(MIN_TTL - Duration::from_millis(1)), "ttl"),
        (nowhere().ttl(MAX_TTL + Duration::from_millis(1)), "ttl"),
        (nowhere().pool_size(1025), "pool_size"),
        (nowhere().pool_size(u32::MAX), "pool_size"),
        (nowhere().connect_timeout(Duration::ZERO), "connect_timeout"),
        (nowhere().connect_timeout(Duration::MAX), "connect_timeout"),
        (nowhere().connect_timeout(over_an_hour), "connect_timeout"),
        (nowhere().command_timeout(Duration::MAX), "command_timeout"),
        (
            nowhere().command_timeout(Duration::from_nanos(1)),
            "command_timeout",
        ),
        (nowhere().max_hold(Some(Duration::MAX)), "max_hold"),
        (
            nowhere().max_hold(Some(Duration::from_secs(366 * 24 * 3600))),
            "max_hold",
        ),
        (
            nowhere().max_retry_interval(Duration::ZERO),
            "max_retry_interval",
        ),
        (
            nowhere().max_retry_interval(Duration::MAX),
            "max_retry_interval",
        ),
        (nowhere().handoff_limit(64), "handoff_limit"),
        (nowhere().handoff_limit(u32::MAX), "handoff_limit"),
        (nowhere().handoff_budget(Duration::MAX), "handoff_budget"),
        (nowhere().handoff_budget(over_an_hour), "handoff_budget"),
        (nowhere().replicas(1, Duration::MAX), "replica"),
        (nowhere().replicas(u32::MAX, Duration::MAX), "replica"),
        (nowhere().nodes(Vec::<String>::new()), "no server URL"),
        (nowhere().nodes([dead_url(), dead_url()]), "at least 3"),
        (nowhere().cluster(Vec::<String>::new()), "no server URL"),
        (nowhere().sentinel(["127.0.0.1:1"], ""), "master name"),
        (
            nowhere().sentinel(Vec::<String>::new(), "m"),
            "sentinel address",
        ),
    ];
    for (b, needle) in cases {
        let shown = format!("{b:?}");
        let checked = invalid(b.check());
        assert!(checked.contains(needle), "{shown}: {checked}");
        let built = invalid(b.build());
        assert_eq!(built, checked, "{shown}: build and check agree");
    }
}

#[test]
fn settings_at_their_limits_are_accepted() {
    let ms = Duration::from_millis(1);
    let hour = Duration::from_secs(3600);
    let limits = [
        nowhere().ttl(MIN_TTL),
        nowhere().ttl(MAX_TTL),
        nowhere().pool_size(1),
        nowhere().pool_size(1024),
        nowhere().connect_timeout(ms).command_timeout(ms),
        nowhere().connect_timeout(hour).command_timeout(hour),
        nowhere().max_hold(Some(ms)),
        nowhere().max_hold(Some(Duration::from_secs(365 * 24 * 3600))),
        nowhere().max_hold(None),
        nowhere().max_retry_interval(ms),
        nowhere().max_retry_interval(hour),
        nowhere().handoff_limit(0).handoff_budget(Duration::ZERO),
        nowhere().handoff_limit(63).handoff_budget(hour),
        // Off: the timeout is not looked at.
        nowhere().replicas(0, Duration::MAX),
        nowhere().replicas(u32::MAX, hour),
    ];
    for b in limits {
        assert_eq!(b.check(), Ok(()), "{b:?}");
    }
    // Past the checks, build goes on to connect, and says where it failed.
    let port = dead_port();
    let msg = connection(
        Client::builder()
            .url(&format!("redis://127.0.0.1:{port}/0"))
            .connect_timeout(ms)
            .max_retry_interval(hour)
            .handoff_budget(hour)
            .build(),
    );
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

#[test]
fn prefixes_are_checked_before_connecting_and_odd_ones_round_trip() {
    let bad = [
        "x".repeat(257),
        // 129 characters, 258 bytes.
        "é".repeat(129),
        "{".to_string(),
        "}".to_string(),
        "a}b".to_string(),
        "{tag}".to_string(),
    ];
    for p in &bad {
        let checked = invalid(nowhere().prefix(p).check());
        assert!(
            checked.contains("prefix must be 1 to 256 bytes"),
            "{checked}"
        );
        assert_eq!(invalid(nowhere().prefix(p).build()), checked);
    }
    let server = RedisServer::start();
    let mut raw = server.conn();
    let good = [
        "p".repeat(256),
        "my app".to_string(),
        "line\nbreak".to_string(),
        "nul\0".to_string(),
        "ключ".to_string(),
        "a:b:c".to_string(),
    ];
    for p in &good {
        let c = Client::builder()
            .url(&server.url())
            .prefix(p)
            .build()
            .unwrap();
        assert_eq!(c.prefix(), p.as_str());
        let g = c.lock("k").try_acquire().unwrap().expect("free");
        assert!(g.fence() > 0, "{p:?}");
        let key = format!("{p}:k");
        let stored: Option<String> = raw.get(&key).unwrap();
        let stored = distlock_testkit::token_part(stored);
        assert_eq!(stored.as_deref(), Some(g.token()), "{p:?}");
        assert_eq!(c.inspect("k").unwrap().key, key);
        g.release().unwrap();
    }
    assert_eq!(dbsize(&server), good.len(), "one fence counter per prefix");
}

#[test]
fn replica_acknowledgement_no_server_can_give_is_a_connection_error_and_leaves_no_lock() {
    let server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .replicas(u32::MAX, Duration::from_millis(1))
        .build()
        .unwrap();
    let msg = connection(c.lock("durable").try_acquire());
    assert!(
        msg.contains("replica") && msg.contains(&u32::MAX.to_string()),
        "{msg}"
    );
    let exists: bool = server.conn().exists("distlock:durable").unwrap();
    assert!(!exists, "the unconfirmed lock was given back");
}

// ---- the loader ----

#[test]
fn loader_timeouts_too_long_for_the_clock_mean_no_limit() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    for (i, t) in UNBOUNDED.into_iter().enumerate() {
        let v = a
            .loader()
            .timeout(t)
            .get_or_load(&format!("free-{i}"), Duration::from_secs(60), || {
                Ok::<_, String>(b"fresh".to_vec())
            })
            .unwrap();
        assert_eq!(v, b"fresh");
    }
    // Behind another process's load, it waits as long as that takes.
    let other = b.lock("loader:behind").acquire().unwrap();
    let loader = a.loader().timeout(Duration::MAX);
    let got = spawn(move || {
        loader.get_or_load("behind", Duration::from_secs(60), || {
            Ok::<_, String>(b"after".to_vec())
        })
    });
    assert_eq!(
        got.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout),
        "still waiting"
    );
    other.release().unwrap();
    let v = got.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(v, b"after");
}

#[test]
fn a_loader_with_a_zero_timeout_gives_up_behind_another_load() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let other = b.lock("loader:busy").acquire().unwrap();
    let loads = AtomicUsize::new(0);
    let start = Instant::now();
    let err = a
        .loader()
        .timeout(Duration::ZERO)
        .get_or_load("busy", Duration::from_secs(60), || {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(b"v".to_vec())
        })
        .unwrap_err();
    assert_eq!(err, LoadError::Lock(Error::Timeout));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(loads.load(Ordering::SeqCst), 0, "the loader never ran");
    let cached: bool = server
        .conn()
        .exists("{distlock:loader:busy}:value")
        .unwrap();
    assert!(!cached);
    assert!(other.is_held());
}

#[test]
fn loader_ttls_out_of_range_are_refused_without_loading() {
    let server = RedisServer::start();
    let c = client(&server);
    let loads = AtomicUsize::new(0);
    let load = || {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(b"v".to_vec())
    };
    let minute = Duration::from_secs(60);
    let outcomes = [
        c.loader().get_or_load("k", Duration::ZERO, load),
        c.loader().get_or_load("k", Duration::MAX, load),
        c.loader()
            .lock_ttl(Duration::ZERO)
            .get_or_load("k", minute, load),
        c.loader()
            .lock_ttl(Duration::MAX)
            .get_or_load("k", minute, load),
    ];
    for outcome in outcomes {
        match outcome {
            Err(LoadError::Lock(Error::InvalidArgument(msg))) => {
                assert!(msg.contains("ttl must be between"), "{msg}")
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    assert_eq!(loads.load(Ordering::SeqCst), 0, "the loader never ran");
    assert_eq!(dbsize(&server), 0);
}

// ---- credentials ----

#[test]
fn credentials_the_server_refuses_are_auth_errors_that_name_the_server() {
    let secret = "right-horse";
    let locked = RedisServer::with_password(secret);
    let open = RedisServer::start();
    let cases = [
        // No password for a server that needs one.
        (format!("redis://127.0.0.1:{}/0", locked.port), locked.port),
        // The right password for a user that does not exist.
        (
            format!("redis://bob:{secret}@127.0.0.1:{}/0", locked.port),
            locked.port,
        ),
        // A password for a server that has none.
        (
            format!("redis://:{secret}@127.0.0.1:{}/0", open.port),
            open.port,
        ),
    ];
    for (url, port) in &cases {
        let msg = auth(Client::open(url));
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(!msg.contains(secret), "{msg}");
    }
    assert!(nobody_connected(&open));
    assert_eq!(dbsize(&open), 0);
}

#[test]
fn a_redlock_node_refusing_the_credentials_fails_the_build_and_leaves_nothing() {
    let good: Vec<RedisServer> = (0..2).map(|_| RedisServer::start()).collect();
    let locked = RedisServer::with_password("right-horse");
    for bad in [
        format!("redis://:wrong-battery@127.0.0.1:{}/0", locked.port),
        format!("redis://127.0.0.1:{}/0", locked.port),
    ] {
        let mut nodes: Vec<String> = good.iter().map(RedisServer::url).collect();
        nodes.push(bad);
        let msg = auth(Client::builder().nodes(&nodes).build());
        assert!(msg.contains(&format!("127.0.0.1:{}", locked.port)), "{msg}");
        assert!(!msg.contains("wrong-battery"), "{msg}");
    }
    for s in &good {
        assert!(nobody_connected(s), "{} left", other_connections(s));
        assert_eq!(dbsize(s), 0);
    }
}

// ---- TLS ----

#[test]
fn tls_mismatches_are_connection_errors_that_say_what_to_check() {
    let TlsServer {
        server,
        tls_port,
        ca_pem,
    } = TlsServer::start();
    let open = |url: &str| {
        Client::builder()
            .url(url)
            .tls_root_ca(ca_pem.clone())
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
            .build()
    };
    // Plain text to the TLS port: the server hangs up.
    let msg = connection(open(&format!("redis://127.0.0.1:{tls_port}/0")));
    assert!(msg.contains(&format!("127.0.0.1:{tls_port}")), "{msg}");
    assert!(msg.contains("use rediss://"), "{msg}");
    // TLS to the plain port: the handshake gets no answer.
    let msg = connection(open(&format!("rediss://127.0.0.1:{}/0", server.port)));
    assert!(msg.contains(&format!("127.0.0.1:{}", server.port)), "{msg}");
    assert!(
        msg.contains("no TLS handshake") && msg.contains("redis://"),
        "{msg}"
    );
    // Only the plain port is used, and nothing is left connected to it.
    assert!(nobody_connected(&server));
    assert_eq!(dbsize(&server), 0);
    // The right pairing works.
    let c = open(&format!("rediss://127.0.0.1:{tls_port}/0")).unwrap();
    assert!(c.lock("tls").try_acquire().unwrap().is_some());
}

// ---- unreachable servers ----

#[test]
fn redlock_needs_a_majority_of_reachable_nodes_to_start() {
    let live: Vec<RedisServer> = (0..2).map(|_| RedisServer::start()).collect();
    let quick = |nodes: &[String]| {
        Client::builder()
            .nodes(nodes)
            .connect_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_millis(300))
            .build()
    };
    // Two of three refused, or silent (a listener that never answers).
    let silent: Vec<TcpProxy> = (0..2)
        .map(|_| {
            let p = TcpProxy::start(live[1].port);
            p.set_mode(Mode::BlackHole);
            p
        })
        .collect();
    let minorities = [
        vec![live[0].url(), dead_url(), dead_url()],
        vec![live[0].url(), silent[0].url(), silent[1].url()],
    ];
    for nodes in &minorities {
        let start = Instant::now();
        let msg = connection(quick(nodes));
        assert!(
            msg.contains("only 1 of 3 lock servers answered; a majority of 2 is needed"),
            "{msg}"
        );
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    assert!(nobody_connected(&live[0]));

    // One of three unreachable: a majority, so it works.
    let nodes = [live[0].url(), live[1].url(), dead_url()];
    let c = quick(&nodes).unwrap();
    let g = c.lock("majority").acquire().unwrap();
    for s in &live {
        let stored: Option<String> = s.conn().get("distlock:majority").unwrap();
        let stored = distlock_testkit::token_part(stored);
        assert_eq!(stored.as_deref(), Some(g.token()));
    }
    g.release().unwrap();
    for s in &live {
        let exists: bool = s.conn().exists("distlock:majority").unwrap();
        assert!(!exists);
    }
}

#[test]
fn a_server_lost_after_connecting_fails_every_call_within_the_timeouts() {
    let mut server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    drop(c.lock("warm").acquire().unwrap());
    let place = format!("127.0.0.1:{}", server.port);
    server.stop();
    let start = Instant::now();
    let msgs = [
        connection(c.lock("k").try_acquire()),
        // Out of time while unreachable: the connection error, not Timeout.
        connection(c.lock("k").acquire_timeout(Duration::from_millis(500))),
        connection(c.lock("k").acquire()),
        connection(c.inspect("k")),
        connection(c.release_token("k", "token")),
    ];
    let took = start.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    for msg in &msgs {
        assert!(msg.contains(&place) && msg.contains("refused"), "{msg}");
    }
    match c
        .loader()
        .get_or_load("k", Duration::from_secs(60), || Ok::<_, String>(vec![]))
    {
        Err(LoadError::Lock(Error::Connection(msg))) => assert!(msg.contains(&place), "{msg}"),
        other => panic!("expected Connection, got {other:?}"),
    }
}
