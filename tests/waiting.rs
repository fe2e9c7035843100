//! Fast waiting: release notifications, the local fast path and its
//! fairness bound, cancellation, and many waiters on few connections.

use distlock_testkit as support;

use distlock::{Client, Error};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{backends, wait_until_subscribed, AnyServer, RedisServer, TcpProxy};

/// A client whose waiters look at a held lock again only after `poll`
/// unless a notification wakes them first.
fn client_polling_every(url: &str, poll: Duration) -> Client {
    Client::builder()
        .url(url)
        .max_retry_interval(poll)
        .build()
        .unwrap()
}

/// Starts a thread that waits for `name` on `client`; its channel yields
/// the moment it got the lock.
fn waiter(client: &Client, name: &str, timeout: Duration) -> crossbeam_channel::Receiver<Instant> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let lock = client.lock(name);
    std::thread::spawn(move || {
        if let Ok(g) = lock.acquire_timeout(timeout) {
            let _ = tx.send(Instant::now());
            drop(g);
        }
    });
    rx
}

backends!(
    a_release_wakes_a_remote_waiter_at_once,
    |server: &AnyServer| {
        let holder = Client::open(&server.url()).unwrap();
        // Without a notification this waiter would look again only after 20 s.
        let other = client_polling_every(&server.url(), Duration::from_secs(20));
        let g = holder.lock("wake").acquire().unwrap();
        let got = waiter(&other, "wake", Duration::from_secs(10));
        server.wait_until_waiting("wake");
        let released = Instant::now();
        g.release().unwrap();
        let at = got.recv_timeout(Duration::from_secs(5)).expect("woken");
        let latency = at - released;
        println!("release to remote acquire: {latency:?}");
        assert!(latency < Duration::from_millis(200), "{latency:?}");
    }
);

backends!(
    a_lost_notification_costs_at_most_the_retry_interval,
    |server: &AnyServer| {
        let holder = Client::open(&server.url()).unwrap();
        let other = client_polling_every(&server.url(), Duration::from_millis(300));
        let g = holder
            .lock("silent")
            .ttl(Duration::from_secs(30))
            .acquire()
            .unwrap();
        let got = waiter(&other, "silent", Duration::from_secs(10));
        server.wait_until_waiting("silent");
        // The holder vanishes without the release script: no notification
        // (memcached's polling feed may notice it, which only helps).
        server.delete("distlock:silent");
        let deleted = Instant::now();
        let at = got.recv_timeout(Duration::from_secs(5)).expect("acquired");
        let waited = at - deleted;
        assert!(
            waited <= Duration::from_millis(450),
            "{waited:?} (ttl was 30 s)"
        );
        assert!(!g.is_held() || g.release().is_err());
    }
);

#[test]
fn waiters_resubscribe_after_their_connections_drop() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let holder = Client::open(&server.url()).unwrap();
    let other = client_polling_every(&proxy.url(), Duration::from_secs(20));
    let g = holder.lock("resub").acquire().unwrap();
    let got = waiter(&other, "resub", Duration::from_secs(15));
    wait_until_subscribed(&server, "resub");
    // Every connection of the waiting client drops, as in a restart that
    // kept the data: it must reconnect and subscribe again.
    proxy.cut_all();
    let start = Instant::now();
    loop {
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("distlock:resub")
            .query(&mut server.conn())
            .unwrap();
        // The old subscription is gone once the cut reached the server; a
        // count of one after that is the new one.
        if n == 1 && start.elapsed() > Duration::from_millis(50) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "not resubscribed");
        std::thread::yield_now();
    }
    let released = Instant::now();
    g.release().unwrap();
    let at = got
        .recv_timeout(Duration::from_secs(5))
        .expect("woken after resubscribing");
    assert!(
        at - released < Duration::from_millis(300),
        "{:?}",
        at - released
    );
}

#[test]
fn a_waiter_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let holder = Client::open(&server.url()).unwrap();
    let other = client_polling_every(&server.url(), Duration::from_secs(20));
    let g = holder
        .lock("restart")
        .ttl(Duration::from_secs(30))
        .acquire()
        .unwrap();
    let got = waiter(&other, "restart", Duration::from_secs(20));
    wait_until_subscribed(&server, "restart");
    server.restart();
    // The restarted server is empty: the waiter reconnects and takes the lock
    // long before the 30 s lease or its 20 s poll interval.
    let at = got
        .recv_timeout(Duration::from_secs(10))
        .expect("acquired after restart");
    assert!(at.elapsed() < Duration::from_secs(10));
    // The first holder learns at its next renewal that the lock is gone.
    drop(g);
}

backends!(
    cancelling_waiters_stops_them_at_once,
    |server: &AnyServer| {
        let c = Client::open(&server.url()).unwrap();
        let other = Client::open(&server.url()).unwrap();
        let g = c.lock("cancel").acquire().unwrap();
        // One waiter queued locally behind the holder, one waiting on the server.
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        for client in [c.clone(), other.clone()] {
            let (stop, done) = (stop_rx.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let r = client.lock("cancel").acquire_cancellable(None, &stop);
                let _ = done.send((r.map(|_| ()), Instant::now()));
            });
        }
        assert!(
            done_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "both wait"
        );
        let cancelled = Instant::now();
        drop(stop_tx);
        for _ in 0..2 {
            let (r, at) = done_rx.recv_timeout(Duration::from_secs(2)).unwrap();
            assert_eq!(r, Err(Error::Cancelled));
            assert!(at - cancelled < Duration::from_millis(200));
        }
        // Nothing was left behind: the queue and the lock work as before.
        g.release().unwrap();
        let again = c
            .lock("cancel")
            .acquire_timeout(Duration::from_secs(1))
            .unwrap();
        drop(again);
        assert!(other.lock("cancel").try_acquire().unwrap().is_some());
    }
);

