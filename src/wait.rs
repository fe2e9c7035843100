//! How a blocked acquirer waits between attempts.
//!
//! A waiter that lost the race waits for a wake-up (a release notification,
//! or its turn in the local queue), bounded by a pause derived from the
//! holder's remaining lease, by its own deadline, and by cancellation.
//! Replacing this module changes how waiters wait without touching
//! acquisition or guards.

use crate::error::{Error, Result};
use crossbeam_channel::{select, Receiver};
use std::time::{Duration, Instant};

/// How long to wait before looking at a held lock again: until just after
/// the holder's lease runs out (so a crashed holder costs no more than its
/// lease), but never longer than `max` (so a lost notification costs at
/// most `max`).
pub(crate) fn pause_for(holder_left: Option<Duration>, max: Duration) -> Duration {
    holder_left.map_or(max, |left| (left + Duration::from_millis(1)).min(max))
}

/// Waits for a message on `wake`, for at most `pause` (`None`: no limit),
/// cut short by `deadline` and `cancel` (a message or disconnection).
///
/// `Ok(Some(msg))`: woken. `Ok(None)`: the pause ended, or `wake` was
/// disconnected. `Err(Timeout)`: the deadline passed. `Err(Cancelled)`.
pub(crate) fn wait_for<T>(
    wake: &Receiver<T>,
    pause: Option<Duration>,
    deadline: Option<Instant>,
    cancel: Option<&Receiver<()>>,
) -> Result<Option<T>> {
    let now = Instant::now();
    let to_deadline = match deadline {
        Some(d) if d <= now => return Err(Error::Timeout),
        Some(d) => Some(d - now),
        None => None,
    };
    let limit = match (pause, to_deadline) {
        (Some(p), Some(d)) => Some(p.min(d)),
        (p, d) => p.or(d),
    };
    let never = crossbeam_channel::never();
    let cancel = cancel.unwrap_or(&never);
    let timed_out = || match deadline {
        Some(d) if Instant::now() >= d => Err(Error::Timeout),
        _ => Ok(None),
    };
    match limit {
        Some(limit) => select! {
            recv(wake) -> m => Ok(m.ok()),
            recv(cancel) -> _ => Err(Error::Cancelled),
            default(limit) => timed_out(),
        },
        None => select! {
            recv(wake) -> m => Ok(m.ok()),
            recv(cancel) -> _ => Err(Error::Cancelled),
        },
    }
}

/// Sleeps for `pause`, cut short by `deadline` and `cancel` as
/// [`wait_for`] is.
pub(crate) fn sleep(
    pause: Duration,
    deadline: Option<Instant>,
    cancel: Option<&Receiver<()>>,
) -> Result<()> {
    wait_for(
        &crossbeam_channel::never::<()>(),
        Some(pause),
        deadline,
        cancel,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_follows_the_holder_within_the_cap() {
        let max = Duration::from_millis(500);
        assert_eq!(pause_for(None, max), max);
        assert_eq!(
            pause_for(Some(Duration::from_millis(3)), max),
            Duration::from_millis(4)
        );
        assert_eq!(pause_for(Some(Duration::from_secs(30)), max), max);
    }

    #[test]
    fn wait_honours_wake_deadline_and_cancel() {
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

        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<u8>(1);
        wake_tx.send(7).unwrap();
        assert_eq!(wait_for(&wake_rx, None, None, None), Ok(Some(7)));
        assert_eq!(
            wait_for(&wake_rx, Some(Duration::from_millis(1)), None, None),
            Ok(None)
        );
        let soon = Instant::now() + Duration::from_millis(2);
        assert_eq!(
            wait_for(&wake_rx, None, Some(soon), None),
            Err(Error::Timeout)
        );
    }
}
