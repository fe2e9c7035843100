//! Read-write locks and semaphores against a real redis-server: who may
//! hold at once, writer preference, crashed holders, wake-ups, permit
//! count changes, loss and bad input.

use distlock_testkit as support;

use distlock::{Client, Error, Guard, MAX_PERMITS};
use redis::Commands;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{MemcachedServer, Mode, RedisServer, TcpProxy};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn client(server: &RedisServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// A client whose waiters would look again only after an hour: anything
/// that wakes them sooner is a release notification.
fn patient_client(server: &RedisServer) -> Client {
    Client::builder()
        .url(&server.url())
        .max_retry_interval(Duration::from_secs(3600))
        .build()
        .expect("client")
}

/// Waits (at most five seconds) until `check` holds on the server.
fn until(server: &RedisServer, what: &str, check: impl Fn(&mut redis::Connection) -> bool) {
    let mut raw = server.conn();
    let start = Instant::now();
    while !check(&mut raw) {
        assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::yield_now();
    }
}

/// Members of the holder set of `name` (default prefix).
fn holders(raw: &mut redis::Connection, name: &str) -> Vec<String> {
    raw.zrange(format!("distlock:{name}"), 0, -1).unwrap()
}

#[test]
fn readers_share_and_a_writer_excludes_them() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let rw_a = a.rw_lock("doc");
    let rw_b = b.rw_lock("doc");
    let r1 = rw_a.read().try_acquire().unwrap().expect("first reader");
    let r2 = rw_b.read().try_acquire().unwrap().expect("readers share");
    assert_ne!(r1.token(), r2.token());
    assert!(r2.fence() > r1.fence(), "every share has its own fence");
    assert!(
        rw_b.write().try_acquire().unwrap().is_none(),
        "readers hold"
    );
    let mut raw = server.conn();
    let mut members = holders(&mut raw, "doc");
    members.sort();
    let mut want = vec![format!("r:{}", r1.token()), format!("r:{}", r2.token())];
    want.sort();
    assert_eq!(members, want);
    let last_reader = r2.fence();
    r1.release().unwrap();
    assert!(
        rw_b.write().try_acquire().unwrap().is_none(),
        "one reader left"
    );
    r2.release().unwrap();
    let w = rw_b.write().try_acquire().unwrap().expect("free");
    assert!(w.fence() > last_reader);
    assert!(
        rw_a.read().try_acquire().unwrap().is_none(),
        "the writer holds"
    );
    assert!(rw_a.write().try_acquire().unwrap().is_none(), "one writer");
    w.release().unwrap();
    assert!(!raw.exists::<_, bool>("distlock:doc").unwrap());
}

