//! Clock faults, with the LD_PRELOAD shim of `shared/faults/clockshim.c`
//! (next to the repository, or at `$DISTLOCK_CLOCKSHIM_C`), built with gcc
//! into a scratch directory at run time. The shim adds to each clock of a
//! process an offset in milliseconds that it reads, on every call, from the
//! file an environment variable names (`SHIM_REALTIME_MS` for
//! CLOCK_REALTIME); writing the file jumps the clock of a running process.
//! It never shifts CLOCK_MONOTONIC_RAW, the suite's own clock.
//!
//! Two rounds: the holders' wall clocks jump forward and back while their
//! monotonic and boot clocks run on (leases are measured on the boot clock,
//! so nothing may overlap); and redis-server's own wall clock jumps forward
//! (Redis expires keys by its wall clock, so the held lock is gone at
//! once): the overlaps that follow are the fault's, and the fenced
//! register must refuse the stale holder.

use crate::{
    collect, register_for, spawn_workers, Kind, Schedule, Tally, HOLDS_VAR, RETRY_VAR, TTL,
};
use distlock_testkit::server::RedisServer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The fault of the first round, forward.
pub const HOLDER_FORWARD: &str = "holders' wall clocks jumped forward 60 s";
/// The fault of the first round, back.
pub const HOLDER_BACK: &str = "holders' wall clocks jumped back 120 s";
/// The fault of the second round (one that makes the server forget a held
/// lock: overlaps it causes are excused, and put down to it).
pub const SERVER_JUMP: &str = "redis wall clock jumped forward 60 s";

/// Jumps of the server's clock in its round.
const SERVER_JUMPS: i64 = 6;

/// The built shim, in a scratch directory removed on drop.
pub struct Shim {
    so: PathBuf,
    dir: PathBuf,
}

