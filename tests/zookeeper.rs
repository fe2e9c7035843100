//! What only the ZooKeeper backend does, against real ZooKeeper on
//! loopback: its tree and fences, a lost create reply retried on the same
//! session, the losses (node deleted, session expired while the client was
//! stopped, server down past the session) each signalled through `lost()`
//! with its latency printed, a restart within the session that keeps the
//! lock, and a three-server ensemble that loses its leader while locks are
//! held and waited for. (Exclusion across processes and the shared suites
//! run on ZooKeeper through `backends!`.)

use distlock_testkit as support;

#[path = "shared/contenders.rs"]
mod contenders;

use contenders::Contenders;
use distlock::{Client, Error};
use std::time::{Duration, Instant};
use support::{Mode, TcpProxy, ZkEnsemble, ZkServer};

fn client(server: &ZkServer) -> Client {
    Client::open(&server.url()).expect("client")
}

#[test]
fn a_lock_is_an_ephemeral_node_of_the_chroot_fenced_by_its_zxid() {
    let server = ZkServer::start();
    let c = client(&server);
    let g = c.lock("orders/42").acquire().unwrap();
    let mut raw = server.raw();
    let path = format!("{}/distlock/locks/orders%2F42", server.chroot);
    let data = raw.data(&path).expect("the lock node");
    let data = String::from_utf8(data).unwrap();
    assert_eq!(data.split('\n').next(), Some(g.token()));
    assert_eq!(g.fence() % 64, 0, "a zxid times the fence block");
    let info = c.inspect("orders/42").unwrap();
    assert_eq!(info.key, "distlock:orders/42");
    assert_eq!(info.fence, Some(g.fence()));
    // Another client's acquisition comes later in the ensemble's order.
    let other = client(&server);
    drop(g);
    let h = other.lock("orders/42").acquire().unwrap();
    assert!(h.fence() > info.fence.unwrap());
    h.release().unwrap();
    assert!(raw.data(&path).is_none(), "released: the node is gone");
}

#[test]
fn a_ttl_longer_than_the_servers_longest_session_is_refused() {
    let server = ZkServer::start();
    let c = client(&server);
    // The test servers grant sessions of at most 60 s.
    let err = c
        .lock("long")
        .ttl(Duration::from_secs(120))
        .try_acquire()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::InvalidArgument(_)) && msg.contains("maxSessionTimeout"),
        "{msg}"
    );
    assert!(msg.contains("60000 ms"), "{msg}");
    // Sessions shorter than the TTL are never used; one within it is.
    assert!(c
        .lock("long")
        .ttl(Duration::from_secs(60))
        .try_acquire()
        .unwrap()
        .is_some());
}

#[test]
fn lost_create_reply_is_retried_on_the_same_session_and_wins_with_the_same_fence() {
    let server = ZkServer::start();
    let proxy = TcpProxy::start(server.port);
    let url = format!("zk://127.0.0.1:{}{}", proxy.port, server.chroot);
    let c = Client::builder()
        .url(&url)
        .command_timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    proxy.set_mode(Mode::DropReplyTo {
        needle: b"lost-reply".to_vec(),
        hook: Box::new(|| {}),
    });
    let g = c.lock("lost-reply").try_acquire().unwrap().expect("ours");
    assert!(proxy.is_passing(), "the reply was really dropped");
    let info = c.inspect("lost-reply").unwrap();
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert_eq!(info.fence, Some(g.fence()), "the same node, the same fence");
    g.release().unwrap();
}

#[test]
fn a_node_deleted_by_someone_else_is_reported_lost_within_a_renewal() {
    let server = ZkServer::start();
    let c = client(&server);
    let ttl = Duration::from_millis(600);
    let g = c.lock("deleted").ttl(ttl).acquire().unwrap();
    assert!(!support::lost_within(&g.lost(), ttl / 6));
    server.delete("distlock:deleted");
    let took = support::lost_after(&g.lost(), ttl * 2).expect("loss noticed");
    println!(
        "zk: loss noticed {took:?} after the node was deleted (renewal every {:?})",
        ttl / 3
    );
    assert!(took < ttl, "{took:?}");
    assert_eq!(g.release().unwrap_err(), Error::Lost);
    // And the name is free for the next owner.
    assert!(c.lock("deleted").try_acquire().unwrap().is_some());
}

const STOPPED_ENV: &str = "DISTLOCK_TEST_ZK_STOPPED";

