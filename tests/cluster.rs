//! distlock on a real three-master Redis Cluster started by the tests:
//! mutual exclusion across clients, loss detection, release notifications
//! and fairness across nodes, and locks that follow a slot migration.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::Client;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::Commands;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::RedisServer;

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

/// Three cluster-mode redis-servers joined into one cluster (no replicas).
/// The servers are killed by pid when it is dropped.
struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Self {
        let nodes: Vec<RedisServer> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        RedisServer::start_with(&[
                            "--cluster-enabled",
                            "yes",
                            "--cluster-node-timeout",
                            "5000",
                        ])
                    })
                })
                .collect();
            starts.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli --cluster create");
        let mut status = None;
        wait_until(
            "redis-cli --cluster create",
            Duration::from_secs(30),
            || {
                status = create.try_wait().unwrap();
                status.is_some()
            },
        );
        assert!(
            status.unwrap().success(),
            "redis-cli --cluster create failed"
        );
        let cluster = Cluster { nodes };
        wait_until(
            "cluster_state:ok on every node",
            Duration::from_secs(20),
            || {
                cluster.nodes.iter().all(|n| {
                    redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query::<String>(&mut n.conn())
                        .is_ok_and(|info| info.contains("cluster_state:ok"))
                })
            },
        );
        cluster
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cluster connection of the test's own, to disturb keys.
    fn conn(&self) -> ClusterConnection {
        ClusterClient::new(self.urls())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The node (index) that owns `key`'s slot, from its own slot table.
    fn owner(&self, key: &str) -> usize {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].conn())
            .unwrap();
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.nodes[0].conn())
            .unwrap();
        for r in ranges {
            let (start, end, master): (u16, u16, (String, u16)) = match r {
                redis::Value::Array(items) => {
                    let mut it = items.into_iter();
                    let start = redis::from_redis_value(it.next().unwrap()).unwrap();
                    let end = redis::from_redis_value(it.next().unwrap()).unwrap();
                    let m: Vec<redis::Value> = redis::from_redis_value(it.next().unwrap()).unwrap();
                    let host: String = redis::from_redis_value(m[0].clone()).unwrap();
                    let port: u16 = redis::from_redis_value(m[1].clone()).unwrap();
                    (start, end, (host, port))
                }
                other => panic!("unexpected CLUSTER SLOTS entry {other:?}"),
            };
            if (start..=end).contains(&slot) {
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port == master.1)
                    .expect("the owner is one of ours");
            }
        }
        panic!("slot {slot} is not served");
    }

    /// A lock name starting with `stem` whose key is NOT on the first seed
    /// node (where the release feed listens).
    fn name_off_first_node(&self, stem: &str) -> String {
        (0..200)
            .map(|i| format!("{stem}{i}"))
            .find(|n| self.owner(&format!("distlock:{n}")) != 0)
            .expect("some name hashes to another node")
    }
}

fn client(urls: &[String]) -> Client {
    Client::builder()
        .cluster(urls)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[test]
fn mutual_exclusion_with_two_clients_on_three_masters() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let clients = [client(&urls), client(&urls)];
    // Names on several masters, so that routing matters.
    let names: Vec<String> = (0..3).map(|i| format!("counter:{i}")).collect();
    let owners: std::collections::HashSet<usize> = names
        .iter()
        .map(|n| cluster.owner(&format!("distlock:{n}")))
        .collect();
    assert!(
        owners.len() >= 2,
        "the names should span masters: {owners:?}"
    );

    const ROUNDS: u64 = 15;
    let counters: Vec<AtomicU64> = names.iter().map(|_| AtomicU64::new(0)).collect();
    let inside: Vec<AtomicUsize> = names.iter().map(|_| AtomicUsize::new(0)).collect();
    let overlap = AtomicBool::new(false);
    let fences: Mutex<HashMap<usize, Vec<u64>>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for c in &clients {
            for t in 0..3 {
                let (names, counters, inside, overlap, fences) =
                    (&names, &counters, &inside, &overlap, &fences);
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        let i = (t + round as usize) % names.len();
                        let g = c
                            .lock(names[i].as_str())
                            .acquire_timeout(Duration::from_secs(20))
                            .unwrap();
                        if inside[i].fetch_add(1, Ordering::SeqCst) != 0 {
                            overlap.store(true, Ordering::SeqCst);
                        }
                        // A racy read-modify-write: exact only under the lock.
                        let v = counters[i].load(Ordering::SeqCst);
                        std::thread::yield_now();
                        counters[i].store(v + 1, Ordering::SeqCst);
                        fences.lock().unwrap().entry(i).or_default().push(g.fence());
                        inside[i].fetch_sub(1, Ordering::SeqCst);
                        g.release().unwrap();
                    }
                });
            }
        }
    });
    assert!(!overlap.load(Ordering::SeqCst), "two holders at once");
    let total: u64 = counters.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert_eq!(total, 2 * 3 * ROUNDS);
    for (i, seq) in fences.into_inner().unwrap() {
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "fences of {} not increasing: {seq:?}",
            names[i]
        );
    }
    // Every lock was given back on its own master.
    let mut conn = cluster.conn();
    for n in &names {
        let held: Option<String> = conn.get(format!("distlock:{n}")).unwrap();
        let held = distlock_testkit::token_part(held);
        assert_eq!(held, None);
    }
}