backends!(
    local_handoffs_keep_fences_increasing_and_exclusive,
    |server: &AnyServer| {
        let c = Client::open(&server.url()).unwrap();
        let fences = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (c, fences) = (c.clone(), fences.clone());
                s.spawn(move || {
                    for _ in 0..100 {
                        let g = c.lock("handoff").acquire().unwrap();
                        // Inside the critical section: pushes happen in lock order.
                        fences.lock().unwrap().push(g.fence());
                        drop(g);
                    }
                });
            }
        });
        let fences = fences.lock().unwrap();
        assert_eq!(fences.len(), 800);
        assert!(
            fences.windows(2).all(|w| w[0] < w[1]),
            "fences strictly increase"
        );
        let handed = fences.windows(2).filter(|w| w[1] == w[0] + 1).count();
        println!("{handed} of 799 successions were local hand-offs");
        assert!(handed > 400, "the fast path was used: {handed}");
    }
);

backends!(
    a_remote_waiter_is_not_starved_by_a_busy_client,
    |server: &AnyServer| {
        let busy = Client::open(&server.url()).unwrap();
        let patient = client_polling_every(&server.url(), Duration::from_secs(20));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cycles = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let (got, waited) = std::thread::scope(|s| {
            for _ in 0..8 {
                let (busy, stop, cycles) = (busy.clone(), stop.clone(), cycles.clone());
                s.spawn(move || {
                    // Bounded: at most 20,000 cycles or 10 s per thread.
                    for _ in 0..20_000 {
                        if stop.load(std::sync::atomic::Ordering::SeqCst)
                            || started.elapsed() > Duration::from_secs(10)
                        {
                            break;
                        }
                        let g = busy.lock("hammered").acquire().unwrap();
                        std::hint::black_box(g.fence());
                        cycles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
            // Start waiting only once the hammering is in full swing.
            while cycles.load(std::sync::atomic::Ordering::SeqCst) < 2_000 {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "hammering stalled"
                );
                std::thread::yield_now();
            }
            let t = Instant::now();
            let got = patient
                .lock("hammered")
                .acquire_timeout(Duration::from_secs(5));
            let waited = t.elapsed();
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            (got.map(|_| ()), waited)
        });
        let done = cycles.load(std::sync::atomic::Ordering::SeqCst);
        println!("remote waiter got the lock after {waited:?} of hammering ({done} cycles)");
        assert_eq!(got, Ok(()));
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }
);

backends!(fast_path_off_still_excludes, |server: &AnyServer| {
    let c = Client::builder()
        .url(&server.url())
        .fast_path(false)
        .build()
        .unwrap();
    let fences = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (c, fences) = (c.clone(), fences.clone());
            s.spawn(move || {
                for _ in 0..50 {
                    let g = c.lock("slow-path").acquire().unwrap();
                    fences.lock().unwrap().push(g.fence());
                }
            });
        }
    });
    let fences = fences.lock().unwrap();
    assert!(
        fences.windows(2).all(|w| w[1] >= w[0] + 64),
        "every cycle went to Redis"
    );
});

#[test]
fn a_thousand_waiters_share_a_small_pool() {
    let server = RedisServer::start();
    let holder = Client::open(&server.url()).unwrap();
    let waiting = Client::builder()
        .url(&server.url())
        .pool_size(4)
        .build()
        .unwrap();
    let guards: Vec<_> = (0..100)
        .map(|k| holder.lock(format!("crowd:{k}")).acquire().unwrap())
        .collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let threads: Vec<_> = (0..1000)
        .map(|i| {
            let (lock, tx) = (waiting.lock(format!("crowd:{}", i % 100)), tx.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let r = lock.acquire_timeout(Duration::from_secs(30));
                    tx.send(r.map(|_| ())).unwrap();
                })
                .unwrap()
        })
        .collect();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "all wait"
    );
    assert!(waiting.pool_state().connections <= 4);
    drop(guards);
    for _ in 0..1000 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(()));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(waiting.pool_state().connections <= 4);
}

#[test]
fn handed_off_leases_keep_being_renewed() {
    let server = RedisServer::start();
    // Long runs of hand-offs: only the renewal thread keeps the lease alive.
    let c = Client::builder()
        .url(&server.url())
        .handoff_limit(63)
        .handoff_budget(Duration::from_secs(10))
        .build()
        .unwrap();
    let ttl = Duration::from_millis(150);
    let start = Instant::now();
    let losses = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (c, losses, seen) = (c.clone(), losses.clone(), seen.clone());
            s.spawn(move || {
                // Ten TTLs of passing one lock around, each holder for 5 ms.
                while start.elapsed() < ttl * 10 {
                    let g = c.lock("relay").ttl(ttl).acquire().unwrap();
                    seen.lock().unwrap().push((g.fence(), Instant::now()));
                    let fired = g.lost().recv_timeout(Duration::from_millis(5));
                    if fired != Err(crossbeam_channel::RecvTimeoutError::Timeout)
                        || !g.is_held()
                        || g.release().is_err()
                    {
                        losses.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(losses.load(Ordering::SeqCst), 0);
    // A run of consecutive fences is one server lease passed by hand; some
    // run must have outlived the TTL, which only renewal makes possible.
    let seen = seen.lock().unwrap();
    let (mut longest, mut run_start) = (Duration::ZERO, seen[0].1);
    for w in seen.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            run_start = w[1].1;
        }
        longest = longest.max(w[1].1 - run_start);
    }
    assert!(
        longest > ttl * 3 / 2,
        "longest run of hand-offs {longest:?}"
    );
}
