//! The single-node lock against a real redis-server.

use distlock_testkit as support;

use distlock::{Client, Error, Guard, MAX_KEY_LEN};
use redis::Commands;
use std::time::{Duration, Instant};
use support::{backends, AnyServer, Mode, RedisServer, TcpProxy, TlsServer};

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// A client of either backend.
fn any_client(server: &AnyServer) -> Client {
    Client::open(&server.url()).expect("client")
}

#[test]
fn guard_is_send() {
    fn send<T: Send>() {}
    send::<Guard>();
    send::<Client>();
}

#[test]
fn key_holds_the_token_while_held_and_is_gone_after_release() {
    let server = RedisServer::start();
    let c = client(&server);
    let mut raw = server.conn();
    let g = c.lock("orders:42").acquire().unwrap();
    let stored: Option<String> = raw.get("distlock:orders:42").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some(g.token()));
    assert_eq!(g.token().len(), 36, "uuid v4 text");
    let pttl: i64 = raw.pttl("distlock:orders:42").unwrap();
    assert!(
        pttl > 29_000 && pttl <= 30_000,
        "default ttl 30 s, got {pttl} ms"
    );
    assert!(g.is_held());
    g.release().unwrap();
    let exists: bool = raw.exists("distlock:orders:42").unwrap();
    assert!(!exists);
}

backends!(
    fences_increase_across_clients_and_survive_an_empty_restart,
    |server: &AnyServer| {
        let (a, b) = (any_client(server), any_client(server));
        let mut last = 0;
        for i in 0..20 {
            let c = if i % 2 == 0 { &a } else { &b };
            let g = c.lock("fenced").acquire().unwrap();
            assert!(g.fence() > last, "fence {} after {last}", g.fence());
            last = g.fence();
        }
        // Losing the counter (as an empty restart would) must not send fences back.
        server.flush();
        let g = a.lock("fenced").acquire().unwrap();
        assert!(
            g.fence() > last,
            "fence went back to {} after {last}",
            g.fence()
        );
    }
);

backends!(
    try_acquire_and_timeout_respect_the_holder,
    |server: &AnyServer| {
        let c = any_client(server);
        let lock = c.lock("busy");
        let held = lock.try_acquire().unwrap().expect("free lock");
        assert!(lock.try_acquire().unwrap().is_none());
        let start = Instant::now();
        assert_eq!(
            lock.acquire_timeout(Duration::from_millis(150))
                .unwrap_err(),
            Error::Timeout
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(held);
        assert!(lock.try_acquire().unwrap().is_some());
    }
);

backends!(
    release_after_expiry_reports_lost_and_spares_the_new_owner,
    |server: &AnyServer| {
        let c = any_client(server);
        let first = c
            .lock("expiring")
            .ttl(Duration::from_millis(100))
            .auto_renew(false)
            .acquire()
            .unwrap();
        assert!(
            support::lost_within(&first.lost(), Duration::from_secs(2)),
            "lease ran out"
        );
        assert!(!first.is_held());
        // The key itself expires on the server shortly after the local deadline
        // (on memcached, within its whole-second slack).
        let second = c
            .lock("expiring")
            .acquire_timeout(Duration::from_secs(2) + server.expiry_slack())
            .unwrap();
        assert_eq!(first.release().unwrap_err(), Error::Lost);
        let stored = c.inspect("expiring").unwrap().token;
        assert_eq!(stored.as_deref(), Some(second.token()));
    }
);

#[test]
fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start();
    let c = client(&server);
    let mut raw = server.conn();
    let g = c.lock("flushed").acquire().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut raw).unwrap();
    g.extend().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut raw).unwrap();
    g.release().unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut raw).unwrap();
    assert!(c.lock("flushed").try_acquire().unwrap().is_some());
}

