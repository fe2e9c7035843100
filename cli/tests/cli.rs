//! The `distlock` command, run as a real process against a real redis-server.

mod common;

use common::{alive, client, exists, run, signal, Proc, Scratch};
use crossbeam_channel::RecvTimeoutError;
use distlock_testkit::{dead_port, RedisServer};
use redis::Commands;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// Parses a flat JSON object of strings, integers, booleans and nulls:
/// enough to check the shape of `status --json`.
fn parse_flat_json(text: &str) -> BTreeMap<String, String> {
    let s = text.trim();
    let body = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not an object: {s}"));
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut out = BTreeMap::new();
    let string = |i: &mut usize| -> String {
        assert_eq!(chars[*i], '"', "string expected in {s}");
        *i += 1;
        let mut v = String::new();
        while chars[*i] != '"' {
            if chars[*i] == '\\' {
                *i += 1;
            }
            v.push(chars[*i]);
            *i += 1;
        }
        *i += 1;
        v
    };
    while i < chars.len() {
        let key = string(&mut i);
        assert_eq!(chars[i], ':', "colon expected in {s}");
        i += 1;
        let value = if chars[i] == '"' {
            format!("\"{}\"", string(&mut i))
        } else if chars[i] == '{' || chars[i] == '[' {
            // A nested object or list, kept whole (parse an object with
            // this function); brackets inside its strings are skipped.
            let start = i;
            let (mut depth, mut in_str) = (0, false);
            loop {
                match chars[i] {
                    '\\' if in_str => i += 1,
                    '"' => in_str = !in_str,
                    '{' | '[' if !in_str => depth += 1,
                    '}' | ']' if !in_str => depth -= 1,
                    _ => {}
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            chars[start..i].iter().collect()
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            assert!(
                raw == "null" || raw == "true" || raw == "false" || raw.parse::<u64>().is_ok(),
                "bad value {raw} in {s}"
            );
            raw
        };
        assert!(out.insert(key, value).is_none(), "duplicate key in {s}");
        if i < chars.len() {
            assert_eq!(chars[i], ',', "comma expected in {s}");
            i += 1;
        }
    }
    out
}

#[test]
fn help_documents_usage_examples_and_exit_codes() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "Usage: distlock [OPTIONS] <KEY> -- <COMMAND>...",
        "distlock status",
        "distlock release",
        "distlock [OPTIONS] <KEY> -c <CMD>",
        "--nonblock",
        "--wait <SECS>",
        "--timeout",
        "--conflict-exit-code",
        "--on-lost",
        "--grace",
        "DISTLOCK_URL",
        "DISTLOCK_FENCE",
        "Examples:",
        "Exit status:",
        "75",
        "69",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}:\n{out}");
    }
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let url = format!("redis://127.0.0.1:{}/0", dead_port());
    let cases: &[&[&str]] = &[
        &["k"],
        &["k", "--"],
        &["--url", &url, "--ttl", "soon", "k", "--", "true"],
        &["--url", &url, "--ttl", "0", "k", "--", "true"],
        &[
            "--url",
            &url,
            "--nonblock",
            "--wait",
            "1",
            "k",
            "--",
            "true",
        ],
        &["--url", &url, "--on-lost", "sometimes", "k", "--", "true"],
        &["--url", &url, "-n", "status", "k"],
        &["--url", "http://127.0.0.1/0", "k", "--", "true"],
        &["release", "k"],
    ];
    for args in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("distlock: "), "{args:?}: {err}");
    }
}

#[test]
fn an_unreachable_server_exits_69_without_running_the_command() {
    let dir = Scratch::new("unreachable");
    let marker = dir.join("ran");
    let url = format!("redis://127.0.0.1:{}/0", dead_port());
    let touch = format!("touch {}", marker.display());
    let (code, _, err) = run(&["--url", &url, "k", "--", "sh", "-c", &touch]);
    assert_eq!(code, 69, "{err}");
    assert!(err.starts_with("distlock: "), "{err}");
    assert!(!marker.exists());
    let (code, _, _) = run(&["--url", &url, "status", "k"]);
    assert_eq!(code, 69);
}

