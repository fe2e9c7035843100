//! The fleet-wide loader against a real redis-server.

use distlock_testkit as support;

use distlock::{Client, LoadError};
use redis::Commands;
use std::time::{Duration, Instant};
use support::{backends, AnyServer, RedisServer};

const WORKER_ENV: &str = "DISTLOCK_LOADER_WORKER";

/// Loads `key` in many threads of this process; the loader is slow and
/// counts its runs with a line each in the file `loads` (appended to, so
/// that every process's lines land whole).
fn stampede(url: &str, loads: &str, threads: usize) {
    let client = Client::open(url).unwrap();
    let loader = client.loader();
    std::thread::scope(|s| {
        for t in 0..threads {
            let loader = loader.clone();
            s.spawn(move || {
                let key = format!("item:{}", t % 4);
                let v = loader
                    .get_or_load(&key, Duration::from_secs(60), || {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .create(true)
                            .open(loads)
                            .unwrap();
                        f.write_all(format!("{key}\n").as_bytes()).unwrap();
                        // The slow database.
                        std::thread::sleep(Duration::from_millis(200));
                        Ok::<_, String>(format!("value of {key}").into_bytes())
                    })
                    .unwrap();
                assert_eq!(v, format!("value of {key}").into_bytes());
            });
        }
    });
}

/// One worker process of `one_load_per_key_across_processes`.
#[test]
fn loader_worker_entry() {
    if let Ok(v) = std::env::var(WORKER_ENV) {
        let (url, loads) = v.split_once(' ').unwrap();
        stampede(url, loads, 64);
    }
}

backends!(one_load_per_key_across_processes, |server: &AnyServer| {
    let loads = std::env::temp_dir().join(format!(
        "distlock-loads-{}-{}",
        std::process::id(),
        // One file per backend: their tests run at the same time.
        server
            .url()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    let _ = std::fs::remove_file(&loads);
    let arg = format!("{} {}", server.url(), loads.display());
    let children: Vec<_> = (0..4)
        .map(|_| support::spawn_entry("loader_worker_entry", WORKER_ENV, &arg))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let lines = std::fs::read_to_string(&loads).unwrap();
    let _ = std::fs::remove_file(&loads);
    for k in 0..4 {
        let n = lines.lines().filter(|l| *l == format!("item:{k}")).count();
        assert_eq!(n, 1, "item:{k} was loaded {n} times");
    }
});

backends!(
    loader_errors_are_returned_and_not_cached,
    |server: &AnyServer| {
        let loader = Client::open(&server.url()).unwrap().loader();
        let err = loader
            .get_or_load("flaky", Duration::from_secs(60), || Err("database down"))
            .unwrap_err();
        assert_eq!(err, LoadError::Loader("database down".into()));
        assert!(err.to_string().contains("database down"));
        // Nothing was cached, and the lock was given back: the next call loads.
        let v = loader
            .get_or_load("flaky", Duration::from_secs(60), || {
                Ok::<_, String>(b"fresh".to_vec())
            })
            .unwrap();
        assert_eq!(v, b"fresh");
    }
);

backends!(cache_hits_never_take_the_lock, |server: &AnyServer| {
    let client = Client::open(&server.url()).unwrap();
    let loader = client.loader();
    loader
        .get_or_load("hot", Duration::from_secs(60), || {
            Ok::<_, String>(b"v1".to_vec())
        })
        .unwrap();
    // Another client holds the loading lock; a hit must not wait for it.
    let other = Client::open(&server.url()).unwrap();
    let _held = other.lock("loader:hot").acquire().unwrap();
    let start = Instant::now();
    let v = loader
        .get_or_load("hot", Duration::from_secs(60), || {
            Ok::<_, String>(b"v2".to_vec())
        })
        .unwrap();
    assert_eq!(v, b"v1");
    assert!(start.elapsed() < Duration::from_millis(200));
});

backends!(
    too_large_values_are_refused_and_not_stored,
    |server: &AnyServer| {
        let loader = Client::open(&server.url())
            .unwrap()
            .loader()
            .max_value_len(4);
        let err = loader
            .get_or_load("big", Duration::from_secs(60), || {
                Ok::<_, String>(vec![0; 5])
            })
            .unwrap_err();
        assert_eq!(err, LoadError::TooLarge { len: 5, max: 4 });
        let v = loader
            .get_or_load("big", Duration::from_secs(60), || {
                Ok::<_, String>(vec![1; 4])
            })
            .unwrap();
        assert_eq!(v, vec![1; 4]);
    }
);

const CRASH_ENV: &str = "DISTLOCK_LOADER_CRASH";

/// A process that takes the loading lock and hangs in its loader.
#[test]
fn loader_crash_entry() {
    if let Ok(url) = std::env::var(CRASH_ENV) {
        let loader = Client::open(&url)
            .unwrap()
            .loader()
            .lock_ttl(Duration::from_millis(600));
        let _ = loader.get_or_load("orphan", Duration::from_secs(60), || {
            let mut raw = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: u64 = raw.incr("loads:orphan", 1).unwrap();
            // Hang until killed.
            let (_tx, rx) = crossbeam_channel::bounded::<()>(0);
            let _ = rx.recv();
            Ok::<_, String>(vec![])
        });
    }
}

#[test]
fn a_dead_holder_costs_exactly_one_more_load_after_its_lease() {
    let server = RedisServer::start();
    let mut child = support::spawn_entry("loader_crash_entry", CRASH_ENV, &server.url());
    let mut raw = server.conn();
    let start = Instant::now();
    // Wait (bounded) until the child is inside its loader.
    while raw.get::<_, Option<u64>>("loads:orphan").unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "child never loaded"
        );
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let loader = Client::open(&server.url()).unwrap().loader();
    let v = loader
        .get_or_load("orphan", Duration::from_secs(60), || {
            let _: u64 = raw.incr("loads:orphan", 1).unwrap();
            Ok::<_, String>(b"recovered".to_vec())
        })
        .unwrap();
    assert_eq!(v, b"recovered");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(3), "took over after {took:?}");
    let loads: u64 = server.conn().get("loads:orphan").unwrap();
    assert_eq!(loads, 2);
}