#[test]
fn deleted_lock_is_reported_lost_within_one_renewal_period() {
    let cluster = Cluster::start();
    let c = client(&cluster.urls());
    let ttl = Duration::from_millis(1500);
    let name = cluster.name_off_first_node("lossy:");
    let g = c.lock(name.as_str()).ttl(ttl).acquire().unwrap();
    let fence = g.fence();
    let key = format!("distlock:{name}");
    let info = c.inspect(&name).unwrap();
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert_eq!(
        info.fence,
        Some(fence + 63),
        "the fence key shares the slot"
    );
    let lost = g.lost();
    // Still renewed after more than a TTL.
    assert_eq!(
        lost.recv_timeout(ttl + ttl / 2),
        Err(RecvTimeoutError::Timeout),
        "lost while held"
    );
    assert!(g.is_held());
    let deleted_at = Instant::now();
    let n: i64 = cluster.conn().del(&key).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        lost.recv_timeout(ttl / 3 + Duration::from_millis(500)),
        Err(RecvTimeoutError::Disconnected),
        "lost() did not fire"
    );
    let noticed = deleted_at.elapsed();
    assert!(!g.is_held());
    assert!(
        noticed <= ttl / 3 + Duration::from_millis(500),
        "loss noticed after {noticed:?}"
    );
    println!(
        "cluster: external DEL noticed after {noticed:?} (renewal period {:?})",
        ttl / 3
    );
    assert!(matches!(g.release(), Err(distlock::Error::Lost)));
}

#[test]
fn releases_wake_waiters_and_hand_offs_yield_to_other_clients_across_nodes() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    // The lock lives on another node than the one the feeds listen on, so
    // the release is heard only through the cluster bus.
    let name = cluster.name_off_first_node("wake:");
    let slow_poll = |urls: &[String]| {
        Client::builder()
            .cluster(urls)
            .max_retry_interval(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (a, b) = (client(&urls), slow_poll(&urls));
    let g = a
        .lock(name.as_str())
        .ttl(Duration::from_secs(30))
        .acquire()
        .unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let waiter = {
        let b = b.clone();
        let name = name.clone();
        std::thread::spawn(move || {
            let got = b
                .lock(name.as_str())
                .acquire_timeout(Duration::from_secs(8));
            let _ = tx.send(Instant::now());
            got.map(|g| g.fence())
        })
    };
    // The waiter is subscribed once the feed saw it; then release.
    wait_until("the waiter's subscription", Duration::from_secs(5), || {
        let n: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("distlock:{name}"))
            .query(&mut cluster.nodes[0].conn())
            .unwrap();
        n.first().is_some_and(|(_, n)| *n > 0)
    });
    let released = Instant::now();
    let first = g.fence();
    g.release().unwrap();
    let woke = rx.recv_timeout(Duration::from_secs(8)).unwrap();
    let fence = waiter.join().unwrap().unwrap();
    assert!(fence > first);
    let delay = woke - released;
    println!("cluster: waiter on another node's lock woke {delay:?} after the release");
    assert!(
        delay < Duration::from_secs(3),
        "woken by polling, not by the release: {delay:?}"
    );

    // Fairness: a's threads hand the lease among themselves, but the
    // pass-on check counts b's subscription (on node 0, not the key's node)
    // and gives the lock back, so b gets its turn.
    let name = cluster.name_off_first_node("fair:");
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (a, stop, name) = (a.clone(), stop.clone(), name.clone());
            std::thread::spawn(move || {
                let mut rounds = 0u32;
                while !stop.load(Ordering::SeqCst) && rounds < 100_000 {
                    let g = a
                        .lock(name.as_str())
                        .acquire_timeout(Duration::from_secs(10));
                    drop(g);
                    rounds += 1;
                }
            })
        })
        .collect();
    let got = b
        .lock(name.as_str())
        .acquire_timeout(Duration::from_secs(5))
        .map(|g| g.release());
    stop.store(true, Ordering::SeqCst);
    for t in busy {
        t.join().unwrap();
    }
    assert!(
        matches!(got, Ok(Ok(()))),
        "the other client starved: {got:?}"
    );
}