#[test]
fn exit_status_passes_through_and_the_lock_is_released() {
    let server = RedisServer::start();
    let url = server.url();
    let mut raw = server.conn();
    let (code, _, err) = run(&["--url", &url, "k", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "{err}");
    assert!(!exists(&mut raw, "distlock:k"));
    let (code, _, _) = run(&["--url", &url, "k", "--", "true"]);
    assert_eq!(code, 0);
    // Death by a signal is reported as 128 + the signal.
    let (code, _, _) = run(&["--url", &url, "k", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code, 128 + 9);
    assert!(!exists(&mut raw, "distlock:k"));
    let (code, _, err) = run(&["--url", &url, "k", "--", "/nonexistent/command"]);
    assert_eq!(code, 127);
    assert!(err.contains("not found"), "{err}");
    assert!(!exists(&mut raw, "distlock:k"));
    // The URL can come from the environment.
    let mut p = Proc::spawn_env(
        &["k", "--", "sh", "-c", "exit 3"],
        &[("DISTLOCK_URL", &url)],
    );
    assert_eq!(p.code(), 3, "{}", p.stderr());
}

#[test]
fn the_command_gets_key_fence_and_token() {
    let server = RedisServer::start();
    let url = server.url();
    let c = client(&server, "envs");
    let script = "echo \"$DISTLOCK_KEY|$DISTLOCK_FENCE|$DISTLOCK_TOKEN\"; read _; exit 0";
    let mut last_fence = 0;
    for _ in 0..2 {
        let mut p = Proc::spawn(&[
            "--url", &url, "--prefix", "envs", "jobs:a", "--", "sh", "-c", script,
        ]);
        let line = p.stdout_line(|l| l.contains('|'));
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert_eq!(parts[0], "jobs:a");
        let fence: u64 = parts[1].parse().expect("numeric fence");
        assert!(fence > last_fence, "fence {fence} after {last_fence}");
        last_fence = fence;
        // While the command runs, the lock is held with the token it got.
        let info = c.inspect("jobs:a").unwrap();
        assert_eq!(info.key, "envs:jobs:a");
        assert_eq!(info.token.as_deref(), Some(parts[2]));
        assert!(info.fence.unwrap() >= fence);
        // Let the command finish.
        drop(p.stdin.take());
        assert_eq!(p.code(), 0, "{}", p.stderr());
        assert_eq!(c.inspect("jobs:a").unwrap().token, None);
    }
}

#[test]
fn concurrent_runs_never_overlap() {
    const RUNS: usize = 4;
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("overlap");
    let log = dir.join("log");
    let script = format!(
        "echo \"start $$ $DISTLOCK_FENCE\" >> {log}; sleep 0.2; echo \"end $$\" >> {log}",
        log = log.display()
    );
    let mut procs: Vec<Proc> = (0..RUNS)
        .map(|_| {
            Proc::spawn(&[
                "--url", &url, "--ttl", "1", "shared", "--", "sh", "-c", &script,
            ])
        })
        .collect();
    for p in &mut procs {
        assert_eq!(p.code(), 0, "{}", p.stderr());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * RUNS, "{text}");
    let mut last_fence = 0u64;
    for pair in lines.chunks(2) {
        let start: Vec<&str> = pair[0].split(' ').collect();
        let end: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(start[0], "start", "interleaved:\n{text}");
        assert_eq!(end[0], "end", "interleaved:\n{text}");
        assert_eq!(start[1], end[1], "interleaved:\n{text}");
        let fence: u64 = start[2].parse().unwrap();
        assert!(fence > last_fence, "fences out of order:\n{text}");
        last_fence = fence;
    }
}

#[test]
fn nonblock_and_timeout_on_a_held_lock_exit_with_the_conflict_code() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("conflict");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let c = client(&server, "distlock");
    let held = c.lock("busy").acquire().unwrap();

    let (code, _, err) = run(&[
        "--url",
        &url,
        "--nonblock",
        "busy",
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("distlock: ") && err.contains("held"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "--url", &url, "-n", "-E", "42", "busy", "--", "sh", "-c", &touch,
    ]);
    assert_eq!(code, 42, "{err}");
    let (code, _, err) = run(&["--url", &url, "-n", "-q", "busy", "--", "sh", "-c", &touch]);
    assert_eq!((code, err.as_str()), (1, ""));

    let started = Instant::now();
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--timeout",
        "0.3",
        "-E",
        "9",
        "busy",
        "--",
        "sh",
        "-c",
        &touch,
    ]);
    let waited = started.elapsed();
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "gave up after {waited:?}");
    assert!(!marker.exists(), "the command ran without the lock");
    assert!(held.is_held());

    held.release().unwrap();
    let (code, _, err) = run(&["--url", &url, "-n", "busy", "--", "sh", "-c", &touch]);
    assert_eq!(code, 0, "{err}");
    assert!(marker.exists());
}

