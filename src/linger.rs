//! Lease caching: the thread that ends a lingering lock's stay.
//!
//! With [`Builder::linger`](crate::Builder::linger), a plain lock released
//! while no thread of the client waits for it stays held on the server (see
//! `local.rs`), so that the client's next acquisition of it is granted
//! without a round trip. Two things end the stay, and this thread waits for
//! both: the linger time passing, and another client announcing that it
//! wants the lock (on the lock's want channel, heard by the client's
//! release feed). Either way the lock is then released on the server.
//!
//! The thread is told once per name when the client starts lingering on
//! it, not at every release: it sleeps until the stay it knows of would
//! end, and asks the local queues then whether it has ended.

use crate::client::Inner;
use crossbeam_channel::{Receiver, Select, Sender};
use parking_lot::Mutex;
use std::sync::Weak;
use std::thread::JoinHandle;
use std::time::Instant;

/// What the linger thread is told.
enum Cmd {
    /// The client lingers on `name`: look at it at `check_at`, and whenever
    /// `wants` fires (someone announced wanting it); the first message is
    /// the subscription's confirmation when `skip_first`.
    Watch {
        name: String,
        wants: Receiver<()>,
        skip_first: bool,
        check_at: Instant,
    },
    /// The client is going away.
    Stop,
}

/// One name the client lingers on.
struct Entry {
    name: String,
    wants: Receiver<()>,
    skip_first: bool,
    check_at: Instant,
}

/// A client's linger thread.
pub(crate) struct Lingerer {
    tx: Sender<Cmd>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// What woke the thread.
enum Woke {
    Cmd(Option<Cmd>),
    Wanted(usize),
    Gone(usize),
    Due,
}

impl Lingerer {
    /// Starts the thread for the client `inner` (held weakly: the thread
    /// never keeps a client alive).
    pub(crate) fn spawn(inner: Weak<Inner>) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("distlock-linger".into())
            .spawn(move || run(&inner, &rx))?;
        Ok(Lingerer {
            tx,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// The client lingers on `name` until about `check_at`; `wants` fires
    /// when another client announces itself (after a first, confirming
    /// message when `skip_first`).
    pub(crate) fn watch(
        &self,
        name: &str,
        wants: Receiver<()>,
        skip_first: bool,
        check_at: Instant,
    ) {
        let _ = self.tx.send(Cmd::Watch {
            name: name.to_string(),
            wants,
            skip_first,
            check_at,
        });
    }

    /// Stops the thread and waits for it, unless this is the thread itself
    /// (the last handle on a client dropped there).
    pub(crate) fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(h) = self.handle.lock().take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

fn run(inner: &Weak<Inner>, rx: &Receiver<Cmd>) {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let woke = {
            let mut sel = Select::new();
            sel.recv(rx);
            for e in &entries {
                sel.recv(&e.wants);
            }
            let op = match entries.iter().map(|e| e.check_at).min() {
                Some(at) => sel.select_deadline(at).ok(),
                None => Some(sel.select()),
            };
            match op {
                None => Woke::Due,
                Some(op) if op.index() == 0 => Woke::Cmd(op.recv(rx).ok()),
                Some(op) => {
                    let i = op.index() - 1;
                    match op.recv(&entries[i].wants) {
                        Ok(()) => Woke::Wanted(i),
                        Err(_) => Woke::Gone(i),
                    }
                }
            }
        };
        match woke {
            Woke::Cmd(None | Some(Cmd::Stop)) => return,
            Woke::Cmd(Some(Cmd::Watch {
                name,
                wants,
                skip_first,
                check_at,
            })) => {
                entries.retain(|e| e.name != name);
                entries.push(Entry {
                    name,
                    wants,
                    skip_first,
                    check_at,
                });
            }
            // The client stopped lingering on the name (its subscription
            // was dropped).
            Woke::Gone(i) => {
                entries.swap_remove(i);
            }
            Woke::Wanted(i) if entries[i].skip_first => entries[i].skip_first = false,
            Woke::Wanted(i) => {
                let Some(inner) = inner.upgrade() else { return };
                if !inner.local().wanted(&*inner, &entries[i].name) {
                    entries.swap_remove(i);
                }
            }
            Woke::Due => {
                let Some(inner) = inner.upgrade() else { return };
                let now = Instant::now();
                entries.retain_mut(|e| {
                    if e.check_at > now {
                        return true;
                    }
                    match inner.local().linger_due(&*inner, &e.name) {
                        Some(at) => {
                            e.check_at = at;
                            true
                        }
                        None => false,
                    }
                });
            }
        }
    }
}
