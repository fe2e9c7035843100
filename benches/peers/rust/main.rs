//! The peer comparison's Rust side (see `scripts/bench-peers.sh`): the same
//! three scenarios through distlock, rslock and redlock-rs, each printing
//! one JSON line.
//!
//! ```text
//! peers URL LIB SCENARIO        LIB: distlock | rslock | redlock; SCENARIO: a | b | c
//! ```
//!
//! - `a`: one client, 200 warm-up cycles, then 2,000 of acquire + release
//!   on one key: `us_per_cycle`.
//! - `b`: 4 processes of this program, started together, 200 cycles each of
//!   acquire, GET/SET of a counter, release, on one key: `cycles_per_s`
//!   (all cycles over the wall time of the slowest), `max_wait_ms` (the
//!   longest acquire), `counter_ok` (the counter is 800 after).
//! - `c`: 100 threads (tasks for the async rslock) in one process, one
//!   acquisition + release each on one key: `wall_ms`.
//!
//! Waiting is each library's own: distlock's `acquire`, rslock's `acquire`
//! (its retry loop), redlock-rs's `lock` (3 tries, 0–200 ms apart, by
//! default) called until it succeeds.

use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(10);
const WARMUP: u32 = 200;
const CYCLES_A: u32 = 2000;
const PROCESSES_B: u32 = 4;
const CYCLES_B: u32 = 200;
const THREADS_C: usize = 100;

/// One library, opened on the server.
enum Peer {
    Distlock(distlock::Client),
    Rslock(rslock::LockManager, tokio::runtime::Runtime),
    Redlock(redlock::RedLock),
}

/// What `Peer::acquire` holds until `Peer::release`.
enum Held<'a> {
    Distlock(distlock::Guard),
    Rslock(rslock::Lock),
    Redlock(redlock::Lock<'a>),
}

impl Peer {
    fn open(lib: &str, url: &str) -> Peer {
        match lib {
            "distlock" => Peer::Distlock(distlock::Client::open(url).expect("distlock client")),
            "rslock" => Peer::Rslock(
                rslock::LockManager::new(vec![url.to_string()]),
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime"),
            ),
            "redlock" => Peer::Redlock(redlock::RedLock::new(vec![url.to_string()])),
            other => fail(&format!("unknown library {other:?}")),
        }
    }