/// Starts `sh -c script` under distlock with a 1 s lease, waits until the
/// script prints `ready <pid>`, deletes the lock key, and returns the
/// process, the script's pid and when the key was deleted.
fn run_then_delete_key(server: &RedisServer, extra: &[&str], script: &str) -> (Proc, u32, Instant) {
    let url = server.url();
    let mut args = vec!["--url", url.as_str(), "--ttl", "1"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["doomed", "--", "sh", "-c", script]);
    let p = Proc::spawn(&args);
    let ready = p.stdout_line(|l| l.starts_with("ready "));
    let pid: u32 = ready["ready ".len()..].parse().unwrap();
    assert!(alive(pid));
    let mut raw = server.conn();
    let deleted: i64 = raw.del("distlock:doomed").unwrap();
    assert_eq!(
        deleted, 1,
        "the lock key should exist while the command runs"
    );
    (p, pid, Instant::now())
}

#[test]
fn a_lost_lock_terminates_the_command() {
    let server = RedisServer::start();
    let (mut p, pid, deleted) = run_then_delete_key(&server, &[], "echo ready $$; exec sleep 30");
    assert_eq!(p.code(), 75);
    let took = deleted.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?} to react");
    let err = p.stderr();
    assert!(err.contains("distlock: lost the lock on doomed"), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(!alive(pid), "the command survived the loss");
}

#[test]
fn a_lost_lock_escalates_to_sigkill_after_the_grace_period() {
    let server = RedisServer::start();
    // The command ignores SIGTERM.
    let stubborn = "trap '' TERM; echo ready $$; exec sleep 30";
    let (mut p, pid, deleted) =
        run_then_delete_key(&server, &["--on-lost", "term", "--grace", "0.5"], stubborn);
    assert_eq!(p.code(), 75);
    let took = deleted.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "SIGKILL before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let err = p.stderr();
    assert!(err.contains("sending SIGKILL"), "{err}");
    assert!(!alive(pid));

    // --on-lost kill does not wait.
    let (mut p, pid, deleted) = run_then_delete_key(&server, &["--on-lost", "kill"], stubborn);
    assert_eq!(p.code(), 75);
    assert!(deleted.elapsed() < Duration::from_secs(5));
    let err = p.stderr();
    assert!(
        err.contains("sending SIGKILL") && !err.contains("SIGTERM"),
        "{err}"
    );
    assert!(!alive(pid));
}

#[test]
fn with_process_group_a_lost_lock_stops_the_commands_background_jobs() {
    let server = RedisServer::start();
    // The work runs in a background job of the shell: a SIGTERM to the
    // shell alone ends the shell and leaves the job running unlocked.
    let script = "sleep 30 & echo ready $!; wait";
    let (mut p, job, _) = run_then_delete_key(&server, &["--process-group"], script);
    assert_eq!(p.code(), 75);
    let err = p.stderr();
    assert!(err.contains("SIGTERM to process group"), "{err}");
    assert!(!alive(job), "the background job survived the loss: {err}");
    assert!(!err.contains("still running after it exited"), "{err}");

    // Without --process-group only the shell is told, which is what the
    // option is for.
    let (mut p, job, _) = run_then_delete_key(&server, &[], script);
    assert_eq!(p.code(), 75);
    let survived = alive(job);
    if survived {
        signal(job, libc::SIGKILL);
    }
    assert!(
        survived,
        "without a group of its own, the job is not signalled"
    );
}

