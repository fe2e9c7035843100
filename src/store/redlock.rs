//! Redlock: one lock over N independent Redis nodes, owned only with a
//! majority.
//!
//! Every operation fans out to all nodes in parallel and waits at most the
//! per-node command timeout. Each node has a worker thread fed by a
//! crossbeam channel; the lazy acquire and the release, the commands of
//! every lock cycle, skip it where they can: the caller writes the command
//! to every node on idle connections, then reads the replies itself (see
//! [`RedlockStore::fan_out_split`]).
//!
//! Acquire takes the lock on every node that allows it; with a majority,
//! and validity (TTL minus elapsed minus drift) left, it is ours. Otherwise
//! it is released on every node, including those that did not answer.
//!
//! Fencing across nodes: each node has its own counter, and per-node
//! counters alone give no global order. So acquisition has a second phase:
//! the fence is the largest of the majority's answers, F, and every node of
//! the majority must raise its counter to at least F (the end of F's block)
//! while our key is still there. Two majorities always share a node; at that
//! node the later acquirer's counter, taken only after our key was gone, is
//! above F, so its fence (a maximum over its majority) is above ours. The
//! lock counts as acquired only once a majority confirmed the raise.
//!
//! A lock taken lazily ([`Store::acquire_lazy`]) skips the second phase:
//! each node takes it with a plain `SET NX`, and the two phases of the
//! fence run when it is first read ([`Store::assign_fence`]): each node
//! of a majority gives a fence while the key is still ours there, and the
//! largest is raised on that majority.

use super::ops::Split;
use super::pool::Lent;
use super::redis::{Node as Opener, RedisConfig, RedisStore};
use super::LockInfo;
use super::{Acquired, Extend, FeedHandler, Kind, PassOn, Store, LAZY_FENCE};
use crate::clock::drift;
use crate::error::{Error, Result};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work for one node's worker thread.
type Job = Box<dyn FnOnce(&RedisStore) + Send>;

/// One of the independent nodes, and the thread that talks to it.
struct Node {
    /// The node's own store.
    store: Arc<RedisStore>,
    /// Feeds the worker; `None` once the store is dropped, which ends it.
    jobs: Option<Sender<Job>>,
    /// The worker, joined on drop.
    worker: Option<JoinHandle<()>>,
    /// Jobs sent to the worker and not yet done: while there are any, this
    /// node's commands go through the worker too, so that they reach the
    /// node in the order they were given.
    queued: Arc<AtomicUsize>,
    /// Whether this node's last answer came later than the
    /// [patience](RedlockStore::patience) of its fan-out: a fan-out reads
    /// such a node last, so that its reply is waited for only when a
    /// majority needs it.
    slow: Arc<AtomicBool>,
}

/// `d` in whole µs.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Adds an answer that took `took` to the moving average `answer_us`.
fn note_answer_time(answer_us: &AtomicU64, took: Duration) {
    let old = answer_us.load(Ordering::Relaxed);
    let new = old - old / 8 + micros(took) / 8;
    answer_us.store(new, Ordering::Relaxed);
}

/// A lock store over several independent Redis nodes.
pub(crate) struct RedlockStore {
    /// The nodes, in the order of their URLs.
    nodes: Vec<Node>,
    /// How many nodes make a majority.
    quorum: usize,
    /// How long one fan-out waits for answers.
    timeout: Duration,
    /// How long a node usually takes to answer, in µs (a moving average):
    /// a reply [late](RedlockStore::patience) by that measure is not
    /// waited for on the caller's thread.
    answer_us: Arc<AtomicU64>,
    /// The node whose subscriber feeds release notifications.
    feed_node: AtomicUsize,
    /// `redlock over <n> nodes: ...`, for Debug output.
    place: String,
}

