//! The safety suite: worker processes contend on one lock while faults are
//! injected; two checkers then verify mutual exclusion from what every
//! holder recorded: our overlap checker (`distlock_testkit::checker`) and
//! porcupine, a linearizability checker we did not write ([`oracle`]).
//!
//! ```text
//! cargo run --release --example safety              # CI profile, under 2 minutes
//! cargo run --release --example safety -- --long    # >= 100,000 acquisitions, about 10 minutes
//! cargo run --release --example safety -- --soak    # >= 1,000,000 acquisitions, about 30 minutes
//! cargo run --release --example safety -- --soak --scale 0.02   # the soak scaled down
//! cargo run --release --example safety -- --clock   # the clock rounds alone
//! cargo run --release --example safety -- --etcd    # the etcd rounds alone
//! cargo run --features mutants --example safety -- --mutants    # every mutant must fail both
//! ```
//!
//! Each worker loops: acquire, read the fenced register ([`register`]),
//! work about 200 µs while watching `lost()`, write the register, release;
//! it records (fence, start, end, whether and when it was told of a loss,
//! what the register answered), printing each hold as it ends. Faults, in
//! rounds: Redis killed with -9 and restarted
//! empty; Redis paused (SIGSTOP) beyond the TTL; a proxy between the workers
//! and Redis adding latency, cutting connections and black-holing traffic;
//! a lock holder paused beyond the TTL (told by SIGUSR1, the worker stops
//! itself at its next hold, alternately before its first step and in the
//! middle of its work, and the suite resumes it after twice the TTL); and
//! Redlock rounds over five nodes: two killed and restarted empty, a third
//! restarted empty, one paused beyond the TTL, a holder paused; and etcd
//! rounds on a three-member cluster: the leader killed and restarted, a
//! follower and then the leader paused beyond the TTL (the second excused:
//! see [`ETCD_LEADER_PAUSED`]), a holder paused. The single-node faults
//! are then run again with the workers on a read-write lock (one hold in
//! four a write; readers may overlap each other, never a writer) and on a
//! semaphore of [`PERMITS`] (never more holders at once). Last, the clock
//! rounds ([`clock`]): the holders' wall clocks jump, then redis-server's.
//! Pass criteria, printed at the end: no undetected overlap, fences never
//! going backwards, no late warning that no unforeseeable fault excuses,
//! every fault survived, every paused holder told of its loss on resume
//! with a fence that another holder had already passed, no leaked threads
//! or descriptors in the workers, and porcupine finding each plain-lock
//! round's register history linearizable. Loss-detection latencies are
//! printed for each kind of fault, from its start and from its end.
//!
//! A round's [`Pace`] says when it ends: after its schedule, as soon as
//! both checkers fail it (mutation rounds), or at a number of acquisitions
//! (the soak).

use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error};
use distlock_testkit::checker::{check, check_rw, check_semaphore, now_ns, told_late, Hold};
use distlock_testkit::proxy::{Mode, TcpProxy};
use distlock_testkit::server::RedisServer;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(600);
const PAUSED_HOLDER: &str = "a holder paused beyond the ttl";
/// The etcd leader paused past the lease. etcd before the 2024 fix of
/// etcd-io/etcd#15247 (Debian's 3.4.23 among them) revokes every lease
/// whose expiry passed while it was stopped when it resumes: its revoke
/// proposals, made before it learns it was deposed, are forwarded to the
/// new leader and applied. The server drops the locks, as a restart that
/// loses them does; a holder learns at its next renewal, and the fence
/// guards the resource until then.
const ETCD_LEADER_PAUSED: &str = "etcd: the leader paused beyond the ttl";
/// The permits of the semaphore round.
const PERMITS: u32 = 3;
/// The environment variable that tells a worker which kind of lock to
/// take: unset for the plain lock, `rw` or `semaphore`.
const KIND_VAR: &str = "DISTLOCK_SAFETY_KIND";
/// The environment variable that bounds, in ms, how long a worker waits
/// between attempts on a held lock (`max_retry_interval`), if set.
const RETRY_VAR: &str = "DISTLOCK_SAFETY_RETRY_MS";
/// The environment variable that has workers linger this many ms on a
/// released lock (`Builder::linger`), if set.
const LINGER_VAR: &str = "DISTLOCK_SAFETY_LINGER_MS";
/// The environment variable that asks workers for many long holds
/// (`long`) or few (`soak`).
const HOLDS_VAR: &str = "DISTLOCK_SAFETY_HOLDS";

mod clock;
mod oracle;
mod register;

/// Which kind of lock a round's workers contend on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    ReadWrite,
    Semaphore,
}

impl Kind {
    /// The value of [`KIND_VAR`] for this kind.
    fn var(self) -> &'static str {
        match self {
            Kind::Plain => "",
            Kind::ReadWrite => "rw",
            Kind::Semaphore => "semaphore",
        }
    }
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Set by SIGUSR1: the next hold is to be paused (the worker stops itself
/// with SIGSTOP while holding, and the suite resumes it after the TTL).
static PAUSE_NEXT_HOLD: AtomicBool = AtomicBool::new(false);

extern "C" fn pause_next_hold(_: libc::c_int) {
    PAUSE_NEXT_HOLD.store(true, Ordering::SeqCst);
}

/// Set by SIGUSR2: the round is over (its checkers have seen enough), stop
/// after the current hold.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Prints one line of a worker's record at once (the coordinator reads
/// them as they come); lines of several threads never mix.
fn emit(line: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| format!("stdout: {e}"))
}

/// A paused holder, as it saw its pause: its fence, when it resumed and
/// when it was told of the loss (wall-clock ns; 0 if never).
struct Victim {
    fence: u64,
    resumed: u128,
    told: u128,
}