#[test]
fn with_process_group_leftover_jobs_are_reported_and_forwarded_signals_reach_the_group() {
    let server = RedisServer::start();
    let url = server.url();
    // A job that outlives the command: distlock says it no longer holds the
    // lock. The job's pid is printed before the command exits.
    let mut p = Proc::spawn(&[
        "--url",
        &url,
        "-g",
        "leftover",
        "--",
        "sh",
        "-c",
        "sleep 30 & echo job $!",
    ]);
    let line = p.stdout_line(|l| l.starts_with("job "));
    let job: u32 = line["job ".len()..].parse().unwrap();
    assert_eq!(p.code(), 0);
    let survived = alive(job);
    // It holds distlock's output open, too.
    signal(job, libc::SIGKILL);
    let err = p.stderr();
    assert!(survived, "a leftover job is not distlock's to stop");
    assert!(
        err.contains("still running after it exited") && err.contains("no longer hold the lock"),
        "{err}"
    );

    // SIGTERM to distlock goes to the whole group.
    let mut p = Proc::spawn(&[
        "--url",
        &url,
        "--process-group",
        "forwarded",
        "--",
        "sh",
        "-c",
        "sleep 30 & echo ready $!; wait",
    ]);
    let line = p.stdout_line(|l| l.starts_with("ready "));
    let job: u32 = line["ready ".len()..].parse().unwrap();
    signal(p.pid, libc::SIGTERM);
    assert_eq!(p.code(), 128 + libc::SIGTERM);
    assert!(!alive(job), "the forwarded SIGTERM missed the job");
}

#[test]
fn ignore_policy_only_warns_and_keeps_the_status() {
    let server = RedisServer::start();
    let (mut p, _, _) = run_then_delete_key(
        &server,
        &["--on-lost", "ignore"],
        "echo ready $$; read _; exit 5",
    );
    p.stderr_line(|l| l.contains("lost the lock on doomed") && l.contains("ignore"));
    // Still running after the warning: it exits when told to.
    writeln!(p.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(p.code(), 5);
}

#[test]
fn sigterm_is_forwarded_and_the_lock_released_afterwards() {
    let server = RedisServer::start();
    let url = server.url();
    let mut raw = server.conn();
    // The command turns SIGTERM into exit status 9.
    let script = "trap 'kill $!; exit 9' TERM; echo ready $$; sleep 30 >/dev/null & wait";
    let mut p = Proc::spawn(&["--url", &url, "--ttl", "1", "fwd", "--", "sh", "-c", script]);
    p.stdout_line(|l| l.starts_with("ready "));
    assert!(exists(&mut raw, "distlock:fwd"));
    let sent = Instant::now();
    signal(p.pid, libc::SIGTERM);
    assert_eq!(p.code(), 9, "{}", p.stderr());
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(!exists(&mut raw, "distlock:fwd"));
    let (code, _, err) = run(&["--url", &url, "-n", "fwd", "--", "true"]);
    assert_eq!(code, 0, "{err}");

    // A command that does not catch them dies of the forwarded signal.
    for sig in [libc::SIGINT, libc::SIGHUP] {
        let mut p = Proc::spawn(&[
            "--url",
            &url,
            "fwd",
            "--",
            "sh",
            "-c",
            "echo ready $$; exec sleep 30",
        ]);
        let ready = p.stdout_line(|l| l.starts_with("ready "));
        let pid: u32 = ready["ready ".len()..].parse().unwrap();
        signal(p.pid, sig);
        assert_eq!(p.code(), 128 + sig);
        assert!(!alive(pid));
        assert!(!exists(&mut raw, "distlock:fwd"));
    }
}

#[test]
fn a_signal_while_waiting_gives_up_without_running_the_command() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("interrupt");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let c = client(&server, "distlock");
    let held = c.lock("queue").acquire().unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut p = Proc::spawn(&["--url", &url, "-v", "queue", "--", "sh", "-c", &touch]);
        p.stderr_line(|l| l.contains("waiting for queue"));
        let sent = Instant::now();
        signal(p.pid, sig);
        assert_eq!(p.code(), 128 + sig);
        assert!(sent.elapsed() < Duration::from_secs(5));
        assert!(!marker.exists());
        assert!(held.is_held());
    }
}

