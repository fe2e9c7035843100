//! The bad input catalogue (issue 8) for the `distlock` command: durations
//! too long for the clock are no limit or a clear usage error, never a
//! panic. The library's own cases are in the root package's
//! `tests/bad_input.rs`.

use distlock_testkit as support;

use redis::Commands;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{dbsize, spawn, RedisServer};

const DISTLOCK: &str = env!("CARGO_BIN_EXE_distlock");

/// Runs `distlock args`, killing it if it takes longer than 20 seconds;
/// returns its exit code and standard error.
fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(DISTLOCK)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

/// Waits at most 20 seconds for `child` (killed, by pid, after that).
fn finish(mut child: std::process::Child) -> (Option<i32>, String) {
    let pid = child.id();
    let mut stderr = child.stderr.take().unwrap();
    let status = spawn(move || child.wait());
    let status = match status.recv_timeout(Duration::from_secs(20)) {
        Ok(s) => s.unwrap(),
        Err(_) => {
            // Our own child, not yet reaped: the pid is still its own.
            support::signal(pid, libc::SIGKILL);
            panic!("distlock {pid} did not finish in 20 s");
        }
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn the_command_takes_timeouts_too_long_for_the_clock_as_no_limit() {
    let server = RedisServer::start();
    let url = server.url();
    for t in ["1e19", "9e18"] {
        let (code, err) = run_cli(&["--url", &url, "--timeout", t, "k", "--", "true"]);
        assert_eq!(code, Some(0), "--timeout {t}: {err}");
    }
    // Past what a Duration holds: a usage error that says so.
    let (code, err) = run_cli(&["--url", &url, "--grace", "1e30", "k", "--", "true"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("too long"), "{err}");
    // An absurd lease: the library's own check, as a usage error.
    let (code, err) = run_cli(&["--url", &url, "--ttl", "1e19", "k", "--", "true"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ttl must be between"), "{err}");
    assert_eq!(dbsize(&server), 1, "the fence counter of `k`, nothing else");
}

#[test]
fn the_command_with_a_grace_too_long_for_the_clock_still_reports_the_loss() {
    let server = RedisServer::start();
    let url = server.url();
    let mut child = Command::new(DISTLOCK)
        .args([
            "--url", &url, "--ttl", "1", "--grace", "1e19", "doomed", "--",
        ])
        .args(["sh", "-c", "echo ready; exec sleep 30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = match line.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line.unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("the command never started");
        }
    };
    assert_eq!(line, "ready\n");
    let deleted: i64 = server.conn().del("distlock:doomed").unwrap();
    assert_eq!(deleted, 1, "held while the command runs");
    // SIGTERM ends `sleep`; SIGKILL is never scheduled.
    let (code, err) = finish(child);
    assert_eq!(code, Some(75), "{err}");
    assert!(err.contains("lost the lock on doomed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