    fn acquire(&self, key: &str) -> Held<'_> {
        match self {
            Peer::Distlock(c) => Held::Distlock(c.lock(key).ttl(TTL).acquire().expect("acquire")),
            Peer::Rslock(m, rt) => Held::Rslock(
                rt.block_on(m.acquire_no_guard(key.as_bytes(), TTL))
                    .expect("acquire"),
            ),
            Peer::Redlock(r) => loop {
                if let Some(l) = r.lock(key.as_bytes(), TTL.as_millis() as usize).expect("lock") {
                    break Held::Redlock(l);
                }
            },
        }
    }

    fn release(&self, held: Held<'_>) {
        match (self, held) {
            (_, Held::Distlock(g)) => g.release().expect("release"),
            (Peer::Rslock(m, rt), Held::Rslock(l)) => rt.block_on(m.unlock(&l)),
            (Peer::Redlock(r), Held::Redlock(l)) => r.unlock(&l),
            _ => unreachable!("a lock is released by the library that took it"),
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("peers: {msg}");
    std::process::exit(2)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn scenario_a(url: &str, lib: &str, key: &str) {
    let peer = Peer::open(lib, url);
    for _ in 0..WARMUP {
        let h = peer.acquire(key);
        peer.release(h);
    }
    let start = Instant::now();
    for _ in 0..CYCLES_A {
        let h = peer.acquire(key);
        peer.release(h);
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(CYCLES_A);
    println!(
        "{{\"lang\":\"rust\",\"lib\":\"{lib}\",\"scenario\":\"a\",\"us_per_cycle\":{us:.1}}}"
    );
}

/// One of scenario b's processes: starts at `start_ms` (wall clock), prints
/// its end time and longest wait.
fn worker_b(url: &str, lib: &str, key: &str, start_ms: u64) {
    let peer = Peer::open(lib, url);
    let mut redis = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("redis connection");
    let counter = format!("{key}:counter");
    while now_ms() < start_ms {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut max_wait = Duration::ZERO;
    for _ in 0..CYCLES_B {
        let asked = Instant::now();
        let h = peer.acquire(key);
        max_wait = max_wait.max(asked.elapsed());
        let n: u64 = redis::cmd("GET")
            .arg(&counter)
            .query::<Option<u64>>(&mut redis)
            .expect("GET")
            .unwrap_or(0);
        redis::cmd("SET")
            .arg(&counter)
            .arg(n + 1)
            .query::<()>(&mut redis)
            .expect("SET");
        peer.release(h);
    }
    println!("{} {:.3}", now_ms(), max_wait.as_secs_f64() * 1e3);
}

fn scenario_b(url: &str, lib: &str, key: &str) {
    let mut redis = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("redis connection");
    let counter = format!("{key}:counter");
    redis::cmd("DEL").arg(&counter).query::<()>(&mut redis).expect("DEL");
    let me = std::env::current_exe().expect("own path");
    let start_ms = now_ms() + 500;
    let children: Vec<_> = (0..PROCESSES_B)
        .map(|_| {
            Command::new(&me)
                .args([url, lib, "b-worker", key, &start_ms.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a worker")
        })
        .collect();
    let (mut end, mut max_wait) = (0u64, 0f64);
    for child in children {
        let out = child.wait_with_output().expect("worker");
        if !out.status.success() {
            fail("a worker failed");
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        end = end.max(it.next().and_then(|s| s.parse().ok()).unwrap_or(0));
        max_wait = max_wait.max(it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0));
    }
    let wall = end.saturating_sub(start_ms).max(1) as f64 / 1e3;
    let total = PROCESSES_B * CYCLES_B;
    let got: u64 = redis::cmd("GET")
        .arg(&counter)
        .query::<Option<u64>>(&mut redis)
        .expect("GET")
        .unwrap_or(0);
    println!(
        "{{\"lang\":\"rust\",\"lib\":\"{lib}\",\"scenario\":\"b\",\"cycles_per_s\":{:.0},\"max_wait_ms\":{max_wait:.1},\"counter_ok\":{}}}",
        f64::from(total) / wall,
        got == u64::from(total)
    );
}

fn scenario_c(url: &str, lib: &str, key: &str) {
    let start;
    if lib == "rslock" {
        // An async library: 100 tasks on one multi-threaded runtime.
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let manager = rslock::LockManager::new(vec![url.to_string()]);
        start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..THREADS_C)
                .map(|_| {
                    let (m, key) = (manager.clone(), key.to_string());
                    tokio::spawn(async move {
                        let l = m.acquire_no_guard(key.as_bytes(), TTL).await.expect("acquire");
                        m.unlock(&l).await;
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        });
    } else {
        let peer = Arc::new(Peer::open(lib, url));
        let ready = Arc::new(Barrier::new(THREADS_C + 1));
        let threads: Vec<_> = (0..THREADS_C)
            .map(|_| {
                let (peer, ready, key) = (peer.clone(), ready.clone(), key.to_string());
                std::thread::spawn(move || {
                    ready.wait();
                    let h = peer.acquire(&key);
                    peer.release(h);
                })
            })
            .collect();
        ready.wait();
        start = Instant::now();
        for t in threads {
            t.join().expect("thread");
        }
    }
    println!(
        "{{\"lang\":\"rust\",\"lib\":\"{lib}\",\"scenario\":\"c\",\"wall_ms\":{:.1}}}",
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let (url, lib, scenario) = (arg(0), arg(1), arg(2));
    if !url.starts_with("redis://127.") {
        fail("usage: peers redis://127.0.0.1:PORT LIB a|b|c (loopback only)");
    }
    let key = format!("peers:rust:{lib}:{scenario}:{}", std::process::id());
    match scenario {
        "a" => scenario_a(url, lib, &key),
        "b" => scenario_b(url, lib, &key),
        "b-worker" => worker_b(url, lib, arg(3), arg(4).parse().unwrap_or(0)),
        "c" => scenario_c(url, lib, &key),
        other => fail(&format!("unknown scenario {other:?}")),
    }
}
