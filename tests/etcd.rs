//! What only the etcd backend does, against real etcd on loopback: its key
//! layout and leases, fences across a restart, the losses (key deleted,
//! lease revoked, etcd paused, holder paused) each signalled through
//! `lost()` with its latency printed (exclusion across processes and a
//! stopped holder process are in `tests/processes.rs`), and a
//! three-member cluster that loses its leader while locks are held and
//! waited for.

use distlock_testkit as support;

#[path = "shared/contenders.rs"]
mod contenders;

use contenders::Contenders;
use distlock::{Client, Error};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{EtcdCluster, EtcdServer};

fn client(server: &EtcdServer) -> Client {
    Client::open(&server.url()).expect("client")
}

/// The lock key's value, lease and mod revision, read behind the library.
fn raw(server: &EtcdServer, key: &str) -> Option<(String, i64, i64)> {
    let r = server.call("/v3/kv/range", &json!({"key": support::etcd::b64(key)}));
    let kv = r["kvs"].get(0)?;
    let value = base64_decode(kv["value"].as_str().unwrap_or(""));
    let n = |f: &str| kv[f].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((value, n("lease"), n("mod_revision")))
}

fn base64_decode(s: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_lock_key_holds_token_and_holder_on_a_lease_and_its_revision_is_the_fence() {
    let server = EtcdServer::start();
    let c = client(&server);
    let g = c
        .lock("orders:42")
        .ttl(Duration::from_millis(1500))
        .acquire()
        .unwrap();
    let (value, lease, rev) = raw(&server, "distlock:orders:42").expect("the lock key");
    let (token, holder) = value.split_once('\n').expect("token, newline, holder");
    assert_eq!(token, g.token());
    assert!(holder.contains(&std::process::id().to_string()), "{holder}");
    assert_eq!(g.fence(), u64::try_from(rev).unwrap() * 64);
    // 1.5 s is granted as 2 whole seconds.
    let ttl = server.call("/v3/lease/timetolive", &json!({"ID": lease.to_string()}));
    assert_eq!(ttl["grantedTTL"], "2", "{ttl}");
    let info = c.inspect("orders:42").unwrap();
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert_eq!(info.fence, Some(g.fence()));
    assert_eq!(info.holder.map(|h| h.pid), Some(std::process::id()));
    assert!(info.remaining.is_some_and(|r| r <= Duration::from_secs(2)));
    let held = c.held("orders:*", 10).unwrap();
    assert_eq!(held.locks.len(), 1);
    assert_eq!(held.locks[0].name, "orders:42");
    assert!(c.held("jobs:*", 10).unwrap().locks.is_empty());
    g.release().unwrap();
    assert!(raw(&server, "distlock:orders:42").is_none());
    let dbg = format!("{c:?}");
    assert!(dbg.contains(&server.url()), "{dbg}");
    // The next acquisition reuses the keyless lease (restarted by a
    // keepalive); once the client is gone, the lease is revoked too.
    let again = c
        .lock("orders:42")
        .ttl(Duration::from_millis(1500))
        .acquire()
        .unwrap();
    assert_eq!(server.lease_of("distlock:orders:42"), lease);
    again.release().unwrap();
    drop(c);
    let start = Instant::now();
    loop {
        let ttl = server.call("/v3/lease/timetolive", &json!({"ID": lease.to_string()}));
        if ttl["TTL"] == "-1" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "lease kept: {ttl}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_ttl_under_the_servers_minimum_lease_is_refused_naming_the_minimum() {
    // etcd's default timing: a 1 s election timeout, so leases of 2 s at least.
    let server = EtcdServer::start_with_timing(100, 1000);
    let c = client(&server);
    let err = c
        .lock("short")
        .ttl(Duration::from_secs(1))
        .acquire()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::InvalidArgument(_)) && msg.contains("at least 2 s"),
        "{msg}"
    );
    assert!(c.inspect("short").unwrap().token.is_none());
    // Two seconds is fine.
    let g = c
        .lock("short")
        .ttl(Duration::from_secs(2))
        .acquire()
        .unwrap();
    g.release().unwrap();
}