/// A client that reaches `server` through `proxy`, with short timeouts.
fn proxied(proxy: &TcpProxy) -> Client {
    Client::builder()
        .url(&proxy.url())
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[test]
fn lost_acquire_reply_is_retried_with_the_same_token_and_wins() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let c = proxied(&proxy);
    proxy.set_mode(Mode::DropReplyTo {
        needle: b"distlock:lost-reply-ours".to_vec(),
        hook: Box::new(|| {}),
    });
    let g = c
        .lock("lost-reply-ours")
        .try_acquire()
        .unwrap()
        .expect("ours");
    assert!(proxy.is_passing(), "the reply was really dropped");
    let mut raw = server.conn();
    let stored: Option<String> = raw.get("distlock:lost-reply-ours").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some(g.token()));
    // The retry found its own token and restarted its lease; the fence,
    // asked for when first read, reserved one block of 64.
    let fence = g.fence();
    let counter: u64 = raw.get("{distlock:lost-reply-ours}:fence").unwrap();
    assert_eq!(counter, fence + 63);
    let pttl: i64 = raw.pttl("distlock:lost-reply-ours").unwrap();
    assert!(pttl > 0, "the lease runs: {pttl} ms");
    g.release().unwrap();
}

/// The fence counter of the lock `name` (default prefix), if any.
fn counter(raw: &mut redis::Connection, name: &str) -> Option<u64> {
    raw.get(format!("{{distlock:{name}}}:fence")).unwrap()
}

#[test]
fn a_fence_left_for_later_is_given_while_held_and_keeps_the_order() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let mut raw = server.conn();
    // The first acquisition of a name takes the lock without a fence (a
    // SET NX on Redis 7): no counter yet.
    let first = a.lock("lazy").acquire().unwrap();
    assert_eq!(counter(&mut raw, "lazy"), None);
    let f1 = first.fence();
    assert!(f1 > 0);
    assert_eq!(first.fence(), f1, "asked for once, then kept");
    assert_eq!(
        counter(&mut raw, "lazy"),
        Some(f1 + 63),
        "one block reserved"
    );
    first.release().unwrap();
    // Its fence was read: from now on `a` takes the fence with the lock.
    let second = a.lock("lazy").acquire().unwrap();
    let reserved = counter(&mut raw, "lazy").unwrap();
    assert!(reserved > f1 + 63, "the acquire itself reserved a block");
    let f2 = second.fence();
    assert_eq!(f2, reserved - 63);
    second.release().unwrap();
    // `b` never read a fence of it: its lock comes without one, and the
    // fence it is then given still comes after every earlier one.
    let third = b.lock("lazy").acquire().unwrap();
    assert_eq!(counter(&mut raw, "lazy"), Some(reserved), "untouched");
    assert!(third.fence() > f2);
}

#[test]
fn a_fence_asked_for_after_the_lock_was_lost_is_refused() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let mut raw = server.conn();
    let stale = a.lock("lazy-lost").acquire().unwrap();
    // The lock vanishes before its fence is read (an operator, an expiry
    // while the holder was stopped), and another takes it.
    let _: () = raw.del("distlock:lazy-lost").unwrap();
    let newer = b.lock("lazy-lost").acquire().unwrap();
    let fence = newer.fence();
    // A fence given now would be larger than the new holder's: refused.
    assert!(matches!(stale.try_fence(), Err(Error::Lost)));
    assert_eq!(stale.fence(), 0, "what every fenced resource refuses");
    assert!(!stale.is_held(), "and the guard knows it lost the lock");
    assert!(support::lost_within(&stale.lost(), Duration::from_secs(1)));
    assert_eq!(newer.fence(), fence);
    assert!(newer.is_held());
}

