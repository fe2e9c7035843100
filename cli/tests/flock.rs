//! The options that `distlock` shares with flock(1), on a real
//! redis-server: `-w/--wait/--timeout SECS`, `-n/--nonblock/--nb`,
//! `-E/--conflict-exit-code N` and `-c CMD`, and the old spellings that
//! are refused with a pointer to the new ones.

mod common;

use common::{client, run, Proc, Scratch};
use distlock_testkit::{dead_port, wait_until_subscribed, RedisServer};
use std::time::{Duration, Instant};

/// `touch PATH`, as a shell command.
fn touch(path: &std::path::Path) -> String {
    format!("touch {}", path.display())
}

#[test]
fn wait_seconds_bounds_the_wait_and_zero_does_not_wait() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("flock-wait");
    let marker = dir.join("ran");
    let touch = touch(&marker);
    let c = client(&server, "distlock");
    let held = c.lock("busy").acquire().unwrap();

    // -w 0: one try, as -n.
    let started = Instant::now();
    let (code, _, err) = run(&[
        "--url", &url, "-w", "0", "-E", "3", "busy", "--", "sh", "-c", &touch,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("busy is held elsewhere"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "-w 0 waited");

    // -w 2: waits two seconds, then the conflict code.
    let started = Instant::now();
    let (code, _, err) = run(&["--url", &url, "-w", "2", "busy", "--", "sh", "-c", &touch]);
    let waited = started.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out after 2s waiting for busy"), "{err}");
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(10), "gave up after {waited:?}");

    // The other spellings of -w, and the old -t.
    for flag in ["--wait", "--timeout", "-t", "--wait=0.2"] {
        let mut args = vec!["--url", url.as_str(), flag];
        if !flag.contains('=') {
            args.push("0.2");
        }
        args.extend(["-E", "9", "busy", "--", "sh", "-c", &touch]);
        let (code, _, err) = run(&args);
        assert_eq!(code, 9, "{flag}: {err}");
        assert!(err.contains("timed out after 0.2s"), "{flag}: {err}");
    }
    assert!(!marker.exists(), "the command ran without the lock");
    assert!(held.is_held());
}

#[test]
fn wait_seconds_takes_the_lock_freed_in_time() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("flock-freed");
    let marker = dir.join("ran");
    let touch = touch(&marker);
    let c = client(&server, "distlock");
    let held = c.lock("soon").acquire().unwrap();
    let started = Instant::now();
    let mut p = Proc::spawn(&["--url", &url, "-w", "15", "soon", "-c", &touch]);
    // Really waiting: subscribed to the release notifications.
    wait_until_subscribed(&server, "soon");
    assert!(!marker.exists());
    held.release().unwrap();
    assert_eq!(p.code(), 0, "{}", p.stderr());
    assert!(marker.exists());
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn nonblock_spellings_fail_at_once_with_the_conflict_code() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = Scratch::new("flock-nb");
    let marker = dir.join("ran");
    let touch = touch(&marker);
    let c = client(&server, "distlock");
    let held = c.lock("busy").acquire().unwrap();
    for flag in ["-n", "--nb", "--nonblock"] {
        let started = Instant::now();
        let (code, _, err) = run(&[
            "--url", &url, flag, "-E", "42", "busy", "--", "sh", "-c", &touch,
        ]);
        assert_eq!(code, 42, "{flag}: {err}");
        assert!(err.contains("held elsewhere"), "{flag}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{flag} waited");
    }
    // Long form of -E, and 0 as flock allows: the command still does not run.
    let (code, _, err) = run(&[
        "--url",
        &url,
        "-n",
        "--conflict-exit-code",
        "0",
        "busy",
        "-c",
        &touch,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("held elsewhere"), "{err}");
    assert!(!marker.exists(), "the command ran without the lock");
    // flock's range: 0 to 255.
    let (code, _, err) = run(&["--url", &url, "-n", "-E", "256", "busy", "-c", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("256"), "{err}");
    // -n and -w contradict each other.
    let (code, _, err) = run(&["--url", &url, "-n", "-w", "5", "busy", "-c", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--nonblock") && err.contains("--wait"),
        "{err}"
    );

    held.release().unwrap();
    let (code, _, err) = run(&["--url", &url, "--nb", "busy", "-c", &touch]);
    assert_eq!(code, 0, "{err}");
    assert!(marker.exists());
}

#[test]
fn dash_c_runs_the_command_through_sh() {
    let server = RedisServer::start();
    let url = server.url();
    // Shell syntax, the lock's variables, and the status passed through.
    let script =
        r#"test "$DISTLOCK_FENCE" -gt 0 && echo "$DISTLOCK_KEY via $0" | tr a-z A-Z; exit 7"#;
    let (code, out, err) = run(&["--url", &url, "job", "-c", script]);
    assert_eq!(code, 7, "{err}");
    assert_eq!(out, "JOB VIA /BIN/SH\n");
    // Before the key, and the long form.
    let (code, _, err) = run(&["--url", &url, "--command", "exit 4", "job"]);
    assert_eq!(code, 4, "{err}");
    // With `run`, for a lock named like a subcommand.
    let (code, _, err) = run(&["--url", &url, "run", "status", "-c", "exit 5"]);
    assert_eq!(code, 5, "{err}");
    // The lock is held, with the token the command got, while it runs.
    let c = client(&server, "distlock");
    let mut p = Proc::spawn(&[
        "--url",
        &url,
        "job",
        "-c",
        "echo \"$DISTLOCK_TOKEN\"; read _; exit 0",
    ]);
    let token = p.stdout_line(|l| !l.is_empty());
    assert_eq!(c.inspect("job").unwrap().token, Some(token));
    drop(p.stdin.take());
    assert_eq!(p.code(), 0, "{}", p.stderr());
    assert_eq!(c.inspect("job").unwrap().token, None);
}

#[test]
fn dash_c_and_a_command_after_double_dash_exclude_each_other() {
    let url = format!("redis://127.0.0.1:{}/0", dead_port());
    let (code, _, err) = run(&["--url", &url, "k", "-c", "true", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--command <CMD>") && err.contains("COMMAND"),
        "{err}"
    );
    // Neither: usage error.
    let (code, _, err) = run(&["--url", &url, "k"]);
    assert_eq!(code, 2, "{err}");
    // -c belongs to the run form.
    let (code, _, err) = run(&["--url", &url, "-c", "true", "status", "k"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--command does not apply to `status`"),
        "{err}"
    );
}

#[test]
fn old_spellings_are_refused_with_what_to_use() {
    // A dead server: exit 2 shows that nothing was tried (that would be 69).
    let url = format!("redis://127.0.0.1:{}/0", dead_port());
    let dir = Scratch::new("flock-old");
    let marker = dir.join("ran");
    let touch = touch(&marker);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--no-wait", "k", "--"],
            "--no-wait is now -n, --nonblock or --nb",
        ),
        (
            &["run", "--no-wait", "k", "--"],
            "--no-wait is now -n, --nonblock or --nb",
        ),
        (&["--wait", "k", "--"], "leave --wait out"),
        (&["k", "--wait", "--"], "now takes SECS"),
        (&["run", "k", "--wait", "--"], "now takes SECS"),
    ];
    for (args, says) in cases {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        all.extend(["sh", "-c", &touch]);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("distlock: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // `--wait` as the last word.
    let (code, _, err) = run(&["--url", &url, "k", "-c", "true", "--wait"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("now takes SECS"), "{err}");
    assert!(!marker.exists());
}