#[test]
fn bad_urls_and_settings_are_refused_and_dead_members_are_skipped() {
    for (url, why) in [
        ("etcd://u:s3cret@127.0.0.1:1/x", "no path or query"),
        ("etcd://127.0.0.1:0", "port of member #1"),
    ] {
        let e = Client::open(url).unwrap_err().to_string();
        assert!(e.contains(why), "{url}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
    let server = EtcdServer::start();
    let replicas = Client::builder()
        .url(&server.url())
        .replicas(1, Duration::from_millis(100))
        .build();
    assert!(
        matches!(&replicas, Err(Error::InvalidArgument(m)) if m.contains("WAIT")),
        "{replicas:?}"
    );
    // A dead member first in the list: requests move on to the live one.
    let url = format!(
        "etcd://127.0.0.1:{},127.0.0.1:{}",
        support::dead_port(),
        server.port
    );
    let c = Client::open(&url).unwrap();
    let g = c.lock("skips").acquire().unwrap();
    g.release().unwrap();
    // Nobody there at all: a connection error within the timeouts.
    let dead = format!("etcd://127.0.0.1:{}", support::dead_port());
    let start = Instant::now();
    let err = Client::builder()
        .url(&dead)
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Connection(_)), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn fences_strictly_increase_across_an_etcd_restart() {
    let mut server = EtcdServer::start();
    let mut last = 0;
    {
        let c = client(&server);
        for _ in 0..5 {
            let g = c.lock("restarted").acquire().unwrap();
            assert!(g.fence() > last);
            last = g.fence();
        }
    }
    server.restart();
    let c = client(&server);
    for _ in 0..5 {
        let g = c.lock("restarted").acquire().unwrap();
        assert!(g.fence() > last, "fence {} after {last}", g.fence());
        last = g.fence();
    }
}

#[test]
fn a_held_lock_survives_an_etcd_restart_within_its_lease() {
    let mut server = EtcdServer::start();
    let c = Client::builder()
        .url(&server.url())
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let g = c
        .lock("kept")
        .ttl(Duration::from_secs(5))
        .acquire()
        .unwrap();
    server.restart();
    // Renewals (every third of the TTL) reach the restarted server.
    std::thread::sleep(Duration::from_secs(2));
    assert!(g.is_held());
    assert_eq!(c.inspect("kept").unwrap().token.as_deref(), Some(g.token()));
    g.release().unwrap();
}

#[test]
fn a_deleted_key_is_signalled_as_lost() {
    let server = EtcdServer::start();
    let c = client(&server);
    let g = c
        .lock("deleted")
        .ttl(Duration::from_secs(1))
        .acquire()
        .unwrap();
    let deleted = Instant::now();
    server.delete("distlock:deleted");
    let after = support::lost_after(&g.lost(), Duration::from_secs(2)).expect("loss noticed");
    println!("etcd: deleted key noticed after {after:?} (renewal every ~333 ms)");
    assert!(deleted.elapsed() < Duration::from_millis(1500));
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

#[test]
fn a_revoked_lease_is_signalled_as_lost() {
    let server = EtcdServer::start();
    let c = client(&server);
    let g = c
        .lock("revoked")
        .ttl(Duration::from_secs(1))
        .acquire()
        .unwrap();
    let lease = server.lease_of("distlock:revoked");
    assert_ne!(lease, 0);
    let revoked = Instant::now();
    server.revoke(lease);
    let after = support::lost_after(&g.lost(), Duration::from_secs(2)).expect("loss noticed");
    println!("etcd: revoked lease noticed after {after:?}");
    assert!(revoked.elapsed() < Duration::from_millis(1500));
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

#[test]
fn etcd_paused_past_the_lease_is_signalled_as_lost() {
    let server = EtcdServer::start();
    let c = Client::builder()
        .url(&server.url())
        .command_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let ttl = Duration::from_secs(1);
    let g = c.lock("frozen").ttl(ttl).acquire().unwrap();
    let paused = Instant::now();
    server.pause();
    let after = support::lost_after(&g.lost(), Duration::from_secs(3));
    server.resume();
    let after = after.expect("loss signalled while etcd was stopped");
    println!("etcd: SIGSTOPped server noticed as lost after {after:?} (lease {ttl:?})");
    assert!(paused.elapsed() <= ttl + Duration::from_millis(500));
    assert!(!g.is_held());
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

#[test]
fn a_release_wakes_a_waiter_in_another_client_through_the_watch() {
    let server = EtcdServer::start();
    let (a, b) = (client(&server), client(&server));
    let held = a.lock("watched").acquire().unwrap();
    let waiter = support::spawn(move || {
        let g = b
            .lock("watched")
            .acquire_timeout(Duration::from_secs(10))
            .unwrap();
        (Instant::now(), g.fence())
    });
    server.wait_until_waiting_keys("watched");
    let released = Instant::now();
    let first = held.fence();
    held.release().unwrap();
    let (woke, fence) = waiter.recv_timeout(Duration::from_secs(10)).unwrap();
    let took = woke.duration_since(released);
    println!("etcd: release to the next holder in another client: {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(fence > first);
}

#[test]
fn a_three_member_cluster_loses_its_leader_without_a_double_holder() {
    let mut cluster = EtcdCluster::start();
    let url = cluster.url();
    let build = || {
        Client::builder()
            .url(&url)
            .command_timeout(Duration::from_millis(1000))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let holder = build();
    // A lock held across the election, renewed all along.
    let kept = holder
        .lock("kept")
        .ttl(Duration::from_secs(2))
        .acquire()
        .unwrap();
    // A lock waited for across the election.
    let waited_for = holder
        .lock("waited")
        .ttl(Duration::from_secs(2))
        .acquire()
        .unwrap();
    let waiter_client = build();
    let waiter = support::spawn(move || {
        waiter_client
            .lock("waited")
            .ttl(Duration::from_secs(2))
            .acquire_timeout(Duration::from_secs(20))
            .map(|g| (g.fence(), g.release()))
    });
    // Contenders on one lock, each recording its holds for the checker.
    let contenders = Contenders::start(4, build, "contended", Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(700));
    let leader = cluster.leader().expect("a leader");
    let killed = Instant::now();
    cluster.members[leader].stop();
    println!("etcd cluster: killed the leader (member {leader})");
    // A new leader among the two left.
    let start = Instant::now();
    while cluster.leader().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "no new leader");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("etcd cluster: new leader after {:?}", killed.elapsed());
    std::thread::sleep(Duration::from_millis(1500));
    // The held lock survived the election.
    assert!(kept.is_held(), "the held lock was lost in the election");
    let renewed = holder.inspect("kept").unwrap();
    assert_eq!(renewed.token.as_deref(), Some(kept.token()));
    // The waiter proceeds once the lock is given up.
    let first = waited_for.fence();
    waited_for.release().unwrap();
    let (fence, released) = waiter
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiter proceeded")
        .expect("the waiter got the lock");
    assert!(fence > first);
    released.unwrap();
    kept.release().unwrap();
    contenders.stop_and_check("etcd cluster");
}

#[test]
fn etcds_speaks_tls_with_the_ca_given_and_refuses_an_unknown_one() {
    let (_server, tls_port, ca) = EtcdServer::start_tls();
    let url = format!("etcds://127.0.0.1:{tls_port}");
    let c = Client::builder()
        .url(&url)
        .tls_root_ca(ca.clone())
        .build()
        .unwrap();
    let g = c.lock("secret").acquire().unwrap();
    assert_eq!(
        c.inspect("secret").unwrap().token.as_deref(),
        Some(g.token())
    );
    g.release().unwrap();
    // The system's trust store does not know the throwaway CA.
    let err = Client::open(&url).unwrap_err();
    assert!(
        matches!(&err, Error::Connection(m) if m.to_lowercase().contains("certificate")),
        "{err:?}"
    );
    // Certificates for a plain URL are a mistake worth naming.
    let plain = format!("etcd://127.0.0.1:{tls_port}");
    let err = Client::builder()
        .url(&plain)
        .tls_root_ca(ca)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("use etcds://"), "{err}");
}

#[test]
fn credentials_authenticate_and_never_show() {
    let server = EtcdServer::start();
    for (path, body) in [
        (
            "/v3/auth/user/add",
            json!({"name": "root", "password": "s3cret"}),
        ),
        (
            "/v3/auth/user/grant",
            json!({"user": "root", "role": "root"}),
        ),
        ("/v3/auth/enable", json!({})),
    ] {
        server.call(path, &body);
    }
    let url = format!("etcd://root:s3cret@127.0.0.1:{}", server.port);
    let c = Client::open(&url).unwrap();
    let g = c.lock("authed").acquire().unwrap();
    g.release().unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cret") && !dbg.contains("root"), "{dbg}");
    let wrong = format!("etcd://root:wrong-s3cret@127.0.0.1:{}", server.port);
    let err = Client::open(&wrong).unwrap_err();
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    // Without credentials the server refuses too.
    let anonymous = Client::open(&server.url()).unwrap_err();
    assert!(matches!(anonymous, Error::Auth(_)), "{anonymous:?}");
}
