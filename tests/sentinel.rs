//! distlock behind Redis Sentinel, on real servers started by the tests: one
//! master, one replica and three sentinels, with the master killed while a
//! lock is held. Without replica acknowledgement the failover can lose the
//! lock (and the holder is told through `lost()`); with it, the lock
//! survives. Either way the clients move to the new master by themselves.
//!
//! The replica replicates through a loopback relay that the test can stall,
//! standing in for replication lag: what the master sends after the stall
//! never reaches the replica, as when a master dies with writes in flight.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error};
use redis::Commands;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{RedisServer, SentinelServer};

const MASTER: &str = "m";

/// Replicas sync at once (Redis waits 5 s by default for more replicas).
const NO_SYNC_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

/// A server that replicates from `port`.
fn replica_of(port: u16) -> RedisServer {
    let port = port.to_string();
    RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        NO_SYNC_DELAY[0],
        NO_SYNC_DELAY[1],
    ])
}

/// Polls `done` every 20 ms until it holds; panics after `limit`. Returns
/// how long it took.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A loopback relay for the replication link (replica -> relay -> master)
/// that can stall the master-to-replica direction.
struct Relay {
    port: u16,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(Vec::new()));
        let (st, sp, lv) = (stalled.clone(), stop.clone(), live.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = down else { continue };
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                lv.lock()
                    .unwrap()
                    .extend([down.try_clone().unwrap(), up.try_clone().unwrap()]);
                pump(down.try_clone().unwrap(), up.try_clone().unwrap(), None);
                pump(up, down, Some(st.clone()));
            }
        });
        Relay {
            port,
            stalled,
            stop,
            live,
        }
    }

    /// From now on nothing the master sends reaches the replica.
    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either end closes; while `stalled` is set
/// the bytes are dropped. Then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: Option<Arc<AtomicBool>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if stalled.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A sentinel of the test's master, with the queries the tests make.
struct SentinelProc(SentinelServer);

impl SentinelProc {
    fn start(master_port: u16) -> Self {
        SentinelProc(SentinelServer::start(&format!(
            "sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER} 400\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 1\n"
        )))
    }

    fn addr(&self) -> String {
        self.0.addr()
    }

    fn conn(&self) -> redis::Connection {
        self.0.conn()
    }

    /// The master's port as this sentinel sees it.
    fn master_port(&self) -> Option<u16> {
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query(&mut self.conn())
            .ok()?;
        addr.map(|(_, p)| p)
    }

    /// How many entries `SENTINEL <what> m` lists.
    fn count(&self, what: &str) -> usize {
        redis::cmd("SENTINEL")
            .arg(what)
            .arg(MASTER)
            .query::<Vec<redis::Value>>(&mut self.conn())
            .map_or(0, |v| v.len())
    }
}

/// One master, one replica (through a stallable relay), three sentinels.
struct Setup {
    master: RedisServer,
    replica: RedisServer,
    relay: Relay,
    sentinels: Vec<SentinelProc>,
}

fn link_up(server: &RedisServer) -> bool {
    redis::cmd("INFO")
        .arg("replication")
        .query::<String>(&mut server.conn())
        .is_ok_and(|i| i.contains("master_link_status:up"))
}

impl Setup {
    fn start() -> Self {
        let master = RedisServer::start_with(&NO_SYNC_DELAY);
        let relay = Relay::start(master.port);
        let replica = replica_of(relay.port);
        wait_until("the replica's link", Duration::from_secs(20), || {
            link_up(&replica)
        });
        let sentinels: Vec<SentinelProc> =
            (0..3).map(|_| SentinelProc::start(master.port)).collect();
        // A failover needs the sentinels to know each other (for the vote)
        // and the replica (to promote it).
        wait_until(
            "sentinels to discover each other",
            Duration::from_secs(30),
            || {
                sentinels
                    .iter()
                    .all(|s| s.count("SENTINELS") == 2 && s.count("REPLICAS") == 1)
            },
        );
        Setup {
            master,
            replica,
            relay,
            sentinels,
        }
    }

