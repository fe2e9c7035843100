//! Safety under faults: Redis killed, paused and restarted; a lossy network;
//! a paused holder process. Every fault test prints its numbers.

use distlock_testkit as support;

use distlock::{Client, Error};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::checker::{check, now_ns, Hold};
use support::{signal, Mode, RedisServer, TcpProxy};

fn quick_client(url: &str) -> Client {
    Client::builder()
        .url(url)
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

#[test]
fn kill_and_empty_restart_is_noticed_within_a_renewal_period() {
    let mut server = RedisServer::start();
    let c = quick_client(&server.url());
    let ttl = Duration::from_millis(900);
    let period = ttl / 3;
    let g = c.lock("crash").ttl(ttl).acquire().unwrap();
    server.restart();
    let restarted = Instant::now();
    assert!(support::lost_within(&g.lost(), ttl * 3), "loss noticed");
    let noticed = restarted.elapsed();
    println!("loss noticed {noticed:?} after an empty restart (renewal period {period:?})");
    // A renewal round may first meet the dead connection and retry once.
    assert!(
        noticed <= period + Duration::from_millis(150),
        "{noticed:?}"
    );
    assert_eq!(g.release().unwrap_err(), Error::Lost);
    assert!(
        c.lock("crash").try_acquire().unwrap().is_some(),
        "usable again"
    );
}

#[test]
fn redis_paused_beyond_the_ttl() {
    let server = RedisServer::start();
    let c = quick_client(&server.url());
    let ttl = Duration::from_millis(500);
    let g = c.lock("paused").ttl(ttl).acquire().unwrap();
    let first = g.fence();
    signal(server.pid(), libc::SIGSTOP);
    let paused = Instant::now();
    // is_held() follows the local deadline exactly...
    let mut last_held = paused;
    while g.is_held() && paused.elapsed() < ttl * 3 {
        last_held = Instant::now();
        std::thread::yield_now();
    }
    // ...and lost() fires at the deadline, or when the renewal blocked on
    // the paused server gives up (one command timeout, 200 ms, later).
    let lost = support::lost_within(&g.lost(), ttl * 3);
    let noticed = paused.elapsed();
    signal(server.pid(), libc::SIGCONT);
    println!(
        "Redis paused: is_held() false after {:?}, lost() fired after {noticed:?} (ttl {ttl:?})",
        last_held - paused
    );
    assert!(last_held - paused < ttl, "held past the lease");
    assert!(
        lost && noticed <= ttl + Duration::from_millis(300),
        "{noticed:?}"
    );
    let other = quick_client(&server.url());
    let next = other
        .lock("paused")
        .acquire_timeout(Duration::from_secs(3))
        .unwrap();
    assert!(next.fence() > first);
    assert_eq!(
        g.release().unwrap_err(),
        Error::Lost,
        "and spares the new owner"
    );
    assert!(next.is_held());
}

/// Workers of two clients take one lock through a faulty proxy while the
/// main thread injects latency, dropped connections and a black hole.
#[test]
fn lossy_network_never_yields_an_undetected_overlap() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let holds = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = [quick_client(&proxy.url()), quick_client(&proxy.url())];
    let errors = Arc::new(Mutex::new(0usize));
    std::thread::scope(|s| {
        for t in 0..6 {
            let (c, holds, stop, errors) = (&clients[t % 2], &holds, &stop, &errors);
            s.spawn(move || {
                let lock = c.lock("net").ttl(Duration::from_millis(300));
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
                    let Ok(g) = lock.acquire_timeout(Duration::from_millis(500)) else {
                        *errors.lock().unwrap() += 1;
                        continue;
                    };
                    let start = now_ns();
                    // Two milliseconds of work, watching for the loss.
                    let mut lost = support::lost_within(&g.lost(), Duration::from_millis(2));
                    let end = now_ns();
                    lost |= !g.is_held();
                    let fence = g.fence();
                    lost |= g.release() == Err(Error::Lost);
                    holds.lock().unwrap().push(Hold {
                        fence,
                        start,
                        end,
                        lost,
                        lost_at: if lost { end } else { 0 },
                    });
                }
            });
        }
        let phase = |mode: Mode, for_: Duration| {
            proxy.set_mode(mode);
            std::thread::sleep(for_);
        };
        // The schedule of faults is the test's input, not synchronisation.
        phase(Mode::Pass, Duration::from_millis(300));
        phase(
            Mode::Delay(Duration::from_millis(40)),
            Duration::from_millis(600),
        );
        proxy.set_mode(Mode::Pass);
        proxy.cut_all();
        phase(Mode::Pass, Duration::from_millis(300));
        proxy.set_mode(Mode::BlackHole);
        proxy.cut_all();
        std::thread::sleep(Duration::from_millis(700));
        proxy.set_mode(Mode::Pass);
        proxy.cut_all();
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::SeqCst);
    });
    let holds = holds.lock().unwrap().clone();
    let r = check(holds);
    println!(
        "lossy network: {} holds, {} acquire failures, {} signalled losses, {} overlaps detected, {} undetected, {} fence regressions",
        r.holds,
        errors.lock().unwrap(),
        r.signalled_losses,
        r.overlaps_detected,
        r.overlaps_undetected,
        r.fence_regressions
    );
    assert!(r.holds > 50, "work went on around the faults");
    assert_eq!(r.overlaps_undetected, 0);
    assert_eq!(r.fence_regressions, 0);
}

