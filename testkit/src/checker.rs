//! The mutual-exclusion checker: given every hold of one lock (fence, start,
//! end, and whether the holder learned it had lost the lock), finds holds
//! that overlapped in time and tells whether each overlap was detected.
//! [`check_rw`] and [`check_semaphore`] do the same for read-write locks
//! (readers may overlap each other, never a writer) and semaphores (never
//! more holders at once than permits).

/// One critical section, as its holder recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The guard's fencing token.
    pub fence: u64,
    /// When the guard was obtained ([`now_ns`]).
    pub start: u128,
    /// When the holder stopped working under it ([`now_ns`]).
    pub end: u128,
    /// The holder was told it lost the lock (`lost()` fired, `is_held()`
    /// turned false, or release returned `Lost`).
    pub lost: bool,
    /// When it was told ([`now_ns`]; 0 if never).
    pub lost_at: u128,
}

impl Hold {
    /// `fence start end lost lost_at` on one line.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.fence,
            self.start,
            self.end,
            u8::from(self.lost),
            self.lost_at
        )
    }

    /// Parses [`Hold::line`].
    pub fn parse(line: &str) -> Option<Hold> {
        let mut f = line.split_whitespace();
        Some(Hold {
            fence: f.next()?.parse().ok()?,
            start: f.next()?.parse().ok()?,
            end: f.next()?.parse().ok()?,
            lost: f.next()? == "1",
            lost_at: f.next()?.parse().ok()?,
        })
    }
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Holds examined.
    pub holds: usize,
    /// Holds whose holder was told of a loss.
    pub signalled_losses: usize,
    /// Overlapping pairs where the hold with the smaller fence was told of
    /// its loss: a fenced resource, having seen the larger fence, rejects
    /// the stale writer, and the stale holder knows it.
    pub overlaps_detected: usize,
    /// Overlapping pairs where the stale holder (the smaller fence) was
    /// never told, or where the fences were equal: must be 0.
    pub overlaps_undetected: usize,
    /// Holds nobody told of a loss whose fence is not above the fence of
    /// every hold that ended before they started: must be 0.
    pub fence_regressions: usize,
    /// The first few undetected overlaps, for the report.
    pub examples: Vec<(Hold, Hold)>,
}

/// Checks `holds` (in any order).
///
/// Which of two overlapping holds is the stale one is decided by the fence,
/// not by who recorded the earlier start: a holder paused between its
/// acquisition and its first step records a late start for a lease that
/// had already run out, and it is that holder (the smaller fence) that a
/// fenced resource refuses and that must have been told.
pub fn check(mut holds: Vec<Hold>) -> Report {
    holds.sort_by_key(|h| h.start);
    let mut r = Report {
        holds: holds.len(),
        signalled_losses: holds.iter().filter(|h| h.lost).count(),
        ..Report::default()
    };
    for (i, a) in holds.iter().enumerate() {
        for b in holds[i + 1..].iter().take_while(|b| b.start < a.end) {
            let stale = if a.fence < b.fence { a } else { b };
            if a.fence != b.fence && stale.lost {
                r.overlaps_detected += 1;
            } else {
                r.overlaps_undetected += 1;
                if r.examples.len() < 5 {
                    r.examples.push((*a, *b));
                }
            }
        }
    }
    let exclusive: Vec<(Hold, bool)> = holds.iter().map(|h| (*h, true)).collect();
    r.fence_regressions = fence_regressions(&exclusive);
    r
}

/// Checks the holds of a read-write lock, each with whether it was a write
/// hold: as [`check`], except that two read holds may overlap.
pub fn check_rw(mut holds: Vec<(Hold, bool)>) -> Report {
    holds.sort_by_key(|(h, _)| h.start);
    let mut r = Report {
        holds: holds.len(),
        signalled_losses: holds.iter().filter(|(h, _)| h.lost).count(),
        ..Report::default()
    };
    for (i, (a, a_writes)) in holds.iter().enumerate() {
        for (b, b_writes) in holds[i + 1..].iter().take_while(|(b, _)| b.start < a.end) {
            if !a_writes && !b_writes {
                continue;
            }
            let stale = if a.fence < b.fence { a } else { b };
            if a.fence != b.fence && stale.lost {
                r.overlaps_detected += 1;
            } else {
                r.overlaps_undetected += 1;
                if r.examples.len() < 5 {
                    r.examples.push((*a, *b));
                }
            }
        }
    }
    let plain: Vec<Hold> = holds.iter().map(|(h, _)| *h).collect();
    r.fence_regressions = fence_regressions(&holds) + shared_fences(&plain);
    r
}