    fn addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(SentinelProc::addr).collect()
    }

    fn client(&self, replicas: u32) -> Client {
        Client::builder()
            .sentinel(self.addrs(), MASTER)
            .replicas(replicas, Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    }

    /// Kills the master and waits until every sentinel names the replica
    /// and the replica says it is a master; returns how long that took.
    fn fail_over(&mut self) -> Duration {
        let killed = Instant::now();
        self.master.stop();
        let replica = self.replica.port;
        let sentinels = &self.sentinels;
        wait_until("the failover", Duration::from_secs(40), || {
            sentinels.iter().all(|s| s.master_port() == Some(replica))
        });
        wait_until("the promoted replica", Duration::from_secs(10), || {
            redis::cmd("ROLE")
                .query::<Vec<redis::Value>>(&mut self.replica.conn())
                .is_ok_and(|r| r.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
        });
        killed.elapsed()
    }
}

/// Tries `lock` on `client` until the client reaches the new master (a few
/// attempts fail on connections to the dead one); bounded.
fn try_after_failover(client: &Client, name: &str) -> Option<distlock::Guard> {
    let start = Instant::now();
    loop {
        match client.lock(name).try_acquire() {
            Ok(got) => return got,
            Err(e) if e.is_transient() && start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no answer from the new master: {e}"),
        }
    }
}

#[test]
fn without_acknowledgement_a_failover_loses_the_lock_and_the_holder_is_told() {
    let mut setup = Setup::start();
    let (a, b) = (setup.client(0), setup.client(0));
    // Replication lags: the lock's write will not reach the replica.
    setup.relay.stall();
    let ttl = Duration::from_secs(6);
    let g = a.lock("victim").ttl(ttl).acquire().unwrap();
    // When lost() fires, seen from a thread of its own.
    let lost = g.lost();
    let (fired_tx, fired) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let outcome = lost.recv_timeout(Duration::from_secs(60));
        let _ = fired_tx.send((outcome, Instant::now()));
    });
    let on_master: Option<String> = setup.master.conn().get("distlock:victim").unwrap();
    let on_master = distlock_testkit::token_part(on_master);
    assert_eq!(on_master.as_deref(), Some(g.token()));
    let on_replica: Option<String> = setup.replica.conn().get("distlock:victim").unwrap();
    let on_replica = distlock_testkit::token_part(on_replica);
    assert_eq!(
        on_replica, None,
        "the stall should keep the write from the replica"
    );

    let failover = setup.fail_over();
    let promoted = Instant::now();
    // The promoted replica never had the lock: another client gets it
    // while the first still has its guard.
    let stolen = try_after_failover(&b, "victim").expect("the lock was lost in the failover");
    assert!(
        stolen.fence() > g.fence(),
        "fences still order the two holders"
    );
    // The holder hears of it at its next renewal attempt.
    let (outcome, at) = fired.recv_timeout(ttl).expect("lost() did not fire");
    assert_eq!(outcome, Err(RecvTimeoutError::Disconnected));
    let told = at.saturating_duration_since(promoted);
    assert!(
        told <= ttl / 3 + Duration::from_millis(500),
        "told {told:?} after the promotion"
    );
    assert!(!g.is_held());
    assert_eq!(g.release(), Err(Error::Lost));
    // The first client works on against the new master by itself.
    let other = a
        .lock("after-failover")
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    other.release().unwrap();
    stolen.release().unwrap();
    println!(
        "sentinel without acknowledgement: failover took {failover:?} (kill to promotion); \
         the holder's lost() fired {told:?} after the promotion (renewal every {:?})",
        ttl / 3
    );
}

