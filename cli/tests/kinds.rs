//! `-s/--shared` and `-x/--exclusive` (the read and write sides of a
//! read-write lock, as flock's -s and -x) and `--permits N` (one permit of
//! a semaphore), on a real redis-server.

mod common;

use common::{client, run, Proc, Scratch};
use distlock_testkit::{wait_until_subscribed, RedisServer};

#[test]
fn shared_runs_share_and_exclusive_runs_wait_for_them() {
    let server = RedisServer::start();
    let url = server.url();
    let c = client(&server, "distlock");
    let reader = c.rw_lock("catalog").read().acquire().unwrap();

    let (code, out, err) = run(&[
        "--url",
        &url,
        "-s",
        "-n",
        "catalog",
        "--",
        "sh",
        "-c",
        "echo $DISTLOCK_FENCE",
    ]);
    assert_eq!(code, 0, "a shared run beside a reader: {err}");
    let fence: u64 = out.trim().parse().expect("a fence");
    assert!(fence > reader.fence());
    let (code, _, err) = run(&["--url", &url, "--shared", "-n", "catalog", "--", "true"]);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = run(&["--url", &url, "-x", "-n", "catalog", "--", "true"]);
    assert_eq!(code, 1, "an exclusive run beside a reader: {err}");
    assert!(err.contains("catalog is held elsewhere"), "{err}");

    // A waiting -x run gets the lock when the reader lets go.
    let dir = Scratch::new("kinds-x");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let mut p = Proc::spawn(&[
        "--url",
        &url,
        "--exclusive",
        "-w",
        "15",
        "catalog",
        "-c",
        &touch,
    ]);
    wait_until_subscribed(&server, "catalog");
    assert!(!marker.exists());
    // Writers come first: a new reader waits behind the waiting -x run.
    assert!(c.rw_lock("catalog").read().try_acquire().unwrap().is_none());
    reader.release().unwrap();
    assert_eq!(p.code(), 0, "{}", p.stderr());
    assert!(marker.exists());
    let _w = c
        .rw_lock("catalog")
        .write()
        .try_acquire()
        .unwrap()
        .expect("released after the run");
}

#[test]
fn permits_bound_the_runs_at_once() {
    let server = RedisServer::start();
    let url = server.url();
    let c = client(&server, "distlock");
    let sem = c.semaphore("encoders", 2);
    let held = [sem.acquire().unwrap(), sem.acquire().unwrap()];
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--permits",
        "2",
        "-n",
        "encoders",
        "--",
        "true",
    ]);
    assert_eq!(code, 1, "a third of two: {err}");
    assert!(err.contains("encoders is held elsewhere"), "{err}");
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--permits",
        "3",
        "-n",
        "encoders",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "a third of three: {err}");
    drop(held);
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--permits",
        "1",
        "-w",
        "5",
        "encoders",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "{err}");
    let _p = sem
        .try_acquire()
        .unwrap()
        .expect("the run gave its permit back");
}

#[test]
fn bad_kind_options_are_usage_errors() {
    let server = RedisServer::start();
    let url = server.url();
    for args in [
        vec!["--permits", "0"],
        vec!["--permits", "10001"],
        vec!["--permits", "many"],
        vec!["-s", "-x"],
        vec!["-s", "--permits", "2"],
        vec!["-x", "--permits", "2"],
    ] {
        let mut all = vec!["--url", url.as_str()];
        all.extend(&args);
        all.extend(["k", "--", "true"]);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("distlock: "), "{args:?}: {err}");
    }
    let (_, _, err) = run(&["--url", &url, "--permits", "0", "k", "--", "true"]);
    assert!(err.contains("1..=10000"), "{err}");

    // A name in use by another kind: a usage error that says so.
    let c = client(&server, "distlock");
    let plain = c.lock("taken").acquire().unwrap();
    let (code, _, err) = run(&["--url", &url, "-s", "-w", "1", "taken", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in use by a plain lock"), "{err}");
    drop(plain);
    let reader = c.rw_lock("taken").read().acquire().unwrap();
    let (code, _, err) = run(&["--url", &url, "-n", "taken", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("in use by a read-write lock or a semaphore"),
        "{err}"
    );
    drop(reader);
    // Options of the run form do not belong to subcommands.
    let (code, _, err) = run(&["--url", &url, "-s", "status", "k"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--shared does not apply to `status`"), "{err}");
}