#[test]
fn threads_of_many_clients_never_see_a_writer_beside_anyone() {
    let server = RedisServer::start();
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let most_readers = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..6 {
        let c = client(&server);
        let (readers, writers, most) = (readers.clone(), writers.clone(), most_readers.clone());
        threads.push(std::thread::spawn(move || {
            let rw = c.rw_lock("overlap");
            for _ in 0..15 {
                if i < 2 {
                    let g = rw.write().acquire().unwrap();
                    assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                    assert_eq!(
                        readers.load(Ordering::SeqCst),
                        0,
                        "a reader beside a writer"
                    );
                    std::thread::sleep(ms(2));
                    writers.fetch_sub(1, Ordering::SeqCst);
                    g.release().unwrap();
                } else {
                    let g = rw.read().acquire().unwrap();
                    let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(
                        writers.load(Ordering::SeqCst),
                        0,
                        "a writer beside a reader"
                    );
                    std::thread::sleep(ms(4));
                    readers.fetch_sub(1, Ordering::SeqCst);
                    g.release().unwrap();
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("no overlap");
    }
    assert!(
        most_readers.load(Ordering::SeqCst) > 1,
        "readers never overlapped: they did not share"
    );
}

#[test]
fn a_semaphore_admits_at_most_its_permits() {
    let server = RedisServer::start();
    let c = client(&server);
    let sem = c.semaphore("slots", 3);
    assert_eq!(sem.permits(), 3);
    let held: Vec<Guard> = (0..3)
        .map(|_| sem.try_acquire().unwrap().expect("a free permit"))
        .collect();
    assert!(sem.try_acquire().unwrap().is_none(), "a fourth holder");
    assert!(matches!(sem.acquire_timeout(ms(50)), Err(Error::Timeout)));
    drop(held);

    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let sem = client(&server).semaphore("slots", 3);
            let (inside, most) = (inside.clone(), most.clone());
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let g = sem.acquire().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= 3, "{now} permit holders");
                    std::thread::sleep(ms(3));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    g.release().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("never more than 3 holders");
    }
    assert!(most.load(Ordering::SeqCst) >= 2, "permits never overlapped");
}

#[test]
fn a_waiting_writer_holds_new_readers_back_until_it_is_done() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let reader = a.rw_lock("pref").read().acquire().unwrap();
    let writing = b.rw_lock("pref").write().acquire_chan();
    until(&server, "the writer waits", |raw| {
        raw.exists("{distlock:pref}:writers").unwrap()
    });
    assert!(
        a.rw_lock("pref").read().try_acquire().unwrap().is_none(),
        "a new reader overtook a waiting writer"
    );
    reader.release().unwrap();
    let w = writing
        .recv_timeout(Duration::from_secs(5))
        .expect("the writer gets the lock")
        .unwrap();
    let mut raw = server.conn();
    assert!(
        !raw.exists::<_, bool>("{distlock:pref}:writers").unwrap(),
        "the writer's place is gone once it holds"
    );
    let reading = a.rw_lock("pref").read().acquire_chan();
    w.release().unwrap();
    let _held = reading
        .recv_timeout(Duration::from_secs(5))
        .expect("the reader after the writer")
        .unwrap();
}

#[test]
fn a_writer_that_gives_up_lets_the_readers_in() {
    let server = RedisServer::start();
    let c = patient_client(&server);
    let rw = c.rw_lock("giveup");
    let reader = rw.read().acquire().unwrap();
    assert!(matches!(
        rw.write().acquire_timeout(ms(100)),
        Err(Error::Timeout)
    ));
    let mut raw = server.conn();
    assert!(!raw.exists::<_, bool>("{distlock:giveup}:writers").unwrap());
    let _held = rw
        .read()
        .try_acquire()
        .unwrap()
        .expect("no writer waits any more");
    drop(reader);
}

#[test]
fn a_crashed_reader_frees_only_its_share_after_its_lease() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let ttl = ms(300);
    // A guard that is neither renewed nor released: its holder "crashed".
    let crashed = a
        .rw_lock("crash")
        .read()
        .ttl(ttl)
        .auto_renew(false)
        .acquire()
        .unwrap();
    let crashed_token = crashed.token().to_string();
    std::mem::forget(crashed);
    let alive = b.rw_lock("crash").read().ttl(ttl).acquire().unwrap();
    let started = Instant::now();
    let writer = b.rw_lock("crash").write().acquire_timeout(ttl * 3);
    assert!(matches!(writer, Err(Error::Timeout)), "{writer:?}");
    assert!(started.elapsed() >= ttl * 3 - ms(20));
    let mut raw = server.conn();
    let _ = a.rw_lock("crash").read().try_acquire().unwrap();
    assert_eq!(
        holders(&mut raw, "crash"),
        vec![format!("r:{}", alive.token())],
        "the crashed share ({crashed_token}) went, the renewed one stayed"
    );
    assert!(alive.is_held());
    alive.release().unwrap();
    let _held = b
        .rw_lock("crash")
        .write()
        .try_acquire()
        .unwrap()
        .expect("free");
}

#[test]
fn a_crashed_permit_comes_back_after_its_lease() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = ms(300);
    let sem = c.semaphore("crashsem", 1).ttl(ttl);
    std::mem::forget(sem.clone().auto_renew(false).acquire().unwrap());
    let started = Instant::now();
    let g = sem.acquire_timeout(Duration::from_secs(5)).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= ttl - ms(50),
        "took a live permit after {waited:?}"
    );
    assert!(waited < ttl * 4, "waited {waited:?} for a {ttl:?} lease");
    g.release().unwrap();
}