const HOLDER_ENV: &str = "DISTLOCK_FAULTS_HOLDER";

/// A holder process: takes the lock, says so, and on "check" reports what
/// it knows about its lock.
#[test]
fn holder_process_entry() {
    let Ok(url) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let c = Client::open(&url).unwrap();
    let g = c
        .lock("stopped")
        .ttl(Duration::from_millis(400))
        .acquire()
        .unwrap();
    println!("held {}", g.fence());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let fired = g.lost().try_recv() == Err(crossbeam_channel::TryRecvError::Disconnected);
    let release = g.is_held();
    println!("after {fired} {release} {}", g.release().is_ok());
}

#[test]
fn a_paused_holder_loses_the_lock_and_learns_it_on_resume() {
    let server = RedisServer::start();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_process_entry",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(HOLDER_ENV, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let read_tagged = |out: &mut BufReader<_>, tag: &str| -> String {
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            // libtest may have printed "test … ... " on the same line.
            if let Some(at) = line.find(tag) {
                return line[at + tag.len()..].trim().to_string();
            }
        }
        panic!("no {tag:?} line from the holder");
    };
    let first: u64 = read_tagged(&mut out, "held ").parse().unwrap();
    signal(child.id(), libc::SIGSTOP);
    let stopped = Instant::now();
    let c = Client::open(&server.url()).unwrap();
    let g = c
        .lock("stopped")
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    println!(
        "taken over {:?} after the holder was paused",
        stopped.elapsed()
    );
    assert!(g.fence() > first, "the paused holder's fence is stale");
    signal(child.id(), libc::SIGCONT);
    writeln!(child.stdin.as_mut().unwrap(), "check").unwrap();
    let after = read_tagged(&mut out, "after ");
    assert_eq!(
        after, "true false false",
        "lost fired, not held, release refused"
    );
    assert!(child.wait().unwrap().success());
    assert!(g.is_held(), "the new owner kept its lock");
}

/// A grant that arrives after the lease it starts has run out is worth
/// nothing: acquire asks again instead of handing out a dead guard, and
/// gives up with a clear error when every answer is that slow.
#[test]
fn a_grant_slower_than_its_lease_is_never_handed_out() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    let c = Client::builder()
        .url(&proxy.url())
        .command_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let lock = c.lock("slow").ttl(Duration::from_millis(60));
    // Every reply takes longer than the 60 ms lease.
    proxy.set_mode(Mode::Delay(Duration::from_millis(120)));
    let started = Instant::now();
    let err = lock
        .acquire_timeout(Duration::from_millis(800))
        .expect_err("no guard from a grant that came too late");
    let took = started.elapsed();
    println!("late grants: gave up after {took:?} with {err}");
    assert!(
        matches!(&err, Error::Connection(m) if m.contains("longer than the 60 ms lease")),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // try_acquire, too, retries a late grant only a bounded number of times.
    assert!(matches!(lock.try_acquire(), Err(Error::Connection(_))));
    proxy.set_mode(Mode::Pass);
    // Answers in time again: the lock is free (the grants ran out or were
    // given back) and a guard comes with time left on it.
    let g = lock.acquire_timeout(Duration::from_secs(2)).unwrap();
    assert!(g.is_held() && g.remaining() > Duration::ZERO);
    g.release().unwrap();
}

