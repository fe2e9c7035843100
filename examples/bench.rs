//! Lock benchmarks that report ratios to floors measured in the same run.
//!
//! ```text
//! cargo run --release --example bench -- [--url URL] [--quick] [--memcached-only | --kinds-only | --etcd-only | --zk-only | --linger-only | --redlock-only | --uncontended-only]
//! ```
//!
//! Starts its own redis-server unless `--url` is given. Every figure is a
//! line `name value unit ratio floor-name`: the ratio compares the value to
//! a floor measured in this run, never to a number from elsewhere.
//!
//! - `uncontended_*`: median acquire + release with nobody else around,
//!   against a raw `SET NX PX` + `EVALSHA` compare-and-delete loop on one
//!   connection; and distlock's own fencing scripts sent by hand, and the
//!   commands of its cycle without a fence read (`SET NX PX … GET` with
//!   `PTTL`, then the release script), which separate the cost of the
//!   protocol from the cost of the library; and, when the server was
//!   started here, its CPU time per cycle in the floor's batches and in
//!   distlock's.
//! - `handoff_*`: 4 processes contending on one key; time from one holder
//!   starting its release to the next holder returning from acquire, in
//!   round trips (`PING` on one connection, median).
//! - `inprocess_*`: 8 threads on one key, lock cycles per second, against a
//!   `parking_lot::Mutex` around the same critical section, and against the
//!   same workload with the fast path off.
//! - `seeds_100_threads_*`: 100 threads, each acquires once, increments a
//!   counter, releases; wall time from the start signal to the last release.
//! - `redlock_*`: uncontended cycle over 5 nodes (started here) against the
//!   single-node cycle; and the CPU time per cycle of this process in each
//!   (`_client_cpu`), and of the five servers together (`_servers_cpu`,
//!   against the single-node cycle's wall time).
//! - `held_10k_*`: one client holding 10,000 auto-renewed 2 s locks for 10 s
//!   (3 s with `--quick`): losses, renewal-thread CPU share, memory per lock.
//! - `memcached_*`: uncontended cycle on a memcached started here, against
//!   the same five meta commands sent by hand on one connection (`ms ME`,
//!   `ma`, `ms C`, `mg`, `md C`), and against the bare two (`ms ME`, `md`);
//!   and the seeds' scenario on memcached, against the lock of the `due`
//!   framework's notes done by hand (each thread adds every 20 ms until it
//!   wins, releases with a read and a compare-and-delete), whose Go module
//!   the module proxy does not serve.
//! - `linger_*`: lease caching (`Builder::linger`): one client taking and
//!   releasing one lock in a loop, plain and reading each fence, as the
//!   mean of a batch (so the refreshes at the fence-block and budget bounds
//!   count), against the mean of the raw cycle; and how long another
//!   client's acquisition of a lingering lock takes, in round trips.
//! - `logging_*`: the uncontended cycle before any logger is installed,
//!   with a logger that drops everything at debug level, and with that
//!   logger turned off, each against the cycle before.
//! - `uncontended_{read,write}_lock_cycle`, `_semaphore_cycle`,
//!   `_fair_lock_cycle`: the other kinds of lock, against the plain cycle
//!   measured alternately with them; `readers8_writer1_*`: 8 reader
//!   processes and one writer (200 µs holds) on a read-write lock, cycles
//!   per second against the same 9 processes on one plain lock, and the
//!   writer's waits.
//! - `etcd_*`: on a one-member etcd started here (data in a scratch dir):
//!   the uncontended cycle against the same put-if-absent transaction and
//!   delete sent by hand on one keep-alive HTTP connection; the 4-process
//!   hand-off in etcd round trips (a range of a missing key on one
//!   keep-alive connection, median); the seeds' 100-thread scenario; and,
//!   when `go` and the Go module proxy serve `go.etcd.io/etcd/client/v3`,
//!   the uncontended cycle of its `concurrency.Mutex` against distlock's.
//! - `zk_*`: on a ZooKeeper started here (the test kit's, data in a
//!   scratch dir): the uncontended cycle against a create of an ephemeral
//!   node and its delete sent by hand on one session; the 4-process
//!   hand-off in ZooKeeper round trips (an `exists` of `/` on one
//!   session, median); the seeds' 100-thread scenario; and, when `python3
//!   -m pip` can install `kazoo` from PyPI into a scratch virtualenv, the
//!   uncontended cycle of kazoo's `Lock` against distlock's.

use distlock::Client;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                       return redis.call('DEL', KEYS[1]) end return 0";

fn figure(name: &str, value: f64, unit: &str, floor: f64, floor_name: &str) {
    println!("{name} {value:.1} {unit} {:.2} {floor_name}", value / floor);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect to redis")
}