impl RedlockStore {
    /// Opens every node; fails unless a majority answers (and none refuses
    /// the credentials). How many nodes Redlock needs is checked before,
    /// with every other server choice, by `Servers::check`.
    pub(crate) fn connect(cfgs: &[RedisConfig]) -> Result<Self> {
        let n = cfgs.len();
        debug_assert!(n >= 3, "Servers::check lets no smaller Redlock through");
        let stores = cfgs
            .iter()
            .map(|c| RedisStore::open(c).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        // Probe all nodes at once: dead ones cost one timeout, not n.
        // Each answer's time, for a first guess at how long nodes take.
        let probes: Vec<Result<Duration>> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .map(|st| {
                    s.spawn(|| {
                        let start = Instant::now();
                        st.probe().map(|()| start.elapsed())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Redis("probe panicked".into())))
                })
                .collect()
        });
        if let Some(e) = probes
            .iter()
            .find_map(|p| p.as_ref().err().filter(|e| !e.is_transient()))
        {
            return Err(e.clone());
        }
        let quorum = n / 2 + 1;
        let up = probes.iter().filter(|p| p.is_ok()).count();
        let first_answer = probes
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .min()
            .copied()
            .unwrap_or_default();
        if up < quorum {
            return Err(Error::Connection(format!(
                "only {up} of {n} lock servers answered; a majority of {quorum} is needed"
            )));
        }
        let place = format!(
            "redlock over {n} nodes: {}",
            stores
                .iter()
                .map(|s| s.describe())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut nodes = Vec::with_capacity(n);
        for (i, store) in stores.into_iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let st = store.clone();
            let worker = std::thread::Builder::new()
                .name(format!("distlock-node{i}"))
                .spawn(move || {
                    for job in rx {
                        job(&st);
                    }
                })
                .map_err(|e| Error::Connection(format!("cannot start a node thread: {e}")))?;
            nodes.push(Node {
                store,
                jobs: Some(tx),
                worker: Some(worker),
                queued: Arc::new(AtomicUsize::new(0)),
                slow: Arc::new(AtomicBool::new(false)),
            });
        }
        Ok(RedlockStore {
            nodes,
            quorum,
            timeout: cfgs[0].command_timeout,
            // A connection and a PING, a few round trips: a generous first
            // guess, from the quickest node.
            answer_us: Arc::new(AtomicU64::new(micros(first_answer))),
            feed_node: AtomicUsize::new(0),
            place,
        })
    }

    /// Runs `f` on the nodes `targets` in parallel; collects answers until
    /// all came, `enough` says so, or the per-node timeout passes.
    fn fan_out<T: Send + 'static>(
        &self,
        targets: &[usize],
        f: impl Fn(&RedisStore) -> T + Send + Sync + 'static,
        enough: impl Fn(&[(usize, T)]) -> bool,
    ) -> Vec<(usize, T)> {
        let f = Arc::new(f);
        let (tx, rx) = crossbeam_channel::unbounded();
        for &i in targets {
            self.queue(i, &f, &tx);
        }
        drop(tx);
        let mut answers = Vec::with_capacity(targets.len());
        Self::collect(&rx, self.deadline(), &mut answers, &enough);
        answers
    }

    /// Like [`fan_out`](Self::fan_out) over every node, but the command
    /// goes out from this thread, with no thread switch, wherever it can:
    /// `send` writes it on an idle connection of a node whose worker has
    /// nothing queued, and once every node has it, `finish` reads each
    /// reply (the nodes that were slow last time last) until `enough`.
    ///
    /// Nodes where `send` gives `None` or `finish` asks for a redo get `f`
    /// on their worker, as in `fan_out`. A reply later than the
    /// [patience](Self::patience) is not waited for here: that node's
    /// connection is retired and its worker runs `f` once more, whose
    /// answer `again` may change (the first try may have happened). The
    /// replies that are not needed any more are read by the workers.
    fn fan_out_split<U: Send + 'static>(
        &self,
        send: impl Fn(&RedisStore) -> Option<Result<Lent<Opener>>>,
        finish: impl Fn(&RedisStore, &mut Lent<Opener>, Instant) -> Split<U>,
        f: impl Fn(&RedisStore) -> Result<U> + Send + Sync + 'static,
        again: impl Fn(&RedisStore, Result<U>) -> Result<U> + Send + Sync + 'static,
        enough: impl Fn(&[(usize, Result<U>)]) -> bool,
    ) -> Vec<(usize, Result<U>)> {
        let f = Arc::new(f);
        let resent = Arc::new({
            let f = f.clone();
            move |s: &RedisStore| again(s, f(s))
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let (asked, deadline, patience) = (Instant::now(), self.deadline(), self.patience());
        let mut answers = Vec::with_capacity(self.nodes.len());
        let mut lent = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let sent = (node.queued.load(Ordering::SeqCst) == 0)
                .then(|| send(&node.store))
                .flatten();
            match sent {
                Some(Ok(l)) => lent.push((i, l)),
                Some(Err(e)) => answers.push((i, Err(e))),
                None => self.queue(i, &f, &tx),
            }
        }
        lent.sort_by_key(|(i, _)| self.nodes[*i].slow.load(Ordering::Relaxed));
        let mut first = true;
        for (i, mut l) in lent {
            let node = &self.nodes[i];
            if enough(&answers) {
                // Its reply is not needed: the worker reads it, and takes
                // this node's next command after it.
                let slow = node.slow.clone();
                self.give(i, move |_, _queued| {
                    l.drain(deadline);
                    slow.store(asked.elapsed() > patience, Ordering::Relaxed);
                });
                continue;
            }
            let reading = Instant::now();
            let finished = finish(&node.store, &mut l, deadline.min(reading + patience));
            node.slow.store(l.late(), Ordering::Relaxed);
            if l.late() {
                drop(l);
                self.queue(i, &resent, &tx);
                continue;
            }
            if first {
                // Later replies came while this thread waited for earlier
                // ones: only the first tells how long a node takes.
                note_answer_time(&self.answer_us, asked.elapsed());
                first = false;
            }
            match finished {
                Split::Done(answer) => answers.push((i, answer)),
                Split::Redo => self.queue(i, &f, &tx),
            }
        }
        drop(tx);
        Self::collect(&rx, deadline, &mut answers, &enough);
        answers
    }

    /// How long a fan-out waits on its own thread for one node's reply:
    /// eight times the usual answer time, at least 5 ms (a busy machine's
    /// scheduling delays), at most the command timeout.
    fn patience(&self) -> Duration {
        let usual = Duration::from_micros(self.answer_us.load(Ordering::Relaxed));
        let least = Duration::from_millis(5);
        (usual * 8).clamp(least, self.timeout.max(least))
    }

    /// When a fan-out started now stops waiting for answers.
    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout + Duration::from_millis(5)
    }

    /// Gives node `i`'s worker `f`, whose answer it sends on `tx`.
    fn queue<T: Send + 'static>(
        &self,
        i: usize,
        f: &Arc<impl Fn(&RedisStore) -> T + Send + Sync + 'static>,
        tx: &Sender<(usize, T)>,
    ) {
        let (f, tx) = (f.clone(), tx.clone());
        let (slow, answer_us, patience) = (
            self.nodes[i].slow.clone(),
            self.answer_us.clone(),
            self.patience(),
        );
        self.give(i, move |s, queued| {
            let asked = Instant::now();
            let answer = f(s);
            let took = asked.elapsed();
            slow.store(took > patience, Ordering::Relaxed);
            note_answer_time(&answer_us, took);
            drop(queued);
            let _ = tx.send((i, answer));
        });
    }

    /// Gives node `i`'s worker `job`, counted in the node's queue until
    /// the job drops its [`Queued`].
    fn give(&self, i: usize, job: impl FnOnce(&RedisStore, Queued) + Send + 'static) {
        let node = &self.nodes[i];
        if let Some(jobs) = &node.jobs {
            node.queued.fetch_add(1, Ordering::SeqCst);
            let queued = Queued(node.queued.clone());
            // A worker gone (the store is being dropped) drops the job.
            let _ = jobs.send(Box::new(move |s: &RedisStore| job(s, queued)));
        }
    }

    /// Adds the workers' answers on `rx` to `answers` until every worker
    /// has answered, `enough` says so, or `deadline` passes.
    fn collect<T>(
        rx: &crossbeam_channel::Receiver<(usize, T)>,
        deadline: Instant,
        answers: &mut Vec<(usize, T)>,
        enough: &impl Fn(&[(usize, T)]) -> bool,
    ) {
        while !enough(answers) {
            match rx.recv_deadline(deadline) {
                Ok(a) => answers.push(a),
                Err(_) => break,
            }
        }
    }

    /// Every node's index.
    fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// Deletes `name` wherever `token` holds it, waiting until `enough`
    /// answers came, at most the per-node timeout (a node that does not
    /// answer in time still gets the release, later, from its worker).
    fn release_everywhere(
        &self,
        name: &str,
        token: &str,
        enough: impl Fn(&[(usize, Result<bool>)]) -> bool,
    ) -> Vec<(usize, Result<bool>)> {
        let (nm, tk) = (name.to_string(), token.to_string());
        let timeout = self.timeout;
        self.fan_out_split(
            |s| s.send_release(name, token, timeout),
            |s, lent, by| s.finish_release(lent, by),
            move |s| s.release(&nm, &tk),
            // Sent again after a reply that came too late, "not ours" may
            // mean the first one deleted it: not known, then.
            |s, released| match released {
                Ok(false) => Err(Error::Connection(format!(
                    "{}: no reply to the release in time; whether it held the lock is not known",
                    s.describe()
                ))),
                other => other,
            },
            enough,
        )
    }

    /// The error when fewer than a majority of nodes answered.
    fn too_few(&self, answered: usize) -> Error {
        Error::Connection(format!(
            "only {answered} of {} lock servers answered; a majority of {} is needed",
            self.nodes.len(),
            self.quorum
        ))
    }
}

