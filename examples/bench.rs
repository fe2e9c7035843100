//! Lock benchmarks that report ratios to a floor measured in the same run.
//!
//! ```text
//! cargo run --release --example bench -- [--url URL] [--cycles N] [--rounds R] [--threads T]
//! ```
//!
//! The floor is the cheapest correct lock cycle a hand-written client can do
//! against the same server: `SET key token NX PX ttl`, then the release
//! script by `EVALSHA`, on one dedicated connection. Every line prints
//! `name value unit ratio-to-floor`. Rounds alternate floor and library so
//! that drift in machine load hits both alike; the median round is reported.

mod common;

use distlock::Client;
use std::time::{Duration, Instant};

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                       return redis.call('DEL', KEYS[1]) end return 0";

struct Opts {
    url: Option<String>,
    cycles: u32,
    rounds: u32,
    threads: u32,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        url: None,
        cycles: 2000,
        rounds: 5,
        threads: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |s: String| {
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} is not a number"))
        };
        match a.as_str() {
            "--url" => o.url = Some(value("--url")?),
            "--cycles" => o.cycles = number(value("--cycles")?)?.max(1),
            "--rounds" => o.rounds = number(value("--rounds")?)?.max(1),
            "--threads" => o.threads = number(value("--threads")?)?.max(1),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// Mean microseconds per cycle of `n` raw SET NX + EVALSHA cycles.
fn floor_cycle(raw: &mut redis::Connection, sha: &str, n: u32) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        let token = format!("raw-{i}");
        let ok: Option<String> = redis::cmd("SET")
            .arg("bench:raw")
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query(raw)
            .expect("SET NX");
        assert!(ok.is_some(), "the raw lock is uncontended");
        let released: i64 = redis::cmd("EVALSHA")
            .arg(sha)
            .arg(1)
            .arg("bench:raw")
            .arg(&token)
            .query(raw)
            .expect("EVALSHA");
        assert_eq!(released, 1);
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Mean microseconds per uncontended distlock acquire + release.
fn library_cycle(client: &Client, n: u32, auto_renew: bool) -> f64 {
    let lock = client.lock("bench:lib").auto_renew(auto_renew);
    let start = Instant::now();
    for _ in 0..n {
        lock.acquire().expect("acquire").release().expect("release");
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Mean microseconds per cycle when `threads` threads of this process share
/// one lock, `n` cycles in all.
fn contended_cycle(client: &Client, threads: u32, n: u32) -> f64 {
    let per = (n / threads).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let lock = client.lock("bench:contended");
            s.spawn(move || {
                for _ in 0..per {
                    lock.acquire().expect("acquire").release().expect("release");
                }
            });
        }
    });
    start.elapsed().as_secs_f64() * 1e6 / f64::from(per * threads)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let o = parse()?;
    let server = o.url.is_none().then(common::server::RedisServer::start);
    let url = o
        .url
        .clone()
        .unwrap_or_else(|| server.as_ref().expect("started").url());
    let mut raw = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("cannot reach redis: {e}"))?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(RELEASE)
        .query(&mut raw)
        .map_err(|e| e.to_string())?;
    let client = Client::builder()
        .url(&url)
        .ttl(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;

    // Warm both paths (connections, scripts, caches).
    floor_cycle(&mut raw, &sha, 200);
    library_cycle(&client, 200, true);

    let (mut floor, mut lib, mut contended) = (Vec::new(), Vec::new(), Vec::new());
    let mut unrenewed = Vec::new();
    for _ in 0..o.rounds {
        floor.push(floor_cycle(&mut raw, &sha, o.cycles));
        lib.push(library_cycle(&client, o.cycles, true));
        unrenewed.push(library_cycle(&client, o.cycles, false));
        contended.push(contended_cycle(&client, o.threads, o.cycles / 4));
    }
    let floor = median(floor);
    println!(
        "# name value unit ratio_to_floor (median of {} rounds)",
        o.rounds
    );
    println!("floor_setnx_evalsha_cycle {floor:.1} us 1.00");
    let lib = median(lib);
    println!("distlock_uncontended_cycle {lib:.1} us {:.2}", lib / floor);
    let unrenewed = median(unrenewed);
    println!(
        "distlock_uncontended_no_renew_cycle {unrenewed:.1} us {:.2}",
        unrenewed / floor
    );
    let contended = median(contended);
    println!(
        "distlock_contended_{}_threads_cycle {contended:.1} us {:.2}",
        o.threads,
        contended / floor
    );
    Ok(())
}
