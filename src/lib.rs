//! distlock: a synchronous, runtime-free distributed lock on Redis.
//!
//! ```no_run
//! use std::time::Duration;
//! let client = distlock::Client::open("redis://127.0.0.1:6379/0")?;
//! let lock = client.lock("orders:42").ttl(Duration::from_secs(10));
//! let guard = lock.acquire_timeout(Duration::from_secs(2))?;
//! // Exclusive work. Pass guard.fence() to the storage you write to, so it
//! // can reject a writer whose lock has meanwhile expired.
//! assert!(guard.is_held());
//! guard.release()?;
//! # Ok::<(), distlock::Error>(())
//! ```
//!
//! No async runtime: blocking connections from an r2d2 pool, one renewal
//! thread per [`Client`], crossbeam channels for every signal. See the
//! README for the guarantees and their limits.
//!
//! # From an async program
//!
//! Every call that talks to the server blocks its thread, and so does
//! dropping a [`Guard`] (it releases the lock). In a tokio program, make
//! those calls on the blocking pool with `spawn_blocking`, or wait for an
//! acquisition through [`Lock::acquire_chan`] bridged to a oneshot channel,
//! which ties up no runtime thread while the lock is busy:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! let client = distlock::Client::open("redis://127.0.0.1:6379/0")?;
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! rt.block_on(async {
//!     // Blocking calls on the blocking pool.
//!     let lock = client.lock("orders:42");
//!     let guard = tokio::task::spawn_blocking(move || {
//!         lock.acquire_timeout(Duration::from_secs(2))
//!     })
//!     .await??;
//!     // ... async work, with guard.fence() passed to the storage ...
//!     tokio::task::spawn_blocking(move || guard.release()).await??;
//!
//!     // Or wait on a oneshot: acquire_chan's own thread does the waiting.
//!     let waiting = client.lock("orders:42").acquire_chan();
//!     let (tx, rx) = tokio::sync::oneshot::channel();
//!     std::thread::spawn(move || tx.send(waiting.recv()));
//!     let guard = rx.await???;
//!     tokio::task::spawn_blocking(move || guard.release()).await??;
//!     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! If the task waiting on the oneshot is dropped, the guard that arrives
//! later is dropped with the channel, which releases it.

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod builder;
mod client;
mod clock;
mod error;
/// The C ABI (`include/distlock.h`): handles, status codes and the
/// `distlock_*` functions that the C, Go and Python bindings call.
pub mod ffi;
mod guard;
mod lease;
mod limits;
mod linger;
mod loader;
mod local;
mod lock;
mod mutant;
mod notify;
mod renew;
mod rwlock;
mod semaphore;
mod servers;
pub mod singleflight;
mod stats;
mod store;
mod tls;
mod wait;

pub use builder::{Builder, DEFAULT_POLL_INTERVAL, DEFAULT_PREFIX, DEFAULT_TTL};
pub use client::{Client, HeldLock, HeldLocks, PoolState};
pub use error::{Error, Result};
pub use guard::Guard;
pub use limits::{MAX_KEY_LEN, MAX_PERMITS, MAX_PREFIX_LEN, MAX_TTL, MIN_TTL};
pub use loader::{LoadError, Loader, DEFAULT_MAX_VALUE_LEN};
pub use lock::Lock;
pub use rwlock::RwLock;
pub use semaphore::Semaphore;
pub use servers::DEFAULT_URL;
pub use stats::Stats;
pub use store::holder::{Holder, MAX_HOST_LEN, MAX_LABEL_LEN};
pub use store::{LockInfo, Share, ShareKind};

/// Re-exported so callers can `select!` on acquisition and loss channels
/// with the same crossbeam version.
pub use crossbeam_channel;
