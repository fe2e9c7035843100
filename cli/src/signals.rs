//! The process-level plumbing of `distlock run`, all through libc: blocking
//! the forwarded signals and receiving them on a thread, sending signals to
//! the command, noticing that the command exited without reaping it, and
//! preparing the command's process before `exec`.
//!
//! This is the only module of the binary with `unsafe` code; each block
//! says why it is sound.
#![allow(unsafe_code)]

use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The signals `distlock` catches: forwarded to the command while it runs,
/// and interrupting the wait for the lock before that.
pub const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Retries of a system call interrupted by a signal before giving up. All
/// caught signals are blocked in every thread, so an interruption is rare.
const EINTR_RETRIES: u32 = 100;

/// The short conventional name of a signal number, for messages.
pub fn name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        other => format!("signal {other}"),
    }
}

/// The set of [`FORWARDED`] signals.
fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, valid when zeroed; sigemptyset and
    // sigaddset only write into the set we own, with valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Caught signals, as they arrive.
pub struct Signals {
    /// Every caught signal number, in order of arrival.
    pub rx: Receiver<libc::c_int>,
    /// Gets a message when a signal arrives: the cancel channel for
    /// `Lock::acquire_cancellable`. Holds at most one message.
    pub cancel: Receiver<()>,
}

impl Signals {
    /// Blocks [`FORWARDED`] in the calling thread and starts a thread that
    /// takes them with `sigwait`.
    ///
    /// Call this from `main` before any other thread exists: threads inherit
    /// the signal mask of their creator, so afterwards no thread of the
    /// process is interrupted by these signals and each one arrives here.
    pub fn start() -> io::Result<Signals> {
        let set = forwarded_set();
        // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is
        // allowed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let (cancel_tx, cancel) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("distlock-signals".into())
            .spawn(move || wait_loop(set, tx, cancel_tx))?;
        Ok(Signals { rx, cancel })
    }
}

/// Body of the signal thread. It ends when nobody listens any more (or
/// `sigwait` fails, which it cannot with a valid set); otherwise it lives as
/// long as the process, one iteration per signal received.
fn wait_loop(set: libc::sigset_t, tx: Sender<libc::c_int>, cancel: Sender<()>) {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid place to write.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            return;
        }
        // The number goes first, so whoever sees the cancellation finds it.
        if tx.send(sig).is_err() {
            return;
        }
        let _ = cancel.try_send(());
    }
}

/// Sends `sig` to the process `pid`.
///
/// Only call this for a child that has not been reaped yet: its pid cannot
/// have been reused, and a zombie just ignores the signal.
pub fn send(pid: u32, sig: libc::c_int) -> io::Result<()> {
    kill(pid, sig, 1)
}

/// kill(2) of `pid`, or with `sign` -1 of the process group `pid`.
fn kill(pid: u32, sig: libc::c_int, sign: libc::pid_t) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(sign * pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where the signals for the command go.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The command's process alone.
    Process(u32),
    /// Every process in the command's process group, whose id is the
    /// command's pid (`--process-group`).
    Group(u32),
}

impl Target {
    /// Sends `sig` (0 only checks that someone is there).
    pub fn send(self, sig: libc::c_int) -> io::Result<()> {
        match self {
            Target::Process(pid) => send(pid, sig),
            Target::Group(pgid) => kill(pgid, sig, -1),
        }
    }

    /// For a group whose leader (the command) has been reaped: whether
    /// any of its processes still runs (zombies waiting for a reaper do
    /// not count). False for a single process.
    pub fn has_others(self) -> bool {
        let Target::Group(pgid) = self else {
            return false;
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return self.send(0).is_ok();
        };
        procs.filter_map(Result::ok).any(|p| {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            // After the parenthesised name: state, ppid, pgrp.
            let mut rest = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace();
            let running = rest.next().is_some_and(|state| !matches!(state, "Z" | "X"));
            running && rest.nth(1).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Process(pid) => write!(f, "{pid}"),
            Target::Group(pgid) => write!(f, "process group {pgid}"),
        }
    }
}

/// A channel that disconnects once the child `pid` has exited (or been
/// killed). A thread waits with `waitid(WNOWAIT)`, which leaves the child a
/// zombie: the caller reaps it with `Child::wait` afterwards, so signals sent
/// until then cannot hit a recycled pid.
pub fn watch_exit(pid: u32) -> io::Result<Receiver<()>> {
    let id = libc::id_t::from(pid);
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("distlock-child".into())
        .spawn(move || {
            for _ in 0..EINTR_RETRIES {
                // SAFETY: siginfo_t is plain data, valid when zeroed, and
                // outlives the call that fills it in.
                let rc = unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
                };
                if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            // Dropping the sender disconnects the channel: "exited".
            drop(tx);
        })?;
    Ok(rx)
}

/// Prepares `cmd` to run with the signals `distlock` blocked unblocked again
/// and, on Linux, with `on_parent_death` (if any) delivered to it should
/// `distlock` die first, e.g. of SIGKILL: the lock then lapses after its TTL,
/// so the command should not go on as if it held it.
pub fn prepare_child(cmd: &mut Command, on_parent_death: Option<libc::c_int>) {
    let set = forwarded_set();
    // SAFETY: captured before the fork, read after it; getpid is always safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (pthread_sigmask, prctl, getppid) on
    // values it owns; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            let rc = libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            #[cfg(target_os = "linux")]
            if let Some(sig) = on_parent_death {
                if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // distlock died between the fork and the prctl: do not start.
                if libc::getppid() != parent {
                    return Err(io::Error::other(
                        "distlock exited before the command started",
                    ));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (on_parent_death, parent);
            Ok(())
        });
    }
}
