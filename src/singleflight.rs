//! Singleflight: concurrent calls with the same key share one execution.
//!
//! ```
//! use distlock::singleflight::Group;
//! let group: Group<String, u64, String> = Group::new();
//! let out = group.call("answer".to_string(), || Ok(42));
//! assert_eq!(out.value, Ok(42));
//! assert!(!out.shared);
//! ```

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Why a shared call produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlightError<E> {
    /// The closure returned this error.
    Failed(E),
    /// The closure of the call that ran panicked. The caller that ran it
    /// sees the panic itself; callers that waited for it get this.
    Panicked,
}

impl<E: fmt::Display> fmt::Display for FlightError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlightError::Failed(e) => e.fmt(f),
            FlightError::Panicked => f.write_str("the shared call panicked"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for FlightError<E> {}

/// The result of [`Group::call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<V, E> {
    /// The value, or why there is none.
    pub value: Result<V, FlightError<E>>,
    /// True when more than one caller received this result: a caller that
    /// waited, or the caller that ran it while others waited.
    pub shared: bool,
}

struct Call<V, E> {
    result: Mutex<Option<Result<V, FlightError<E>>>>,
    /// Dropped when the result is in place; waiters block on `done_rx`.
    done_tx: Mutex<Option<Sender<()>>>,
    done_rx: Receiver<()>,
    waiters: Mutex<usize>,
}

/// Deduplicates concurrent calls by key. Cheap to share behind an `Arc`;
/// `V` and `E` are cloned to every caller (wrap large values in `Arc`).
pub struct Group<K, V, E> {
    calls: Mutex<HashMap<K, Arc<Call<V, E>>>>,
}

impl<K, V, E> Default for Group<K, V, E> {
    fn default() -> Self {
        Group {
            calls: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V, E> fmt::Debug for Group<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("in_flight", &self.calls.lock().len())
            .finish()
    }
}

/// Publishes the leader's result and retires the call, even if the
/// closure panics.
struct Landing<'a, K: Hash + Eq, V, E> {
    group: &'a Group<K, V, E>,
    key: &'a K,
    call: &'a Arc<Call<V, E>>,
}

impl<K: Hash + Eq, V, E> Drop for Landing<'_, K, V, E> {
    fn drop(&mut self) {
        let mut slot = self.call.result.lock();
        if slot.is_none() {
            *slot = Some(Err(FlightError::Panicked));
        }
        drop(slot);
        let mut calls = self.group.calls.lock();
        // Only if it was not forgotten and replaced meanwhile.
        if calls
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.call))
        {
            calls.remove(self.key);
        }
        drop(calls);
        self.call.done_tx.lock().take();
    }
}