#[test]
fn shares_are_renewed_while_held() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = ms(150);
    let r = c.rw_lock("renewed").read().ttl(ttl).acquire().unwrap();
    let p = c.semaphore("renewedsem", 2).ttl(ttl).acquire().unwrap();
    // Long enough for several renewals; the leases alone would have ended.
    assert!(!support::lost_within(&r.lost(), ttl * 5));
    assert!(r.is_held() && p.is_held());
    let mut raw = server.conn();
    let score: Option<f64> = raw
        .zscore("distlock:renewed", format!("r:{}", r.token()))
        .unwrap();
    assert!(score.is_some(), "the share is still on the server");
    r.extend().unwrap();
    r.release().unwrap();
    p.release().unwrap();
}

#[test]
fn waiters_wake_by_notification_not_by_polling() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), patient_client(&server));
    // A reader waits for a writer whose lease is long: only the release
    // notification can wake it soon.
    let w = a.rw_lock("wake").write().acquire().unwrap();
    let reading = b.rw_lock("wake").read().acquire_chan();
    support::wait_until_subscribed(&server, "wake");
    let released = Instant::now();
    w.release().unwrap();
    let _held = reading
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    let reader_woke = released.elapsed();

    // A writer waits for the last of two readers.
    let r1 = a.rw_lock("wake2").read().acquire().unwrap();
    let r2 = a.rw_lock("wake2").read().acquire().unwrap();
    let writing = b.rw_lock("wake2").write().acquire_chan();
    support::wait_until_subscribed(&server, "wake2");
    r1.release().unwrap();
    assert!(
        writing.recv_timeout(ms(100)).is_err(),
        "a reader still holds"
    );
    let released = Instant::now();
    r2.release().unwrap();
    let _held = writing
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    let writer_woke = released.elapsed();

    // A semaphore's waiter, when a permit is returned.
    let p = a.semaphore("wakesem", 1).acquire().unwrap();
    let permit = b.semaphore("wakesem", 1).acquire_chan();
    support::wait_until_subscribed(&server, "wakesem");
    let released = Instant::now();
    p.release().unwrap();
    let _held = permit
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    let permit_woke = released.elapsed();

    for (who, woke) in [
        ("reader", reader_woke),
        ("writer", writer_woke),
        ("permit waiter", permit_woke),
    ] {
        assert!(
            woke < Duration::from_secs(2),
            "the {who} woke after {woke:?}"
        );
    }
}

#[test]
fn a_new_permit_count_applies_to_new_acquisitions_only() {
    let server = RedisServer::start();
    let c = client(&server);
    let two = c.semaphore("resize", 2);
    let held = [two.acquire().unwrap(), two.acquire().unwrap()];
    assert!(two.try_acquire().unwrap().is_none());
    // Raised: a third permit at once.
    let third = c
        .semaphore("resize", 3)
        .try_acquire()
        .unwrap()
        .expect("3 permits now");
    // Lowered: existing holders keep theirs, nobody new gets one until
    // fewer than the new count hold.
    let one = c.semaphore("resize", 1);
    assert!(one.try_acquire().unwrap().is_none());
    for g in &held {
        assert!(g.is_held());
        g.extend().unwrap();
    }
    third.release().unwrap();
    let [g1, g2] = held;
    g1.release().unwrap();
    assert!(
        one.try_acquire().unwrap().is_none(),
        "one holder = the new count"
    );
    g2.release().unwrap();
    let _held = one.try_acquire().unwrap().expect("below the new count");
}

