//! What a client's locks have done: counters and the spread of acquire
//! waits, kept in atomics so that the hot path takes no lock, and read as
//! one [`Stats`] snapshot by [`Client::stats`](crate::Client::stats).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a client's counters since it was built. Every count only
/// grows; subtract two snapshots for a rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Acquisitions that returned a guard (from the server or handed on by
    /// a thread of the same client).
    pub acquired: u64,
    /// Of those, the ones that had to wait: the lock was held when asked.
    pub contended: u64,
    /// Acquisitions given up at their timeout (`try_acquire` finding the
    /// lock held is not counted: it did not wait).
    pub timed_out: u64,
    /// Acquisitions given up because their cancel channel fired.
    pub cancelled: u64,
    /// Locks lost while held: taken over, deleted, or their lease ran out
    /// before a renewal was confirmed (also past `max_hold`).
    pub lost: u64,
    /// Leases the renewal thread extended.
    pub renewals: u64,
    /// Leases whose renewal failed to reach the server (it is retried until
    /// the lease runs out).
    pub renewal_failures: u64,
    /// Leases handed from one thread of this client to the next without a
    /// round trip (the local fast path).
    pub local_handoffs: u64,
    /// Acquisitions granted from a lock this client lingered on after its
    /// release ([`Builder::linger`](crate::Builder::linger)), without a
    /// round trip.
    pub lingered: u64,
    /// Times the release-notification connection failed and was reopened.
    pub feed_reconnects: u64,
    /// Median time from an acquire call to its guard, over all `acquired`.
    pub wait_p50: Duration,
    /// 99th percentile of the same.
    pub wait_p99: Duration,
    /// Longest acquire wait.
    pub wait_max: Duration,
}

/// Buckets of the wait histogram: exact below 16 µs, then four per power
/// of two, up to `u64::MAX` µs.
const BUCKETS: usize = 16 + 60 * 4;

/// The live counters behind [`Stats`], shared by a client's threads.
pub(crate) struct Counters {
    pub acquired: AtomicU64,
    pub contended: AtomicU64,
    pub timed_out: AtomicU64,
    pub cancelled: AtomicU64,
    pub lost: AtomicU64,
    pub renewals: AtomicU64,
    pub renewal_failures: AtomicU64,
    pub local_handoffs: AtomicU64,
    pub lingered: AtomicU64,
    pub feed_reconnects: AtomicU64,
    waits: [AtomicU64; BUCKETS],
    wait_max_us: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The bucket of a wait of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros() as usize; // 4 and up
    let sub = ((us >> (exp - 2)) & 3) as usize;
    16 + (exp - 4) * 4 + sub
}

/// The largest wait, in microseconds, that falls in bucket `i`.
fn bucket_top(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let exp = (i - 16) / 4 + 4;
    let sub = ((i - 16) % 4) as u128;
    let next = (5 + sub) << (exp - 2);
    u64::try_from(next - 1).unwrap_or(u64::MAX)
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            acquired: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            renewal_failures: AtomicU64::new(0),
            local_handoffs: AtomicU64::new(0),
            lingered: AtomicU64::new(0),
            feed_reconnects: AtomicU64::new(0),
            waits: std::array::from_fn(|_| AtomicU64::new(0)),
            wait_max_us: AtomicU64::new(0),
        }
    }

    /// Records an acquisition that waited `waited` (`contended` if the lock
    /// was held when asked).
    pub(crate) fn acquired(&self, waited: Duration, contended: bool) {
        add(&self.acquired, 1);
        if contended {
            add(&self.contended, 1);
        }
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        add(&self.waits[bucket(us)], 1);
        self.wait_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The wait below which a share `q` (0 to 1) of the recorded waits
    /// fall, as the top of its bucket (never above the longest wait).
    fn wait_quantile(&self, counts: &[u64], q: f64) -> Duration {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let top = bucket_top(i).min(self.wait_max_us.load(Ordering::Relaxed));
                return Duration::from_micros(top);
            }
        }
        Duration::from_micros(self.wait_max_us.load(Ordering::Relaxed))
    }

    /// A snapshot of every counter.
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counts: Vec<u64> = self.waits.iter().map(get).collect();
        Stats {
            acquired: get(&self.acquired),
            contended: get(&self.contended),
            timed_out: get(&self.timed_out),
            cancelled: get(&self.cancelled),
            lost: get(&self.lost),
            renewals: get(&self.renewals),
            renewal_failures: get(&self.renewal_failures),
            local_handoffs: get(&self.local_handoffs),
            lingered: get(&self.lingered),
            feed_reconnects: get(&self.feed_reconnects),
            wait_p50: self.wait_quantile(&counts, 0.5),
            wait_p99: self.wait_quantile(&counts, 0.99),
            wait_max: Duration::from_micros(get(&self.wait_max_us)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_wait_in_order_and_tops_bound_them() {
        let mut last = 0;
        for us in (0..5000).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(us);
            assert!(b < BUCKETS && b >= last, "{us} -> {b}");
            assert!(bucket_top(b) >= us, "{us}: top {}", bucket_top(b));
            // A bucket spans at most a quarter of its lower bound.
            assert!(
                bucket_top(b) - us <= us / 4 + 1,
                "{us}: top {}",
                bucket_top(b)
            );
            last = b;
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_waits() {
        let c = Counters::new();
        assert_eq!(c.snapshot().wait_p50, Duration::ZERO);
        for ms in 1..=100 {
            c.acquired(Duration::from_millis(ms), ms > 50);
        }
        let s = c.snapshot();
        assert_eq!((s.acquired, s.contended), (100, 50));
        let near = |d: Duration, ms: u64| {
            let want = Duration::from_millis(ms);
            d >= want && d <= want + want / 4
        };
        assert!(near(s.wait_p50, 50), "{:?}", s.wait_p50);
        assert!(near(s.wait_p99, 99), "{:?}", s.wait_p99);
        assert_eq!(s.wait_max, Duration::from_millis(100));
    }
}