impl<K: Hash + Eq + Clone, V: Clone, E: Clone> Group<K, V, E> {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` for `key`, unless a call for `key` is already running: then
    /// waits for that one and returns its result. A call that starts after
    /// the previous one finished runs `f` again (nothing is cached).
    pub fn call(&self, key: K, f: impl FnOnce() -> Result<V, E>) -> Outcome<V, E> {
        let (call, leader) = {
            let mut calls = self.calls.lock();
            match calls.get(&key) {
                Some(c) => {
                    *c.waiters.lock() += 1;
                    (c.clone(), false)
                }
                None => {
                    let (tx, rx) = crossbeam_channel::bounded(0);
                    let c = Arc::new(Call {
                        result: Mutex::new(None),
                        done_tx: Mutex::new(Some(tx)),
                        done_rx: rx,
                        waiters: Mutex::new(0),
                    });
                    calls.insert(key.clone(), c.clone());
                    (c, true)
                }
            }
        };
        if !leader {
            // Disconnection is the signal: the leader has landed.
            let _ = call.done_rx.recv();
            let value = call
                .result
                .lock()
                .clone()
                .unwrap_or(Err(FlightError::Panicked));
            return Outcome {
                value,
                shared: true,
            };
        }
        let landing = Landing {
            group: self,
            key: &key,
            call: &call,
        };
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => {
                let value = r.map_err(FlightError::Failed);
                *call.result.lock() = Some(value.clone());
                drop(landing);
                Outcome {
                    value,
                    shared: *call.waiters.lock() > 0,
                }
            }
            Err(panic) => {
                drop(landing);
                resume_unwind(panic)
            }
        }
    }

    /// Forgets the running call for `key`, if any: its callers still get
    /// its result, but the next call for `key` runs afresh.
    pub fn forget(&self, key: &K) {
        self.calls.lock().remove(key);
    }

    /// Keys with a call running now.
    pub fn in_flight(&self) -> usize {
        self.calls.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    #[test]
    fn concurrent_callers_share_one_execution_per_key() {
        let group: Group<u32, usize, String> = Group::new();
        let runs = [AtomicUsize::new(0), AtomicUsize::new(0)];
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
        let start = Barrier::new(65);
        let outcomes: Vec<Outcome<usize, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|i| {
                    let (group, runs, release_rx, start) = (&group, &runs, &release_rx, &start);
                    s.spawn(move || {
                        start.wait();
                        let key = i % 2;
                        group.call(key, || {
                            runs[key as usize].fetch_add(1, Ordering::SeqCst);
                            // Hold the flight open until the test says so.
                            let _ = release_rx.recv();
                            Ok(key as usize * 10)
                        })
                    })
                })
                .collect();
            start.wait();
            // Release the leaders once every other caller waits on them.
            let joined = || -> usize {
                let calls = group.calls.lock();
                calls.values().map(|c| *c.waiters.lock()).sum()
            };
            let t = std::time::Instant::now();
            while joined() < 62 {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(10),
                    "callers lost"
                );
                std::thread::yield_now();
            }
            drop(release_tx);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(runs[0].load(Ordering::SeqCst), 1);
        assert_eq!(runs[1].load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.len(), 64);
        assert!(outcomes.iter().all(|o| o.shared));
        for (i, o) in outcomes.iter().enumerate() {
            assert_eq!(o.value, Ok((i % 2) * 10));
        }
        assert_eq!(group.in_flight(), 0);
        // Finished calls are not cached.
        let again = group.call(0, || Ok(7));
        assert_eq!(again.value, Ok(7));
        assert!(!again.shared);
    }

    /// Runs `lead` as the leader for `key` with one waiter joined, and
    /// returns what the leader (its call, or its panic) and the waiter got.
    #[allow(clippy::type_complexity)]
    fn with_waiter(
        group: &Group<&'static str, u8, String>,
        key: &'static str,
        lead: fn() -> Result<u8, String>,
    ) -> (
        std::thread::Result<Outcome<u8, String>>,
        Outcome<u8, String>,
    ) {
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(0);
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
        std::thread::scope(|s| {
            let leader = s.spawn(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    group.call(key, || {
                        started_tx.send(()).unwrap();
                        let _ = go_rx.recv();
                        lead()
                    })
                }))
            });
            started_rx.recv().unwrap();
            let waiter = s.spawn(|| group.call(key, || Ok(1)));
            // The waiter has joined once the counter moved.
            while group
                .calls
                .lock()
                .get(key)
                .is_some_and(|c| *c.waiters.lock() == 0)
            {
                std::thread::yield_now();
            }
            drop(go_tx);
            (leader.join().unwrap(), waiter.join().unwrap())
        })
    }

    #[test]
    fn errors_reach_everyone_and_a_panic_never_hangs_waiters() {
        let group: Group<&str, u8, String> = Group::new();
        let (leader, waiter) = with_waiter(&group, "e", || Err("boom".to_string()));
        let boom = Err(FlightError::Failed("boom".to_string()));
        assert_eq!(leader.unwrap().value, boom);
        assert_eq!(waiter.value, boom);
        assert!(waiter.shared);

        let (leader, waiter) = with_waiter(&group, "p", || panic!("loader bug"));
        assert!(leader.is_err(), "the leader sees its panic");
        assert_eq!(waiter.value, Err(FlightError::Panicked));
        assert_eq!(group.in_flight(), 0);
        assert_eq!(group.call("p", || Ok(2)).value, Ok(2));
    }

    #[test]
    fn forget_starts_a_new_flight() {
        let group: Group<&str, u8, ()> = Group::new();
        let inner = group.call("k", || {
            group.forget(&"k");
            // With the key forgotten, a nested call runs on its own.
            Ok(group.call("k", || Ok(5)).value.unwrap() + 1)
        });
        assert_eq!(inner.value, Ok(6));
    }
}