/// Overlaps whose stale holder (the smaller fence) was told of its loss
/// only after the other hold had started, unless `excused(stale, newer)`
/// (a fault no lease can warn of in time: the server losing its data, or
/// the holder itself being stopped). A lease's holder is told by its
/// deadline, which comes before the server lets the lock go: a later
/// warning means it went on working unaware. Returns the count and up to
/// five examples, stale hold first.
pub fn told_late(
    holds: &[Hold],
    excused: &dyn Fn(&Hold, &Hold) -> bool,
) -> (usize, Vec<(Hold, Hold)>) {
    let mut sorted = holds.to_vec();
    sorted.sort_by_key(|h| h.start);
    let (mut n, mut examples) = (0, Vec::new());
    for (i, a) in sorted.iter().enumerate() {
        for b in sorted[i + 1..].iter().take_while(|b| b.start < a.end) {
            if a.fence == b.fence {
                continue;
            }
            let (stale, newer) = if a.fence < b.fence { (a, b) } else { (b, a) };
            if stale.lost && stale.lost_at > newer.start && !excused(stale, newer) {
                n += 1;
                if examples.len() < 5 {
                    examples.push((*stale, *newer));
                }
            }
        }
    }
    (n, examples)
}

/// Checks the holds of a semaphore of `permits`: each moment a hold starts
/// while `permits` others are still held is an overlap, detected when at
/// least as many of the holds then held were told of their loss as there
/// are holds too many (the fenced resource refuses those).
pub fn check_semaphore(mut holds: Vec<Hold>, permits: usize) -> Report {
    holds.sort_by_key(|h| h.start);
    let mut r = Report {
        holds: holds.len(),
        signalled_losses: holds.iter().filter(|h| h.lost).count(),
        ..Report::default()
    };
    let mut held: Vec<Hold> = Vec::new();
    for h in &holds {
        held.retain(|a| a.end > h.start);
        held.push(*h);
        if held.len() > permits {
            let too_many = held.len() - permits;
            if held.iter().filter(|a| a.lost).count() >= too_many {
                r.overlaps_detected += 1;
            } else {
                r.overlaps_undetected += 1;
                if r.examples.len() < 5 {
                    r.examples.push((held[0], *h));
                }
            }
        }
    }
    let shared: Vec<(Hold, bool)> = holds.iter().map(|h| (*h, false)).collect();
    r.fence_regressions = fence_regressions(&shared) + shared_fences(&holds);
    r
}

/// Holds (sorted by start, each with whether it excluded every other) that
/// nobody told of a loss and whose fence is not above the fence of every
/// hold that ended before they started, where one of the two was
/// exclusive. Two shared holds (readers, permits) are not ordered by their
/// times: a permit granted first may start its work after a later one
/// ended, its reply being slower.
fn fence_regressions(holds: &[(Hold, bool)]) -> usize {
    let mut regressions = 0;
    // Walk the holds by start, taking in every hold that ended strictly
    // before: the largest fence among them all, and among the exclusive.
    let mut ends: Vec<(u128, u64, bool)> =
        holds.iter().map(|(h, x)| (h.end, h.fence, *x)).collect();
    ends.sort_unstable();
    let (mut taken, mut highest, mut highest_exclusive) = (0, None, None);
    for (h, exclusive) in holds {
        while taken < ends.len() && ends[taken].0 < h.start {
            let (_, fence, x) = ends[taken];
            highest = highest.max(Some(fence));
            if x {
                highest_exclusive = highest_exclusive.max(Some(fence));
            }
            taken += 1;
        }
        let above = if *exclusive {
            highest
        } else {
            highest_exclusive
        };
        if !h.lost && above.is_some_and(|f| f >= h.fence) {
            regressions += 1;
        }
    }
    regressions
}

/// Pairs of holds that got the same fence (each acquisition must have its
/// own).
fn shared_fences(holds: &[Hold]) -> usize {
    let mut fences: Vec<u64> = holds.iter().map(|h| h.fence).collect();
    fences.sort_unstable();
    fences.windows(2).filter(|w| w[0] == w[1]).count()
}

