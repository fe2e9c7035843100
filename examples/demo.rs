//! The distlock demo: several worker processes contend on one lock.
//!
//! ```text
//! cargo run --release --example demo -- [--url URL] [--workers N] [--cycles M] [--ttl-ms T]
//! ```
//!
//! Without `--url` it starts a throwaway redis-server on a free loopback
//! port and stops it at the end. Each worker process repeats: acquire the
//! lock, read a counter, write it back plus one (a deliberate race without
//! the lock), release. The demo then checks the counter is exact, that
//! fencing tokens only went up, and prints latency figures.

use distlock::Client;
use redis::Commands;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const COUNTER: &str = "demo:counter";
const LOCK: &str = "demo";

struct Opts {
    url: Option<String>,
    workers: u32,
    cycles: u32,
    ttl: Duration,
    worker: Option<u32>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        url: None,
        workers: 4,
        cycles: 200,
        ttl: Duration::from_secs(5),
        worker: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--url" => o.url = Some(value("--url")?),
            "--workers" => o.workers = num(&value("--workers")?)?,
            "--cycles" => o.cycles = num(&value("--cycles")?)?,
            "--ttl-ms" => o.ttl = Duration::from_millis(num(&value("--ttl-ms")?)?.into()),
            "--worker" => o.worker = Some(num(&value("--worker")?)?),
            "-h" | "--help" => {
                return Err(
                    "usage: demo [--url URL] [--workers N] [--cycles M] [--ttl-ms T]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if o.workers == 0 || o.cycles == 0 {
        return Err("--workers and --cycles must be at least 1".into());
    }
    Ok(o)
}

fn num(s: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

/// One worker process: prints `fences-ok acquire-latencies-in-µs...`.
fn worker(o: &Opts) -> Result<(), String> {
    let url = o.url.as_deref().ok_or("worker without --url")?;
    let index = o.worker.unwrap_or(0);
    let client = Client::builder()
        .url(url)
        .holder_label(&format!("demo worker {index}"))
        .build()
        .map_err(|e| e.to_string())?;
    let mut raw = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    let lock = client.lock(LOCK).ttl(o.ttl);
    let mut waits = Vec::with_capacity(o.cycles as usize);
    let mut last_fence = 0;
    let mut fences_ok = true;
    for _ in 0..o.cycles {
        let t = Instant::now();
        let g = lock.acquire().map_err(|e| e.to_string())?;
        waits.push(t.elapsed().as_micros());
        fences_ok &= g.fence() > last_fence;
        last_fence = g.fence();
        let n: Option<u64> = raw.get(COUNTER).map_err(|e| e.to_string())?;
        let _: () = raw
            .set(COUNTER, n.unwrap_or(0) + 1)
            .map_err(|e| e.to_string())?;
        g.release().map_err(|e| e.to_string())?;
    }
    let line: Vec<String> = waits.iter().map(u128::to_string).collect();
    println!("{} {}", fences_ok, line.join(" "));
    Ok(())
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(o: &Opts) -> Result<bool, String> {
    let server = match &o.url {
        Some(_) => None,
        None => Some(distlock_testkit::server::RedisServer::start()),
    };
    let url = o
        .url
        .clone()
        .or_else(|| server.as_ref().map(|s| s.url()))
        .expect("a URL or a server");
    let shown = url.split('@').next_back().unwrap_or(&url);
    match &server {
        Some(s) => println!("throwaway redis-server pid {} on {shown}", s.pid()),
        None => println!("using the redis server at {shown}"),
    }
    let mut raw = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("cannot reach redis: {e}"))?;
    let _: () = raw.del(COUNTER).map_err(|e| e.to_string())?;

    println!(
        "{} worker processes x {} cycles of lock / GET / SET / unlock on one key",
        o.workers, o.cycles
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let children = (0..o.workers)
        .map(|i| {
            Command::new(&exe)
                .args(["--worker", &i.to_string(), "--url", &url])
                .args(["--cycles", &o.cycles.to_string()])
                .args(["--ttl-ms", &o.ttl.as_millis().to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    show_holder(&url);
    let mut waits = Vec::new();
    let mut fences_ok = true;
    for child in children {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("a worker failed: {}", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        fences_ok &= fields.next() == Some("true");
        waits.extend(fields.filter_map(|f| f.parse::<u128>().ok()));
    }
    let elapsed = start.elapsed();
    let total = u64::from(o.workers) * u64::from(o.cycles);
    let counter: u64 = raw.get(COUNTER).map_err(|e| e.to_string())?;
    waits.sort_unstable();
    println!(
        "cycles: {total} in {:.2} s ({:.0} cycles/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let exact = counter == total;
    println!(
        "mutual exclusion: counter = {counter}, expected {total}: {}",
        if exact { "exact" } else { "VIOLATED" }
    );
    println!(
        "fencing tokens strictly increasing in every worker: {}",
        if fences_ok { "yes" } else { "NO" }
    );
    println!(
        "acquire latency (µs): p50 {} p90 {} p99 {} max {}",
        percentile(&waits, 0.5),
        percentile(&waits, 0.9),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(0)
    );
    Ok(exact && fences_ok && waits.len() as u64 == total)
}

/// Prints who holds the lock while the workers run, as `distlock status`
/// and `distlock list` would show it (looking for at most 2 s).
fn show_holder(url: &str) {
    let Ok(client) = Client::open(url) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok(held) = client.held("*", 10) else {
            return;
        };
        if let Some(lock) = held.locks.iter().find(|l| l.name == LOCK) {
            if let Some(holder) = &lock.info.holder {
                let fence = lock.info.fence.unwrap_or(0);
                println!(
                    "while they run: {LOCK:?} is held by {holder}, fence {fence} \
                     (see `distlock status {LOCK}`, `distlock list`)"
                );
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() -> ExitCode {
    let outcome = parse().and_then(|o| {
        if o.worker.is_some() {
            worker(&o).map(|()| true)
        } else {
            run(&o)
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}