/// A worker process: contends until `stop_at` ([`now_ns`]) or SIGUSR2,
/// prints one line per hold as it ends, then `leaks <threads> <fds>`: what
/// is left, once the client is dropped, of the threads and descriptors it
/// added.
fn worker(urls: &[String], stop_at: u128, threads: usize) -> Result<(), String> {
    let before = (count("/proc/self/task"), count("/proc/self/fd"));
    // One URL is one server; several are Redlock nodes.
    let builder = match urls {
        [one] => Client::builder().url(one),
        many => Client::builder().nodes(many),
    };
    let mut builder = builder
        .command_timeout(Duration::from_millis(150))
        .connect_timeout(Duration::from_millis(150));
    if let Some(ms) = std::env::var(RETRY_VAR).ok().and_then(|v| v.parse().ok()) {
        builder = builder.max_retry_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = std::env::var(LINGER_VAR).ok().and_then(|v| v.parse().ok()) {
        builder = builder.linger(Duration::from_millis(ms));
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            pause_next_hold as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGUSR2,
            stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    // Several threads of one client, so that the local fast path hands
    // the lease on between them.
    let outs: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let client = &client;
                scope.spawn(move || holds(client, stop_at, t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a worker thread panicked".into()))
            })
            .collect()
    });
    emit(&format!("lingered {}", client.stats().lingered))?;
    drop(client);
    // Everything the client owned goes with it: its threads end and its
    // connections close.
    let settle = Instant::now();
    let mut after = (count("/proc/self/task"), count("/proc/self/fd"));
    while after != before && settle.elapsed() < Duration::from_secs(3) {
        std::thread::yield_now();
        after = (count("/proc/self/task"), count("/proc/self/fd"));
    }
    for out in outs {
        out?;
    }
    emit(&format!(
        "leaks {} {}",
        after.0 as i64 - before.0 as i64,
        after.1 as i64 - before.1 as i64
    ))
}

/// One worker thread's holds until `stop_at`, a line each, on the kind of
/// lock [`KIND_VAR`] names. On the plain lock each hold also reads the
/// fenced register as its first step and writes it as its last
/// ([`register`]); then also a `clock` line: the least and the most this
/// thread saw its wall clock ahead of [`now_ns`], in ms (a clock round
/// moves it).
fn holds(client: &Client, stop_at: u128, thread: usize) -> Result<(), String> {
    let lock = client.lock("safety").ttl(TTL);
    let kind = std::env::var(KIND_VAR).unwrap_or_default();
    let rw = client.rw_lock("safety-rw");
    let permits = client.semaphore("safety-semaphore", PERMITS).ttl(TTL);
    let mut register = match std::env::var(register::REGISTER_VAR) {
        Ok(url) if kind.is_empty() => Some(register::Register::connect(&url)?),
        _ => None,
    };
    // Every `longest`th hold outlasts the lease and every `long`th spans
    // renewals. Clock rounds ask for many long holds, so that a clock jump
    // on the server lands inside one; the soak for few, which would
    // otherwise take most of its time (the lock is exclusive: at the
    // usual mix, a 1.2 s hold in 400 and a 300 ms hold in 250 take 1.7 s
    // of every 400 holds).
    let (longest, long) = match std::env::var(HOLDS_VAR).as_deref() {
        Ok("long") => (400, 3),
        Ok("soak") => (4000, 2500),
        _ => (400, 250),
    };
    // Lingering workers hold in bursts of four with a 120 ms rest after
    // each, so that many releases find nobody waiting: only those may
    // linger, the burst's next hold is then granted from the lingering
    // lock, and a worker whose burst starts meanwhile gets the lock by
    // announcement. The rest is shorter than a stay plus the linger time
    // after it, so that the worker still hears announcements when its
    // next burst starts.
    let rests = std::env::var(LINGER_VAR).is_ok();
    // Threads start at different points of the hold pattern, so that the
    // long holds are spread over the round rather than all due at once.
    let (mut n, mut paused) = (std::process::id() as u64 * 7 + thread as u64 * 101, 0u64);
    let mut skew = (i128::MAX, i128::MIN);
    while now_ns() < stop_at && !STOP.load(Ordering::SeqCst) {
        n += 1;
        // Mostly 200 µs of work; some holds span renewals, so that faults
        // land inside holds, and some outlast the lease, so that they
        // stand on renewal.
        let work = if n.is_multiple_of(longest) {
            TTL * 2
        } else if n.is_multiple_of(long) {
            Duration::from_millis(300)
        } else {
            Duration::from_micros(200)
        };
        // On the read-write lock, one hold in four is a write. Waits are
        // longer than a paused holder's pause: the other thread of a
        // paused process is still waiting for the lease when it resumes.
        let writes = kind == "rw" && n.is_multiple_of(4);
        let patience = TTL * 4;
        let acquired = match kind.as_str() {
            "rw" if writes => rw.write().ttl(TTL).acquire_timeout(patience),
            "rw" => rw.read().ttl(TTL).acquire_timeout(patience),
            "semaphore" => permits.acquire_timeout(patience),
            _ => lock.acquire_timeout(patience),
        };
        let g = match acquired {
            Ok(g) => g,
            Err(Error::Timeout | Error::Connection(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let fence = g.fence();
        // Asked to be paused: alternately before the first step under the
        // lock (the hold then starts after its lease ran out) and in the
        // middle of the work.
        let pause = PAUSE_NEXT_HOLD.swap(false, Ordering::SeqCst);
        let stop_self = || {
            // SAFETY: raise(3) has no memory-safety preconditions.
            #[allow(unsafe_code)]
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            now_ns()
        };
        let mut resumed = 0;
        if pause && paused.is_multiple_of(2) {
            resumed = stop_self();
        }
        let start = now_ns();
        let read = match register.as_mut() {
            Some(r) => r.read(fence)?,
            None => None,
        };
        let read_ret = now_ns();
        if pause && !paused.is_multiple_of(2) {
            std::thread::sleep(work / 2);
            resumed = stop_self();
        }
        let fired = g.lost().recv_timeout(work);
        let mut lost = fired == Err(RecvTimeoutError::Disconnected) || !g.is_held();
        // The holder writes even when told, so that the fences are put to
        // the test; nothing when its read was refused.
        let write_call = now_ns();
        let written = match (register.as_mut(), read) {
            (Some(r), Some(v)) => Some(r.write(fence, v + 1)?),
            _ => None,
        };
        let end = now_ns();
        if pause {
            paused += 1;
            let told = if lost { write_call } else { 0 };
            emit(&format!("victim {fence} {resumed} {told}"))?;
        }
        lost |= g.release() == Err(Error::Lost);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let ahead = wall - now_ns() as i128;
        skew = (skew.0.min(ahead), skew.1.max(ahead));
        let hold = Hold {
            fence,
            start,
            end,
            lost,
            lost_at: if lost { end } else { 0 },
        };
        let mut out = String::new();
        if kind == "rw" {
            out.push_str(if writes { "W " } else { "R " });
        }
        out.push_str(&hold.line());
        if register.is_some() {
            let visit = register::Visit {
                read_ret,
                read,
                write_call: if written.is_some() { write_call } else { 0 },
                written,
                thread,
            };
            out.push(' ');
            out.push_str(&visit.fields());
        }
        emit(&out)?;
        if rests && n.is_multiple_of(4) {
            // Part of the workload, not synchronisation.
            std::thread::sleep(Duration::from_millis(120));
        }
    }
    if skew.0 <= skew.1 {
        emit(&format!(
            "clock {} {}",
            skew.0 / 1_000_000,
            skew.1 / 1_000_000
        ))?;
    }
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

/// Threads per worker process.
const WORKER_THREADS: usize = 2;

/// The mutant the workers run with (`--mutant`), if any.
static MUTANT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Starts `n` workers on `kind` against `urls` for `secs` seconds.
/// `env` is added to each worker's environment.
fn spawn_workers(
    urls: &[String],
    n: usize,
    secs: u64,
    kind: Kind,
    env: &[(String, String)],
) -> Result<Workers, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let stop_at = now_ns() + u128::from(secs) * 1_000_000_000;
    let lines: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let mut workers = Workers {
        children: Vec::new(),
        readers: Vec::new(),
        lines: Arc::clone(&lines),
    };
    for _ in 0..n {
        let mut cmd = Command::new(&exe);
        if let Some(name) = MUTANT.get() {
            cmd.env("DISTLOCK_MUTANT", name);
        }
        let mut child = cmd
            .arg("--worker")
            .arg(stop_at.to_string())
            .arg(WORKER_THREADS.to_string())
            .args(urls)
            .env(KIND_VAR, kind.var())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (pid, stdout) = (child.id(), child.stdout.take().ok_or("no worker stdout")?);
        let lines = Arc::clone(&lines);
        workers.readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((pid, line));
            }
        }));
        workers.children.push(child);
    }
    Ok(workers)
}

