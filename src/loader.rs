//! Fleet-wide singleflight: one load of a missing value across every
//! process, protecting the database behind a cache from a stampede.
//!
//! [`Loader::get_or_load`] reads the value from Redis. On a miss, callers in
//! one process share one attempt (a [`Group`]); that attempt re-checks the
//! cache, takes the distributed lock `loader:<key>`, checks once more, runs
//! the loader, stores the value with its TTL and releases the lock. A process
//! that does not get the lock never runs the loader and never sleeps a fixed
//! time: it waits for the lock's release notification (bounded by the
//! client's `max_retry_interval`), then reads the value. If the holder dies,
//! its lease runs out and a waiter takes over.
//!
//! Values live at `{<prefix>:loader:<key>}:value` (beside the lock key
//! `<prefix>:loader:<key>`, in the same cluster slot). Loader errors reach
//! every caller of that attempt and are not cached.

use crate::client::Client;
use crate::error::Error;
use crate::limits::{check_name, check_ttl, MAX_KEY_LEN};
use crate::singleflight::{FlightError, Group};
use crate::wait;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default largest value a loader stores: 16 MiB.
pub const DEFAULT_MAX_VALUE_LEN: usize = 16 << 20;

/// What a loader's lock name starts with, before the caller's key.
const LOADER_PREFIX: &str = "loader:";

/// Checks a loader key, with messages about the key the caller gave rather
/// than the lock name made from it.
fn validate_key(key: &str) -> Result<(), Error> {
    let max = MAX_KEY_LEN - LOADER_PREFIX.len();
    if key.is_empty() {
        return Err(Error::invalid("loader key is empty"));
    }
    if key.len() > max {
        return Err(Error::invalid(format!(
            "loader key is {} bytes; the maximum is {max} (the lock name `{LOADER_PREFIX}<key>` may have {})",
            key.len(),
            MAX_KEY_LEN
        )));
    }
    Ok(())
}

/// Why [`Loader::get_or_load`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The lock or the cache failed (connection, timeout, bad key...).
    Lock(Error),
    /// The loader returned this error (its `Display` text). Not cached.
    Loader(String),
    /// The loader's value is larger than the configured maximum; it was not
    /// stored.
    TooLarge {
        /// The value's length in bytes.
        len: usize,
        /// The maximum, from [`Loader::max_value_len`].
        max: usize,
    },
    /// The loader panicked (in the thread that ran it).
    Panicked,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Lock(e) => e.fmt(f),
            LoadError::Loader(e) => write!(f, "the loader failed: {e}"),
            LoadError::TooLarge { len, max } => write!(
                f,
                "the loaded value has {len} bytes; the maximum is {max} (Loader::max_value_len)"
            ),
            LoadError::Panicked => f.write_str("the loader panicked"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        LoadError::Lock(e)
    }
}

/// Loads missing values once per fleet; see the module docs. Cheap to
/// clone; clones share their in-process flights.
#[derive(Clone)]
pub struct Loader {
    client: Client,
    flights: Arc<Group<String, Arc<Vec<u8>>, LoadError>>,
    lock_ttl: Duration,
    timeout: Duration,
    max_value_len: usize,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("lock_ttl", &self.lock_ttl)
            .field("timeout", &self.timeout)
            .field("max_value_len", &self.max_value_len)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A fleet-wide loader over this client's server and prefix.
    pub fn loader(&self) -> Loader {
        Loader {
            client: self.clone(),
            flights: Arc::new(Group::new()),
            lock_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }
}

impl Loader {
    /// Lease of the loading lock (default 10 s, auto-renewed while the
    /// loader runs): how long waiters wait before taking over from a
    /// holder that died.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Longest a call waits for another process's load (default 30 s);
    /// then it fails with [`Error::Timeout`]. Zero gives up as soon as
    /// another process is found loading; a timeout too long to represent
    /// as a moment (`Duration::MAX`, say) means no limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest value stored (default [`DEFAULT_MAX_VALUE_LEN`]); a larger
    /// one gives [`LoadError::TooLarge`] and is not stored.
    pub fn max_value_len(mut self, len: usize) -> Self {
        self.max_value_len = len;
        self
    }

    /// The cached value of `key`, or the value `load` produces, stored for
    /// `ttl`. Across the fleet, `load` runs once per miss.
    ///
    /// `key` must be 1 to [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) − 7 bytes (its
    /// lock is named `loader:<key>`); `ttl` is checked like a lock's.
    pub fn get_or_load<E: fmt::Display>(
        &self,
        key: &str,
        ttl: Duration,
        load: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, LoadError> {
        validate_key(key)?;
        let name = format!("{LOADER_PREFIX}{key}");
        check_name(&name)?;
        check_ttl(ttl)?;
        let store = self.client.inner().store();
        // A hit never takes the lock or joins a flight.
        if let Some(v) = store.cache_get(&name)? {
            return Ok(v);
        }
        let outcome = self
            .flights
            .call(name.clone(), || self.fill(&name, ttl, load).map(Arc::new));
        match outcome.value {
            Ok(v) => Ok(Arc::unwrap_or_clone(v)),
            Err(FlightError::Failed(e)) => Err(e),
            Err(FlightError::Panicked) => Err(LoadError::Panicked),
        }
    }

    /// [`get_or_load`](Loader::get_or_load) for UTF-8 text.
    pub fn get_or_load_string<E: fmt::Display>(
        &self,
        key: &str,
        ttl: Duration,
        load: impl FnOnce() -> Result<String, E>,
    ) -> Result<String, LoadError> {
        let bytes = self.get_or_load(key, ttl, || load().map(String::into_bytes))?;
        String::from_utf8(bytes)
            .map_err(|_| LoadError::Lock(Error::Redis("cached value is not UTF-8".into())))
    }

    /// One process's attempt: wait for another process's load, or load.
    fn fill<E: fmt::Display>(
        &self,
        name: &str,
        ttl: Duration,
        load: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, LoadError> {
        let inner = self.client.inner();
        let store = inner.store();
        let lock = self.client.lock(name).ttl(self.lock_ttl);
        // No representable deadline that far away: no limit.
        let deadline = Instant::now().checked_add(self.timeout);
        let mut watch = None;
        loop {
            if let Some(v) = store.cache_get(name)? {
                return Ok(v);
            }
            if let Some(guard) = lock.try_acquire()? {
                // Someone may have filled it between our read and the lock.
                if let Some(v) = store.cache_get(name)? {
                    return Ok(v);
                }
                let value = load().map_err(|e| LoadError::Loader(e.to_string()))?;
                if value.len() > self.max_value_len {
                    return Err(LoadError::TooLarge {
                        len: value.len(),
                        max: self.max_value_len,
                    });
                }
                store.cache_put(name, &value, ttl)?;
                // Releasing publishes: the waiters elsewhere read it now.
                guard.release()?;
                return Ok(value);
            }
            let w = match watch.take() {
                Some(w) => w,
                None => {
                    let w = inner.watch(name, None);
                    if !w.wake_pending {
                        // Already subscribed: look again before waiting.
                        watch = Some(w);
                        continue;
                    }
                    w
                }
            };
            let pause = inner.settings().max_retry_interval;
            let woke = wait::wait_for(&w.rx, Some(pause), deadline, None);
            watch = Some(w);
            woke?;
        }
    }
}