#[test]
fn a_killed_distlock_leaves_a_lock_that_expires_after_its_ttl() {
    let server = RedisServer::start();
    let url = server.url();
    let mut raw = server.conn();
    let mut p = Proc::spawn(&[
        "--url",
        &url,
        "--ttl",
        "2",
        "crash",
        "--",
        "sh",
        "-c",
        "echo ready $$; exec sleep 30",
    ]);
    let ready = p.stdout_line(|l| l.starts_with("ready "));
    let pid: u32 = ready["ready ".len()..].parse().unwrap();
    signal(p.pid, libc::SIGKILL);
    let killed = Instant::now();
    assert_eq!(p.wait().signal(), Some(libc::SIGKILL));
    // Nothing renews the lease any more: it only shrinks, then goes.
    let mut last: i64 = raw.pttl("distlock:crash").unwrap();
    assert!(last > 0 && last <= 2000, "pttl {last}");
    let mut gone = None;
    for _ in 0..200 {
        let pttl: i64 = raw.pttl("distlock:crash").unwrap();
        if pttl == -2 {
            gone = Some(killed.elapsed());
            break;
        }
        assert!(
            pttl <= last,
            "lease renewed after the kill: {last} -> {pttl}"
        );
        last = pttl;
        std::thread::sleep(Duration::from_millis(25));
    }
    let gone = gone.expect("the lock never expired");
    assert!(
        gone <= Duration::from_millis(2500),
        "expired after {gone:?}"
    );
    // On Linux the command is told (SIGTERM) that distlock died.
    if cfg!(target_os = "linux") {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "the command outlived distlock");
    } else if alive(pid) {
        signal(pid, libc::SIGKILL);
    }
}

#[test]
fn status_reports_the_holder_as_json_and_text() {
    let server = RedisServer::start();
    let url = server.url();
    let c = distlock::Client::builder()
        .url(&url)
        .prefix("ops")
        .holder_label("cron {nightly}")
        .build()
        .unwrap();
    let g = c
        .lock("nightly")
        .ttl(Duration::from_secs(5))
        .acquire()
        .unwrap();
    // Read now: its fence is given on first read, and status shows the
    // counter it leaves.
    let given = g.fence();

    let (code, out, err) = run(&[
        "--url", &url, "--prefix", "ops", "status", "nightly", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let j = parse_flat_json(&out);
    let keys: Vec<&str> = j.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "fence",
            "held",
            "holder",
            "key",
            "name",
            "remaining_ms",
            "shares",
            "token",
            "writers_waiting"
        ]
    );
    assert_eq!(j["shares"], "[]", "a plain lock has no shares");
    assert_eq!(j["writers_waiting"], "0");
    let holder = parse_flat_json(&j["holder"]);
    assert_eq!(holder["pid"], std::process::id().to_string());
    assert_eq!(holder["label"], "\"cron {nightly}\"");
    let host = holder["host"].trim_matches('"').to_string();
    assert!(!host.is_empty());
    assert_eq!(j["name"], "\"nightly\"");
    assert_eq!(j["key"], "\"ops:nightly\"");
    assert_eq!(j["held"], "true");
    assert_eq!(j["token"], format!("\"{}\"", g.token()));
    let remaining: u64 = j["remaining_ms"].parse().unwrap();
    assert!(remaining > 0 && remaining <= 5000, "{remaining}");
    let fence: u64 = j["fence"].parse().unwrap();
    assert!(fence >= given);

    let (code, out, _) = run(&["--url", &url, "--prefix", "ops", "status", "nightly"]);
    assert_eq!(code, 0);
    assert!(out.contains("key:       ops:nightly"), "{out}");
    assert!(out.contains("held:      yes"), "{out}");
    let by = format!(
        "held by:   {host} pid {} (cron {{nightly}})",
        std::process::id()
    );
    assert!(out.contains(&by), "{out}");
    assert!(out.contains(g.token()), "{out}");

    g.release().unwrap();
    let (code, out, _) = run(&[
        "status", "--url", &url, "--prefix", "ops", "--json", "nightly",
    ]);
    assert_eq!(code, 1, "a free lock");
    let j = parse_flat_json(&out);
    assert_eq!(j["held"], "false");
    assert_eq!(j["token"], "null");
    assert_eq!(j["remaining_ms"], "null");
    assert_eq!(j["holder"], "null");
    assert!(j["fence"].parse::<u64>().unwrap() >= fence);
    let (code, out, _) = run(&["--url", &url, "--prefix", "ops", "status", "nightly"]);
    assert_eq!(code, 1);
    assert!(out.contains("held:      no"), "{out}");
}