/// Running worker processes, and the lines they printed so far (each with
/// its worker's pid), read as they come.
struct Workers {
    children: Vec<Child>,
    readers: Vec<std::thread::JoinHandle<()>>,
    lines: Arc<Mutex<Vec<(u32, String)>>>,
}

impl Workers {
    /// The workers' pids.
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Tells every worker to stop after its current hold.
    fn stop(&self) {
        for pid in self.pids() {
            signal(pid, libc::SIGUSR2);
        }
    }

    /// Holds recorded so far.
    fn holds_so_far(&self) -> usize {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|(_, l)| l.starts_with(|c: char| c.is_ascii_digit() || c == 'W' || c == 'R'))
            .count()
    }

    /// A copy of the lines so far.
    fn snapshot(&self) -> Vec<(u32, String)> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for every worker to exit: every line they printed.
    fn wait(self) -> Result<Vec<(u32, String)>, String> {
        for mut child in self.children {
            let status = child.wait().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("a worker failed: {status}"));
            }
        }
        for reader in self.readers {
            reader.join().map_err(|_| "a reader thread panicked")?;
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(lines)
    }
}

/// Blocks until worker `pid` stops itself (true) or exits (false), leaving
/// either state for a later wait to collect.
fn stopped(pid: u32) -> bool {
    // SAFETY: waitid(2) writes only into `info`, a zeroed siginfo_t we own;
    // the pid is a child of this process.
    #[allow(unsafe_code)]
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT;
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) == 0
            && info.si_code == libc::CLD_STOPPED
    }
}

/// Waits for the workers: what they recorded, under `faults`; and what
/// the fenced register holds at the end, if the round had one.
fn collect(
    workers: Workers,
    faults: Schedule,
    kind: Kind,
    register: Option<&RedisServer>,
) -> Result<Tally, String> {
    let lines = workers.wait()?;
    let mut t = parse(&lines, faults, kind);
    t.register_value = match register {
        Some(server) => {
            let value: Option<u64> = redis::cmd("HGET")
                .arg("safety-register")
                .arg("value")
                .query(&mut server.conn())
                .map_err(|e| format!("the register: {e}"))?;
            Some(value.unwrap_or(0))
        }
        None => None,
    };
    Ok(t)
}