#[test]
fn a_held_lock_follows_its_slot_to_another_master() {
    let cluster = Cluster::start();
    let c = client(&cluster.urls());
    let name = "migrating";
    let key = format!("distlock:{name}");
    let g = c.lock(name).ttl(Duration::from_secs(30)).acquire().unwrap();
    // Its fence (given now, on the slot's node) makes the counter to move.
    let fence = g.fence();
    assert!(fence > 0);
    let from = cluster.owner(&key);
    let to = (from + 1) % 3;
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.nodes[i].conn())
            .unwrap()
    };
    let (from_id, to_id) = (id(from), id(to));
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query(&mut cluster.nodes[from].conn())
        .unwrap();
    // The standard slot migration: importing, migrating, move the keys
    // (the lock and its fence), then tell every node.
    let mut src = cluster.nodes[from].conn();
    let mut dst = cluster.nodes[to].conn();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&from_id)
        .query(&mut dst)
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&to_id)
        .query(&mut src)
        .unwrap();
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(100)
        .query(&mut src)
        .unwrap();
    assert!(keys.contains(&key), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(":fence")), "{keys:?}");
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(cluster.nodes[to].port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&keys)
        .query(&mut src)
        .unwrap();
    for n in &cluster.nodes {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to_id)
            .query(&mut n.conn())
            .unwrap();
    }
    assert_eq!(cluster.owner(&key), to);
    // The client's pooled connections still route the slot to the old
    // master: every operation must follow MOVED.
    g.extend().unwrap();
    let info = c.inspect(name).unwrap();
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert!(c.lock(name).try_acquire().unwrap().is_none());
    let first = g.fence();
    g.release().unwrap();
    let again = c.lock(name).acquire().unwrap();
    assert!(again.fence() > first, "the fence moved with the lock");
    let on_new: Option<String> = cluster.nodes[to].conn().get(&key).unwrap();
    let on_new = distlock_testkit::token_part(on_new);
    assert_eq!(on_new.as_deref(), Some(again.token()));
}

#[test]
fn a_server_without_cluster_mode_is_refused_with_a_clear_error() {
    let plain = RedisServer::start();
    let err = Client::builder()
        .cluster([plain.url()])
        .build()
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("cluster"), "{err}");
}

#[test]
fn names_whose_fence_counter_would_cross_slots_are_refused_clearly() {
    let cluster = Cluster::start();
    let c = client(&cluster.urls());
    let mut conn = cluster.conn();
    // No `{tag}`, yet a `}`: the counter's `{<lock key>}` tag would end early.
    for name in ["a}b", "}", "{}", "}{", "a{}b}"] {
        match c.lock(name).try_acquire() {
            Err(distlock::Error::InvalidArgument(msg)) => {
                assert!(msg.contains("{tag}") && msg.contains("'}'"), "{msg}")
            }
            other => panic!("{name:?}: expected InvalidArgument, got {other:?}"),
        }
        let key = format!("distlock:{name}");
        let exists: bool = conn.exists(&key).unwrap();
        assert!(!exists, "{name:?}");
    }
    // Braces that leave the counter in the lock key's slot work as usual.
    for name in ["{", "{tag}", "x{tag}y", "a{b}c}d"] {
        let g = c.lock(name).try_acquire().unwrap().expect(name);
        let stored: Option<String> = conn.get(format!("distlock:{name}")).unwrap();
        let stored = distlock_testkit::token_part(stored);
        assert_eq!(stored.as_deref(), Some(g.token()), "{name:?}");
        g.release().unwrap();
    }
}

#[test]
fn read_write_locks_and_semaphores_work_across_masters() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let (a, b) = (client(&urls), client(&urls));
    // The holder set, its fence counter and its waiting writers share a
    // slot (the scripts touch all three), on a node the feed does not use.
    let name = cluster.name_off_first_node("rw:");
    let r1 = a.rw_lock(name.as_str()).read().acquire().unwrap();
    let r2 = b.rw_lock(name.as_str()).read().acquire().unwrap();
    assert!(b
        .rw_lock(name.as_str())
        .write()
        .try_acquire()
        .unwrap()
        .is_none());
    let writing = b.rw_lock(name.as_str()).write().acquire_chan();
    r1.release().unwrap();
    r2.release().unwrap();
    let w = writing
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer woke")
        .unwrap();
    assert!(w.fence() > 0);
    w.release().unwrap();

    let sem_name = cluster.name_off_first_node("sem:");
    let sem = a.semaphore(sem_name.as_str(), 2);
    let held = [sem.acquire().unwrap(), sem.acquire().unwrap()];
    assert!(b
        .semaphore(sem_name.as_str(), 2)
        .try_acquire()
        .unwrap()
        .is_none());
    let waiting = b.semaphore(sem_name.as_str(), 2).acquire_chan();
    drop(held);
    let p = waiting
        .recv_timeout(Duration::from_secs(10))
        .expect("a returned permit woke the waiter")
        .unwrap();
    p.release().unwrap();
}
