//! Release notifications: one subscriber connection per client, fanned out
//! to local waiters through crossbeam channels.
//!
//! The release script publishes on a channel named like the lock key. The
//! first waiter on a name asks the feed thread to subscribe to it (waking
//! the thread with a message on the client's own control channel), and is
//! woken once the subscription is in place so that it can retry: a release
//! that happened before cannot be missed. Later releases wake every
//! watcher of the name, except a release addressed to one waiter's token
//! (a waiting writer's, or the head of a fair lock's line), which wakes
//! that waiter alone. When the feed connection fails, every watcher is
//! woken (they fall back to their lease-based timeouts) and the thread
//! reconnects and subscribes again, with a bounded backoff.

use crate::stats::{add, Counters};
use crate::store::{FeedChanges, FeedHandler, Store};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    /// Asked for, not yet confirmed.
    Pending,
    /// Confirmed and wanted.
    Active,
    /// Confirmed, no watcher left: to be dropped.
    Unwanted,
}

/// A local waiter: its id, its channel and the token it asks with, if a
/// release may be addressed to it alone.
struct Watcher {
    id: u64,
    tx: Sender<()>,
    token: Option<String>,
}

struct Name {
    watchers: Vec<Watcher>,
    sub: Sub,
}

impl Name {
    fn wake(&self) {
        for w in &self.watchers {
            // A full slot already means "look again".
            let _ = w.tx.try_send(());
        }
    }

    /// Wakes only the waiter asking with `token` (if it is ours).
    fn wake_token(&self, token: &str) {
        for w in &self.watchers {
            if w.token.as_deref() == Some(token) {
                let _ = w.tx.try_send(());
            }
        }
    }
}

#[derive(Default)]
struct State {
    names: HashMap<String, Name>,
    to_subscribe: Vec<String>,
    to_unsubscribe: Vec<String>,
    next_id: u64,
    stop: bool,
    thread: Option<JoinHandle<()>>,
}

/// A client's release notifications.
pub(crate) struct Notifier {
    store: Arc<dyn Store>,
    /// The client's counters, for feed reconnects.
    counters: Arc<Counters>,
    control: String,
    state: Mutex<State>,
    /// Dropped on shutdown, which ends the reconnect backoff at once.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    /// Times the feed connection failed (see [`Notifier::disruptions`]).
    disruptions: AtomicU64,
}

/// A waiter's interest in one name; dropping it withdraws the interest.
pub(crate) struct Watch {
    notifier: Arc<Notifier>,
    name: String,
    id: u64,
    /// Ready when the name may have been released.
    pub rx: Receiver<()>,
    /// True when a wake will follow once the subscription is in place; when
    /// false the subscription was already live and the caller should look
    /// at the lock once more right away.
    pub wake_pending: bool,
}

impl Watch {
    /// Whether the feed has confirmed the subscription (and not lost it
    /// since): a message sent now reaches this watch.
    pub(crate) fn live(&self) -> bool {
        let s = self.notifier.state.lock();
        s.names
            .get(&self.name)
            .is_some_and(|n| n.sub == Sub::Active)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut s = self.notifier.state.lock();
        let s = &mut *s;
        if let Some(n) = s.names.get_mut(&self.name) {
            n.watchers.retain(|w| w.id != self.id);
            if n.watchers.is_empty() && n.sub == Sub::Active {
                n.sub = Sub::Unwanted;
                s.to_unsubscribe.push(self.name.clone());
            }
        }
    }
}