/// What the workers' `lines` (each with its worker's pid) record.
fn parse(lines: &[(u32, String)], faults: Schedule, kind: Kind) -> Tally {
    let (mut holds, mut victims, mut threads, mut fds) = (Vec::new(), Vec::new(), 0, 0);
    let (mut writes, mut visits, mut pids) = (Vec::new(), Vec::new(), Vec::new());
    let mut skew = (i64::MAX, i64::MIN);
    let mut lingered = 0;
    for (pid, line) in lines {
        let pid = *pid;
        {
            if let Some(rest) = line.strip_prefix("leaks ") {
                let mut f = rest.split(' ').map(|x| x.parse::<i64>().unwrap_or(0));
                threads += f.next().unwrap_or(0);
                fds += f.next().unwrap_or(0);
            } else if let Some(n) = line.strip_prefix("lingered ") {
                lingered += n.parse::<u64>().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("clock ") {
                let mut f = rest.split(' ').map(|x| x.parse::<i64>().unwrap_or(0));
                skew.0 = skew.0.min(f.next().unwrap_or(0));
                skew.1 = skew.1.max(f.next().unwrap_or(0));
            } else if let Some(rest) = line.strip_prefix("victim ") {
                let f: Vec<u128> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [fence, resumed, told] = f[..] {
                    victims.push(Victim {
                        fence: fence as u64,
                        resumed,
                        told,
                    });
                }
            } else if let Some((role, rest)) =
                line.split_once(' ').filter(|(r, _)| *r == "W" || *r == "R")
            {
                if let Some(h) = Hold::parse(rest) {
                    holds.push(h);
                    writes.push(role == "W");
                    visits.push(None);
                    pids.push(pid);
                }
            } else if let Some(h) = Hold::parse(line) {
                holds.push(h);
                writes.push(true);
                visits.push(register::Visit::parse(line));
                pids.push(pid);
            }
        }
    }
    Tally {
        holds,
        writes,
        visits,
        pids,
        kind,
        victims,
        faults,
        thread_leaks: threads,
        fd_leaks: fds,
        wall_moved_ms: if skew.0 <= skew.1 { skew.1 - skew.0 } else { 0 },
        register_value: None,
        preconditions: Vec::new(),
        lingered,
    }
}

/// One injected fault: when it began and when it was lifted ([`now_ns`];
/// the same moment for one-off faults such as a cut).
#[derive(Clone)]
struct Fault {
    name: &'static str,
    at: u128,
    lifted: u128,
}

/// The faults of a round, in the order injected.
#[derive(Default, Clone)]
struct Schedule(Vec<Fault>);

impl Schedule {
    /// Starts fault `name` now; `lift` ends it.
    fn begin(&mut self, name: &'static str) {
        let at = now_ns();
        self.0.push(Fault {
            name,
            at,
            lifted: at,
        });
    }

    /// The latest fault is over.
    fn lift(&mut self) {
        if let Some(f) = self.0.last_mut() {
            f.lifted = now_ns();
        }
    }

    /// The latest fault that began at or before `t`.
    fn before(&self, t: u128) -> Option<&Fault> {
        self.0.iter().filter(|f| f.at <= t).max_by_key(|f| f.at)
    }
}

struct Tally {
    holds: Vec<Hold>,
    /// Per hold: whether it excluded every other (all but read holds).
    writes: Vec<bool>,
    /// Per hold: what it did to the fenced register (plain-lock rounds).
    visits: Vec<Option<register::Visit>>,
    /// Per hold: the worker process.
    pids: Vec<u32>,
    /// How far the workers' wall clocks moved against [`now_ns`] (ms).
    wall_moved_ms: i64,
    /// The register's value at the end (plain-lock rounds).
    register_value: Option<u64>,
    /// What a round checks of its own fault (that it took effect).
    preconditions: Vec<(&'static str, bool)>,
    kind: Kind,
    victims: Vec<Victim>,
    faults: Schedule,
    thread_leaks: i64,
    fd_leaks: i64,
    /// Acquisitions the workers were granted from a lock they lingered on.
    lingered: u64,
}

impl Tally {
    /// Whether `h` is the hold of a paused holder.
    fn victim(&self, h: &Hold) -> bool {
        self.victims.iter().any(|v| v.fence == h.fence)
    }

    /// What excuses an overlap whose stale holder was told only after the
    /// newer hold began, if anything: only what no lease can warn of in
    /// time, the server losing the lock (its data, or its clock jumping
    /// past the lease), or the paused holder itself (not the holds its
    /// process went on to after it resumed). The fault's name.
    fn excuse(&self, stale: &Hold, newer: &Hold) -> Option<&'static str> {
        if self.victim(stale) {
            return Some(PAUSED_HOLDER);
        }
        self.faults
            .0
            .iter()
            .filter(|f| {
                forgets(f.name) && f.at <= newer.start && f.lifted + TTL.as_nanos() >= stale.start
            })
            .map(|f| f.name)
            .next_back()
    }

    /// The oracle's view of every plain-lock hold: its register accesses,
    /// marked excused if its holder was told and a fault no lease foresees
    /// reaches it (the rule of [`Tally::excuse`], per hold).
    fn entries(&self) -> Vec<oracle::Entry<'_>> {
        self.holds
            .iter()
            .zip(&self.visits)
            .zip(&self.pids)
            .filter_map(|((hold, visit), pid)| {
                let visit = visit.as_ref()?;
                let excused = hold.lost
                    && (self.victim(hold)
                        || self.faults.0.iter().any(|f| {
                            forgets(f.name)
                                && f.at <= hold.end
                                && f.lifted + TTL.as_nanos() >= hold.start
                        }));
                Some(oracle::Entry {
                    hold,
                    visit,
                    pid: *pid,
                    excused,
                })
            })
            .collect()
    }

    /// Whether both checkers already fail these (partial) records on
    /// mutual exclusion alone: an undetected overlap, a fence regression or
    /// a late warning, and a history porcupine proves not linearizable.
    fn caught(&self, oracle: &oracle::Oracle) -> Result<bool, String> {
        let r = check(self.holds.clone());
        let ours = r.overlaps_undetected > 0
            || r.fence_regressions > 0
            || told_late(&self.holds, &|s, n| self.excuse(s, n).is_some()).0 > 0;
        Ok(ours && oracle.check("checkpoint", &self.entries(), None)?.failed())
    }
}

/// When a round ends.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// After its fault schedule.
    Schedule,
    /// As soon as both checkers fail it, looked at after each fault (the
    /// mutation rounds); else after its schedule.
    Caught,
    /// Once the workers made this many acquisitions, looked at after each
    /// fault (the soak); else after its schedule.
    Acquisitions(usize),
}

/// How a round runs beyond its faults.
#[derive(Clone, Copy)]
struct Pace<'a> {
    /// Time with no fault after each cycle of faults.
    quiet: Duration,
    /// The workers' mix of holds ([`HOLDS_VAR`]), if not the usual.
    holds: Option<&'static str>,
    /// How long the workers linger on a released lock ([`LINGER_VAR`]),
    /// if they do.
    linger: Option<Duration>,
    until: Until,
    oracle: &'a oracle::Oracle,
}

impl Pace<'_> {
    /// The CI and long profiles' pace: the whole schedule, no quiet time.
    fn full(oracle: &oracle::Oracle) -> Pace<'_> {
        Pace {
            quiet: Duration::ZERO,
            holds: None,
            linger: None,
            until: Until::Schedule,
            oracle,
        }
    }

    /// The environment of a round's workers: `env` and the mix of holds.
    fn env(&self, mut env: Vec<(String, String)>) -> Vec<(String, String)> {
        if let Some(mix) = self.holds {
            env.push((HOLDS_VAR.to_string(), mix.to_string()));
        }
        if let Some(linger) = self.linger {
            env.push((LINGER_VAR.to_string(), linger.as_millis().to_string()));
        }
        env
    }

    /// Whether the round can end now (then the workers are told to stop).
    fn over(&self, workers: &Workers, faults: &Schedule, kind: Kind) -> Result<bool, String> {
        let over = match self.until {
            Until::Schedule => false,
            Until::Acquisitions(n) => workers.holds_so_far() >= n,
            Until::Caught => {
                parse(&workers.snapshot(), faults.clone(), kind).caught(self.oracle)?
            }
        };
        if over {
            workers.stop();
        }
        Ok(over)
    }
}

/// The fenced register of a plain-lock round (a redis-server of its own,
/// which no fault touches) and the environment that names it to the
/// workers; nothing for the other kinds, whose holds share the lock.
fn register_for(kind: Kind) -> (Option<RedisServer>, Vec<(String, String)>) {
    if kind != Kind::Plain {
        return (None, Vec::new());
    }
    let server = RedisServer::start();
    let env = vec![(register::REGISTER_VAR.to_string(), server.url())];
    (Some(server), env)
}

