//! Exporting `Client::stats()` in Prometheus' text exposition format, with
//! no metrics crate: an example for operators, not part of the library.
//!
//! ```sh
//! cargo run --example prometheus                 # a throwaway redis-server
//! cargo run --example prometheus -- --url redis://127.0.0.1:6379/0
//! ```
//!
//! It runs a few contended lock cycles (four threads, one lock), then
//! prints the counters as `distlock_*_total` counters and the acquire-wait
//! percentiles as gauges, labelled with the client's prefix. Serve the same
//! text on `/metrics` to let Prometheus scrape it.

use distlock::{Client, Stats};
use std::fmt::Write as _;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1).cloned());
    let server = given
        .is_none()
        .then(distlock_testkit::server::RedisServer::start);
    let url = given.unwrap_or_else(|| server.as_ref().map(|s| s.url()).unwrap_or_default());

    let client = Client::open(&url)?;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let lock = client.lock("prometheus:example");
            std::thread::spawn(move || -> distlock::Result<()> {
                for _ in 0..5 {
                    let guard = lock.acquire_timeout(Duration::from_secs(5))?;
                    std::thread::sleep(Duration::from_millis(1));
                    guard.release()?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker panicked")?;
    }
    print!("{}", exposition(&client.stats(), client.prefix()));
    Ok(())
}

/// `stats` in the text exposition format, each sample labelled with the
/// client's `prefix`.
fn exposition(stats: &Stats, prefix: &str) -> String {
    let label = format!("{{prefix=\"{}\"}}", prefix.replace(['\\', '"'], "_"));
    let counters = [
        (
            "acquired",
            stats.acquired,
            "acquisitions that returned a guard",
        ),
        (
            "contended",
            stats.contended,
            "acquisitions that had to wait",
        ),
        (
            "timed_out",
            stats.timed_out,
            "acquisitions given up at their timeout",
        ),
        ("cancelled", stats.cancelled, "acquisitions cancelled"),
        ("lost", stats.lost, "locks lost while held"),
        ("renewals", stats.renewals, "leases extended"),
        (
            "renewal_failures",
            stats.renewal_failures,
            "renewals that failed",
        ),
        (
            "local_handoffs",
            stats.local_handoffs,
            "leases handed on in-process",
        ),
        (
            "feed_reconnects",
            stats.feed_reconnects,
            "release feed reconnects",
        ),
    ];
    let mut out = String::new();
    for (name, value, help) in counters {
        let _ = writeln!(out, "# HELP distlock_{name}_total {help}");
        let _ = writeln!(out, "# TYPE distlock_{name}_total counter");
        let _ = writeln!(out, "distlock_{name}_total{label} {value}");
    }
    for (name, value) in [
        ("p50", stats.wait_p50),
        ("p99", stats.wait_p99),
        ("max", stats.wait_max),
    ] {
        let _ = writeln!(out, "# TYPE distlock_acquire_wait_{name}_seconds gauge");
        let _ = writeln!(
            out,
            "distlock_acquire_wait_{name}_seconds{label} {}",
            value.as_secs_f64()
        );
    }
    out
}