#[test]
fn lost_acquire_reply_then_taken_by_another_is_not_acquired() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let c = proxied(&proxy);
    let port = server.port;
    proxy.set_mode(Mode::DropReplyTo {
        needle: b"distlock:lost-reply-theirs".to_vec(),
        hook: Box::new(move || {
            // Before the retry: our lease vanished and someone else took the key.
            let mut raw = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
                .unwrap()
                .get_connection()
                .unwrap();
            let _: () = raw
                .set("distlock:lost-reply-theirs", "someone-else")
                .unwrap();
        }),
    });
    assert!(c.lock("lost-reply-theirs").try_acquire().unwrap().is_none());
    assert!(proxy.is_passing());
    let stored: Option<String> = server.conn().get("distlock:lost-reply-theirs").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(
        stored.as_deref(),
        Some("someone-else"),
        "theirs was not touched"
    );
}

#[test]
fn lost_acquire_reply_then_absent_key_is_taken_afresh() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let c = proxied(&proxy);
    let port = server.port;
    proxy.set_mode(Mode::DropReplyTo {
        needle: b"distlock:lost-reply-gone".to_vec(),
        hook: Box::new(move || {
            let mut raw = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
                .unwrap()
                .get_connection()
                .unwrap();
            let _: () = raw.del("distlock:lost-reply-gone").unwrap();
        }),
    });
    let g = c
        .lock("lost-reply-gone")
        .try_acquire()
        .unwrap()
        .expect("retaken");
    let stored: Option<String> = server.conn().get("distlock:lost-reply-gone").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some(g.token()));
}

#[test]
fn renewal_keeps_a_lock_ten_times_its_ttl() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(200);
    let g = c.lock("long-hold").ttl(ttl).acquire().unwrap();
    assert!(
        !support::lost_within(&g.lost(), ttl * 10),
        "lost while renewed"
    );
    assert!(g.is_held());
    let stored: Option<String> = server.conn().get("distlock:long-hold").unwrap();
    let stored = distlock_testkit::token_part(stored);
    assert_eq!(stored.as_deref(), Some(g.token()));
    g.release().unwrap();
}

#[test]
fn many_locks_are_renewed_together() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(150);
    let guards: Vec<Guard> = (0..50)
        .map(|i| c.lock(format!("batch:{i}")).ttl(ttl).acquire().unwrap())
        .collect();
    assert!(!support::lost_within(&guards[0].lost(), ttl * 5));
    assert!(guards.iter().all(Guard::is_held));
    let live: usize = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
    assert_eq!(live, 50, "50 lock keys (no fence read, so no counters)");
}

#[test]
fn external_delete_is_noticed_within_one_renewal_period() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(600);
    let period = ttl / 3;
    let mut raw = server.conn();
    let g = c.lock("deleted").ttl(ttl).acquire().unwrap();
    // Delete halfway between two renewals, as an operator's DEL would land.
    assert!(!support::lost_within(&g.lost(), period / 2));
    let _: () = raw.del("distlock:deleted").unwrap();
    let start = Instant::now();
    assert!(support::lost_within(&g.lost(), ttl * 2), "loss noticed");
    let noticed = start.elapsed();
    println!("loss noticed {noticed:?} after an external DEL (renewal period {period:?})");
    assert!(noticed < period, "{noticed:?}");
    assert!(!g.is_held());
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

#[test]
fn unreachable_server_runs_the_lease_out() {
    let mut server = Some(RedisServer::start());
    let c = Client::builder()
        .url(&server.as_ref().unwrap().url())
        .command_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let ttl = Duration::from_millis(400);
    let start = Instant::now();
    let g = c.lock("orphaned").ttl(ttl).acquire().unwrap();
    drop(server.take());
    assert!(
        support::lost_within(&g.lost(), Duration::from_secs(3)),
        "loss noticed"
    );
    assert!(
        start.elapsed() <= ttl + Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert!(!g.is_held());
    assert!(g.release().is_err());
}

#[test]
fn guard_never_claims_the_lock_past_its_deadline() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(300);
    let before = Instant::now();
    let g = c
        .lock("deadline")
        .ttl(ttl)
        .auto_renew(false)
        .acquire()
        .unwrap();
    assert!(g.remaining() < ttl);
    let mut last_held = before;
    while g.is_held() && before.elapsed() < ttl * 3 {
        last_held = Instant::now();
        std::thread::yield_now();
    }
    assert!(!g.is_held(), "still held after 3x ttl");
    assert!(
        last_held.duration_since(before) < ttl,
        "held past the lease"
    );
}