/// Fills `c`'s pool with `n` idle connections: `n` threads ask at once
/// while the server holds every client back (`CLIENT PAUSE`), so none can
/// reuse another's connection.
fn fill_pool(server: &RedisServer, c: &Client, n: u32) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .query(&mut server.conn())
        .unwrap();
    std::thread::scope(|s| {
        for i in 0..n {
            s.spawn(move || c.inspect(&format!("fill{i}")).unwrap());
        }
    });
    let state = c.pool_state();
    assert!(
        state.idle >= n.min(3),
        "the pool holds {state:?} after {n} concurrent calls"
    );
}

/// An empty restart kills every pooled connection at once. Renewal and
/// release must then answer from a live connection (the lock is gone),
/// not give up after meeting one dead connection after another.
#[test]
fn after_an_empty_restart_no_dead_pooled_connection_hides_the_loss() {
    let mut server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .command_timeout(Duration::from_secs(1))
        .pool_size(8)
        .build()
        .unwrap();
    let ttl = Duration::from_millis(900);
    let renewed = c.lock("renewed").ttl(ttl).acquire().unwrap();
    let released = c.lock("released").ttl(ttl).acquire().unwrap();
    fill_pool(&server, &c, 6);
    server.restart();
    let restarted = Instant::now();
    assert_eq!(
        released.release(),
        Err(Error::Lost),
        "release after an empty restart"
    );
    assert!(
        support::lost_within(&renewed.lost(), ttl),
        "renewal noticed the loss"
    );
    let noticed = restarted.elapsed();
    println!("after an empty restart with 6 dead pooled connections: loss noticed in {noticed:?}");
    assert!(
        noticed <= ttl / 3 + Duration::from_millis(150),
        "{noticed:?}"
    );
}

#[test]
fn lost_fires_at_the_deadline_while_a_renewal_call_hangs() {
    let server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    // Calls may take 3 s before they time out (and a renewal is tried
    // twice): far longer than the 500 ms lease.
    let c = Client::builder()
        .url(&proxy.url())
        .command_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let g = c
        .lock("hang")
        .ttl(Duration::from_millis(500))
        .acquire()
        .unwrap();
    let lost = g.lost();
    proxy.set_mode(Mode::Delay(Duration::from_secs(10)));
    let slowed = Instant::now();
    let fired = lost.recv_timeout(Duration::from_secs(5));
    let took = slowed.elapsed();
    assert!(
        matches!(
            fired,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ),
        "lost() did not fire within 5 s: {fired:?}"
    );
    println!("a hanging renewal: lost() after {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "lost() waited for the renewal call ({took:?}), not for the 500 ms lease"
    );
    assert!(!g.is_held());
    proxy.set_mode(Mode::Pass);
}

#[test]
fn no_local_hand_off_follows_an_empty_restart_unasked() {
    let mut server = RedisServer::start();
    // A budget that cannot run out in this test: only the restart may stop
    // the hand-off.
    let c = Client::builder()
        .url(&server.url())
        .command_timeout(Duration::from_millis(200))
        .handoff_budget(Duration::from_secs(3_600))
        .build()
        .unwrap();
    let other = quick_client(&server.url());
    let ttl = Duration::from_secs(10);
    // The client's release feed runs: one of its threads waits on the
    // server for a lock `other` holds.
    let blocker = other.lock("blocker").ttl(ttl).acquire().unwrap();
    let feed_waiter = {
        let lock = c.lock("blocker").ttl(ttl);
        support::spawn(move || lock.acquire_timeout(Duration::from_secs(20)).map(drop))
    };
    support::wait_until_subscribed(&server, "blocker");
    let held = c.lock("shard").ttl(ttl).acquire().unwrap();
    let local = {
        let lock = c.lock("shard").ttl(ttl);
        support::spawn(move || {
            lock.acquire_timeout(Duration::from_secs(20))
                .map(|g| g.fence())
        })
    };
    // The waiter queues locally while the lease is held (nothing on the
    // server shows it): give it time to get there.
    std::thread::sleep(Duration::from_millis(100));
    server.restart();
    let start = Instant::now();
    while c.stats().feed_reconnects == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the feed never noticed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server lost the lock; another client takes it.
    let taken = other.lock("shard").ttl(ttl).acquire().unwrap();
    // Within the fairness budget a hand-off would need no server, but the
    // feed saw the server go: the lease goes on only if the server says
    // it is still ours, and it is not.
    assert!(matches!(held.release(), Err(Error::Lost)));
    assert!(
        local.recv_timeout(Duration::from_millis(200)).is_err(),
        "the local waiter got a lock another client holds"
    );
    let fence = taken.fence();
    drop(taken);
    let got = local
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(got > fence, "fence {got} after {fence}");
    drop(blocker);
    feed_waiter
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
}
