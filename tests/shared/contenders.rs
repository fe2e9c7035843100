//! Contenders for one lock, for the failover tests of tests/etcd.rs and
//! tests/zookeeper.rs (included with `#[path]`; not a test target).

use distlock::Client;
use distlock_testkit::checker::{check, now_ns, Hold};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Threads contending for one lock until stopped, each on a client of its
/// own, recording every hold for the overlap checker: the load of a
/// failover test.
pub struct Contenders {
    holds: Arc<Mutex<Vec<Hold>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Contenders {
    /// Starts `threads` contenders for `name` with leases of `ttl`, each on
    /// a client from `build`. A hold lasts 5 ms; acquisitions that fail
    /// (while a cluster elects, say) are retried.
    pub fn start(
        threads: usize,
        build: impl Fn() -> Client,
        name: &str,
        ttl: Duration,
    ) -> Contenders {
        let holds = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..threads)
            .map(|_| {
                let (c, holds, stop) = (build(), holds.clone(), stop.clone());
                let lock = c.lock(name).ttl(ttl);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(g) = lock.acquire_timeout(Duration::from_secs(5)) else {
                            continue;
                        };
                        let (fence, start) = (g.fence(), now_ns());
                        std::thread::sleep(Duration::from_millis(5));
                        let end = now_ns();
                        let lost = g.release().is_err();
                        holds.lock().unwrap().push(Hold {
                            fence,
                            start,
                            end,
                            lost,
                            lost_at: if lost { end } else { 0 },
                        });
                    }
                })
            })
            .collect();
        Contenders {
            holds,
            stop,
            workers,
        }
    }

    /// Stops the contenders, prints what the checker says of their holds
    /// (prefixed with `what`), and asserts more than 10 holds, no
    /// undetected overlap and no fence regression.
    pub fn stop_and_check(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let holds = std::mem::take(&mut *self.holds.lock().unwrap());
        let report = check(holds);
        println!(
            "{what}: {} holds ({} signalled lost), {} undetected overlaps, {} fence regressions",
            report.holds,
            report.signalled_losses,
            report.overlaps_undetected,
            report.fence_regressions
        );
        assert!(report.holds > 10, "{} holds", report.holds);
        assert_eq!(report.overlaps_undetected, 0, "{:?}", report.examples);
        assert_eq!(report.fence_regressions, 0);
    }
}