#[test]
fn hold_cap_ends_an_auto_renewed_lock() {
    let server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .max_hold(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let start = Instant::now();
    let g = c
        .lock("capped")
        .ttl(Duration::from_millis(100))
        .acquire()
        .unwrap();
    assert!(support::lost_within(&g.lost(), Duration::from_secs(3)));
    let at = start.elapsed();
    assert!(
        at >= Duration::from_millis(290) && at < Duration::from_millis(700),
        "{at:?}"
    );
}

#[test]
fn acquire_chan_selects_and_can_be_abandoned_or_cancelled() {
    let server = RedisServer::start();
    let c = client(&server);
    let lock = c.lock("chan");
    let g = lock.acquire_chan().recv().unwrap().unwrap();

    // Cancelled while waiting behind the holder.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let waiting = lock.acquire_chan_cancellable(stop_rx);
    assert!(waiting.recv_timeout(Duration::from_millis(100)).is_err());
    drop(stop_tx);
    let outcome = waiting.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(outcome.unwrap_err(), Error::Cancelled);

    // Abandoned: the late winner gives the lock straight back.
    drop(lock.acquire_chan());
    g.release().unwrap();
    let again = lock.acquire_timeout(Duration::from_secs(3)).unwrap();
    assert!(again.is_held());
}

backends!(mutual_exclusion_eight_threads, |server: &AnyServer| {
    let c = any_client(server);
    let (threads, cycles) = (8, 200);
    // A counter read and written back in two steps, with a pause between:
    // two holders at once would lose an increment.
    let counter = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (c, counter) = (c.clone(), &counter);
            s.spawn(move || {
                let lock = c.lock("counter-lock");
                for _ in 0..cycles {
                    let g = lock.acquire().unwrap();
                    let n = counter.load(std::sync::atomic::Ordering::SeqCst);
                    std::thread::yield_now();
                    counter.store(n + 1, std::sync::atomic::Ordering::SeqCst);
                    g.release().unwrap();
                }
            });
        }
    });
    assert_eq!(counter.into_inner(), threads * cycles);
});

/// `cycles` times: lock, read the counter, write it back plus one, unlock.
fn counter_cycles(c: &Client, url: &str, cycles: u64) {
    let mut raw = redis::Client::open(url).unwrap().get_connection().unwrap();
    let lock = c.lock("counter-lock");
    for _ in 0..cycles {
        let g = lock.acquire().unwrap();
        let n: Option<u64> = raw.get("counter").unwrap();
        let _: () = raw.set("counter", n.unwrap_or(0) + 1).unwrap();
        g.release().unwrap();
    }
}

const WORKER_ENV: &str = "DISTLOCK_TEST_WORKER_URL";

/// The body of one worker process of `mutual_exclusion_four_processes`.
#[test]
fn worker_process_entry() {
    if let Ok(url) = std::env::var(WORKER_ENV) {
        counter_cycles(&Client::open(&url).unwrap(), &url, 200);
    }
}

#[test]
fn mutual_exclusion_four_processes() {
    let server = RedisServer::start();
    let children: Vec<_> = (0..4)
        .map(|_| support::spawn_entry("worker_process_entry", WORKER_ENV, &server.url()))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let n: u64 = server.conn().get("counter").unwrap();
    assert_eq!(n, 4 * 200);
}