/// A holder process: takes two locks with a 1 s TTL (one session), writes
/// `ready` to the file it was given, and once stopped and resumed past the
/// session, checks that both say lost; prints how long `lost()` took.
#[test]
fn stopped_holder_entry() {
    let Ok(v) = std::env::var(STOPPED_ENV) else {
        return;
    };
    let (url, ready) = v.split_once(' ').unwrap();
    let c = Client::open(url).unwrap();
    let lock = |n: &str| c.lock(n).ttl(Duration::from_secs(1)).acquire().unwrap();
    let (a, b) = (lock("stopped-a"), lock("stopped-b"));
    std::fs::write(ready, "ready").unwrap();
    for g in [&a, &b] {
        let lost = g.lost().recv_timeout(Duration::from_secs(30));
        assert!(lost.is_err_and(|e| e.is_disconnected()));
        assert!(!g.is_held());
    }
}

#[test]
fn a_client_stopped_past_its_session_loses_every_lock_of_the_session() {
    let server = ZkServer::start();
    let ready = std::env::temp_dir().join(format!("distlock-zk-stopped-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let arg = format!("{} {}", server.url(), ready.display());
    let mut child = support::spawn_entry("stopped_holder_entry", STOPPED_ENV, &arg);
    let start = Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "child never locked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(&ready);
    support::signal(child.id(), libc::SIGSTOP);
    let stopped = Instant::now();
    // The ensemble expires the session about a second after it last heard
    // from the client, and both nodes go with it.
    let mut raw = server.raw();
    let folder = format!("{}/distlock/locks", server.chroot);
    while !raw.children(&folder).is_empty() {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "session never expired"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let expired = stopped.elapsed();
    println!("zk: a stopped client's session expired {expired:?} after SIGSTOP (session 1 s)");
    assert!(expired >= Duration::from_millis(600), "{expired:?}");
    let next = client(&server);
    let g = next.lock("stopped-a").try_acquire().unwrap().expect("free");
    let resumed = Instant::now();
    support::signal(child.id(), libc::SIGCONT);
    let status = child.wait().unwrap();
    println!(
        "zk: the resumed client learnt of both losses and exited within {:?}",
        resumed.elapsed()
    );
    assert!(status.success(), "{status:?}");
    assert!(g.is_held());
}

#[test]
fn a_restart_within_the_session_keeps_the_lock_and_a_longer_outage_loses_it() {
    let mut server = ZkServer::start_own();
    let c = Client::builder()
        .url(&server.url())
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // A session long enough for the server (a JVM) to come back within
    // it, even on a loaded machine.
    let kept = c
        .lock("kept")
        .ttl(Duration::from_secs(20))
        .acquire()
        .unwrap();
    let down = Instant::now();
    server.restart();
    println!("zk: server down and back in {:?}", down.elapsed());
    // The session was resumed: renewals go on and the node is still ours.
    let start = Instant::now();
    while c.inspect("kept").is_err() {
        assert!(start.elapsed() < Duration::from_secs(5), "not reconnected");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        c.inspect("kept").unwrap().token.as_deref(),
        Some(kept.token())
    );
    kept.extend().unwrap();
    assert!(kept.is_held());
    kept.release().unwrap();

    // Now a short lease and an outage longer than it.
    let ttl = Duration::from_secs(1);
    let g = c.lock("outage").ttl(ttl).acquire().unwrap();
    server.process().stop();
    let stopped = Instant::now();
    let took = support::lost_after(&g.lost(), ttl * 5).expect("loss signalled");
    println!("zk: lock lost {took:?} after the server went down (TTL {ttl:?})");
    assert!(took <= ttl + Duration::from_millis(100), "{took:?}");
    std::thread::sleep(ttl.saturating_sub(stopped.elapsed()));
    server.process().start_again();
    assert_eq!(g.release().unwrap_err(), Error::Lost);
    // The node goes (its session expires on the restarted server, or its
    // client deletes it): another client gets the lock.
    let other = client(&server);
    let got = other
        .lock("outage")
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(got.is_held());
}

#[test]
fn a_three_server_ensemble_loses_its_leader_without_a_double_holder() {
    let mut ensemble = ZkEnsemble::start();
    // Every client starts on the leader, so that killing it moves every
    // session to another server.
    let start = Instant::now();
    let leader = loop {
        if let Some(l) = ensemble.leader() {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no leader");
        std::thread::sleep(Duration::from_millis(20));
    };
    let url = ensemble.url_from(leader);
    let build = || {
        Client::builder()
            .url(&url)
            .command_timeout(Duration::from_millis(2000))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    // Sessions longer than an election, however slow the machine.
    let ttl = Duration::from_secs(10);
    let holder = build();
    // A lock held across the election, renewed all along.
    let kept = holder.lock("kept").ttl(ttl).acquire().unwrap();
    // A lock waited for across the election.
    let waited_for = holder.lock("waited").ttl(ttl).acquire().unwrap();
    let waiter_client = build();
    let waiter = support::spawn(move || {
        waiter_client
            .lock("waited")
            .ttl(ttl)
            .acquire_timeout(Duration::from_secs(30))
            .map(|g| (g.fence(), g.release()))
    });
    // Contenders on one lock, each recording its holds for the checker.
    let contenders = Contenders::start(4, build, "contended", ttl);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(ensemble.leader(), Some(leader), "the same leader");
    let killed = Instant::now();
    ensemble.servers[leader].stop();
    println!(
        "zk ensemble: killed the leader (server {}), which every session was on",
        leader + 1
    );
    while ensemble.leader().is_none() {
        assert!(killed.elapsed() < Duration::from_secs(60), "no new leader");
        std::thread::sleep(Duration::from_millis(20));
    }
    let election = killed.elapsed();
    println!("zk ensemble: new leader after {election:?}");
    std::thread::sleep(Duration::from_millis(1500));
    if election < ttl / 2 {
        // The held lock survived: its session moved to a server left.
        assert!(kept.is_held(), "the held lock was lost in the election");
        kept.extend().unwrap();
        assert_eq!(
            holder.inspect("kept").unwrap().token.as_deref(),
            Some(kept.token())
        );
    } else {
        // An election that long (a starved machine) may outlast the
        // session: then the loss must have been signalled.
        println!("zk ensemble: the election outlasted half the session");
        if !kept.is_held() {
            assert!(support::lost_within(&kept.lost(), Duration::ZERO));
        }
    }
    // The waiter proceeds once the lock is given up.
    let first = waited_for.fence();
    let given_back = waited_for.release();
    if election < ttl / 2 {
        given_back.unwrap();
    }
    let released = Instant::now();
    let (fence, done) = waiter
        .recv_timeout(Duration::from_secs(20))
        .expect("the waiter proceeded")
        .expect("the waiter got the lock");
    println!(
        "zk ensemble: the waiter got the lock {:?} after its release",
        released.elapsed()
    );
    assert!(fence > first);
    done.unwrap();
    if kept.is_held() {
        kept.release().unwrap();
    }
    contenders.stop_and_check("zk ensemble");
}

#[test]
fn held_lists_the_locks_and_other_kinds_are_refused_by_name() {
    let server = ZkServer::start();
    let c = client(&server);
    let _a = c.lock("jobs:1").acquire().unwrap();
    let _b = c.lock("jobs:2").acquire().unwrap();
    let _o = c.lock("orders:1").acquire().unwrap();
    let held = c.held("jobs:*", 10).unwrap();
    let names: Vec<&str> = held.locks.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["jobs:1", "jobs:2"]);
    assert!(!held.truncated);
    let one = c.held("*", 1).unwrap();
    assert!(one.truncated && one.locks.len() == 1);
    let place = format!("zk://127.0.0.1:{}{}", server.port, server.chroot);
    for e in [
        c.rw_lock("x").read().try_acquire().unwrap_err(),
        c.semaphore("x", 2).try_acquire().unwrap_err(),
        c.lock("x").fair().try_acquire().unwrap_err(),
    ] {
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("not supported with {place}")),
            "{msg}"
        );
    }
}

#[test]
fn an_unreachable_ensemble_and_bad_urls_are_refused_clearly() {
    let (a, b) = (support::dead_port(), support::dead_port());
    let start = Instant::now();
    let err = Client::builder()
        .url(&format!("zk://127.0.0.1:{a},127.0.0.1:{b}/app"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connection(m) if m.contains("no server answered")),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    for (url, why) in [
        ("zk://h:1,:2", "server #2 has no host"),
        ("zk://u:secret@h", "no ZooKeeper credentials"),
        ("zk://h/a//b", "chroot"),
    ] {
        let msg = Client::open(url).unwrap_err().to_string();
        assert!(msg.contains(why) && !msg.contains("secret"), "{url}: {msg}");
    }
    // Redis-only settings are refused by name.
    let server = ZkServer::start();
    let err = Client::builder()
        .url(&server.url())
        .replicas(1, Duration::from_millis(100))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("ZooKeeper commits"), "{err}");
}

#[test]
fn a_release_after_someone_else_deleted_and_retook_the_node_spares_the_new_owner() {
    let server = ZkServer::start();
    let (a, b) = (client(&server), client(&server));
    for round in 0..20 {
        let g = a.lock("retaken").acquire().unwrap();
        // The node goes behind the holder's back, and another client takes
        // the name: the same path, at the same version (0) as the first.
        server.delete("distlock:retaken");
        let h = b.lock("retaken").try_acquire().unwrap().expect("free");
        assert_eq!(g.release().unwrap_err(), Error::Lost, "round {round}");
        let stored = a.inspect("retaken").unwrap().token;
        assert_eq!(stored.as_deref(), Some(h.token()), "round {round}");
        h.release().unwrap();
    }
}