#[test]
fn a_share_removed_behind_the_guard_is_reported_lost() {
    let server = RedisServer::start();
    let c = client(&server);
    let ttl = ms(300);
    let r = c.rw_lock("stolen").read().ttl(ttl).acquire().unwrap();
    let p = c.semaphore("stolensem", 2).ttl(ttl).acquire().unwrap();
    let mut raw = server.conn();
    let _: i64 = raw
        .zrem("distlock:stolen", format!("r:{}", r.token()))
        .unwrap();
    let _: i64 = raw
        .zrem("distlock:stolensem", format!("p:{}", p.token()))
        .unwrap();
    assert!(
        support::lost_within(&r.lost(), Duration::from_secs(2)),
        "renewal noticed"
    );
    assert!(support::lost_within(&p.lost(), Duration::from_secs(2)));
    assert!(!r.is_held());
    assert_eq!(r.extend(), Err(Error::Lost));
    assert_eq!(r.release(), Err(Error::Lost));
    assert_eq!(p.release(), Err(Error::Lost));
}

#[test]
fn fences_rise_across_readers_writers_and_an_empty_restart() {
    let server = RedisServer::start();
    let c = client(&server);
    let rw = c.rw_lock("fenced");
    let mut last = 0;
    for i in 0..10 {
        let g = if i % 3 == 0 {
            rw.write().acquire().unwrap()
        } else {
            rw.read().acquire().unwrap()
        };
        assert!(g.fence() > last, "fence {} after {last}", g.fence());
        last = g.fence();
    }
    let _: () = redis::cmd("FLUSHALL").query(&mut server.conn()).unwrap();
    let g = c.semaphore("fenced", 2).acquire().unwrap();
    assert!(
        g.fence() > last,
        "fence {} after a flush, was {last}",
        g.fence()
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let server = RedisServer::start();
    let c = client(&server);
    for permits in [0, MAX_PERMITS + 1] {
        let e = c.semaphore("bad", permits).try_acquire().unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.contains("1 to 10000 permits")),
            "{e}"
        );
    }
    assert!(matches!(
        c.rw_lock("").read().try_acquire(),
        Err(Error::InvalidArgument(_))
    ));

    // A name held by one kind refuses the others, each saying which.
    let plain = c.lock("taken").acquire().unwrap();
    let e = c.rw_lock("taken").read().try_acquire().unwrap_err();
    assert!(
        e.to_string()
            .contains("in use by a plain lock; a read-write lock"),
        "{e}"
    );
    let e = c
        .semaphore("taken", 2)
        .acquire_timeout(ms(100))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("in use by a plain lock; a semaphore"),
        "{e}"
    );
    drop(plain);

    let reader = c.rw_lock("shared").read().acquire().unwrap();
    let e = c.lock("shared").try_acquire().unwrap_err();
    assert!(
        e.to_string()
            .contains("in use by a read-write lock or a semaphore; a plain lock"),
        "{e}"
    );
    let e = c.semaphore("shared", 5).try_acquire().unwrap_err();
    assert!(
        e.to_string()
            .contains("in use by a read-write lock; a semaphore"),
        "{e}"
    );
    drop(reader);

    let permit = c.semaphore("counted", 5).acquire().unwrap();
    let e = c.rw_lock("counted").write().acquire().unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("in use by a semaphore")),
        "{e}"
    );
    drop(permit);
    // Free again: any kind may take the name.
    let _held = c.lock("counted").try_acquire().unwrap().expect("free");
}

#[test]
fn stores_without_shares_refuse_them() {
    let mc = MemcachedServer::start();
    let c = Client::open(&mc.url()).unwrap();
    let e = c.rw_lock("x").read().try_acquire().unwrap_err();
    assert!(
        e.to_string()
            .contains("read-write locks are not supported with"),
        "{e}"
    );
    let e = c.semaphore("x", 2).try_acquire().unwrap_err();
    assert!(
        e.to_string().contains("semaphores are not supported with"),
        "{e}"
    );

    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let c = Client::builder().nodes(&urls).build().unwrap();
    let e = c.rw_lock("x").write().try_acquire().unwrap_err();
    assert!(e.to_string().contains("not supported with"), "{e}");
}