/// Median microseconds of one PING on one connection.
fn rtt(raw: &mut redis::Connection) -> f64 {
    let samples = (0..2000)
        .map(|_| {
            let t = Instant::now();
            let _: String = redis::cmd("PING").query(raw).expect("PING");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(samples)
}

/// Microseconds of each of `n` raw SET NX + EVALSHA cycles.
fn floor_cycle(raw: &mut redis::Connection, sha: &str, n: u32) -> Vec<f64> {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        let start = Instant::now();
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
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples
}

/// Microseconds of each of `n` cycles of the commands a distlock cycle
/// sends when no fence is read, by hand on one connection: `SET NX PX …
/// GET` pipelined with `PTTL`, then the release script.
fn lazy_protocol_cycle(raw: &mut redis::Connection, n: u32) -> Vec<f64> {
    let release = release_script();
    (0..n)
        .map(|i| {
            let start = Instant::now();
            let token = format!("lazy-{i}");
            let (before, _pttl): (Option<String>, i64) = redis::pipe()
                .cmd("SET")
                .arg("bench:lazy")
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .arg("GET")
                .cmd("PTTL")
                .arg("bench:lazy")
                .query(raw)
                .expect("SET NX GET");
            assert!(before.is_none(), "the lock is uncontended");
            release_by_hand(&release, raw, "bench:lazy", &token);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Microseconds of each of `n` cycles of distlock's own acquire and release
/// scripts sent by hand on one connection: the protocol without the library.
fn script_cycle(raw: &mut redis::Connection, n: u32) -> Vec<f64> {
    // The scripts as the library sends them: the ownership compare first.
    let acquire = redis::Script::new(concat!(
        include_str!("../src/lua/owns.lua"),
        include_str!("../src/lua/acquire.lua")
    ));
    let release = release_script();
    (0..n)
        .map(|i| {
            let start = Instant::now();
            let token = format!("script-{i}");
            let _: redis::Value = acquire
                .key("bench:script")
                .key("{bench:script}:fence")
                .arg(&token)
                .arg(30_000)
                .arg(64)
                .arg(&token)
                .invoke(raw)
                .expect("acquire script");
            release_by_hand(&release, raw, "bench:script", &token);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// distlock's release script, as the library sends it.
fn release_script() -> redis::Script {
    redis::Script::new(concat!(
        include_str!("../src/lua/owns.lua"),
        include_str!("../src/lua/release.lua")
    ))
}

/// Releases `key`, held with `token`, with `release` on `raw`.
fn release_by_hand(release: &redis::Script, raw: &mut redis::Connection, key: &str, token: &str) {
    let released: i64 = release
        .key(key)
        .arg(token)
        .invoke(raw)
        .expect("release script");
    assert_eq!(released, 1);
}

/// Microseconds of each of `n` uncontended distlock acquire + release.
fn library_cycle(client: &Client, n: u32) -> Vec<f64> {
    let lock = client.lock("bench:lib");
    (0..n)
        .map(|_| {
            let start = Instant::now();
            lock.acquire().expect("acquire").release().expect("release");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Sends `req` on `conn` and reads one meta reply (with its data line for
/// `VA`); returns the reply line.
fn meta(conn: &mut std::io::BufReader<std::net::TcpStream>, req: &str) -> String {
    use std::io::{BufRead, Write};
    conn.get_mut().write_all(req.as_bytes()).expect("send");
    let mut line = String::new();
    conn.read_line(&mut line).expect("reply");
    if line.starts_with("VA ") {
        let mut data = String::new();
        conn.read_line(&mut data).expect("data");
    }
    line
}

/// The `c<cas>` flag of a meta reply line.
fn cas_of(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix('c').and_then(|c| c.parse().ok()))
        .expect("a CAS in the reply")
}

/// Microseconds of each of `n` lock cycles by hand: with `full`, the five
/// commands distlock sends; without, a bare add and delete.
fn meta_cycle(port: u16, n: u32, full: bool) -> Vec<f64> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("memcached");
    stream.set_nodelay(true).expect("nodelay");
    let mut conn = std::io::BufReader::new(stream);
    let token = "0123456789abcdef0123456789abcdef0123";
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let added = meta(
                &mut conn,
                &format!("ms bench:raw 36 T31 ME c\r\n{token}\r\n"),
            );
            assert!(added.starts_with("HD"), "{added}");
            if full {
                let cas = cas_of(&added);
                meta(&mut conn, "ma bench:raw#fence N0 J63 D64 v\r\n");
                let value = format!("{token} 64");
                let set = format!("ms bench:raw {} C{cas} T31\r\n{value}\r\n", value.len());
                assert!(meta(&mut conn, &set).starts_with("HD"));
                let got = meta(&mut conn, "mg bench:raw v c t\r\n");
                let del = format!("md bench:raw C{}\r\n", cas_of(&got));
                assert!(meta(&mut conn, &del).starts_with("HD"));
            } else {
                assert!(meta(&mut conn, "md bench:raw\r\n").starts_with("HD"));
            }
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// distlock's uncontended cycle on memcached against the same commands
/// sent by hand, all measured here on a memcached started here.
fn memcached(cycles: u32) {
    let server = distlock_testkit::MemcachedServer::start();
    let client = Client::open(&server.url()).expect("memcached client");
    library_cycle(&client, cycles / 10);
    let lib = median(library_cycle(&client, cycles));
    let full = median(meta_cycle(server.port, cycles, true));
    let bare = median(meta_cycle(server.port, cycles, false));
    figure(
        "memcached_uncontended_cycle",
        lib,
        "us",
        full,
        "memcached_meta_by_hand",
    );
    figure(
        "memcached_meta_by_hand",
        full,
        "us",
        bare,
        "memcached_add_delete",
    );
    figure(
        "memcached_add_delete",
        bare,
        "us",
        bare,
        "memcached_add_delete",
    );
    memcached_seeds(server.port, &server.url());
}

/// The seeds' scenario on memcached: 100 threads, one acquisition each,
/// with distlock, and with a due-style polling lock sent by hand (every
/// thread on its own connection, as due's clients pool them).
fn memcached_seeds(port: u16, url: &str) {
    let client = Client::open(url).expect("memcached client");
    drop(client.lock("bench:seeds").acquire().expect("warm up"));
    let wall = hundred_threads(|_| {
        let g = client.lock("bench:seeds").acquire().expect("acquire");
        drop(g);
    });
    let conns: Vec<_> = (0..100)
        .map(|_| {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("memcached");
            s.set_nodelay(true).expect("nodelay");
            parking_lot::Mutex::new(std::io::BufReader::new(s))
        })
        .collect();
    let due = hundred_threads(|i| {
        let mut conn = conns[i].lock();
        let token = format!("{i:036}");
        let add = format!("ms bench:due 36 T31 ME\r\n{token}\r\n");
        while !meta(&mut conn, &add).starts_with("HD") {
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = meta(&mut conn, "mg bench:due v c\r\n");
        let del = format!("md bench:due C{}\r\n", cas_of(&got));
        assert!(meta(&mut conn, &del).starts_with("HD"));
    });
    figure(
        "memcached_seeds_100_threads_wall",
        wall,
        "us",
        due,
        "due_style_poll_20ms_by_hand",
    );
    figure(
        "memcached_due_style_poll_20ms_by_hand",
        due,
        "us",
        due,
        "due_style_poll_20ms_by_hand",
    );
}

/// Microseconds from the start signal until 100 threads, each running
/// `work` with its index once, are done.
fn hundred_threads(work: impl Fn(usize) + Sync) -> f64 {
    let start_line = Barrier::new(101);
    std::thread::scope(|scope| {
        for i in 0..100 {
            let (work, start_line) = (&work, &start_line);
            scope.spawn(move || {
                start_line.wait();
                work(i);
            });
        }
        start_line.wait();
        let start = Instant::now();
        // The scope joins every thread before it returns.
        start
    })
    .elapsed()
    .as_secs_f64()
        * 1e6
}

/// A logger that drops every record: what logging costs the library
/// beyond the application's own sink.
struct Discard;

impl log::Log for Discard {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        std::hint::black_box(record.args());
    }
    fn flush(&self) {}
}

static DISCARD: Discard = Discard;

/// The uncontended cycle with no logger (as every earlier figure was
/// measured), with a logger at debug level, and with it turned off.
/// Installs a logger for the rest of the process: run it last.
fn logging(url: &str, cycles: u32) {
    let client = Client::open(url).expect("client");
    library_cycle(&client, cycles / 10);
    let none = median(library_cycle(&client, cycles));
    log::set_logger(&DISCARD).expect("no logger yet");
    log::set_max_level(log::LevelFilter::Debug);
    let debug = median(library_cycle(&client, cycles));
    log::set_max_level(log::LevelFilter::Off);
    let off = median(library_cycle(&client, cycles));
    figure("logging_none_cycle", none, "us", none, "no_logger");
    figure(
        "logging_debug_discarded_cycle",
        debug,
        "us",
        none,
        "no_logger",
    );
    figure("logging_installed_off_cycle", off, "us", none, "no_logger");
}

/// Five-node Redlock against the single-node cycle, both measured here.
fn redlock(url: &str, cycles: u32) {
    let servers: Vec<_> = (0..5)
        .map(|_| distlock_testkit::server::RedisServer::start())
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let five = Client::builder()
        .nodes(&urls)
        .build()
        .expect("redlock client");
    let one = Client::open(url).expect("client");
    library_cycle(&five, 100);
    library_cycle(&one, 100);
    let (mut single, mut multi) = (Vec::new(), Vec::new());
    let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    // CPU time the five servers and this process spent on the 5-node
    // batches, and this process on the single-node ones.
    let (mut servers_ns, mut client_multi_ns, mut client_single_ns) = (0, 0, 0);
    for _ in 0..5 {
        let before = own_cpu_ns();
        single.extend(library_cycle(&one, cycles / 5));
        let (mid, servers_before) = (own_cpu_ns(), cpu_ns(&pids));
        multi.extend(library_cycle(&five, cycles / 5));
        servers_ns += cpu_ns(&pids) - servers_before;
        client_multi_ns += own_cpu_ns() - mid;
        client_single_ns += mid - before;
    }
    let per_cycle = |ns| us_per_cycle(ns, cycles);
    let single = median(single);
    figure(
        "redlock_single_node_cycle",
        single,
        "us",
        single,
        "single_node",
    );
    figure(
        "redlock_5_nodes_cycle",
        median(multi),
        "us",
        single,
        "single_node",
    );
    let client_single = per_cycle(client_single_ns);
    figure(
        "redlock_single_node_client_cpu",
        client_single,
        "us",
        client_single,
        "single_node_client_cpu",
    );
    figure(
        "redlock_5_nodes_client_cpu",
        per_cycle(client_multi_ns),
        "us",
        client_single,
        "single_node_client_cpu",
    );
    figure(
        "redlock_5_nodes_servers_cpu",
        per_cycle(servers_ns),
        "us",
        single,
        "single_node",
    );
}

/// `ns` of CPU time in µs per cycle, over the five batches of `cycles / 5`
/// that the alternating loops run.
fn us_per_cycle(ns: u64, cycles: u32) -> f64 {
    ns as f64 / 1e3 / f64::from(cycles / 5 * 5)
}

/// CPU time the main threads of the processes `pids` have used, in ns
/// (`/proc/<pid>/schedstat`; 0 where it cannot be read).
fn cpu_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time this process (every thread) has used, in ns.
fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// The uncontended figures; with the server's `pid`, also its CPU time per
/// cycle in the floor's batches and in distlock's.
fn uncontended(url: &str, raw: &mut redis::Connection, pid: Option<u32>, cycles: u32) -> f64 {
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(RELEASE)
        .query(raw)
        .expect("SCRIPT LOAD");
    let client = Client::open(url).expect("client");
    floor_cycle(raw, &sha, 200);
    library_cycle(&client, 200);
    // Alternate, so that drift in machine load hits both alike; medians of
    // single cycles, so that a stall of the (shared) machine does not count.
    let (mut floor, mut lib, mut scripts, mut lazy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let pids: Vec<u32> = pid.into_iter().collect();
    let (mut floor_cpu, mut lib_cpu) = (0, 0);
    for _ in 0..5 {
        let before = cpu_ns(&pids);
        floor.extend(floor_cycle(raw, &sha, cycles / 5));
        let mid = cpu_ns(&pids);
        lib.extend(library_cycle(&client, cycles / 5));
        lib_cpu += cpu_ns(&pids) - mid;
        floor_cpu += mid - before;
        scripts.extend(script_cycle(raw, cycles / 5));
        lazy.extend(lazy_protocol_cycle(raw, cycles / 5));
    }
    if pid.is_some() {
        let per_cycle = |ns| us_per_cycle(ns, cycles);
        let floor_cpu = per_cycle(floor_cpu);
        let name = "floor_server_cpu";
        figure(
            "uncontended_floor_server_cpu",
            floor_cpu,
            "us",
            floor_cpu,
            name,
        );
        figure(
            "uncontended_distlock_server_cpu",
            per_cycle(lib_cpu),
            "us",
            floor_cpu,
            name,
        );
    }
    let (floor, lib, scripts, lazy) = (median(floor), median(lib), median(scripts), median(lazy));
    let base = "raw_setnx_evalsha";
    figure("uncontended_floor_cycle", floor, "us", floor, base);
    figure("uncontended_distlock_cycle", lib, "us", floor, base);
    figure("uncontended_lazy_protocol_cycle", lazy, "us", floor, base);
    figure(
        "uncontended_distlock_vs_lazy_protocol",
        lib,
        "us",
        lazy,
        "lazy_protocol",
    );
    figure(
        "uncontended_fenced_scripts_cycle",
        scripts,
        "us",
        floor,
        base,
    );
    figure(
        "uncontended_distlock_vs_own_scripts",
        lib,
        "us",
        scripts,
        "fenced_scripts",
    );
    floor
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A hand-off worker process: prints `acquired_ns released_ns` per cycle.
fn handoff_worker(url: &str, cycles: u32) {
    let client = Client::open(url).expect("client");
    let lock = client.lock("bench:handoff");
    let mut out = String::new();
    for _ in 0..cycles {
        let g = lock.acquire().expect("acquire");
        let acquired = now_ns();
        let released = now_ns();
        g.release().expect("release");
        out.push_str(&format!("{acquired} {released}\n"));
    }
    print!("{out}");
}

fn handoff(url: &str, rtt_us: f64, cycles: u32) {
    handoff_on("", url, rtt_us, cycles, "rtt");
}

/// [`handoff`], with figure names starting with `label` and the round
/// trip named `rtt_name`.
fn handoff_on(label: &str, url: &str, rtt_us: f64, cycles: u32, rtt_name: &str) {
    let exe = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--handoff-worker", url, &cycles.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let mut spans: Vec<(u128, u128)> = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("worker output");
        assert!(out.status.success(), "a hand-off worker failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut f = line.split(' ').map(|x| x.parse::<u128>().unwrap_or(0));
            spans.push((f.next().unwrap_or(0), f.next().unwrap_or(0)));
        }
    }
    spans.sort_unstable();
    let mut gaps: Vec<f64> = spans
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].1) as f64 / 1e3)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&gaps, 0.5), percentile(&gaps, 0.99));
    figure(
        &format!("{label}handoff_4_processes_p50"),
        p50,
        "us",
        rtt_us,
        rtt_name,
    );
    figure(
        &format!("{label}handoff_4_processes_p99"),
        p99,
        "us",
        rtt_us,
        rtt_name,
    );
}

/// Microseconds of each of `n` uncontended cycles of `lock`.
fn lock_cycle(lock: &distlock::Lock, n: u32) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            lock.acquire().expect("acquire").release().expect("release");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// A worker of the readers-and-a-writer run: `cycles` cycles of `role`
/// (`read`, `write` or `plain`) on one name; prints the microseconds each
/// acquisition waited, one per line.
fn kinds_worker(url: &str, role: &str, cycles: u32) {
    let client = Client::open(url).expect("client");
    let rw = client.rw_lock("bench:rw");
    let lock = match role {
        "read" => rw.read(),
        "write" => rw.write(),
        _ => client.lock("bench:rw-plain"),
    };
    let mut out = String::new();
    for _ in 0..cycles {
        let start = Instant::now();
        let g = lock.acquire().expect("acquire");
        let waited = start.elapsed().as_secs_f64() * 1e6;
        // A little work under the lock, so that holds can overlap.
        std::thread::sleep(Duration::from_micros(200));
        g.release().expect("release");
        out.push_str(&format!("{waited:.1}\n"));
    }
    print!("{out}");
}

/// 8 reader processes and one writer, on the read-write lock and then
/// with every process on one plain lock: cycles per second of the whole
/// run, and the writer's waits. Returns the cycles per second.
fn readers_and_a_writer(url: &str, shared: bool, cycles: u32) -> (f64, Vec<f64>) {
    let exe = std::env::current_exe().expect("own path");
    let start = Instant::now();
    let roles = (0..9).map(|i| match (shared, i) {
        (false, _) => "plain",
        (true, 0) => "write",
        (true, _) => "read",
    });
    let children: Vec<_> = roles
        .map(|role| {
            let child = Command::new(&exe)
                .args(["--kinds-worker", url, role, &cycles.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker");
            (role, child)
        })
        .collect();
    let mut writer = Vec::new();
    for (i, (_, child)) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("worker output");
        assert!(out.status.success(), "a worker failed");
        if i == 0 {
            writer = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect();
        }
    }
    let rate = f64::from(9 * cycles) / start.elapsed().as_secs_f64();
    writer.sort_by(f64::total_cmp);
    (rate, writer)
}

/// Read-write locks, semaphores and fair locks beside the plain lock, in
/// the same run: uncontended cycles, then 8 readers with one writer.
fn kinds(url: &str, cycles: u32) {
    let client = Client::open(url).expect("client");
    let plain = client.lock("bench:kinds-plain");
    let read = client.rw_lock("bench:kinds-rw").read();
    let write = client.rw_lock("bench:kinds-rw").write();
    let permit = client.semaphore("bench:kinds-sem", 4).as_lock().clone();
    let fair = client.lock("bench:kinds-fair").fair();
    let all = [&plain, &read, &write, &permit, &fair];
    for l in all {
        lock_cycle(l, 100);
    }
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    for _ in 0..5 {
        for (l, run) in all.iter().zip(&mut runs) {
            run.extend(lock_cycle(l, cycles / 5));
        }
    }
    let medians: Vec<f64> = runs.into_iter().map(median).collect();
    let base = medians[0];
    for (name, m) in [
        "uncontended_plain_cycle",
        "uncontended_read_lock_cycle",
        "uncontended_write_lock_cycle",
        "uncontended_semaphore_cycle",
        "uncontended_fair_lock_cycle",
    ]
    .iter()
    .zip(&medians)
    {
        figure(name, *m, "us", base, "plain_cycle");
    }
    let per = (cycles / 4).max(25);
    let (plain_rate, _) = readers_and_a_writer(url, false, per);
    let (rw_rate, writer) = readers_and_a_writer(url, true, per);
    figure(
        "readers8_writer1_plain_rate",
        plain_rate,
        "cycles/s",
        plain_rate,
        "plain_rate",
    );
    figure(
        "readers8_writer1_rw_rate",
        rw_rate,
        "cycles/s",
        plain_rate,
        "plain_rate",
    );
    figure(
        "readers8_writer1_writer_wait_p50",
        percentile(&writer, 0.5),
        "us",
        base,
        "plain_cycle",
    );
    figure(
        "readers8_writer1_writer_wait_p99",
        percentile(&writer, 0.99),
        "us",
        base,
        "plain_cycle",
    );
}

/// Lock cycles per second of `threads` threads doing `per` cycles each of
/// `cycle` (which takes the lock, bumps the counter, releases).
fn rate(threads: u32, per: u32, cycle: &(dyn Fn() + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| (0..per).for_each(|_| cycle()));
        }
    });
    f64::from(threads * per) / start.elapsed().as_secs_f64()
}

fn in_process(url: &str, per: u32) {
    let counter = AtomicU64::new(0);
    let bump = || {
        let n = counter.load(Ordering::Relaxed);
        counter.store(n + 1, Ordering::Relaxed);
    };
    let mutex = parking_lot::Mutex::new(());
    let floor = rate(8, per * 20, &|| {
        let _g = mutex.lock();
        bump();
    });
    let fast = Client::open(url).expect("client");
    let lock = fast.lock("bench:inproc");
    let with = rate(8, per, &|| {
        let _g = lock.acquire().expect("acquire");
        bump();
    });
    let slow = Client::builder()
        .url(url)
        .fast_path(false)
        .build()
        .expect("client");
    let lock = slow.lock("bench:inproc");
    let without = rate(8, per / 4, &|| {
        let _g = lock.acquire().expect("acquire");
        bump();
    });
    figure(
        "inprocess_mutex_rate",
        floor,
        "cycles/s",
        floor,
        "parking_lot_mutex",
    );
    figure(
        "inprocess_fastpath_rate",
        with,
        "cycles/s",
        floor,
        "parking_lot_mutex",
    );
    figure(
        "inprocess_no_fastpath_rate",
        without,
        "cycles/s",
        with,
        "fastpath",
    );
}

fn seeds_scenario(url: &str, _raw: &mut redis::Connection, rtt_us: f64) {
    seeds_on("", url, rtt_us, "rtt");
}

/// [`seeds_scenario`], with figure names starting with `label`.
fn seeds_on(label: &str, url: &str, rtt_us: f64, rtt_name: &str) {
    let client = Client::open(url).expect("client");
    drop(client.lock("bench:seeds").acquire().expect("warm up"));
    let counter = Arc::new(AtomicU64::new(0));
    let start_line = Arc::new(Barrier::new(101));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (lock, counter, start_line) = (
                client.lock("bench:seeds"),
                counter.clone(),
                start_line.clone(),
            );
            std::thread::spawn(move || {
                start_line.wait();
                let g = lock.acquire().expect("acquire");
                let n = counter.load(Ordering::Relaxed);
                counter.store(n + 1, Ordering::Relaxed);
                drop(g);
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("thread");
    }
    let wall = start.elapsed().as_secs_f64() * 1e6;
    figure(
        &format!("{label}seeds_100_threads_wall"),
        wall,
        "us",
        rtt_us,
        rtt_name,
    );
    println!(
        "{label}seeds_100_threads_counter {} count 1.00 expected_100",
        counter.load(Ordering::Relaxed)
    );
}

fn thread_cpu_ticks(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let after = stat.rsplit(')').next()?;
            let f: Vec<&str> = after.split_whitespace().collect();
            // Fields 14 and 15 (utime, stime) are 12 and 13 after the ')'.
            return Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?);
        }
    }
    None
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn many_held(url: &str, hold: Duration) {
    const LOCKS: u32 = 10_000;
    let client = Client::builder()
        .url(url)
        .ttl(Duration::from_secs(2))
        .build()
        .expect("client");
    drop(client.lock("bench:warm").acquire().expect("warm up"));
    let before = rss_bytes();
    let guards: Vec<_> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..8)
            .map(|t| {
                let client = &client;
                s.spawn(move || {
                    (t..LOCKS)
                        .step_by(8)
                        .map(|i| {
                            client
                                .lock(format!("bench:held:{i}"))
                                .acquire()
                                .expect("acquire")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("acquirer"))
            .collect()
    });
    let per_lock = rss_bytes().saturating_sub(before) as f64 / f64::from(LOCKS);
    let ticks_before = thread_cpu_ticks("distlock-renew").unwrap_or(0);
    let start = Instant::now();
    // Holding is the benchmark: wait on the loss signal of one guard.
    let _ = guards[0].lost().recv_timeout(hold);
    let held_for = start.elapsed().as_secs_f64();
    let ticks = thread_cpu_ticks("distlock-renew").unwrap_or(0) - ticks_before;
    // SAFETY: sysconf has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_share = ticks as f64 / hz / held_for * 100.0;
    let lost = guards.iter().filter(|g| !g.is_held()).count();
    println!("held_10k_lost {lost} locks 0.00 of_10000");
    println!(
        "held_10k_renewal_cpu {cpu_share:.1} percent {:.3} one_core",
        cpu_share / 100.0
    );
    println!("held_10k_memory_per_lock {per_lock:.0} bytes 1.00 rss_delta");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url, role, cycles] = args.as_slice() {
        if flag == "--kinds-worker" {
            kinds_worker(url, role, cycles.parse().unwrap_or(100));
            return;
        }
    }
    if let [flag, url, cycles] = args.as_slice() {
        if flag == "--handoff-worker" {
            handoff_worker(url, cycles.parse().unwrap_or(100));
            return;
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--kinds-only") {
        let server = distlock_testkit::server::RedisServer::start();
        kinds(&server.url(), if quick { 500 } else { 2000 });
        return;
    }
    if args.iter().any(|a| a == "--etcd-only") {
        etcd(if quick { 500 } else { 2000 });
        return;
    }
    if args.iter().any(|a| a == "--memcached-only") {
        memcached(if quick { 500 } else { 2000 });
        return;
    }
    if args.iter().any(|a| a == "--linger-only") {
        let server = distlock_testkit::server::RedisServer::start();
        let mut raw = connect(&server.url());
        let rtt_us = rtt(&mut raw);
        linger(
            &server.url(),
            &mut raw,
            rtt_us,
            if quick { 2_000 } else { 20_000 },
        );
        return;
    }
    if args.iter().any(|a| a == "--uncontended-only") {
        let server = distlock_testkit::server::RedisServer::start();
        let mut raw = connect(&server.url());
        uncontended(
            &server.url(),
            &mut raw,
            Some(server.pid()),
            if quick { 1000 } else { 4000 },
        );
        return;
    }
    if args.iter().any(|a| a == "--redlock-only") {
        let server = distlock_testkit::server::RedisServer::start();
        redlock(&server.url(), if quick { 500 } else { 2000 });
        return;
    }
    if args.iter().any(|a| a == "--zk-only") {
        zk(if quick { 200 } else { 2000 });
        return;
    }
    let given = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1).cloned());
    let server = given
        .is_none()
        .then(distlock_testkit::server::RedisServer::start);
    let url = given.unwrap_or_else(|| server.as_ref().expect("started").url());
    let mut raw = connect(&url);
    let scale = if quick { 4 } else { 1 };

    let rtt_us = rtt(&mut raw);
    println!("# name value unit ratio floor");
    println!("rtt_ping {rtt_us:.1} us 1.00 rtt");
    uncontended(
        &url,
        &mut raw,
        server.as_ref().map(|s| s.pid()),
        2000 / scale,
    );
    redlock(&url, 1000 / scale);
    handoff(&url, rtt_us, 500 / scale);
    in_process(&url, 2000 / scale);
    seeds_scenario(&url, &mut raw, rtt_us);
    many_held(&url, Duration::from_secs(if quick { 3 } else { 10 }));
    kinds(&url, 2000 / scale);
    memcached(2000 / scale);
    etcd(2000 / scale);
    zk(2000 / scale);
    logging(&url, 2000 / scale);
    linger(&url, &mut raw, rtt_us, 20_000 / scale);
}

/// Mean microseconds of `n` cycles of `cycle`, timed as one batch.
fn batch_mean(n: u32, mut cycle: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        cycle();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Lease caching: the lingering cycle against the raw one, and the
/// hand-over of a lingering lock to a client that asks for it.
fn linger(url: &str, raw: &mut redis::Connection, rtt_us: f64, cycles: u32) {
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(RELEASE)
        .query(raw)
        .expect("SCRIPT LOAD");
    let a = Client::builder()
        .url(url)
        .linger(Duration::from_secs(10))
        .build()
        .expect("lingering client");
    let plain = a.lock("bench:linger");
    let fenced = a.lock("bench:linger-fenced");
    let lingering = || {
        plain
            .acquire()
            .expect("acquire")
            .release()
            .expect("release")
    };
    let reading = || {
        let g = fenced.acquire().expect("acquire");
        assert!(g.try_fence().expect("fence") > 0);
        g.release().expect("release");
    };
    let floor_batch = |raw: &mut redis::Connection, n: u32| {
        let all = floor_cycle(raw, &sha, n);
        all.iter().sum::<f64>() / all.len() as f64
    };
    lingering();
    reading();
    let (mut floor, mut lib, mut lib_fenced) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        floor.push(floor_batch(raw, (cycles / 50).max(20)));
        lib.push(batch_mean(cycles / 5, lingering));
        lib_fenced.push(batch_mean(cycles / 5, reading));
    }
    let (floor, lib, lib_fenced) = (median(floor), median(lib), median(lib_fenced));
    let base = "raw_setnx_evalsha_mean";
    figure("linger_floor_cycle_mean", floor, "us", floor, base);
    figure("linger_cycle_mean", lib, "us", floor, base);
    figure("linger_fenced_cycle_mean", lib_fenced, "us", floor, base);

    // Another client asks for the lock the first lingers on. Its retry
    // interval is long, so that a missed announcement would show.
    let b = Client::builder()
        .url(url)
        .max_retry_interval(Duration::from_secs(10))
        .build()
        .expect("asking client");
    let name = "bench:linger-want";
    let key = format!("distlock:{name}");
    let mut waits = Vec::new();
    for _ in 0..50 {
        // Until the lock stays: the first release of a name only starts
        // hearing announcements, and after a hand-over the next release
        // goes to the server (someone was waiting).
        let started = Instant::now();
        loop {
            let g = a.lock(name).acquire().expect("acquire");
            g.release().expect("release");
            let held: bool = redis::cmd("EXISTS").arg(&key).query(raw).expect("EXISTS");
            if held {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the lock never lingered"
            );
        }
        let asked = Instant::now();
        let g = b.lock(name).acquire().expect("acquire");
        waits.push(asked.elapsed().as_secs_f64() * 1e6);
        g.release().expect("release");
    }
    waits.sort_by(f64::total_cmp);
    figure(
        "linger_handover_p50",
        percentile(&waits, 0.5),
        "us",
        rtt_us,
        "rtt",
    );
    figure(
        "linger_handover_max",
        percentile(&waits, 1.0),
        "us",
        rtt_us,
        "rtt",
    );
}

/// Median microseconds of an `exists` of `/` on one session: one
/// ZooKeeper round trip.
fn zk_rtt(raw: &mut distlock_testkit::zookeeper::Raw) -> f64 {
    median(
        (0..200)
            .map(|_| {
                let start = Instant::now();
                raw.exists("/").expect("exists");
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

/// Microseconds of each of `n` creates of an ephemeral node followed by
/// its delete, by hand on one session: the floor of a ZooKeeper lock cycle.
fn zk_floor_cycle(raw: &mut distlock_testkit::zookeeper::Raw, path: &str, n: u32) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(raw.create(path, b"token", 1), 0, "create");
            assert_eq!(raw.delete(path), 0, "delete");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// The uncontended cycle of kazoo's `Lock` (from PyPI, in a scratch
/// virtualenv) on `port`, in microseconds; `None` when it cannot be had.
fn zk_kazoo_cycle(port: u16, cycles: u32) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("distlock-bench-kazoo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    if !ok(Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .stdout(Stdio::null()))
    {
        return None;
    }
    let py = dir.join("bin/python");
    if !ok(Command::new(&py)
        .args(["-m", "pip", "install", "-q", "kazoo"])
        .stdout(Stdio::null()))
    {
        return None;
    }
    let script = format!(
        "import time\nfrom kazoo.client import KazooClient\n\
         zk = KazooClient(hosts='127.0.0.1:{port}')\nzk.start()\n\
         lock = zk.Lock('/bench-kazoo/lock')\nts = []\n\
         for _ in range({cycles}):\n    t = time.perf_counter()\n    lock.acquire()\n    lock.release()\n    ts.append((time.perf_counter() - t) * 1e6)\n\
         zk.stop()\nts.sort()\nprint(ts[len(ts) // 2])\n"
    );
    let out = Command::new(&py).args(["-c", &script]).output().ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// distlock on ZooKeeper against hand-sent requests, all measured here on
/// a ZooKeeper started here.
fn zk(cycles: u32) {
    let server = distlock_testkit::ZkServer::start_own();
    let url = server.url();
    let mut raw = server.raw();
    let client = Client::open(&url).expect("zk client");
    let floor_path = format!("/bench-floor-{}", std::process::id());
    zk_floor_cycle(&mut raw, &floor_path, 100);
    library_cycle(&client, 100);
    let (mut floor, mut lib) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        floor.extend(zk_floor_cycle(&mut raw, &floor_path, cycles / 5));
        lib.extend(library_cycle(&client, cycles / 5));
    }
    let (floor, lib) = (median(floor), median(lib));
    let rtt = zk_rtt(&mut raw);
    println!("zk_rtt_exists {rtt:.1} us 1.00 zk_rtt");
    figure("zk_floor_cycle", floor, "us", rtt, "zk_rtt");
    figure(
        "zk_uncontended_cycle",
        lib,
        "us",
        floor,
        "zk_create_delete_by_hand",
    );
    handoff_on("zk_", &url, rtt, cycles / 4, "zk_rtt");
    seeds_on("zk_", &url, rtt, "zk_rtt");
    match zk_kazoo_cycle(server.port, cycles / 2) {
        Some(kazoo) => {
            figure(
                "zk_kazoo_lock_cycle",
                kazoo,
                "us",
                floor,
                "zk_create_delete_by_hand",
            );
            figure("zk_distlock_vs_kazoo", lib, "us", kazoo, "kazoo_lock");
        }
        None => println!("# zk_kazoo_lock_cycle: not measured (kazoo could not be installed)"),
    }
}

/// One etcd gateway call on `agent` (one keep-alive connection): the reply.
fn etcd_call(agent: &ureq::Agent, base: &str, path: &str, body: &str) -> String {
    agent
        .post(&format!("{base}{path}"))
        .send_string(body)
        .expect("etcd gateway call")
        .into_string()
        .expect("etcd reply")
}

/// Median microseconds of a range of a missing key: one etcd round trip.
fn etcd_rtt(agent: &ureq::Agent, base: &str) -> f64 {
    let mut v: Vec<f64> = (0..500)
        .map(|_| {
            let start = Instant::now();
            etcd_call(agent, base, "/v3/kv/range", r#"{"key":"bWlzc2luZw=="}"#);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The floor: the same put-if-absent transaction distlock sends, and a
/// delete, by hand on one keep-alive connection; microseconds per cycle.
fn etcd_floor_cycle(agent: &ureq::Agent, base: &str, n: u32) -> Vec<f64> {
    // key "bench:raw", value "token".
    let txn = r#"{"compare":[{"target":"CREATE","key":"YmVuY2g6cmF3","create_revision":"0"}],"success":[{"request_put":{"key":"YmVuY2g6cmF3","value":"dG9rZW4="}}],"failure":[{"request_range":{"key":"YmVuY2g6cmF3"}}]}"#;
    let del = r#"{"key":"YmVuY2g6cmF3"}"#;
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let r = etcd_call(agent, base, "/v3/kv/txn", txn);
            assert!(r.contains(r#""succeeded":true"#), "{r}");
            etcd_call(agent, base, "/v3/kv/deleterange", del);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// The uncontended cycle of etcd's own Go client (`concurrency.Mutex` on
/// one session), median microseconds, if `go` can build it here.
fn etcd_go_mutex(url: &str, cycles: u32) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("distlock-bench-go-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("main.go"), include_str!("etcd_go_mutex.go")).ok()?;
    let go = |args: &[&str]| {
        Command::new("go")
            .args(args)
            .current_dir(&dir)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let endpoint = url.trim_start_matches("etcd://");
    let out = go(&["mod", "init", "benchmutex"])
        .and_then(|_| go(&["get", "go.etcd.io/etcd/client/v3@v3.5.17"]))
        .and_then(|_| go(&["mod", "tidy"]))
        .and_then(|_| go(&["run", ".", endpoint, &cycles.to_string()]));
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out?.stdout).trim().parse().ok()
}

/// distlock on etcd against hand-sent requests, all measured here on an
/// etcd started here.
fn etcd(cycles: u32) {
    let server = distlock_testkit::EtcdServer::start();
    let url = server.url();
    let base = format!("http://127.0.0.1:{}", server.port);
    let agent = ureq::AgentBuilder::new().max_idle_connections(1).build();
    let client = Client::open(&url).expect("etcd client");
    etcd_floor_cycle(&agent, &base, 100);
    library_cycle(&client, 100);
    let (mut floor, mut lib) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        floor.extend(etcd_floor_cycle(&agent, &base, cycles / 5));
        lib.extend(library_cycle(&client, cycles / 5));
    }
    let (floor, lib) = (median(floor), median(lib));
    let rtt = etcd_rtt(&agent, &base);
    println!("etcd_rtt_range {rtt:.1} us 1.00 etcd_rtt");
    figure("etcd_floor_cycle", floor, "us", rtt, "etcd_rtt");
    figure(
        "etcd_uncontended_cycle",
        lib,
        "us",
        floor,
        "etcd_txn_delete_by_hand",
    );
    handoff_on("etcd_", &url, rtt, cycles / 4, "etcd_rtt");
    seeds_on("etcd_", &url, rtt, "etcd_rtt");
    match etcd_go_mutex(&url, cycles / 2) {
        Some(go) => {
            figure(
                "etcd_go_concurrency_mutex_cycle",
                go,
                "us",
                floor,
                "etcd_txn_delete_by_hand",
            );
            figure(
                "etcd_distlock_vs_go_mutex",
                lib,
                "us",
                go,
                "go_concurrency_mutex",
            );
        }
        None => println!(
            "# etcd_go_concurrency_mutex_cycle: not measured (go or the module proxy unavailable)"
        ),
    }
}