impl Shim {
    /// Builds the shim with gcc; a clear error if its source or gcc is
    /// missing.
    pub fn build() -> Result<Shim, String> {
        let source = std::env::var_os("DISTLOCK_CLOCKSHIM_C")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/faults/clockshim.c")
            });
        if !source.is_file() {
            return Err(format!(
                "the clock rounds need the clock shim: no {} (the shared/faults directory \
                 beside the repository; or set DISTLOCK_CLOCKSHIM_C to clockshim.c)",
                source.display()
            ));
        }
        let dir = std::env::temp_dir().join(format!("distlock-clockshim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let so = dir.join("clockshim.so");
        let out = Command::new("gcc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&source)
            .output()
            .map_err(|e| format!("cannot run gcc to build {}: {e}", source.display()))?;
        if !out.status.success() {
            return Err(format!(
                "gcc could not build {}: {}",
                source.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Shim { so, dir })
    }

    /// A new clock offset file, at 0, and the environment that puts a
    /// process's CLOCK_REALTIME under it.
    fn wall_clock(&self, name: &str) -> Result<(Offset, Vec<(String, String)>), String> {
        let offset = Offset(self.dir.join(format!("{name}.ms")));
        offset.set(0)?;
        let env = vec![
            ("LD_PRELOAD".to_string(), self.so.display().to_string()),
            (
                "SHIM_REALTIME_MS".to_string(),
                offset.0.display().to_string(),
            ),
        ];
        Ok((offset, env))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A clock offset file.
struct Offset(PathBuf);

impl Offset {
    /// Moves the clocks under this file to `ms` from the true time. The
    /// file is replaced whole (written aside, then renamed), so that the
    /// shim never reads half a number.
    fn set(&self, ms: i64) -> Result<(), String> {
        let aside = self.0.with_extension("new");
        std::fs::write(&aside, ms.to_string())
            .and_then(|()| std::fs::rename(&aside, &self.0))
            .map_err(|e| format!("{}: {e}", self.0.display()))
    }
}

/// Holders' wall clocks jump 60 s forward, then 120 s back, then return,
/// while they contend: deadlines are on the boot clock, so no hold may
/// overlap another, and the workers must have seen their clocks move.
pub fn holder_clock_round(workers: usize, shim: &Shim) -> Result<Tally, String> {
    let server = RedisServer::start();
    let (register, mut env) = register_for(Kind::Plain);
    let (wall, shimmed) = shim.wall_clock("holders")?;
    env.extend(shimmed);
    let children = spawn_workers(&[server.url()], workers, 6, Kind::Plain, &env)?;
    let mut faults = Schedule::default();
    // The schedule of faults is the suite's input, not synchronisation.
    std::thread::sleep(Duration::from_millis(1500));
    faults.begin(HOLDER_FORWARD);
    wall.set(60_000)?;
    std::thread::sleep(Duration::from_millis(1500));
    faults.begin(HOLDER_BACK);
    wall.set(-60_000)?;
    std::thread::sleep(Duration::from_millis(1500));
    wall.set(0)?;
    faults.lift();
    let mut t = collect(children, faults, Kind::Plain, register.as_ref())?;
    println!(
        "holders' wall clocks moved by {} s against the monotonic clock",
        t.wall_moved_ms / 1000
    );
    t.preconditions.push((
        "the holders' wall clocks did not move",
        t.wall_moved_ms >= 110_000,
    ));
    Ok(t)
}

/// redis-server's wall clock jumps forward 60 s, [`SERVER_JUMPS`] times,
/// while workers hold (many of their holds long, so that a jump lands in
/// one): each jump expires the held lock at once. The stale holder must be
/// told, its overlaps are put down to the jump, and the fenced register
/// must refuse it (the oracle's verdict).
pub fn server_clock_round(workers: usize, shim: &Shim) -> Result<Tally, String> {
    let (wall, shimmed) = shim.wall_clock("redis")?;
    let server = RedisServer::start_with_env(&[], &shimmed);
    let (register, mut env) = register_for(Kind::Plain);
    env.push((HOLDS_VAR.to_string(), "long".to_string()));
    // Waiters look every 10 ms, well within the holder's renewal period:
    // one of them takes the lock the server let go before its holder
    // hears, so that the jump makes the overlap it is known for.
    env.push((RETRY_VAR.to_string(), "10".to_string()));
    let secs = 3 + SERVER_JUMPS as u64 * 8 / 10;
    let children = spawn_workers(&[server.url()], workers, secs, Kind::Plain, &env)?;
    let mut faults = Schedule::default();
    let redis_now = || -> Result<Duration, String> {
        let (s, us): (u64, u64) = redis::cmd("TIME")
            .query(&mut server.conn())
            .map_err(|e| format!("TIME: {e}"))?;
        Ok(Duration::from_secs(s) + Duration::from_micros(us))
    };
    let (before, started) = (redis_now()?, Instant::now());
    // The schedule of faults is the suite's input, not synchronisation.
    std::thread::sleep(Duration::from_millis(1500));
    for jump in 1..=SERVER_JUMPS {
        faults.begin(SERVER_JUMP);
        wall.set(jump * 60_000)?;
        std::thread::sleep(Duration::from_millis(800));
    }
    let jumped = redis_now()?.saturating_sub(before + started.elapsed());
    let mut t = collect(children, faults, Kind::Plain, register.as_ref())?;
    println!(
        "redis's wall clock jumped {} s ahead in all; lease {} ms",
        jumped.as_secs(),
        TTL.as_millis()
    );
    t.preconditions.push((
        "redis's wall clock did not jump",
        jumped >= Duration::from_secs(SERVER_JUMPS as u64 * 60 - 5),
    ));
    // Each jump takes the lock from whoever holds it, who must be told.
    let first = t.faults.0.first().map_or(0, |f| f.at);
    let taken = t
        .holds
        .iter()
        .filter(|h| h.lost && h.lost_at >= first)
        .count();
    // And, waiters looking every 10 ms, a newer holder takes over before
    // some stale holder hears: the register must have refused that one.
    let refused = t
        .holds
        .iter()
        .zip(&t.visits)
        .filter(|(h, v)| h.lost && v.is_some_and(|v| v.read.is_none() || v.written == Some(false)))
        .count();
    println!(
        "holders told of a loss after the jumps: {taken}; stale holders the fenced register refused: {refused}"
    );
    t.preconditions
        .push(("the clock jumps took no lock away", taken > 0));
    t.preconditions.push((
        "the clock jumps made no stale holder for the fences to refuse",
        refused > 0,
    ));
    Ok(t)
}