/// Nanoseconds of CLOCK_MONOTONIC_RAW: one clock that every process of the
/// machine shares, that no wall-clock step moves, and that the clock-fault
/// shim of the safety suite never shifts (it may move a worker's
/// CLOCK_REALTIME, or even its CLOCK_MONOTONIC and CLOCK_BOOTTIME).
pub fn now_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; CLOCK_MONOTONIC_RAW exists on every Linux since 2.6.28.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC_RAW)");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(fence: u64, start: u128, end: u128, lost: bool) -> Hold {
        Hold {
            fence,
            start,
            end,
            lost,
            lost_at: if lost { end } else { 0 },
        }
    }

    #[test]
    fn disjoint_holds_with_rising_fences_pass() {
        let r = check(vec![
            hold(3, 20, 30, false),
            hold(1, 0, 10, false),
            hold(2, 10, 20, false),
        ]);
        assert_eq!(
            (r.holds, r.overlaps_undetected, r.fence_regressions),
            (3, 0, 0)
        );
        assert_eq!(r.overlaps_detected, 0);
    }

    #[test]
    fn an_overlap_nobody_was_told_of_is_undetected() {
        let r = check(vec![hold(1, 0, 10, false), hold(2, 5, 15, false)]);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (0, 1));
        assert_eq!(r.examples.len(), 1);
    }

    #[test]
    fn the_stale_holder_is_the_smaller_fence_whoever_started_first() {
        // Paused between acquiring (fence 1) and starting: its recorded
        // start falls inside the next holder's hold.
        let late_start = vec![hold(2, 0, 10, false), hold(1, 5, 6, true)];
        let r = check(late_start);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (1, 0));
        assert_eq!(r.fence_regressions, 0, "a told holder is no regression");
        // The same holds, but the one told is the newer lease: the stale
        // holder went on unaware.
        let r = check(vec![hold(2, 0, 10, true), hold(1, 5, 6, false)]);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (0, 1));
        // The older lease told and overlapping in start order, as usual.
        let r = check(vec![hold(1, 0, 10, true), hold(2, 5, 15, false)]);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (1, 0));
    }

    #[test]
    fn a_stale_holder_told_after_the_next_started_is_late_unless_excused() {
        let holds = [hold(1, 0, 10, true), hold(2, 5, 15, false)];
        assert_eq!(told_late(&holds, &|_, _| false).0, 1);
        assert_eq!(told_late(&holds, &|s, _| s.fence == 1).0, 0);
        // Told (and done) before the next began: in time.
        let mut early = hold(1, 0, 10, true);
        early.lost_at = 4;
        let holds = [early, hold(2, 5, 15, false)];
        assert_eq!(told_late(&holds, &|_, _| false).0, 0);
        // Never told: undetected, not late.
        let holds = [hold(1, 0, 10, false), hold(2, 5, 15, false)];
        assert_eq!(told_late(&holds, &|_, _| false).0, 0);
    }

    #[test]
    fn readers_may_overlap_each_other_never_a_writer() {
        let readers = vec![
            (hold(1, 0, 10, false), false),
            (hold(2, 5, 15, false), false),
        ];
        assert_eq!(check_rw(readers).overlaps_undetected, 0);
        let writer_among = vec![
            (hold(1, 0, 10, false), false),
            (hold(2, 5, 15, false), true),
            (hold(3, 6, 7, false), false),
        ];
        let r = check_rw(writer_among);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (0, 2));
        let told = vec![(hold(1, 0, 10, true), false), (hold(2, 5, 15, false), true)];
        assert_eq!(check_rw(told).overlaps_detected, 1);
        // Readers are not ordered by their times; a writer is.
        let readers = vec![
            (hold(5, 0, 10, false), false),
            (hold(4, 20, 30, false), false),
        ];
        assert_eq!(check_rw(readers).fence_regressions, 0);
        let after_writer = vec![
            (hold(5, 0, 10, false), true),
            (hold(4, 20, 30, false), false),
        ];
        assert_eq!(check_rw(after_writer).fence_regressions, 1);
        let writer_after = vec![
            (hold(5, 0, 10, false), false),
            (hold(4, 20, 30, false), true),
        ];
        assert_eq!(check_rw(writer_after).fence_regressions, 1);
    }

    #[test]
    fn more_holders_than_permits_is_an_overlap_unless_enough_were_told() {
        let three = vec![
            hold(1, 0, 10, false),
            hold(2, 1, 10, false),
            hold(3, 2, 10, false),
        ];
        assert_eq!(check_semaphore(three.clone(), 3).overlaps_undetected, 0);
        let r = check_semaphore(three.clone(), 2);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (0, 1));
        let mut told = three;
        told[0].lost = true;
        let r = check_semaphore(told, 2);
        assert_eq!((r.overlaps_detected, r.overlaps_undetected), (1, 0));
        // Ended before the next started: no overlap.
        let apart = vec![hold(1, 0, 5, false), hold(2, 5, 9, false)];
        assert_eq!(check_semaphore(apart, 1).overlaps_undetected, 0);
        // Permits are not ordered by their times, but never share a fence.
        let slow_reply = vec![hold(2, 0, 5, false), hold(1, 6, 9, false)];
        assert_eq!(check_semaphore(slow_reply, 2).fence_regressions, 0);
        let twice = vec![hold(2, 0, 5, false), hold(2, 6, 9, false)];
        assert_eq!(check_semaphore(twice, 2).fence_regressions, 1);
    }

    #[test]
    fn equal_fences_never_order_an_overlap() {
        let r = check(vec![hold(7, 0, 10, true), hold(7, 5, 15, true)]);
        assert_eq!(r.overlaps_undetected, 1);
    }

    #[test]
    fn a_smaller_fence_after_any_earlier_hold_is_a_regression() {
        // Not just the hold just before: fence 5 ended long ago.
        let r = check(vec![
            hold(5, 0, 10, false),
            hold(6, 20, 30, false),
            hold(4, 40, 50, false),
        ]);
        assert_eq!(r.fence_regressions, 1);
        // A holder told of its loss is refused by the fenced resource.
        let r = check(vec![hold(5, 0, 10, false), hold(4, 40, 50, true)]);
        assert_eq!(r.fence_regressions, 0);
    }
}