#[test]
fn listing_shows_every_kind_beside_plain_locks() {
    let server = RedisServer::start();
    let c = client(&server);
    let _plain = c.lock("list:plain").acquire().unwrap();
    let _reader = c.rw_lock("list:rw").read().acquire().unwrap();
    let _permit = c.semaphore("list:sem", 2).acquire().unwrap();
    let held = c.held("list:*", 10).unwrap();
    let mut listed: Vec<(&str, bool, usize)> = held
        .locks
        .iter()
        .map(|l| (l.name.as_str(), l.info.token.is_some(), l.info.shares.len()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("list:plain", true, 0),
            ("list:rw", false, 1),
            ("list:sem", false, 1)
        ]
    );
}

#[test]
fn a_lost_acquire_reply_is_retried_and_holds_one_share() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let c = Client::builder()
        .url(&proxy.url())
        .command_timeout(ms(500))
        .build()
        .unwrap();
    for (name, permits) in [("lost-reader", None), ("lost-permit", Some(1))] {
        proxy.set_mode(Mode::DropReplyTo {
            needle: format!("distlock:{name}").into_bytes(),
            hook: Box::new(|| {}),
        });
        let g = match permits {
            None => c.rw_lock(name).read().try_acquire(),
            Some(n) => c.semaphore(name, n).try_acquire(),
        }
        .unwrap()
        .expect("the retry finds its own share");
        assert!(proxy.is_passing(), "the reply was really dropped");
        let role = if permits.is_some() { "p" } else { "r" };
        assert_eq!(
            holders(&mut server.conn(), name),
            vec![format!("{role}:{}", g.token())],
            "one share, ours"
        );
        g.release().unwrap();
    }
}

#[test]
fn a_writers_try_leaves_no_place_behind() {
    let server = RedisServer::start();
    let c = client(&server);
    let rw = c.rw_lock("trywrite");
    let _reader = rw.read().acquire().unwrap();
    assert!(rw.write().try_acquire().unwrap().is_none());
    let mut raw = server.conn();
    assert!(!raw
        .exists::<_, bool>("{distlock:trywrite}:writers")
        .unwrap());
    let _second = rw.read().try_acquire().unwrap().expect("no writer waits");
}

/// Waits (at most five seconds) until `n` connections listen on the release
/// channel of `name`.
fn until_listeners(server: &RedisServer, name: &str, n: u64) {
    until(server, &format!("{n} listeners of {name}"), |raw| {
        let (_, listening): (Vec<u8>, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("distlock:{name}"))
            .query(raw)
            .unwrap();
        listening >= n
    });
}

/// The next release message published for `name`, as the waiters hear it.
fn next_message(feed: &mut redis::PubSub<'_>) -> String {
    feed.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let msg = feed.get_message().expect("a release message within 5 s");
    msg.get_payload().unwrap()
}