#[test]
fn with_acknowledgement_the_lock_survives_the_failover() {
    let mut setup = Setup::start();
    let (a, b) = (setup.client(1), setup.client(0));
    let g = a
        .lock("survivor")
        .ttl(Duration::from_secs(30))
        .acquire()
        .unwrap();
    let lost = g.lost();
    // Acknowledged: the replica has it.
    let on_replica: Option<String> = setup.replica.conn().get("distlock:survivor").unwrap();
    let on_replica = distlock_testkit::token_part(on_replica);
    assert_eq!(on_replica.as_deref(), Some(g.token()));

    // With replication stalled, an acquisition cannot be confirmed: it
    // fails with a clear error and leaves nothing behind.
    setup.relay.stall();
    let started = Instant::now();
    let err = a.lock("unconfirmed").try_acquire().unwrap_err();
    let refused_in = started.elapsed();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("only 0 of 1 replica(s) acknowledged"),
        "{err}"
    );
    let left: Option<String> = setup.master.conn().get("distlock:unconfirmed").unwrap();
    let left = distlock_testkit::token_part(left);
    assert_eq!(left, None, "an unconfirmed lock must be given back");

    let failover = setup.fail_over();
    // The promoted replica has the lock: nobody else gets it.
    assert!(
        try_after_failover(&b, "survivor").is_none(),
        "the lock was lost"
    );
    let info = b.inspect("survivor").unwrap();
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert_eq!(lost.try_recv(), Err(crossbeam_channel::TryRecvError::Empty));
    assert!(g.is_held());

    // With a replica again (the old master's replacement), renewals are
    // acknowledged, and the holder gives the lock back on the new master.
    let fresh = replica_of(setup.replica.port);
    wait_until("the new replica's link", Duration::from_secs(20), || {
        link_up(&fresh)
    });
    let start = Instant::now();
    while let Err(e) = g.extend() {
        assert!(e.is_transient(), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "renewal never confirmed: {e}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let on_fresh: Option<String> = fresh.conn().get("distlock:survivor").unwrap();
    let on_fresh = distlock_testkit::token_part(on_fresh);
    assert_eq!(on_fresh.as_deref(), Some(g.token()));
    g.release().unwrap();
    assert_eq!(b.inspect("survivor").unwrap().token, None);
    println!(
        "sentinel with replicas(1, 300 ms): unconfirmed acquire refused after {refused_in:?}; \
         failover took {failover:?}; the acknowledged lock survived it"
    );
}

#[test]
fn a_wrong_master_name_or_no_sentinel_is_a_clear_error() {
    // Nothing listens on port 1: a connection error, worth retrying.
    let err = Client::builder()
        .sentinel(["127.0.0.1:1"], MASTER)
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("sentinel"), "{err}");
    // A sentinel that does not know the name: a configuration mistake.
    let master = RedisServer::start();
    let s = SentinelProc::start(master.port);
    let err = Client::builder()
        .sentinel([s.addr()], "nobody")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("nobody"), "{err}");
    // And the right name reaches the master.
    let c = Client::builder()
        .sentinel([s.addr()], MASTER)
        .build()
        .unwrap();
    let g = c.lock("k").acquire().unwrap();
    let held: Option<String> = master.conn().get("distlock:k").unwrap();
    let held = distlock_testkit::token_part(held);
    assert_eq!(held.as_deref(), Some(g.token()));
    assert!(!format!("{c:?}").contains("redis://:"), "{c:?}");
}

#[test]
fn a_replica_answering_readonly_is_a_connection_error() {
    // What a client sees on a connection to a master that was demoted:
    // READONLY, which must count as "try another connection", not as a
    // server fault.
    let master = RedisServer::start_with(&NO_SYNC_DELAY);
    let replica = replica_of(master.port);
    wait_until("the replica's link", Duration::from_secs(20), || {
        link_up(&replica)
    });
    let c = Client::builder()
        .url(&replica.url())
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = c.lock("k").try_acquire().unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(err.to_string().contains("read only replica"), "{err}");
}