impl Notifier {
    /// A notifier for `store`'s releases, counting reconnects into
    /// `counters`; its feed thread starts with the first watch.
    pub(crate) fn new(store: Arc<dyn Store>, counters: Arc<Counters>) -> Arc<Self> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        Arc::new(Notifier {
            store,
            counters,
            control: format!("distlock-control:{}", uuid::Uuid::new_v4()),
            state: Mutex::new(State::default()),
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            disruptions: AtomicU64::new(0),
        })
    }

    /// Registers interest in releases of `name`, by a waiter that asks with
    /// `token` (`None`: wake it on every release). With `announce`, also
    /// tells a holder lingering on the lock `name` that someone wants it,
    /// in the same round trip as the poke that makes the feed subscribe
    /// (see [`Store::announce`]).
    pub(crate) fn watch(
        self: &Arc<Self>,
        name: &str,
        token: Option<&str>,
        announce: bool,
    ) -> Watch {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (id, wake_pending, poke) = {
            let mut s = self.state.lock();
            let s = &mut *s;
            let id = s.next_id;
            s.next_id += 1;
            let mut poke = false;
            let n = s.names.entry(name.to_string()).or_insert_with(|| {
                poke = true;
                Name {
                    watchers: Vec::new(),
                    sub: Sub::Pending,
                }
            });
            n.watchers.push(Watcher {
                id,
                tx,
                token: token.map(str::to_string),
            });
            if poke {
                s.to_subscribe.push(name.to_string());
            }
            if n.sub == Sub::Unwanted {
                n.sub = Sub::Active;
                s.to_unsubscribe.retain(|x| x != name);
            }
            let wake_pending = n.sub == Sub::Pending;
            if poke && s.thread.is_none() && !s.stop {
                // The first watcher starts the feed; it subscribes on connect.
                let me = self.clone();
                s.thread = std::thread::Builder::new()
                    .name("distlock-notify".into())
                    .spawn(move || me.run())
                    .ok();
                poke = false;
            }
            (id, wake_pending, poke)
        };
        // If these fail the waiter still wakes on its timeout.
        if announce {
            let _ = self.store.announce(name, poke.then_some(&self.control));
        } else if poke {
            let _ = self.store.poke(&self.control);
        }
        Watch {
            notifier: self.clone(),
            name: name.to_string(),
            id,
            rx,
            wake_pending,
        }
    }

    /// How many times the feed connection has failed: it fails at once
    /// when the server goes away, so a lease confirmed before the count
    /// last moved may have been lost with a restart.
    pub(crate) fn disruptions(&self) -> u64 {
        self.disruptions.load(Ordering::SeqCst)
    }

    /// Stops the feed thread; waits for it unless the server is unreachable
    /// (then it ends by itself at its next read timeout).
    pub(crate) fn shutdown(&self) {
        let thread = {
            let mut s = self.state.lock();
            s.stop = true;
            s.thread.take()
        };
        self.stop_tx.lock().take();
        if let Some(t) = thread {
            if self.store.poke(&self.control).is_ok() {
                let _ = t.join();
            }
        }
    }

    fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut handler = Handler { n: &self };
            let outcome = self.store.run_feed(&self.control, &mut handler);
            if outcome.is_ok() || self.state.lock().stop {
                return;
            }
            if let Err(e) = outcome {
                add(&self.counters.feed_reconnects, 1);
                log::warn!(
                    "distlock: the release feed lost its connection, reconnecting in {} ms: {e}",
                    backoff.as_millis()
                );
            }
            self.lost_feed();
            // Wait before reconnecting; shutdown ends the wait at once.
            if self
                .stop_rx
                .recv_timeout(backoff)
                .is_err_and(|e| e.is_disconnected())
            {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The feed connection failed: resubscribe everything on reconnect, and
    /// wake every watcher so that none waits for a message that cannot come.
    fn lost_feed(&self) {
        self.disruptions.fetch_add(1, Ordering::SeqCst);
        let mut s = self.state.lock();
        let s = &mut *s;
        s.names.retain(|_, n| !n.watchers.is_empty());
        s.to_subscribe = s.names.keys().cloned().collect();
        s.to_unsubscribe.clear();
        for n in s.names.values_mut() {
            n.sub = Sub::Pending;
            n.wake();
        }
    }
}

/// The notifier as the feed sees it.
struct Handler<'a> {
    n: &'a Notifier,
}

impl FeedHandler for Handler<'_> {
    fn changes(&mut self) -> FeedChanges {
        let mut s = self.n.state.lock();
        let s = &mut *s;
        let subscribe: Vec<String> = std::mem::take(&mut s.to_subscribe)
            .into_iter()
            .filter(|x| s.names.get(x).is_some_and(|n| n.sub == Sub::Pending))
            .collect();
        let unsubscribe: Vec<String> = std::mem::take(&mut s.to_unsubscribe)
            .into_iter()
            .filter(|x| s.names.get(x).is_some_and(|n| n.sub == Sub::Unwanted))
            .collect();
        for x in &unsubscribe {
            s.names.remove(x);
        }
        FeedChanges {
            subscribe,
            unsubscribe,
            stop: s.stop,
        }
    }

    fn subscribed(&mut self, name: &str) {
        let mut s = self.n.state.lock();
        let s = &mut *s;
        if let Some(n) = s.names.get_mut(name) {
            if n.watchers.is_empty() {
                n.sub = Sub::Unwanted;
                s.to_unsubscribe.push(name.to_string());
            } else {
                n.sub = Sub::Active;
                n.wake();
            }
        }
    }

    fn released(&mut self, name: &str) {
        if let Some(n) = self.n.state.lock().names.get(name) {
            n.wake();
        }
    }

    fn released_to(&mut self, name: &str, token: &str) {
        if let Some(n) = self.n.state.lock().names.get(name) {
            n.wake_token(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_addressed_to_a_token_wakes_that_waiter_alone() {
        let (mut txs, mut rxs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (tx, rx) = crossbeam_channel::bounded(1);
            txs.push(tx);
            rxs.push(rx);
        }
        let tokens = [Some("a"), Some("b"), None];
        let name = Name {
            watchers: txs
                .into_iter()
                .zip(tokens)
                .enumerate()
                .map(|(id, (tx, token))| Watcher {
                    id: id as u64,
                    tx,
                    token: token.map(str::to_string),
                })
                .collect(),
            sub: Sub::Active,
        };
        name.wake_token("b");
        let woken: Vec<bool> = rxs.iter().map(|rx| rx.try_recv().is_ok()).collect();
        assert_eq!(woken, [false, true, false]);
        name.wake_token("nobody here");
        assert!(rxs.iter().all(|rx| rx.try_recv().is_err()));
        name.wake();
        assert!(rxs.iter().all(|rx| rx.try_recv().is_ok()), "every waiter");
    }
}