/// The single-node round: workers on `kind` through a proxy, faults in turn.
/// `pace` says when it ends and how much quiet time follows each cycle.
fn single_node_round(workers: usize, rounds: u32, kind: Kind, pace: Pace) -> Result<Tally, String> {
    let mut server = RedisServer::start();
    let proxy = TcpProxy::start(server.port);
    // About 11 s of faults per round, then time to recover.
    let secs = 6 + u64::from(rounds) * (13 + pace.quiet.as_secs());
    let (register, env) = register_for(kind);
    let children = spawn_workers(&[proxy.url()], workers, secs, kind, &pace.env(env))?;
    let pids = children.pids();
    let mut faults = Schedule::default();
    let pause = |d: Duration| std::thread::sleep(d);
    let over = |faults: &Schedule| pace.over(&children, faults, kind);
    // The schedule of faults is the suite's input, not synchronisation.
    pause(Duration::from_secs(2));
    for round in 0..rounds {
        faults.begin("redis killed and restarted empty");
        server.restart();
        faults.lift();
        pause(Duration::from_millis(1500));
        if over(&faults)? {
            break;
        }
        faults.begin("redis paused beyond the ttl");
        signal(server.pid(), libc::SIGSTOP);
        pause(TTL * 2);
        signal(server.pid(), libc::SIGCONT);
        faults.lift();
        pause(Duration::from_millis(1500));
        if over(&faults)? {
            break;
        }
        faults.begin("latency 30 ms");
        proxy.set_mode(Mode::Delay(Duration::from_millis(30)));
        pause(Duration::from_secs(1));
        proxy.set_mode(Mode::Pass);
        faults.lift();
        faults.begin("connections cut");
        proxy.cut_all();
        pause(Duration::from_millis(500));
        faults.begin("black hole");
        proxy.set_mode(Mode::BlackHole);
        proxy.cut_all();
        pause(Duration::from_secs(1));
        proxy.set_mode(Mode::Pass);
        proxy.cut_all();
        faults.lift();
        pause(Duration::from_millis(1000));
        if over(&faults)? {
            break;
        }
        pause_a_holder(&mut faults, pids[round as usize % pids.len()]);
        pause(Duration::from_millis(1500));
        if over(&faults)? {
            break;
        }
        pause(pace.quiet);
    }
    let mut tally = collect(children, faults, kind, register.as_ref())?;
    if pace.linger.is_some() {
        tally
            .preconditions
            .push(("the workers took lingering locks", tally.lingered > 0));
    }
    Ok(tally)
}

/// The Redlock round: five nodes, two killed and later restarted empty.
/// Worker `victim` stops itself at its next hold (so that a holder is what
/// gets paused); resumed after twice the TTL. Nothing if it exits first.
fn pause_a_holder(faults: &mut Schedule, victim: u32) {
    pause_a_holder_for(faults, victim, TTL * 2);
}

/// [`pause_a_holder`], resumed after `pause`.
fn pause_a_holder_for(faults: &mut Schedule, victim: u32, pause: Duration) {
    signal(victim, libc::SIGUSR1);
    if stopped(victim) {
        faults.begin(PAUSED_HOLDER);
        std::thread::sleep(pause);
        signal(victim, libc::SIGCONT);
        faults.lift();
    }
}

/// The Redlock rounds: five nodes; in each round two are killed and later
/// restarted empty, a third is restarted empty, one is paused beyond the
/// TTL, and a holder is paused. The nodes picked rotate.
fn redlock_round(workers: usize, rounds: u32, pace: Pace) -> Result<Tally, String> {
    let mut nodes: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let (register, env) = register_for(Kind::Plain);
    let secs = 4 + u64::from(rounds) * (10 + pace.quiet.as_secs());
    let children = spawn_workers(&urls, workers, secs, Kind::Plain, &pace.env(env))?;
    let pids = children.pids();
    let over = |faults: &Schedule| pace.over(&children, faults, Kind::Plain);
    let mut faults = Schedule::default();
    let pause = |d: Duration| std::thread::sleep(d);
    // The schedule of faults is the suite's input, not synchronisation.
    pause(Duration::from_secs(2));
    for round in 0..rounds as usize {
        let [a, b, c] = [round % 5, (round + 1) % 5, (round + 2) % 5];
        faults.begin("redlock: two of five nodes killed");
        nodes[a].stop();
        nodes[b].stop();
        pause(Duration::from_secs(2));
        faults.begin("redlock: nodes restarted empty");
        nodes[a].restart();
        nodes[b].restart();
        faults.lift();
        pause(Duration::from_secs(1));
        if over(&faults)? {
            break;
        }
        faults.begin("redlock: a third node restarted empty");
        nodes[c].restart();
        faults.lift();
        pause(Duration::from_secs(1));
        faults.begin("redlock: a node paused beyond the ttl");
        signal(nodes[c].pid(), libc::SIGSTOP);
        pause(TTL * 2);
        signal(nodes[c].pid(), libc::SIGCONT);
        faults.lift();
        pause(Duration::from_secs(1));
        if over(&faults)? {
            break;
        }
        pause_a_holder(&mut faults, pids[round % pids.len()]);
        pause(Duration::from_millis(1500));
        if over(&faults)? {
            break;
        }
        pause(pace.quiet);
    }
    collect(children, faults, Kind::Plain, register.as_ref())
}

