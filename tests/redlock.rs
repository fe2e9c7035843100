//! Redlock over five real redis-server processes.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error};
use redis::Commands;
use std::time::{Duration, Instant};
use support::{Mode, RedisServer, TcpProxy};

fn five() -> Vec<RedisServer> {
    (0..5).map(|_| RedisServer::start()).collect()
}

fn urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

fn redlock(urls: &[String]) -> Client {
    Client::builder()
        .nodes(urls)
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// How many of `servers` hold `key` (a stopped server counts as not).
fn holders(servers: &[RedisServer], key: &str, alive: &[usize]) -> usize {
    alive
        .iter()
        .filter(|&&i| {
            let v: Option<String> = servers[i].conn().get(key).unwrap();
            let v = distlock_testkit::token_part(v);
            v.is_some()
        })
        .count()
}

/// Whether, within 2 s, no node of `servers` holds `key`.
fn all_clear(servers: &[RedisServer], key: &str) -> bool {
    let all: Vec<usize> = (0..servers.len()).collect();
    let until = Instant::now() + Duration::from_secs(2);
    while holders(servers, key, &all) > 0 {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// `total_connections_received` of every server in `servers`.
fn connections_received(servers: &[RedisServer]) -> Vec<u64> {
    servers
        .iter()
        .map(|s| s.stat("total_connections_received"))
        .collect()
}

#[test]
fn takes_and_gives_back_the_lock_on_every_node() {
    let servers = five();
    let c = redlock(&urls(&servers));
    let g = c.lock("order").acquire().unwrap();
    // Acquire returns once a majority granted it; the rest may lag.
    let with_token = servers
        .iter()
        .filter(|s| {
            let v: Option<String> = s.conn().get("distlock:order").unwrap();
            let v = distlock_testkit::token_part(v);
            v.as_deref() == Some(g.token())
        })
        .count();
    assert!(with_token >= 3, "{with_token} of 5 hold it");
    assert!(c.lock("order").try_acquire().unwrap().is_none());
    let first = g.fence();
    g.release().unwrap();
    // Release returns once a majority deleted it; the rest may lag.
    assert!(holders(&servers, "distlock:order", &[0, 1, 2, 3, 4]) <= 2);
    assert!(all_clear(&servers, "distlock:order"));
    let again = c.lock("order").acquire().unwrap();
    assert!(again.fence() > first);
}

#[test]
fn fewer_than_three_nodes_is_refused() {
    let servers: Vec<_> = (0..2).map(|_| RedisServer::start()).collect();
    let err = Client::builder().nodes(urls(&servers)).build().unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn works_with_two_of_five_nodes_down() {
    let mut servers = five();
    let c = redlock(&urls(&servers));
    servers[3].stop();
    servers[4].stop();
    for _ in 0..20 {
        let g = c
            .lock("degraded")
            .acquire_timeout(Duration::from_secs(2))
            .unwrap();
        assert!(g.is_held());
        g.release().unwrap();
    }
}

#[test]
fn three_of_five_down_fails_promptly_and_leaves_nothing_behind() {
    let mut servers = five();
    let c = redlock(&urls(&servers));
    for s in &mut servers[..3] {
        s.stop();
    }
    let start = Instant::now();
    let err = c.lock("minority").try_acquire().unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, Error::Connection(ref m) if m.contains("majority")),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The two live nodes said yes, and were released again.
    assert_eq!(holders(&servers, "distlock:minority", &[3, 4]), 0);
}

#[test]
fn a_slow_node_does_not_stall_acquisition() {
    let servers = five();
    let proxy = TcpProxy::start(servers[0].port);
    let mut list = urls(&servers);
    list[0] = proxy.url();
    let c = redlock(&list);
    drop(c.lock("warm").acquire().unwrap());
    proxy.set_mode(Mode::Delay(Duration::from_secs(1)));
    let start = Instant::now();
    let g = c.lock("slow").acquire().unwrap();
    let took = start.elapsed();
    println!("acquire with one node 1 s slow: {took:?}");
    assert!(took < Duration::from_millis(200), "{took:?}");
    assert!(g.is_held());
}

#[test]
fn cycles_reuse_their_connections_and_leave_nothing_behind() {
    let servers = five();
    let c = redlock(&urls(&servers));
    for _ in 0..20 {
        c.lock("reused").acquire().unwrap().release().unwrap();
    }
    // Each server's own count includes the connections `connections_received`
    // opens itself: one per call.
    let before = connections_received(&servers);
    let threads = 4;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..100 {
                    let g = c
                        .lock("reused")
                        .acquire_timeout(Duration::from_secs(5))
                        .unwrap();
                    assert!(g.is_held());
                    g.release().unwrap();
                }
            });
        }
    });
    let after = connections_received(&servers);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        // One for the count itself, and at most one per thread beyond the
        // pool's warm connections (each thread may need its own).
        assert!(a - b <= 1 + threads, "node {i}: {} new connections", a - b);
    }
    assert!(all_clear(&servers, "distlock:reused"));
}

