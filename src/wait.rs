//! How a blocked acquirer waits between attempts.
//!
//! Today: a bounded retry. After losing a race the waiter sleeps for a
//! jittered, exponentially growing interval, never longer than the holder's
//! remaining lease (so an expiring lock is retried as it expires) nor the
//! configured maximum. The sleep ends early when the caller cancels or the
//! deadline arrives. Replacing this module changes how waiters wake without
//! touching acquisition or guards.

use crate::error::{Error, Result};
use crossbeam_channel::{select, Receiver};
use std::time::{Duration, Instant};

/// The first pause after a lost race.
const FIRST: Duration = Duration::from_millis(2);

/// Decides how long the next pause is.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff whose pauses never exceed `max`.
    pub(crate) fn new(max: Duration) -> Self {
        // Seeded per waiter so that waiters do not retry in lockstep.
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        Backoff {
            next: FIRST.min(max),
            max,
            rng: seed,
        }
    }

    /// The pause before the next attempt, given how long the holder's lease
    /// has left (if the store said).
    pub(crate) fn pause(&mut self, holder_left: Option<Duration>) -> Duration {
        let mut base = self.next;
        self.next = (self.next * 2).min(self.max);
        if let Some(left) = holder_left {
            // Try again right as the holder's lease runs out.
            base = base.min(left + Duration::from_millis(1));
        }
        // Jitter: between 75 % and 125 % of the base.
        let quarter = (base / 4).as_micros() as u64;
        let jitter = if quarter == 0 {
            0
        } else {
            self.random() % (2 * quarter + 1)
        };
        (base - base / 4 + Duration::from_micros(jitter)).min(self.max)
    }

    /// xorshift64: plenty for jitter.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Sleeps for `pause`, cut short by `deadline` (then `Err(Timeout)` if it
/// has passed) or by `cancel` firing (a message or disconnection:
/// `Err(Cancelled)`).
pub(crate) fn sleep(
    pause: Duration,
    deadline: Option<Instant>,
    cancel: Option<&Receiver<()>>,
) -> Result<()> {
    let now = Instant::now();
    let pause = match deadline {
        Some(d) if d <= now => return Err(Error::Timeout),
        Some(d) => pause.min(d - now),
        None => pause,
    };
    match cancel {
        Some(c) => select! {
            recv(c) -> _ => Err(Error::Cancelled),
            default(pause) => Ok(()),
        },
        None => {
            std::thread::sleep(pause);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_and_respect_the_holder() {
        let mut b = Backoff::new(Duration::from_millis(64));
        let first = b.pause(None);
        assert!(first >= Duration::from_micros(1500) && first <= Duration::from_micros(2500));
        let later: Vec<Duration> = (0..10).map(|_| b.pause(None)).collect();
        assert!(later.iter().all(|p| *p <= Duration::from_millis(64)));
        assert!(later[9] >= Duration::from_millis(48));
        let near_expiry = b.pause(Some(Duration::from_millis(3)));
        assert!(near_expiry <= Duration::from_millis(5));
    }

    #[test]
    fn sleep_honours_deadline_and_cancel() {
        let past = Instant::now();
        assert_eq!(
            sleep(Duration::from_secs(5), Some(past), None),
            Err(Error::Timeout)
        );
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        tx.send(()).unwrap();
        assert_eq!(
            sleep(Duration::from_secs(5), None, Some(&rx)),
            Err(Error::Cancelled)
        );
        drop(tx);
        assert_eq!(
            sleep(Duration::from_secs(5), None, Some(&rx)),
            Err(Error::Cancelled)
        );
    }
}
