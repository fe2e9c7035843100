//! A clock for lease deadlines that keeps counting while the machine sleeps.
//!
//! `std::time::Instant` is CLOCK_MONOTONIC on Linux, which stops during
//! suspend: a process resumed after an hour would believe its 30-second lease
//! still had time left. Lease deadlines therefore use CLOCK_BOOTTIME, which
//! includes suspended time. Elsewhere we fall back to `Instant`.

use std::time::Duration;

/// Margin subtracted from every lease for clock drift between this machine
/// and the server, and for the time a reply spends in flight: 1 % of the
/// TTL plus 2 ms, as in the Redlock analysis. Guards (for their deadline),
/// the local fast path (for what is still worth handing on) and Redlock
/// (for validity) all subtract the same margin.
pub(crate) fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// A point on the boot-time clock, in nanoseconds since an arbitrary origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BootInstant(u64);

impl BootInstant {
    /// The current time.
    pub(crate) fn now() -> Self {
        BootInstant(now_nanos())
    }

    /// Nanoseconds since the clock's origin.
    pub(crate) fn nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating.
    pub(crate) fn add(self, d: Duration) -> Self {
        BootInstant(self.0.saturating_add(nanos(d)))
    }

    /// `self - d`, saturating at the origin.
    pub(crate) fn sub(self, d: Duration) -> Self {
        BootInstant(self.0.saturating_sub(nanos(d)))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn since(self, earlier: BootInstant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time left from now until `self`, zero if it has passed.
    pub(crate) fn remaining(self) -> Duration {
        self.since(BootInstant::now())
    }

    /// True once the clock has reached `self`.
    pub(crate) fn has_passed(self) -> bool {
        BootInstant::now() >= self
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn now_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call, and CLOCK_BOOTTIME is supported by every Linux since 2.6.39.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return fallback_nanos();
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn now_nanos() -> u64 {
    fallback_nanos()
}

/// Monotonic time since the first call, for platforms without CLOCK_BOOTTIME.
fn fallback_nanos() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    nanos(ORIGIN.get_or_init(Instant::now).elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_orders() {
        let t = BootInstant::now();
        let later = t.add(Duration::from_millis(5));
        assert!(later > t);
        assert_eq!(later.since(t), Duration::from_millis(5));
        assert_eq!(t.since(later), Duration::ZERO);
        assert_eq!(BootInstant(3).sub(Duration::from_secs(1)), BootInstant(0));
        assert_eq!(
            BootInstant(u64::MAX - 1).add(Duration::MAX),
            BootInstant(u64::MAX)
        );
        assert!(!later.add(Duration::from_secs(60)).has_passed());
        assert!(t.has_passed());
    }
}