#[test]
fn bad_input_gets_clear_errors() {
    let server = RedisServer::start();
    let c = client(&server);
    let invalid = |r: Result<Option<Guard>, Error>| match r {
        Err(Error::InvalidArgument(msg)) => msg,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert!(invalid(c.lock("").try_acquire()).contains("empty"));
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert!(invalid(c.lock(long).try_acquire()).contains("maximum"));
    let longest = c.lock("k".repeat(MAX_KEY_LEN)).try_acquire().unwrap();
    assert!(longest.is_some());
    assert!(invalid(c.lock("k").ttl(Duration::ZERO).try_acquire()).contains("ttl"));
    let huge = Duration::from_secs(25 * 3600);
    assert!(invalid(c.lock("k").ttl(huge).try_acquire()).contains("ttl"));
    let keys: usize = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
    assert_eq!(
        keys, 1,
        "only the valid lock reached the server (no fence read: no counter)"
    );

    for url in [
        "redis//127.0.0.1",
        "http://127.0.0.1:6379",
        "",
        "redis://127.0.0.1:notaport",
    ] {
        match Client::open(url) {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{url:?}: expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn wrong_password_is_an_auth_error() {
    let server = RedisServer::with_password("right-horse");
    let url = format!("redis://:wrong-battery@127.0.0.1:{}/0", server.port);
    let err = Client::open(&url).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    assert!(Client::open(&server.url()).is_ok());
}

#[test]
fn unreachable_servers_fail_within_the_timeouts() {
    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = Client::open(&format!("redis://127.0.0.1:{port}/0")).unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");

    // A listener that never answers: bounded by the timeouts, not hanging.
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    proxy.set_mode(Mode::BlackHole);
    let start = Instant::now();
    let err = Client::builder()
        .url(&proxy.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn passwords_never_show_in_debug_display_or_errors() {
    let secret = "pa55-Very-Secret";
    let server = RedisServer::with_password(secret);
    let c = Client::open(&server.url()).unwrap();
    let g = c.lock("secretive").acquire().unwrap();
    let builder = Client::builder().url(&server.url());
    let mut shown = vec![
        format!("{c:?}"),
        format!("{builder:?}"),
        format!("{:?}", c.lock("secretive")),
        format!("{g:?}"),
    ];
    let wrong = format!("redis://:{secret}X@127.0.0.1:{}/0", server.port);
    let e = Client::open(&wrong).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let dead = format!("redis://:{secret}@127.0.0.1:1/0");
    let e = Client::open(&dead).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = Client::open(&format!("redis://:{secret}@127.0.0.1:notaport")).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    for s in &shown {
        assert!(!s.contains(secret), "secret leaked in: {s}");
    }
    assert!(shown[0].contains("127.0.0.1"), "{}", shown[0]);
}

#[test]
fn tls_works_and_mismatches_fail_cleanly() {
    let TlsServer {
        server,
        tls_port,
        ca_pem,
    } = TlsServer::start();
    let quick = |url: String| {
        let start = Instant::now();
        let r = Client::builder()
            .url(&url)
            .tls_root_ca(ca_pem.clone())
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
            .build();
        (r, start.elapsed())
    };
    // TLS end to end, trusting the test CA.
    let (tls, _) = quick(format!("rediss://127.0.0.1:{tls_port}/0"));
    let g = tls.unwrap().lock("over-tls").acquire().unwrap();
    assert!(g.is_held());
    drop(g);
    // Plain text to the TLS port, and TLS to the plain port.
    for url in [
        format!("redis://127.0.0.1:{tls_port}/0"),
        format!("rediss://127.0.0.1:{}/0", server.port),
    ] {
        let (r, took) = quick(url.clone());
        let err = r.unwrap_err();
        assert!(
            matches!(err, Error::Connection(_) | Error::Redis(_)),
            "{url}: {err:?}"
        );
        assert!(took < Duration::from_secs(3), "{url}: {took:?}");
    }
    // Without the CA, the server's certificate is not trusted.
    let untrusted = Client::builder()
        .url(&format!("rediss://127.0.0.1:{tls_port}/0"))
        .connect_timeout(Duration::from_millis(500))
        .build();
    assert!(untrusted.is_err());
}