/// The etcd rounds: a three-member cluster on loopback; in each round the
/// leader is killed (and restarted with its data once a new one leads), a
/// follower and then the leader are paused beyond the TTL, and a holder is
/// paused beyond the server's lease (whole seconds, expiries checked every
/// 500 ms).
fn etcd_round(workers: usize, rounds: u32, pace: Pace) -> Result<Tally, String> {
    let mut cluster = distlock_testkit::EtcdCluster::start();
    let (register, env) = register_for(Kind::Plain);
    // Time enough for the schedule (some 12 s a round, finding the leader
    // included); the workers are stopped when it ends.
    let secs = 4 + u64::from(rounds) * (15 + pace.quiet.as_secs());
    let children = spawn_workers(&[cluster.url()], workers, secs, Kind::Plain, &pace.env(env))?;
    let pids = children.pids();
    let over = |faults: &Schedule| pace.over(&children, faults, Kind::Plain);
    let mut faults = Schedule::default();
    let pause = |d: Duration| std::thread::sleep(d);
    // The schedule of faults is the suite's input, not synchronisation.
    pause(Duration::from_secs(2));
    for round in 0..rounds as usize {
        let leader = cluster.leader().unwrap_or(round % 3);
        faults.begin("etcd: the leader killed");
        cluster.members[leader].stop();
        pause(Duration::from_secs(2));
        faults.begin("etcd: the old leader restarted");
        cluster.members[leader].restart();
        faults.lift();
        pause(Duration::from_secs(1));
        let leader = cluster.leader().unwrap_or((leader + 1) % 3);
        let mut pause_member = |name: &'static str, member: usize| {
            faults.begin(name);
            cluster.members[member].pause();
            pause(TTL * 2);
            cluster.members[member].resume();
            faults.lift();
            pause(Duration::from_secs(1));
        };
        pause_member("etcd: a follower paused beyond the ttl", (leader + 1) % 3);
        pause_member(ETCD_LEADER_PAUSED, leader);
        if over(&faults)? {
            break;
        }
        // etcd keeps the lease whole seconds (600 ms: 1 s) and its leader
        // looks for expired leases every 500 ms: pause the holder past
        // that, so that another holder takes over before it resumes.
        pause_a_holder_for(
            &mut faults,
            pids[round % pids.len()],
            Duration::from_millis(2500),
        );
        pause(Duration::from_millis(1500));
        if over(&faults)? {
            break;
        }
        pause(pace.quiet);
    }
    children.stop();
    collect(children, faults, Kind::Plain, register.as_ref())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .copied()
        .unwrap_or(0.0)
}

/// `p50 … p90 … max …` of `ms`, sorted.
fn spread(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} p90 {:.0} max {:.0}",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        ms.last().copied().unwrap_or(0.0)
    )
}

fn ms(ns: u128) -> f64 {
    ns as f64 / 1e6
}

/// Prints the figures of one round; what failed (nothing if it passed).
/// What both checkers said of one round.
struct Verdicts {
    /// The checks of the suite's own checker that failed.
    ours: Vec<&'static str>,
    /// Porcupine's verdict, on plain-lock rounds.
    oracle: Option<oracle::Verdict>,
}

impl Verdicts {
    /// Both passed.
    fn passed(&self) -> bool {
        self.ours.is_empty() && self.oracle.as_ref().is_none_or(oracle::Verdict::passed)
    }

    /// Both failed (a mutant is caught only if it is caught by both).
    fn both_failed(&self) -> bool {
        !self.ours.is_empty() && self.oracle.as_ref().is_some_and(oracle::Verdict::failed)
    }

    /// The two verdicts are the same.
    fn agree(&self) -> bool {
        self.passed() || self.both_failed() || (self.oracle.is_none() && !self.ours.is_empty())
    }
}

/// Faults after which the server no longer knows a held lock, so that no
/// lease can warn its holder in time: its data lost, or its own clock
/// jumping past the lease.
fn forgets(fault: &str) -> bool {
    fault.contains("restarted empty")
        || fault.contains("killed")
        || fault == clock::SERVER_JUMP
        || fault == ETCD_LEADER_PAUSED
}

