//! The mutual-exclusion checker: given every hold of one lock (fence, start,
//! end, and whether the holder learned it had lost the lock), finds holds
//! that overlapped in time and tells whether each overlap was detected.
#![allow(dead_code)]

/// One critical section, as its holder recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The guard's fencing token.
    pub fence: u64,
    /// Wall-clock nanoseconds when the guard was obtained.
    pub start: u128,
    /// Wall-clock nanoseconds when the holder stopped working under it.
    pub end: u128,
    /// The holder was told it lost the lock (`lost()` fired, `is_held()`
    /// turned false, or release returned `Lost`).
    pub lost: bool,
    /// Wall-clock nanoseconds when it was told (0 if never).
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
    /// Overlapping pairs where the earlier holder was told of its loss and
    /// the later one carried a larger fence: a fenced resource rejects the
    /// stale writer.
    pub overlaps_detected: usize,
    /// Overlapping pairs nobody was told about, or where fences did not
    /// order them: must be 0.
    pub overlaps_undetected: usize,
    /// Consecutive, non-overlapping holds whose fences went backwards: must
    /// be 0.
    pub fence_regressions: usize,
    /// The first few undetected overlaps, for the report.
    pub examples: Vec<(Hold, Hold)>,
}

/// Checks `holds` (in any order).
pub fn check(mut holds: Vec<Hold>) -> Report {
    holds.sort_by_key(|h| h.start);
    let mut r = Report {
        holds: holds.len(),
        signalled_losses: holds.iter().filter(|h| h.lost).count(),
        ..Report::default()
    };
    for (i, a) in holds.iter().enumerate() {
        for b in holds[i + 1..].iter().take_while(|b| b.start < a.end) {
            if a.lost && b.fence > a.fence {
                r.overlaps_detected += 1;
            } else {
                r.overlaps_undetected += 1;
                if r.examples.len() < 5 {
                    r.examples.push((*a, *b));
                }
            }
        }
    }
    for w in holds.windows(2) {
        if w[1].start >= w[0].end && w[1].fence <= w[0].fence {
            r.fence_regressions += 1;
        }
    }
    r
}

/// Wall-clock nanoseconds (all processes of one machine share this clock).
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