#[test]
fn a_node_that_turns_slow_holds_up_no_cycle() {
    let servers = five();
    let proxy = TcpProxy::start(servers[2].port);
    let mut list = urls(&servers);
    list[2] = proxy.url();
    let c = redlock(&list);
    for _ in 0..20 {
        c.lock("turns-slow").acquire().unwrap().release().unwrap();
    }
    // Slower than the command timeout: its replies never count.
    proxy.set_mode(Mode::Delay(Duration::from_millis(300)));
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let start = Instant::now();
        let g = c.lock("turns-slow").acquire().unwrap();
        g.release().unwrap();
        slowest = slowest.max(start.elapsed());
    }
    println!("slowest cycle with one node 300 ms slow: {slowest:?}");
    // The caller waits for its reply a few usual answer times at most
    // (not the 200 ms command timeout), and only once: after that the
    // node is read last, when a majority has already answered.
    assert!(slowest < Duration::from_millis(100), "{slowest:?}");
}

#[test]
fn losing_the_majority_is_noticed_at_the_next_renewal() {
    let mut servers = five();
    let c = redlock(&urls(&servers));
    let ttl = Duration::from_millis(900);
    let g = c.lock("restarted").ttl(ttl).acquire().unwrap();
    // Acquire returns once a majority granted it; the other nodes' plain
    // SET NX may still be on its way, and one landing on a node after its
    // restart would take that node again. Start once every node has it.
    let all = [0, 1, 2, 3, 4];
    let until = Instant::now() + Duration::from_secs(2);
    while holders(&servers, "distlock:restarted", &all) < 5 && Instant::now() < until {
        std::thread::yield_now();
    }
    assert_eq!(holders(&servers, "distlock:restarted", &all), 5);
    // One node restarting empty leaves a majority: still held.
    servers[0].restart();
    assert!(!matches!(
        g.lost().recv_timeout(ttl / 2),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert!(g.is_held());
    // Two more: only two nodes still hold it, which is no majority.
    servers[1].restart();
    servers[2].restart();
    let start = Instant::now();
    assert!(matches!(
        g.lost().recv_timeout(ttl),
        Err(RecvTimeoutError::Disconnected)
    ));
    let noticed = start.elapsed();
    println!("majority loss noticed after {noticed:?}");
    assert!(
        noticed <= ttl / 3 + Duration::from_millis(250),
        "{noticed:?}"
    );
}

#[test]
fn fences_increase_across_overlapping_majorities() {
    // Both ways of taking the first lock: with its fence phase at once
    // (the client read a fence of this name before), and lazily (the
    // phase runs when the fence is first read).
    for (name, fenced_before) in [("f", true), ("f-lazy", false)] {
        let mut servers = five();
        let list = urls(&servers);
        let c = redlock(&list);
        if fenced_before {
            let g = c.lock(name).acquire().unwrap();
            assert!(g.fence() > 0);
        }
        // Node 0's counter is far ahead of every other node's clock-based
        // floor. (Scripts compute in doubles: fences stay below 2^53.)
        let huge: u64 = 1 << 52;
        let _: () = servers[0]
            .conn()
            .set(format!("{{distlock:{name}}}:fence"), huge)
            .unwrap();
        servers[3].stop();
        servers[4].stop();
        let first = c.lock(name).acquire().unwrap();
        let f1 = first.fence();
        assert!(f1 >= huge, "{name}: the majority's largest fence");
        first.release().unwrap();
        // Now a majority that shares only node 2 with the first one, and a
        // client that never read a fence (its fence phase runs at read).
        servers[3].restart();
        servers[4].restart();
        servers[0].stop();
        servers[1].stop();
        let other = redlock(&list);
        let second = other
            .lock(name)
            .acquire_timeout(Duration::from_secs(3))
            .unwrap();
        assert!(second.fence() > f1, "{name}: {} <= {f1}", second.fence());
    }
}

const WORKER_ENV: &str = "DISTLOCK_REDLOCK_WORKER";

/// One worker process of `mutual_exclusion_across_processes`.
#[test]
fn redlock_worker_entry() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts: Vec<String> = spec.split(' ').map(str::to_string).collect();
    let counter_url = parts.pop().unwrap();
    let c = redlock(&parts);
    let mut raw = redis::Client::open(counter_url)
        .unwrap()
        .get_connection()
        .unwrap();
    let lock = c.lock("counted");
    for _ in 0..100 {
        let g = lock.acquire().unwrap();
        let n: Option<u64> = raw.get("counter").unwrap();
        let _: () = raw.set("counter", n.unwrap_or(0) + 1).unwrap();
        g.release().unwrap();
    }
}

#[test]
fn mutual_exclusion_across_processes() {
    let servers = five();
    let counter = RedisServer::start();
    let mut spec = urls(&servers);
    spec.push(counter.url());
    let children: Vec<_> = (0..3)
        .map(|_| support::spawn_entry("redlock_worker_entry", WORKER_ENV, &spec.join(" ")))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let n: u64 = counter.conn().get("counter").unwrap();
    assert_eq!(n, 300);
}