/// Prints the figures of one round and runs the oracle on its register
/// history (whose file is kept if the oracle's verdict is not
/// `expect_pass`).
fn report(
    name: &str,
    t: &Tally,
    oracle: &oracle::Oracle,
    expect_pass: bool,
) -> Result<Verdicts, String> {
    let r = match t.kind {
        Kind::Plain => check(t.holds.clone()),
        Kind::ReadWrite => check_rw(
            t.holds
                .iter()
                .copied()
                .zip(t.writes.iter().copied())
                .collect(),
        ),
        Kind::Semaphore => check_semaphore(t.holds.clone(), PERMITS as usize),
    };
    let faults = &t.faults.0;
    // A fault is survived if holds were completed after it.
    let last_start = t.holds.iter().map(|h| h.start).max().unwrap_or(0);
    let survived = faults.iter().filter(|f| f.at < last_start).count();
    // Loss-detection latency: from the fault before each loss reported to
    // that loss, measured from the fault's start and from its end.
    let losses: Vec<(&Fault, u128)> = t
        .holds
        .iter()
        .filter(|h| h.lost)
        .filter_map(|h| Some((t.faults.before(h.lost_at)?, h.lost_at)))
        .collect();
    println!("== {name}");
    println!("acquisitions {}", r.holds);
    if t.lingered > 0 {
        println!("of them granted from a lingering lock {}", t.lingered);
    }
    println!("undetected_overlaps {} (must be 0)", r.overlaps_undetected);
    for (a, b) in &r.examples {
        let fault = t.faults.before(b.start);
        println!(
            "  overlap: {a:?} and {b:?}, {} us apart; last fault before: {:?}",
            (a.end - b.start) / 1000,
            fault.map(|f| (f.name, (b.start - f.at) / 1_000_000))
        );
    }
    println!("fence_regressions {} (must be 0)", r.fence_regressions);
    // Only what no lease can warn of in time excuses a late warning: the
    // server losing the lock (its data, or its clock jumping past the
    // lease), or the paused holder itself (not the holds its process went
    // on to after it resumed). Each excused overlap is put down to the
    // fault that excuses it.
    let attributed = std::cell::RefCell::new(std::collections::BTreeMap::<&str, usize>::new());
    let excused = |stale: &Hold, newer: &Hold| {
        let by = t.excuse(stale, newer);
        if let Some(fault) = by {
            *attributed.borrow_mut().entry(fault).or_default() += 1;
        }
        by.is_some()
    };
    // Shared holds (readers, permits) may overlap: the late-warning rule is
    // the plain lock's.
    let (late, late_examples) = if t.kind == Kind::Plain {
        told_late(&t.holds, &excused)
    } else {
        (0, Vec::new())
    };
    println!("told_late_overlaps {late} (must be 0)");
    for (stale, newer) in &late_examples {
        println!(
            "  told late: {stale:?}, {} us after {newer:?} began",
            (stale.lost_at - newer.start) / 1000
        );
    }
    let attributed = attributed.into_inner();
    println!(
        "excused_overlaps {} (stale holder told; the fault no lease foresees: {})",
        attributed.values().sum::<usize>(),
        if attributed.is_empty() {
            "none".to_string()
        } else {
            attributed
                .iter()
                .map(|(f, n)| format!("{f}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!("detected_and_signalled_overlaps {}", r.overlaps_detected);
    println!("signalled_losses {}", r.signalled_losses);
    println!("faults_survived {} of {}", survived, faults.len());
    println!(
        "loss_detection_ms {}",
        spread(losses.iter().map(|(f, at)| ms(at - f.at)).collect())
    );
    let mut kinds: Vec<&str> = faults.iter().map(|f| f.name).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let of_kind: Vec<_> = losses.iter().filter(|(f, _)| f.name == kind).collect();
        println!(
            "  {kind}: {} times, {} losses told; ms from its start {}, from its end {}",
            faults.iter().filter(|f| f.name == kind).count(),
            of_kind.len(),
            spread(of_kind.iter().map(|(f, at)| ms(at - f.at)).collect()),
            spread(
                of_kind
                    .iter()
                    .map(|(f, at)| ms(at.saturating_sub(f.lifted)))
                    .collect()
            ),
        );
    }
    // Each paused holder must be told as it resumes, and its fence must be
    // stale: another process took the lock, with a larger fence, meanwhile.
    let told = t.victims.iter().filter(|v| v.told != 0).count();
    let stale = t
        .victims
        .iter()
        .filter(|v| {
            t.holds
                .iter()
                .any(|h| h.fence > v.fence && h.start < v.resumed)
        })
        .count();
    let paused = faults.iter().filter(|f| f.name == PAUSED_HOLDER).count();
    println!(
        "paused_holders {} of {paused} pauses: told on resume {told}, fence stale {stale} (all must be); ms from resume to told {}",
        t.victims.len(),
        spread(
            t.victims
                .iter()
                .filter(|v| v.told != 0)
                .map(|v| ms(v.told.saturating_sub(v.resumed)))
                .collect()
        )
    );
    println!(
        "leaks threads {} fds {} (must be 0)",
        t.thread_leaks, t.fd_leaks
    );
    let mut checks = vec![
        ("undetected overlaps", r.overlaps_undetected == 0),
        ("fence regressions", r.fence_regressions == 0),
        ("losses told late", late == 0),
        (
            "paused holders not told on resume",
            t.victims.len() == paused && told == paused,
        ),
        ("paused holders' fences not stale", stale == paused),
        ("faults not survived", survived == faults.len()),
        ("leaks", t.thread_leaks == 0 && t.fd_leaks == 0),
        ("no acquisitions", r.holds > 0),
    ];
    checks.extend(t.preconditions.iter().copied());
    let ours: Vec<&'static str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| *what)
        .collect();
    // The oracle: every plain-lock hold's register accesses, each hold
    // marked excused if its holder was told and a fault no lease foresees
    // (as above, per hold) reaches it.
    let entries = t.entries();
    let verdict = if entries.is_empty() {
        None
    } else {
        let accepted = entries
            .iter()
            .filter(|e| e.visit.written == Some(true))
            .count();
        let refused = |told: bool| {
            entries
                .iter()
                .filter(|e| e.hold.lost == told)
                .filter(|e| e.visit.read.is_none() || e.visit.written == Some(false))
                .count()
        };
        println!(
            "register: value {} after {accepted} accepted increments; refused the stale accesses of {} told holders and of {} never told",
            t.register_value.unwrap_or(0),
            refused(true),
            refused(false),
        );
        let v = oracle.check(name, &entries, Some(expect_pass))?;
        println!("oracle (porcupine): {}", v.text());
        Some(v)
    };
    Ok(Verdicts {
        ours,
        oracle: verdict,
    })
}

/// Which run: the CI profile, the long one, or the soak (scaled).
#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Ci,
    Long,
    Soak(f64),
    /// The clock rounds alone.
    Clock,
    /// The etcd rounds alone.
    Etcd,
}

/// The soak profile at scale 1, per backend: the acquisitions it stops at,
/// and the most fault cycles it runs to get there (a bound on its time:
/// some 18 s a cycle, single node or Redlock). etcd (a consensus write per
/// acquisition, some 50 a second here) runs a few cycles only;
/// single-node Redis and Redlock make up the million.
const SOAK: [(usize, u32); 3] = [(650_000, 70), (350_000, 70), (0, 6)];
/// The linger of the lingering round's workers: longer than a hold, so
/// that stays overlap with faults, announcements and other threads.
const LINGER: Duration = Duration::from_millis(100);
/// Quiet time after each fault cycle in the soak: the workers contend with
/// no fault for a while, as a busy service mostly does.
const SOAK_QUIET: Duration = Duration::from_secs(5);

fn run(profile: Profile) -> Result<bool, String> {
    let workers = 8;
    let oracle = oracle::Oracle::build()?;
    let rounds = std::env::var("DISTLOCK_SAFETY_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if profile == Profile::Long { 30 } else { 1 });
    let mut results: Vec<(String, usize, Verdicts)> = Vec::new();
    let mut record = |name: String, t: Tally| -> Result<(), String> {
        let v = report(&name, &t, &oracle, true)?;
        results.push((name, t.holds.len(), v));
        Ok(())
    };
    let full = Pace::full(&oracle);
    // Built first, so that a missing shim fails the run at once.
    let shim = match profile {
        Profile::Soak(_) | Profile::Etcd => None,
        _ => Some(clock::Shim::build()?),
    };
    if let Profile::Soak(scale) = profile {
        // Few long holds (see `holds`): the million is of acquisitions.
        let [single, redlock, etcd] = SOAK.map(|(n, _)| Pace {
            quiet: SOAK_QUIET,
            holds: Some("soak"),
            linger: None,
            until: Until::Acquisitions((n as f64 * scale) as usize),
            oracle: &oracle,
        });
        let cycles = SOAK.map(|(_, c)| ((f64::from(c) * scale).ceil() as u32).max(1));
        let etcd = Pace {
            until: Until::Schedule,
            ..etcd
        };
        record(
            "single node (soak)".into(),
            single_node_round(workers, cycles[0], Kind::Plain, single)?,
        )?;
        record(
            "redlock, 5 nodes (soak)".into(),
            redlock_round(workers, cycles[1], redlock)?,
        )?;
        record(
            "etcd, 3 members (soak)".into(),
            etcd_round(workers, cycles[2], etcd)?,
        )?;
    } else if profile == Profile::Etcd {
        record("etcd, 3 members".into(), etcd_round(workers, rounds, full)?)?;
    } else if profile != Profile::Clock {
        record(
            "single node".into(),
            single_node_round(workers, rounds, Kind::Plain, full)?,
        )?;
        let lingering = Pace {
            linger: Some(LINGER),
            ..full
        };
        record(
            format!(
                "single node, workers linger {} ms on a release",
                LINGER.as_millis()
            ),
            single_node_round(workers, rounds.div_ceil(3), Kind::Plain, lingering)?,
        )?;
        record(
            "redlock, 5 nodes".into(),
            redlock_round(workers, rounds.div_ceil(3), full)?,
        )?;
        record(
            "etcd, 3 members".into(),
            etcd_round(workers, rounds.div_ceil(3), full)?,
        )?;
        record(
            "read-write lock, single node (1 hold in 4 a write)".into(),
            single_node_round(workers, rounds.div_ceil(3), Kind::ReadWrite, full)?,
        )?;
        record(
            format!("semaphore of {PERMITS}, single node"),
            single_node_round(workers, rounds.div_ceil(3), Kind::Semaphore, full)?,
        )?;
    }
    if let Some(shim) = &shim {
        record(
            "clock: holders' wall clocks jump".into(),
            clock::holder_clock_round(workers, shim)?,
        )?;
        record(
            "clock: redis's wall clock jumps forward".into(),
            clock::server_clock_round(workers, shim)?,
        )?;
    }
    let total: usize = results.iter().map(|(_, n, _)| n).sum();
    println!("== summary");
    for (name, n, v) in &results {
        println!(
            "{name}: {n} acquisitions; our checker {}; oracle {}",
            if v.ours.is_empty() {
                "PASS".to_string()
            } else {
                format!("FAIL ({})", v.ours.join(", "))
            },
            match &v.oracle {
                None => "not run (holds share the lock)",
                Some(o) if o.passed() => "PASS (linearizable)",
                Some(o) if o.failed() => "FAIL (not linearizable)",
                Some(_) => "FAIL (no verdict in time)",
            }
        );
    }
    println!("== total acquisitions {total}");
    let wanted = match profile {
        Profile::Ci | Profile::Clock | Profile::Etcd => 0,
        Profile::Long => 100_000,
        Profile::Soak(scale) => (1_000_000.0 * scale) as usize,
    };
    if total < wanted {
        println!("this profile wants at least {wanted} acquisitions");
        return Ok(false);
    }
    let agree = results.iter().all(|(_, _, v)| v.agree());
    if !agree {
        println!("the two checkers DISAGREE on a round");
    }
    let ok = results.iter().all(|(_, _, v)| v.passed());
    println!("safety suite: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

/// The mutants of `src/mutant.rs`, by the names `DISTLOCK_MUTANT` takes.
const MUTANTS: [&str; 6] = [
    "release-no-compare",
    "no-renewal",
    "long-lease",
    "blind-retry",
    "fence-resets",
    "stale-handoff",
];

/// Mutation rounds: one single-node round for each mutant named (all of
/// them if none is), whose workers run that broken lock. Passes only if
/// the suite fails every one of them.
fn mutants(names: &[String]) -> Result<bool, String> {
    let chosen: Vec<&'static str> = if names.is_empty() {
        MUTANTS.to_vec()
    } else {
        names
            .iter()
            .map(|n| {
                MUTANTS
                    .iter()
                    .copied()
                    .find(|m| m == n)
                    .ok_or_else(|| format!("no mutant {n:?}; there are {MUTANTS:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    // Built once here; the rounds' processes inherit it.
    let _oracle = oracle::Oracle::build()?;
    let mut survivors = Vec::new();
    let mut lines = Vec::new();
    for name in chosen {
        // Each round is its own process: the workers read the mutant from
        // their environment once.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .args(["--mutant-round", name])
            .stdout(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        let caught = text
            .lines()
            .find_map(|l| l.strip_prefix("caught by: "))
            .unwrap_or("");
        let by_oracle = text.lines().any(|l| l == "oracle caught it: yes");
        let oracle = if by_oracle {
            "the oracle: not linearizable"
        } else {
            "NOT the oracle"
        };
        if caught.is_empty() || !by_oracle {
            survivors.push(name);
            let ours = if caught.is_empty() {
                "NOT our checker"
            } else {
                caught
            };
            lines.push(format!(
                "mutant {name}: SURVIVED (caught by {ours}; {oracle})"
            ));
        } else {
            lines.push(format!(
                "mutant {name}: caught by {caught}; and by {oracle}"
            ));
        }
    }
    println!("== mutation rounds");
    for l in &lines {
        println!("{l}");
    }
    println!(
        "mutation rounds: {}",
        if survivors.is_empty() {
            "PASS (every mutant caught by both checkers)"
        } else {
            "FAIL"
        }
    );
    Ok(survivors.is_empty())
}

/// One mutation round, run by [`mutants`] in a process of its own.
fn mutant_round(name: &str) -> Result<bool, String> {
    let name: &'static str = MUTANTS
        .iter()
        .copied()
        .find(|m| *m == name)
        .ok_or_else(|| format!("no mutant {name:?}"))?;
    MUTANT.set(name).map_err(|_| "one mutant per process")?;
    let oracle = oracle::Oracle::build()?;
    // The round ends as soon as both checkers fail it.
    let pace = Pace {
        until: Until::Caught,
        ..Pace::full(&oracle)
    };
    let tally = single_node_round(8, 1, Kind::Plain, pace)?;
    let v = report(&format!("mutant {name}"), &tally, &oracle, false)?;
    println!("caught by: {}", v.ours.join(", "));
    println!(
        "oracle caught it: {}",
        if v.oracle.as_ref().is_some_and(oracle::Verdict::failed) {
            "yes"
        } else {
            "no"
        }
    );
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--worker") => {
            let stop_at = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let threads = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            worker(&args[3..], stop_at, threads).map(|()| true)
        }
        Some("--mutants") => mutants(&args[1..]),
        Some("--mutant-round") => mutant_round(args.get(1).map_or("", String::as_str)),
        Some("--long") => run(Profile::Long),
        Some("--soak") => match args.get(1).map(String::as_str) {
            None => run(Profile::Soak(1.0)),
            Some("--scale") => match args.get(2).and_then(|s| s.parse::<f64>().ok()) {
                Some(scale) if scale > 0.0 && scale <= 1.0 => run(Profile::Soak(scale)),
                _ => Err("--soak --scale takes a number in (0, 1]".into()),
            },
            Some(other) => Err(format!("unknown argument {other:?} after --soak")),
        },
        Some("--clock") => run(Profile::Clock),
        Some("--etcd") => run(Profile::Etcd),
        None => run(Profile::Ci),
        Some(other) => Err(format!(
            "unknown argument {other:?} (use --long, --soak [--scale S], --clock, --etcd, --mutants [NAME...] or nothing)"
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