impl Drop for RedlockStore {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.jobs = None;
        }
        for node in &mut self.nodes {
            if let Some(w) = node.worker.take() {
                let _ = w.join();
            }
        }
    }
}

/// A job's place in its node's queue: dropped when the job is done (or
/// dropped itself).
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A short random pause, so that clients that split the vote do not retry
/// in lockstep.
fn jitter(ttl: Duration) -> Duration {
    let r = uuid::Uuid::new_v4().as_u64_pair().0;
    let span = (ttl / 20).as_micros().clamp(1000, 20_000) as u64;
    Duration::from_micros(500 + r % span)
}

impl RedlockStore {
    /// Takes `name` on a majority of nodes; with `lazy`, with each node's
    /// plain `SET NX` and no fencing phase (see [`Store::acquire_lazy`]):
    /// the fence is then made by [`Store::assign_fence`].
    fn acquire_with(&self, name: &str, token: &str, ttl: Duration, lazy: bool) -> Result<Acquired> {
        let start = Instant::now();
        let quorum = self.quorum;
        let (nm, tk) = (name.to_string(), token.to_string());
        let enough = |a: &[(usize, Result<Acquired>)]| {
            let yes = a
                .iter()
                .filter(|(_, r)| matches!(r, Ok(Acquired::Yes { .. })));
            yes.count() >= quorum
        };
        let answers = if lazy {
            let timeout = self.timeout;
            self.fan_out_split(
                |s| s.send_acquire_lazy(name, token, ttl, timeout),
                |s, lent, by| s.finish_acquire_lazy(lent, token, by),
                move |s| s.acquire_lazy(&nm, &tk, ttl),
                // Sent again, it finds its own token and restarts the lease.
                |_, acquired| acquired,
                enough,
            )
        } else {
            self.fan_out(&self.all(), move |s| s.acquire(&nm, &tk, ttl), enough)
        };
        let yes: Vec<(usize, u64)> = answers
            .iter()
            .filter_map(|(i, r)| match r {
                Ok(Acquired::Yes { fence }) => Some((*i, *fence)),
                _ => None,
            })
            .collect();
        if yes.len() >= quorum {
            let valid = || start.elapsed() + drift(ttl) < ttl;
            if lazy {
                if valid() {
                    return Ok(Acquired::Yes { fence: LAZY_FENCE });
                }
            } else {
                let fence = yes.iter().map(|(_, f)| *f).max().unwrap_or(0);
                let holders: Vec<usize> = yes.iter().map(|(i, _)| *i).collect();
                if matches!(self.raise(name, token, fence, &holders), Ok(Some(_))) && valid() {
                    return Ok(Acquired::Yes { fence });
                }
            }
            // Out of time, or the raise unconfirmed: given back below.
        }
        self.release_everywhere(name, token, |_| false);
        let answered = answers.iter().filter(|(_, r)| r.is_ok()).count();
        if answered < quorum {
            return Err(self.too_few(answered));
        }
        let holder_left = answers
            .iter()
            .filter_map(|(_, r)| match r {
                Ok(Acquired::No { remaining }) => *remaining,
                _ => None,
            })
            .max();
        // A split vote (some nodes said yes) clears as soon as the other
        // side releases: retry after a short random pause, not its lease.
        let remaining = if yes.is_empty() {
            holder_left
        } else {
            Some(jitter(ttl))
        };
        Ok(Acquired::No { remaining })
    }

