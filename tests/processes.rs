//! Locks between processes, on every backend: mutual exclusion across four
//! worker processes, and a holder process stopped past its lease, which
//! must be told it lost when it resumes and must spare the next owner.

use distlock_testkit as support;

use crossbeam_channel::RecvTimeoutError;
use distlock::{Client, Error};
use std::time::{Duration, Instant};
use support::{backends, AnyServer};

const WORKER_ENV: &str = "DISTLOCK_TEST_PROCESS_WORKER";

/// `cycles` times: lock, read a counter file, write it back plus one, unlock.
fn counter_cycles(c: &Client, file: &str, cycles: u64) {
    let lock = c.lock("counter-lock");
    for _ in 0..cycles {
        let g = lock.acquire().unwrap();
        let n: u64 = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        std::fs::write(file, (n + 1).to_string()).unwrap();
        g.release().unwrap();
    }
}

/// The body of one worker process: `<url> <counter file>` in the variable.
#[test]
fn process_worker_entry() {
    if let Ok(v) = std::env::var(WORKER_ENV) {
        let (url, file) = v.split_once(' ').unwrap();
        counter_cycles(&Client::open(url).unwrap(), file, 50);
    }
}

/// A scratch file of this test process, named after `what` and the server.
fn scratch(what: &str, server: &AnyServer) -> std::path::PathBuf {
    let port = server.url().rsplit(':').next().unwrap_or("").to_string();
    let port: String = port.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("distlock-{what}-{}-{port}", std::process::id()))
}

backends!(mutual_exclusion_four_processes, |server: &AnyServer| {
    let file = scratch("counter", server);
    let _ = std::fs::remove_file(&file);
    let arg = format!("{} {}", server.url(), file.display());
    let children: Vec<_> = (0..4)
        .map(|_| support::spawn_entry("process_worker_entry", WORKER_ENV, &arg))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let n = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(n, "200");
});

const PAUSED_ENV: &str = "DISTLOCK_TEST_PROCESS_PAUSED";

/// A holder process: takes `paused-process` with a 1 s auto-renewed lease,
/// writes its token to the file it was given, then waits to be stopped and
/// resumed. Exits 0 once its guard says lost (it was paused past its lease).
#[test]
fn paused_holder_entry() {
    let Ok(v) = std::env::var(PAUSED_ENV) else {
        return;
    };
    let (url, ready) = v.split_once(' ').unwrap();
    let c = Client::open(url).unwrap();
    let g = c
        .lock("paused-process")
        .ttl(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    std::fs::write(ready, g.token()).unwrap();
    // Until the parent stops and resumes us well past the lease, the
    // renewal thread keeps it; afterwards, lost() fires at once.
    let lost = g.lost().recv_timeout(Duration::from_secs(30));
    assert!(
        matches!(lost, Err(RecvTimeoutError::Disconnected)),
        "{lost:?}"
    );
    assert!(!g.is_held());
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

/// A child process, killed (by pid) if the test ends early.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

backends!(
    a_holder_process_stopped_past_its_lease_is_told_when_it_resumes,
    |server: &AnyServer| {
        let c = Client::open(&server.url()).unwrap();
        let ready = scratch("paused", server);
        let _ = std::fs::remove_file(&ready);
        let arg = format!("{} {}", server.url(), ready.display());
        let mut child = Killed(support::spawn_entry(
            "paused_holder_entry",
            PAUSED_ENV,
            &arg,
        ));
        let start = Instant::now();
        // Nothing tells this process when the child holds the lock but the file.
        let token = loop {
            if let Ok(t) = std::fs::read_to_string(&ready) {
                if !t.is_empty() {
                    break t;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the child never took the lock"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = std::fs::remove_file(&ready);
        support::signal(child.0.id(), libc::SIGSTOP);
        let stopped = Instant::now();
        // The 1 s lease runs out on the server (memcached and etcd keep it
        // up to their whole-second rounding longer); then it is ours.
        let g = c
            .lock("paused-process")
            .acquire_timeout(Duration::from_secs(10))
            .unwrap();
        let taken = stopped.elapsed();
        println!("stopped holder's lock taken over after {taken:?}");
        assert!(taken >= Duration::from_millis(600), "{taken:?}");
        assert_ne!(g.token(), token);
        let resumed = Instant::now();
        support::signal(child.0.id(), libc::SIGCONT);
        let status = child.0.wait().unwrap();
        println!(
            "the resumed holder learnt of the loss and exited within {:?}",
            resumed.elapsed()
        );
        assert!(
            status.success(),
            "the resumed holder was told it lost: {status:?}"
        );
        // And it spared the new owner.
        assert_eq!(
            c.inspect("paused-process").unwrap().token.as_deref(),
            Some(g.token())
        );
        assert!(g.is_held());
    }
);