#[test]
fn a_release_wakes_one_waiting_writer_and_the_last_writer_wakes_readers() {
    let server = RedisServer::start();
    let holder = client(&server);
    let first = holder.rw_lock("one").read().acquire().unwrap();
    // Three writers and a reader wait, each on a client of its own that
    // would look again only after an hour.
    let (won_tx, won_rx) = crossbeam_channel::unbounded::<(usize, char, String)>();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    for (i, role) in ['w', 'w', 'w', 'r'].into_iter().enumerate() {
        let c = patient_client(&server);
        let (won_tx, (go_tx, go_rx)) = (won_tx.clone(), crossbeam_channel::bounded::<()>(1));
        go.push(go_tx);
        threads.push(std::thread::spawn(move || {
            let rw = c.rw_lock("one");
            let lock = if role == 'w' { rw.write() } else { rw.read() };
            let g = lock.acquire().unwrap();
            won_tx.send((i, role, g.token().to_string())).unwrap();
            let _ = go_rx.recv();
            g.release().unwrap();
        }));
        if role == 'w' {
            let want = threads.len();
            until(&server, "the writer's place", |raw| {
                raw.zcard::<_, usize>("{distlock:one}:writers").unwrap() == want
            });
        }
    }
    until_listeners(&server, "one", 4);
    let mut raw = server.conn();
    let mut feed = raw.as_pubsub();
    feed.subscribe("distlock:one").unwrap();

    first.release().unwrap();
    let mut writers = Vec::new();
    for turn in 0..3 {
        let told = next_message(&mut feed);
        let (i, role, token) = won_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(role, 'w', "turn {turn}: writers go before the reader");
        assert_eq!(
            told,
            format!("to:{token}"),
            "turn {turn}: only the winner was told"
        );
        assert!(
            won_rx.try_recv().is_err(),
            "turn {turn}: nobody else got in"
        );
        writers.push(token);
        go[i].send(()).unwrap();
    }
    writers.sort();
    writers.dedup();
    assert_eq!(writers.len(), 3, "each writer once");
    assert_eq!(
        next_message(&mut feed),
        "released",
        "the last writer's release wakes every reader"
    );
    let (i, role, _) = won_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(role, 'r');
    go[i].send(()).unwrap();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn inspect_and_held_describe_every_share() {
    let server = RedisServer::start();
    let (a, b) = (client(&server), client(&server));
    let r1 = a.rw_lock("seen").read().acquire().unwrap();
    let r2 = b.rw_lock("seen").read().ttl(ms(60_000)).acquire().unwrap();
    // A writer waits behind them, holding new readers back.
    assert!(matches!(
        b.rw_lock("seen").write().acquire_timeout(ms(1)),
        Err(Error::Timeout)
    ));
    let writing = b.rw_lock("seen").write().acquire_chan();
    until(&server, "a waiting writer", |raw| {
        raw.exists::<_, bool>("{distlock:seen}:writers").unwrap()
    });
    let info = a.inspect("seen").unwrap();
    assert_eq!(info.token, None);
    assert_eq!(info.writers_waiting, 1);
    let mut seen: Vec<(distlock::ShareKind, String)> = info
        .shares
        .iter()
        .map(|s| (s.kind, s.token.clone()))
        .collect();
    seen.sort_by(|x, y| x.1.cmp(&y.1));
    let mut want = vec![
        (distlock::ShareKind::Read, r1.token().to_string()),
        (distlock::ShareKind::Read, r2.token().to_string()),
    ];
    want.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(seen, want);
    let longest = info.remaining.expect("the longest share's lease");
    assert!(
        longest > Duration::from_secs(30),
        "{longest:?}: r2's 60 s lease"
    );
    assert!(info.fence.is_some_and(|f| f >= r2.fence()));

    let permit = a.semaphore("slots", 3).acquire().unwrap();
    let listed = a.held("*", 100).unwrap();
    let mut names: Vec<&str> = listed.locks.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["seen", "slots"], "plain keys only, no side keys");
    let slots = &listed
        .locks
        .iter()
        .find(|l| l.name == "slots")
        .unwrap()
        .info;
    assert_eq!(slots.shares.len(), 1);
    assert_eq!(slots.shares[0].kind, distlock::ShareKind::Permit);
    assert_eq!(slots.shares[0].token, permit.token());

    r1.release().unwrap();
    r2.release().unwrap();
    let w = writing
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    let info = a.inspect("seen").unwrap();
    assert_eq!(info.writers_waiting, 0);
    assert_eq!(info.shares.len(), 1);
    assert_eq!(info.shares[0].kind, distlock::ShareKind::Write);
    w.release().unwrap();
    permit.release().unwrap();
    let info = a.inspect("seen").unwrap();
    assert!(
        info.shares.is_empty() && info.token.is_none(),
        "free: {info:?}"
    );
}