    /// The second phase: raises the counter of `name` to the end of the
    /// block starting at `fence` on the nodes `holders`, while `token`
    /// holds it there. `Some(fence)` once a majority confirmed; `None` if
    /// too many said the lock is not ours; an error if too few answered.
    fn raise(&self, name: &str, token: &str, fence: u64, holders: &[usize]) -> Result<Option<u64>> {
        let quorum = self.quorum;
        let (nm, tk) = (name.to_string(), token.to_string());
        let raised = self.fan_out(
            holders,
            move |s| s.raise_fence(&nm, &tk, fence),
            |a| a.iter().filter(|(_, r)| matches!(r, Ok(true))).count() >= quorum,
        );
        let confirmed = raised.iter().filter(|(_, r)| matches!(r, Ok(true))).count();
        let refused = raised
            .iter()
            .filter(|(_, r)| matches!(r, Ok(false)))
            .count();
        if confirmed >= quorum {
            Ok(Some(fence))
        } else if holders.len() - refused < quorum {
            Ok(None)
        } else {
            Err(self.too_few(confirmed + refused))
        }
    }
}

impl Store for RedlockStore {
    fn acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        self.acquire_with(name, token, ttl, false)
    }

    fn acquire_lazy(&self, name: &str, token: &str, ttl: Duration) -> Result<Acquired> {
        self.acquire_with(name, token, ttl, true)
    }

    /// Each node gives a fence while the lock is still ours there; the
    /// largest of a majority's is raised on that majority, as the second
    /// phase of an acquisition does (the module docs say why that orders
    /// fences across majorities). Each node's fence is taken after any
    /// earlier holder's key left it, so the argument is the same.
    fn assign_fence(&self, name: &str, token: &str) -> Result<Option<u64>> {
        let (quorum, n) = (self.quorum, self.nodes.len());
        let (nm, tk) = (name.to_string(), token.to_string());
        let answers = self.fan_out(
            &self.all(),
            move |s| s.assign_fence(&nm, &tk),
            |a| {
                let given = a.iter().filter(|(_, r)| matches!(r, Ok(Some(_)))).count();
                let refused = a.iter().filter(|(_, r)| matches!(r, Ok(None))).count();
                given >= quorum || refused > n - quorum
            },
        );
        let given: Vec<(usize, u64)> = answers
            .iter()
            .filter_map(|(i, r)| match r {
                Ok(Some(f)) => Some((*i, *f)),
                _ => None,
            })
            .collect();
        if given.len() >= quorum {
            let fence = given.iter().map(|(_, f)| *f).max().unwrap_or(0);
            let holders: Vec<usize> = given.iter().map(|(i, _)| *i).collect();
            return self.raise(name, token, fence, &holders);
        }
        let refused = answers
            .iter()
            .filter(|(_, r)| matches!(r, Ok(None)))
            .count();
        if refused > n - quorum {
            return Ok(None);
        }
        Err(self.too_few(given.len() + refused))
    }

    fn release(&self, name: &str, token: &str) -> Result<bool> {
        // Done once a majority deleted it: the others get the release
        // all the same, before anything else this client sends them.
        let quorum = self.quorum;
        let answers = self.release_everywhere(name, token, |a| {
            a.iter().filter(|(_, r)| matches!(r, Ok(true))).count() >= quorum
        });
        let answered = answers.iter().filter(|(_, r)| r.is_ok()).count();
        let deleted = answers
            .iter()
            .filter(|(_, r)| matches!(r, Ok(true)))
            .count();
        if deleted >= self.quorum {
            return Ok(true);
        }
        if answered < self.quorum {
            return Err(self.too_few(answered));
        }
        Ok(false)
    }

    fn pass_on(&self, name: &str, token: &str, _ttl: Duration) -> Result<PassOn> {
        // Keeping a Redlock lease would need a second fencing round; hand
        // the lock back instead.
        Ok(if self.release(name, token)? {
            PassOn::Released
        } else {
            PassOn::NotOwner
        })
    }

    fn extend(&self, batch: &[Extend<'_>]) -> Result<Vec<bool>> {
        let owned: Vec<(String, String, Duration, Kind)> = batch
            .iter()
            .map(|e| (e.name.to_string(), e.token.to_string(), e.ttl, e.kind))
            .collect();
        let answers = self.fan_out(
            &self.all(),
            move |s| {
                let b: Vec<Extend<'_>> = owned
                    .iter()
                    .map(|(name, token, ttl, kind)| Extend {
                        name,
                        token,
                        ttl: *ttl,
                        kind: *kind,
                    })
                    .collect();
                s.extend(&b)
            },
            |_| false,
        );
        let ok: Vec<&Vec<bool>> = answers
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect();
        if ok.len() < self.quorum {
            return Err(self.too_few(ok.len()));
        }
        Ok((0..batch.len())
            .map(|i| ok.iter().filter(|v| v.get(i) == Some(&true)).count() >= self.quorum)
            .collect())
    }

    fn run_feed(&self, control: &str, handler: &mut dyn FeedHandler) -> Result<()> {
        // Releases publish on every node; listening on one suffices. When it
        // fails, the next attempt uses the next node.
        let i = self.feed_node.load(Ordering::Relaxed) % self.nodes.len();
        let outcome = self.nodes[i].store.run_feed(control, handler);
        if outcome.is_err() {
            self.feed_node.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    fn poke(&self, control: &str) -> Result<()> {
        let i = self.feed_node.load(Ordering::Relaxed) % self.nodes.len();
        self.nodes[i].store.poke(control)
    }

    fn cache_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        // Values are written to every node; any node that has one will do.
        let mut last = None;
        for node in &self.nodes {
            match node.store.cache_get(name) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => last = Some(Ok(None)),
                Err(e) => last = last.or(Some(Err(e))),
            }
        }
        last.unwrap_or(Ok(None))
    }

    fn cache_put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let (nm, v) = (name.to_string(), value.to_vec());
        let answers = self.fan_out(&self.all(), move |s| s.cache_put(&nm, &v, ttl), |_| false);
        let ok = answers.iter().filter(|(_, r)| r.is_ok()).count();
        if ok >= self.quorum {
            Ok(())
        } else {
            Err(self.too_few(ok))
        }
    }

    fn inspect(&self, name: &str) -> Result<LockInfo> {
        let mut last = None;
        for node in &self.nodes {
            match node.store.inspect(name) {
                Ok(info) => return Ok(info),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.too_few(0)))
    }

    /// From the first node that answers: each node holds its own copy of
    /// every lock key, and a majority holds every lock that is held.
    fn held(&self, pattern: &str, limit: usize) -> Result<(Vec<LockInfo>, bool)> {
        let mut last = None;
        for node in &self.nodes {
            match node.store.held(pattern, limit) {
                Ok(held) => return Ok(held),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.too_few(0)))
    }

    fn pool_state(&self) -> (u32, u32) {
        self.nodes.iter().fold((0, 0), |(c, i), n| {
            let (nc, ni) = n.store.pool_state();
            (c + nc, i + ni)
        })
    }

    fn describe(&self) -> &str {
        &self.place
    }
}