#[test]
fn release_with_the_holders_token_frees_the_lock() {
    let server = RedisServer::start();
    let url = server.url();
    let mut raw = server.conn();
    let c = client(&server, "distlock");
    let g = c.lock("stuck").acquire().unwrap();
    let token = g.token().to_string();

    let (code, _, err) = run(&[
        "--url",
        &url,
        "release",
        "stuck",
        "--token",
        "not-the-token",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("distlock: ") && err.contains("not held"),
        "{err}"
    );
    assert!(exists(&mut raw, "distlock:stuck"));
    assert!(g.is_held());

    let (code, _, err) = run(&["--url", &url, "release", "stuck", "--token", &token]);
    assert_eq!(code, 0, "{err}");
    assert!(!exists(&mut raw, "distlock:stuck"));
    assert!(
        matches!(
            g.lost().recv_timeout(Duration::from_secs(10)),
            Err(RecvTimeoutError::Disconnected)
        ),
        "the holder should learn that its lock is gone"
    );
    let (code, _, _) = run(&["--url", &url, "release", "stuck", "--token", &token]);
    assert_eq!(code, 1, "nothing left to release");
}

#[test]
fn list_shows_the_held_locks_with_their_tokens_and_json() {
    let server = RedisServer::start();
    let url = server.url();
    let c = client(&server, "distlock");
    let a = c.lock("jobs:a").acquire().unwrap();
    let b = c.lock("jobs:b").acquire().unwrap();
    let _other = c.lock("other").acquire().unwrap();
    // Their fences, given on first read, leave the counters list shows.
    assert!(a.fence() > 0 && b.fence() > 0);

    let (code, out, err) = run(&["--url", &url, "list", "jobs:*"]);
    assert_eq!(code, 0, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, g) in lines.iter().zip([&a, &b]) {
        let holder = c.inspect(g.name()).unwrap().holder.unwrap();
        assert!(
            line.starts_with(&format!("{}\t{holder}\t{}\t", g.name(), g.token())),
            "{line}"
        );
        let fence = c.inspect(g.name()).unwrap().fence.unwrap();
        assert!(line.ends_with(&format!("\tfence {fence}")), "{line}");
    }
    let (code, out, _) = run(&["--url", &url, "list", "--json", "--limit", "1"]);
    assert_eq!(code, 0);
    let json: Vec<&str> = out.lines().collect();
    assert_eq!(json.len(), 2, "one lock and the truncation line: {out}");
    assert!(
        json[0].starts_with("{\"name\":") && json[0].contains("\"held\":true"),
        "{out}"
    );
    assert_eq!(json[1], "{\"truncated\":true}");
    // Nothing held under the pattern: exit 1.
    let (code, out, _) = run(&["--url", &url, "list", "nothing:*"]);
    assert_eq!((code, out.as_str()), (1, ""));
}

#[test]
fn a_command_run_under_the_lock_is_shown_as_its_holder() {
    let server = RedisServer::start();
    let url = server.url();
    let me = env!("CARGO_BIN_EXE_distlock");
    // The command asks distlock itself who holds the lock it runs under.
    let (code, out, err) = run(&[
        "--url",
        &url,
        "--label",
        "deploy #7",
        "job",
        "--",
        me,
        "--url",
        &url,
        "status",
        "job",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let holder = parse_flat_json(&parse_flat_json(&out)["holder"]);
    assert_eq!(holder["label"], "\"deploy #7\"");
    let pid: u32 = holder["pid"].parse().unwrap();
    assert_ne!(
        pid,
        std::process::id(),
        "the holder is the distlock process"
    );

    // Without --label, the label is the command's name.
    let (code, out, err) = run(&[
        "--url", &url, "job", "--", me, "--url", &url, "status", "job",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" (distlock)\n"), "{out}");
    let (code, out, err) = run(&[
        "--url",
        &url,
        "job",
        "-c",
        &format!("{me} --url {url} status job"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" (sh -c)\n"), "{out}");
}
