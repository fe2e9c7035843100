//! The safety suite: worker processes contend on one lock while faults are
//! injected; a checker then verifies mutual exclusion from what every holder
//! recorded.
//!
//! ```text
//! cargo run --release --example safety              # CI profile, about 30 s
//! cargo run --release --example safety -- --long    # >= 100,000 acquisitions, several minutes
//! ```
//!
//! Each worker loops: acquire, work about 200 µs while watching
//! `lost()`, release; it records (fence, start, end, whether and when it was
//! told of a loss). Faults, in rounds: Redis killed with -9 and restarted
//! empty; Redis paused (SIGSTOP) beyond the TTL; a proxy between the workers
//! and Redis adding latency, cutting connections and black-holing traffic;
//! a worker process paused beyond the TTL; and a Redlock round over five
//! nodes with two killed and restarted. Pass criteria, printed at the end:
//! no undetected overlap, fences never going backwards, every fault
//! survived, no leaked threads or descriptors in the workers.

mod common;

use common::checker::{check, now_ns, Hold};
use common::proxy::{Mode, TcpProxy};
use common::server::RedisServer;
use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(600);

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A worker process: contends until `stop_at` (wall-clock ns), prints one
/// line per hold, then `leaks <threads> <fds>`: what is left, once the
/// client is dropped, of the threads and descriptors it added.
fn worker(urls: &[String], stop_at: u128) -> Result<(), String> {
    let before = (count("/proc/self/task"), count("/proc/self/fd"));
    let client = Client::builder()
        .nodes(urls)
        .command_timeout(Duration::from_millis(150))
        .connect_timeout(Duration::from_millis(150))
        .build()
        .map_err(|e| e.to_string())?;
    let lock = client.lock("safety").ttl(TTL);
    let mut out = String::new();
    let mut n = 0u64;
    while now_ns() < stop_at {
        n += 1;
        // Mostly 200 µs of work; every 250th hold spans renewals, so
        // that faults land inside holds.
        let work = if n.is_multiple_of(250) {
            Duration::from_millis(300)
        } else {
            Duration::from_micros(200)
        };
        let g = match lock.acquire_timeout(Duration::from_millis(500)) {
            Ok(g) => g,
            Err(Error::Timeout | Error::Connection(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let start = now_ns();
        let fired = g.lost().recv_timeout(work);
        let end = now_ns();
        let mut lost = fired == Err(RecvTimeoutError::Disconnected) || !g.is_held();
        let fence = g.fence();
        lost |= g.release() == Err(Error::Lost);
        let hold = Hold {
            fence,
            start,
            end,
            lost,
            lost_at: if lost { end } else { 0 },
        };
        out.push_str(&hold.line());
        out.push('\n');
    }
    drop(lock);
    drop(client);
    // Everything the client owned goes with it: its threads end and its
    // connections close.
    let settle = Instant::now();
    let mut after = (count("/proc/self/task"), count("/proc/self/fd"));
    while after != before && settle.elapsed() < Duration::from_secs(3) {
        std::thread::yield_now();
        after = (count("/proc/self/task"), count("/proc/self/fd"));
    }
    print!("{out}");
    println!(
        "leaks {} {}",
        after.0 as i64 - before.0 as i64,
        after.1 as i64 - before.1 as i64
    );
    Ok(())
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a child
    // process this program started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Starts `n` workers against `urls` for `secs` seconds.
fn spawn_workers(urls: &[String], n: usize, secs: u64) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let stop_at = now_ns() + u128::from(secs) * 1_000_000_000;
    (0..n)
        .map(|_| {
            Command::new(&exe)
                .arg("--worker")
                .arg(stop_at.to_string())
                .args(urls)
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Waits for the workers; their holds and summed (threads, fds) deltas.
fn collect(children: Vec<Child>) -> Result<(Vec<Hold>, i64, i64), String> {
    let (mut holds, mut threads, mut fds) = (Vec::new(), 0, 0);
    for child in children {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("a worker failed: {}", out.status));
        }
        for line in BufReader::new(&out.stdout[..])
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("leaks ") {
                let mut f = rest.split(' ').map(|x| x.parse::<i64>().unwrap_or(0));
                threads += f.next().unwrap_or(0);
                fds += f.next().unwrap_or(0);
            } else if let Some(h) = Hold::parse(&line) {
                holds.push(h);
            }
        }
    }
    Ok((holds, threads, fds))
}

struct Tally {
    holds: Vec<Hold>,
    faults: Vec<(&'static str, u128)>,
    thread_leaks: i64,
    fd_leaks: i64,
}

/// The single-node round: workers through a proxy, faults in turn.
fn single_node_round(workers: usize, rounds: u32) -> Result<Tally, String> {
    let mut server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    // About 11 s of faults per round, then time to recover.
    let secs = 6 + u64::from(rounds) * 13;
    let children = spawn_workers(&[proxy.url()], workers, secs)?;
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let mut faults = Vec::new();
    let pause = |d: Duration| std::thread::sleep(d);
    // The schedule of faults is the suite's input, not synchronisation.
    pause(Duration::from_secs(2));
    for round in 0..rounds {
        faults.push(("redis killed and restarted empty", now_ns()));
        server.restart();
        pause(Duration::from_millis(1500));
        faults.push(("redis paused beyond the ttl", now_ns()));
        signal(server.pid(), libc::SIGSTOP);
        pause(TTL * 2);
        signal(server.pid(), libc::SIGCONT);
        pause(Duration::from_millis(1500));
        faults.push(("latency 30 ms", now_ns()));
        proxy.set_mode(Mode::Delay(Duration::from_millis(30)));
        pause(Duration::from_secs(1));
        proxy.set_mode(Mode::Pass);
        faults.push(("connections cut", now_ns()));
        proxy.cut_all();
        pause(Duration::from_millis(500));
        faults.push(("black hole", now_ns()));
        proxy.set_mode(Mode::BlackHole);
        proxy.cut_all();
        pause(Duration::from_secs(1));
        proxy.set_mode(Mode::Pass);
        proxy.cut_all();
        pause(Duration::from_millis(1000));
        faults.push(("a worker paused beyond the ttl", now_ns()));
        let victim = pids[round as usize % pids.len()];
        signal(victim, libc::SIGSTOP);
        pause(TTL * 2);
        signal(victim, libc::SIGCONT);
        pause(Duration::from_millis(1500));
    }
    let (holds, thread_leaks, fd_leaks) = collect(children)?;
    Ok(Tally {
        holds,
        faults,
        thread_leaks,
        fd_leaks,
    })
}

/// The Redlock round: five nodes, two killed and later restarted empty.
fn redlock_round(workers: usize) -> Result<Tally, String> {
    let mut nodes: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let children = spawn_workers(&urls, workers, 8)?;
    let mut faults = Vec::new();
    std::thread::sleep(Duration::from_secs(2));
    faults.push(("redlock: two of five nodes killed", now_ns()));
    nodes[0].stop();
    nodes[1].stop();
    std::thread::sleep(Duration::from_secs(2));
    faults.push(("redlock: nodes restarted empty", now_ns()));
    nodes[0].restart();
    nodes[1].restart();
    std::thread::sleep(Duration::from_secs(1));
    faults.push(("redlock: a third node restarted empty", now_ns()));
    nodes[2].restart();
    let (holds, thread_leaks, fd_leaks) = collect(children)?;
    Ok(Tally {
        holds,
        faults,
        thread_leaks,
        fd_leaks,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Prints the figures of one round; true if it passed.
fn report(name: &str, t: &Tally) -> bool {
    let r = check(t.holds.clone());
    // A fault is survived if holds were completed after it.
    let last_start = t.holds.iter().map(|h| h.start).max().unwrap_or(0);
    let survived = t.faults.iter().filter(|(_, at)| *at < last_start).count();
    // Loss-detection latency: from a fault to each loss reported after it.
    let mut latency: Vec<f64> = t
        .holds
        .iter()
        .filter(|h| h.lost)
        .filter_map(|h| {
            let fault = t
                .faults
                .iter()
                .filter(|(_, at)| *at <= h.lost_at)
                .map(|(_, at)| *at)
                .max()?;
            Some((h.lost_at - fault) as f64 / 1e6)
        })
        .collect();
    latency.sort_by(f64::total_cmp);
    println!("== {name}");
    println!("acquisitions {}", r.holds);
    println!("undetected_overlaps {} (must be 0)", r.overlaps_undetected);
    for (a, b) in &r.examples {
        let fault = t
            .faults
            .iter()
            .filter(|(_, at)| *at <= b.start)
            .max_by_key(|(_, at)| *at);
        println!(
            "  overlap: {a:?} and {b:?}, {} us apart; last fault before: {:?}",
            (a.end - b.start) / 1000,
            fault.map(|(name, at)| (name, (b.start - at) / 1_000_000))
        );
    }
    println!("fence_regressions {} (must be 0)", r.fence_regressions);
    println!("detected_and_signalled_overlaps {}", r.overlaps_detected);
    println!("signalled_losses {}", r.signalled_losses);
    println!("faults_survived {} of {}", survived, t.faults.len());
    println!(
        "loss_detection_ms p50 {:.0} p90 {:.0} max {:.0}",
        percentile(&latency, 0.5),
        percentile(&latency, 0.9),
        latency.last().copied().unwrap_or(0.0)
    );
    println!(
        "leaks threads {} fds {} (must be 0)",
        t.thread_leaks, t.fd_leaks
    );
    r.overlaps_undetected == 0
        && r.fence_regressions == 0
        && survived == t.faults.len()
        && t.thread_leaks == 0
        && t.fd_leaks == 0
        && r.holds > 0
}

fn run(long: bool) -> Result<bool, String> {
    let workers = 8;
    let rounds = std::env::var("DISTLOCK_SAFETY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if long { 30 } else { 1 });
    let single = single_node_round(workers, rounds)?;
    let ok_single = report("single node", &single);
    let redlock = redlock_round(workers)?;
    let ok_redlock = report("redlock, 5 nodes", &redlock);
    let total = single.holds.len() + redlock.holds.len();
    println!("== total acquisitions {total}");
    if long && total < 100_000 {
        println!("the long profile wants at least 100,000 acquisitions");
        return Ok(false);
    }
    println!(
        "safety suite: {}",
        if ok_single && ok_redlock {
            "PASS"
        } else {
            "FAIL"
        }
    );
    Ok(ok_single && ok_redlock)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--worker") => {
            let stop_at = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            worker(&args[2..], stop_at).map(|()| true)
        }
        Some("--long") => run(true),
        None => run(false),
        Some(other) => Err(format!(
            "unknown argument {other:?} (use --long or nothing)"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("safety: {e}");
            ExitCode::from(2)
        }
    }
}
