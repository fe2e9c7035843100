//! What the `distlock` command's tests share: running distlock as a real
//! process and reading its output line by line, scratch directories, and
//! looking at the test servers.
#![allow(dead_code)]

use crossbeam_channel::{Receiver, RecvTimeoutError};
use distlock::Client;
use distlock_testkit::RedisServer;
use redis::Commands;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest any single distlock run in these tests may take before the test
/// kills it and fails.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A running `distlock` with its output arriving line by line.
pub struct Proc {
    /// distlock's pid.
    pub pid: u32,
    /// Gets the exit status once distlock has been reaped.
    exit: Receiver<ExitStatus>,
    /// The exit status, once seen (so Drop does not signal a reaped pid).
    status: Option<ExitStatus>,
    /// Lines of standard output.
    out: Receiver<String>,
    /// Lines of standard error.
    err: Receiver<String>,
    /// distlock's standard input, which the command inherits.
    pub stdin: Option<ChildStdin>,
}

/// Sends every line of `r` on the returned channel, which disconnects at EOF.
pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends `sig` to `pid`, which must exist.
pub fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether `pid` names a live (not zombie) process, from /proc.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

impl Proc {
    /// Starts distlock with `args`, without any of its environment
    /// variables.
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_env(args, &[])
    }

    /// Starts distlock with `args` and extra environment variables.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_distlock"))
            .args(args)
            .env_clear_distlock()
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start distlock");
        let out = lines(child.stdout.take().unwrap());
        let err = lines(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        let pid = child.id();
        let (tx, exit) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().expect("wait for distlock"));
        });
        Proc {
            pid,
            exit,
            status: None,
            out,
            err,
            stdin,
        }
    }

    /// Waits at most `limit` for the exit status; kills and fails after that.
    pub fn wait_for(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        match self.exit.recv_timeout(limit) {
            Ok(s) => {
                self.status = Some(s);
                s
            }
            Err(_) => {
                signal(self.pid, libc::SIGKILL);
                panic!("distlock {} still running after {limit:?}", self.pid);
            }
        }
    }

    /// Waits at most [`LIMIT`] for the exit status.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_for(LIMIT)
    }

    /// The exit code; fails if distlock itself died of a signal.
    pub fn code(&mut self) -> i32 {
        let s = self.wait();
        s.code()
            .unwrap_or_else(|| panic!("distlock died of a signal: {s:?}"))
    }

    /// The first line on `chan` for which `want` holds, within `limit`.
    pub fn line_on(
        chan: &Receiver<String>,
        want: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            match chan.recv_deadline(deadline) {
                Ok(l) if want(&l) => return l,
                Ok(l) => seen.push(l),
                Err(e) => panic!("no expected line ({e:?}); saw {seen:?}"),
            }
        }
    }

    /// The first line of standard output for which `want` holds.
    pub fn stdout_line(&self, want: impl Fn(&str) -> bool) -> String {
        Proc::line_on(&self.out, want, LIMIT)
    }

    /// The first line of standard error for which `want` holds.
    pub fn stderr_line(&self, want: impl Fn(&str) -> bool) -> String {
        Proc::line_on(&self.err, want, LIMIT)
    }

    /// All of an output channel, to EOF, within `LIMIT`.
    pub fn rest(chan: &Receiver<String>) -> String {
        let deadline = Instant::now() + LIMIT;
        let mut all = String::new();
        loop {
            match chan.recv_deadline(deadline) {
                Ok(l) => {
                    all.push_str(&l);
                    all.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => return all,
                Err(RecvTimeoutError::Timeout) => panic!("output still open; so far {all:?}"),
            }
        }
    }

    /// The rest of standard output, to EOF.
    pub fn stdout(&self) -> String {
        Proc::rest(&self.out)
    }

    /// The rest of standard error, to EOF.
    pub fn stderr(&self) -> String {
        Proc::rest(&self.err)
    }
}

impl Drop for Proc {
    /// Kills a distlock that a failed test left running.
    fn drop(&mut self) {
        if self.status.is_none() && self.exit.try_recv().is_err() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Runs distlock to completion: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let mut p = Proc::spawn(args);
    let code = p.code();
    (code, p.stdout(), p.stderr())
}

/// A fresh scratch directory for marker files, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates an empty directory named after this process and `name`.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("distlock-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    /// Removes the directory and what is in it.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A library client on `server` with key prefix `prefix`.
pub fn client(server: &RedisServer, prefix: &str) -> Client {
    Client::builder()
        .url(&server.url())
        .prefix(prefix)
        .build()
        .expect("client")
}

/// Whether `key` exists on the server.
pub fn exists(raw: &mut redis::Connection, key: &str) -> bool {
    raw.exists(key).unwrap()
}

/// The environment variables distlock reads.
pub const VARS: [&str; 10] = [
    "DISTLOCK_URL",
    "DISTLOCK_NODES",
    "DISTLOCK_CLUSTER",
    "DISTLOCK_SENTINELS",
    "DISTLOCK_MASTER",
    "DISTLOCK_TLS_CA",
    "DISTLOCK_TLS_CERT",
    "DISTLOCK_TLS_KEY",
    "DISTLOCK_PASSWORD_FILE",
    "DISTLOCK_PREFIX",
];

/// Removing distlock's own variables from a command's environment, so
/// that the test's environment does not leak into what it checks.
pub trait ClearDistlock {
    /// Removes every one of [`VARS`].
    fn env_clear_distlock(&mut self) -> &mut Self;
}

impl ClearDistlock for Command {
    fn env_clear_distlock(&mut self) -> &mut Self {
        for var in VARS {
            self.env_remove(var);
        }
        self
    }
}

/// Runs distlock to completion with extra environment variables:
/// (exit code, stdout, stderr).
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut p = Proc::spawn_env(args, env);
    let code = p.code();
    (code, p.stdout(), p.stderr())
}
