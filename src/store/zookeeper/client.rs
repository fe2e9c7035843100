//! One ZooKeeper session over `std::net::TcpStream`, with one I/O thread.
//!
//! Callers write their request frames themselves (under the connection's
//! lock, which hands out the xid) and wait on a crossbeam channel for the
//! answer; the session's I/O thread reads every frame, gives each answer
//! to the caller that waits for its xid, passes watch events on, pings at
//! a third of the session timeout when nothing else was sent, and
//! reconnects, to the next server of the list, within the same session.
//!
//! States of the session, as [`Session::connected`] and the events see
//! them:
//!
//! | state | requests | leaves for |
//! | --- | --- | --- |
//! | connected | sent at once | disconnected (read error, EOF, no answer for two thirds of the timeout) |
//! | disconnected | refused (a connection error) | connected (same session) or a new session (the old one expired) |
//! | closed | refused | — (the store is gone; `closeSession` was sent) |

use super::proto::{self, err, op, xid, Malformed, Writer};
use crate::clock::BootInstant;
use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How to reach the ensemble and what session to ask for.
#[derive(Clone, Debug)]
pub(crate) struct SessionConfig {
    /// `host:port` of every server.
    pub servers: Vec<String>,
    /// The session timeout asked for.
    pub timeout: Duration,
    /// Bounds opening a connection (and its handshake).
    pub connect_timeout: Duration,
    /// Bounds waiting for each answer.
    pub command_timeout: Duration,
    /// Where, for messages (`zk://…`).
    pub place: String,
}

/// An answer: the error code, with the response record (empty unless
/// the code is 0).
#[derive(Debug)]
pub(crate) struct Reply {
    /// 0, or an [`err`] code.
    pub err: i32,
    /// The response record.
    pub body: Vec<u8>,
}

/// What the I/O thread tells the session's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A watch fired: its type and the node's path.
    Watch {
        /// The [`proto::event`] type.
        kind: i32,
        /// The node.
        path: String,
    },
    /// The connection dropped: watches must be armed again.
    Disconnected,
}

/// A request waiting for its answer.
pub(crate) type Pending = Receiver<std::result::Result<Reply, String>>;

struct Waiter {
    tx: Sender<std::result::Result<Reply, String>>,
}

struct Conn {
    /// The write side of the current connection.
    stream: Option<TcpStream>,
    /// Callers waiting, by xid.
    pending: HashMap<i32, Waiter>,
    next_xid: i32,
    /// When the last frame was written.
    last_send: BootInstant,
}

struct Identity {
    /// 0 before the first session.
    session: i64,
    passwd: Vec<u8>,
    /// The timeout the server chose.
    negotiated: Duration,
    /// The highest zxid seen (a server that has seen less refuses us).
    last_zxid: i64,
}

struct Inner {
    cfg: SessionConfig,
    conn: Mutex<Conn>,
    /// Signalled when a connection is attached (or the session closes).
    attached: Condvar,
    id: Mutex<Identity>,
    /// Where watch events and disconnects go.
    listener: Mutex<Option<Sender<Event>>>,
    closing: AtomicBool,
    /// Dropped on close: ends reconnect pauses at once.
    stop_rx: Receiver<()>,
}

/// One ZooKeeper session; closed (its ephemeral nodes deleted) on drop.
pub(crate) struct Session {
    inner: Arc<Inner>,
    stop_tx: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A frame's body read from `stream` (blocking, within its timeouts).
fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > proto::MAX_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a frame of {len} bytes"),
                ));
            }
            if buf.len() >= 4 + len {
                let body = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Ok(body);
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Resolves `host:port`.
fn resolve(server: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(server.to_socket_addrs()?.collect())
}

impl Session {
    /// Opens a new session on the first server of `cfg` that answers
    /// (trying each once, in the order listed; after a failure the session
    /// moves on to the next one).
    pub(crate) fn open(cfg: SessionConfig) -> Result<Session> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let inner = Arc::new(Inner {
            cfg,
            conn: Mutex::new(Conn {
                stream: None,
                pending: HashMap::new(),
                next_xid: 1,
                last_send: BootInstant::now(),
            }),
            attached: Condvar::new(),
            id: Mutex::new(Identity {
                session: 0,
                passwd: Vec::new(),
                negotiated: Duration::ZERO,
                last_zxid: 0,
            }),
            listener: Mutex::new(None),
            closing: AtomicBool::new(false),
            stop_rx,
        });
        let mut last = None;
        let mut first = None;
        for (i, server) in inner.cfg.servers.iter().enumerate() {
            match inner.handshake(server) {
                Ok(stream) => {
                    first = Some((i, stream));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((index, stream)) = first else {
            return Err(Error::Connection(format!(
                "{}: no server answered: {}",
                inner.cfg.place,
                last.unwrap_or_else(|| "no server given".into())
            )));
        };
        inner.attach(&stream);
        let me = inner.clone();
        let thread = std::thread::Builder::new()
            .name("distlock-zk-io".into())
            .spawn(move || me.run(index, stream))
            .map_err(|e| {
                Error::Connection(format!("cannot start the ZooKeeper I/O thread: {e}"))
            })?;
        Ok(Session {
            inner,
            stop_tx: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The session timeout the server chose.
    pub(crate) fn negotiated(&self) -> Duration {
        self.inner.id.lock().negotiated
    }

    /// The session's id (it changes when an expired session is replaced).
    pub(crate) fn id(&self) -> i64 {
        self.inner.id.lock().session
    }

    /// Whether a connection is up now.
    pub(crate) fn connected(&self) -> bool {
        self.inner.conn.lock().stream.is_some()
    }

    /// Sends watch events and disconnects to `tx` from now on (replacing
    /// the listener before).
    pub(crate) fn listen(&self, tx: Option<Sender<Event>>) {
        *self.inner.listener.lock() = tx;
    }

    /// Sends one request (`body` writes its record): its answer arrives on
    /// the receiver. While the session reconnects, waits for it (at most
    /// the command timeout).
    pub(crate) fn send(&self, opcode: i32, body: impl FnOnce(&mut Writer)) -> Result<Pending> {
        self.send_within(opcode, body, true)
    }

    /// [`send`](Self::send), but refused at once while the session
    /// reconnects (for renewals: the lease, not a wait, decides).
    pub(crate) fn send_now(&self, opcode: i32, body: impl FnOnce(&mut Writer)) -> Result<Pending> {
        self.send_within(opcode, body, false)
    }

    fn send_within(
        &self,
        opcode: i32,
        body: impl FnOnce(&mut Writer),
        wait: bool,
    ) -> Result<Pending> {
        let mut conn = self.inner.conn.lock();
        if wait && conn.stream.is_none() && !self.inner.closing.load(Ordering::SeqCst) {
            let until = std::time::Instant::now() + self.inner.cfg.command_timeout;
            while conn.stream.is_none() && !self.inner.closing.load(Ordering::SeqCst) {
                if self.inner.attached.wait_until(&mut conn, until).timed_out() {
                    break;
                }
            }
        }
        let xid = conn.next_xid;
        conn.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        let mut w = Writer::request(xid, opcode);
        body(&mut w);
        let frame = w.finish();
        let Some(stream) = conn.stream.as_mut() else {
            return Err(self.inner.not_connected());
        };
        if let Err(e) = stream.write_all(&frame) {
            // The I/O thread notices too, and reconnects.
            let _ = stream.shutdown(Shutdown::Both);
            return Err(Error::Connection(format!(
                "{}: sending a request: {e}",
                self.inner.cfg.place
            )));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        conn.pending.insert(xid, Waiter { tx });
        conn.last_send = BootInstant::now();
        Ok(rx)
    }

    /// Waits for the answer of a request sent with [`send`](Self::send).
    pub(crate) fn wait(&self, pending: &Pending) -> Result<Reply> {
        match pending.recv_timeout(self.inner.cfg.command_timeout) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(why)) => Err(Error::Connection(format!(
                "{}: {why}",
                self.inner.cfg.place
            ))),
            Err(_) => Err(Error::Connection(format!(
                "{}: no answer within {} ms",
                self.inner.cfg.place,
                self.inner.cfg.command_timeout.as_millis()
            ))),
        }
    }

    /// One request and its answer.
    pub(crate) fn call(&self, opcode: i32, body: impl FnOnce(&mut Writer)) -> Result<Reply> {
        let pending = self.send(opcode, body)?;
        self.wait(&pending)
    }

    /// The error for an answer with code `code` to what `what` did.
    pub(crate) fn refused(&self, what: &str, code: i32) -> Error {
        let msg = format!(
            "{}: {what}: {}",
            self.inner.cfg.place,
            proto::err_name(code)
        );
        match code {
            err::NO_AUTH | -115 => Error::Auth(msg),
            // The session or the connection went away under the request:
            // it may or may not have been done.
            err::SESSION_EXPIRED | -4 | -7 | -12 | -118 => Error::Connection(msg),
            _ => Error::Redis(msg),
        }
    }

    /// The error for a reply that did not parse.
    pub(crate) fn malformed(&self, m: Malformed) -> Error {
        Error::Connection(format!("{}: {m}", self.inner.cfg.place))
    }
}

impl Drop for Session {
    /// Closes the session (the server deletes its ephemeral nodes at once)
    /// and waits for the I/O thread.
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.attached.notify_all();
        if let Ok(pending) = self.send(op::CLOSE_SESSION, |_| {}) {
            let _ = pending.recv_timeout(self.inner.cfg.command_timeout);
        }
        self.stop_tx.lock().take();
        if let Some(s) = self.inner.conn.lock().stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn not_connected(&self) -> Error {
        Error::Connection(format!(
            "{}: not connected (reconnecting to the ensemble)",
            self.cfg.place
        ))
    }

    /// Connects to `server` and opens (or resumes) the session on it.
    fn handshake(&self, server: &str) -> std::result::Result<TcpStream, String> {
        let addrs = resolve(server).map_err(|e| format!("{server}: {e}"))?;
        let mut last = format!("{server}: no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.cfg.connect_timeout) {
                Ok(stream) => match self.greet(stream) {
                    Ok(s) => return Ok(s),
                    Err(e) => last = format!("{server}: {e}"),
                },
                Err(e) => last = format!("{server}: {e}"),
            }
        }
        Err(last)
    }

    fn greet(&self, mut stream: TcpStream) -> std::result::Result<TcpStream, String> {
        let _ = stream.set_nodelay(true);
        let timeout = self.cfg.connect_timeout.max(Duration::from_millis(1));
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let (session, passwd, last_zxid) = {
            let id = self.id.lock();
            (id.session, id.passwd.clone(), id.last_zxid)
        };
        let asked = i32::try_from(self.cfg.timeout.as_millis()).unwrap_or(i32::MAX);
        stream
            .write_all(&proto::connect_request(last_zxid, asked, session, &passwd))
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let body = read_frame(&mut stream, &mut buf).map_err(|e| e.to_string())?;
        let resp = proto::connect_response(&body).map_err(|e| e.to_string())?;
        let mut id = self.id.lock();
        if resp.timeout_ms <= 0 {
            // Our session expired: the next handshake opens a new one.
            if id.session != 0 {
                log::warn!(
                    "distlock: the ZooKeeper session {:#x} at {} expired; opening a new one",
                    id.session,
                    self.cfg.place
                );
            }
            id.session = 0;
            id.passwd.clear();
            return Err("the session expired".into());
        }
        id.session = resp.session;
        id.passwd = resp.passwd;
        id.negotiated = Duration::from_millis(u64::try_from(resp.timeout_ms).unwrap_or(0));
        // Writes from callers are bounded by the command timeout.
        let _ = stream.set_write_timeout(Some(self.cfg.command_timeout));
        Ok(stream)
    }

    /// The I/O thread: serves the connection, then reconnects, until the
    /// session is closed.
    fn run(self: Arc<Self>, mut index: usize, stream: TcpStream) {
        let mut stream = Some(stream);
        let mut backoff = Duration::from_millis(10);
        loop {
            if let Some(s) = stream.take() {
                self.serve(s);
                backoff = Duration::from_millis(10);
            }
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            // The next server first: the one that failed may be down.
            let n = self.cfg.servers.len();
            for k in 1..=n {
                let i = (index + k) % n;
                match self.handshake(&self.cfg.servers[i]) {
                    Ok(s) => {
                        index = i;
                        if self.attach(&s) {
                            stream = Some(s);
                        }
                        break;
                    }
                    Err(e) => log::debug!("distlock: ZooKeeper reconnect: {e}"),
                }
                if self.closing.load(Ordering::SeqCst) {
                    return;
                }
            }
            if stream.is_none() {
                if self
                    .stop_rx
                    .recv_timeout(backoff)
                    .is_err_and(|e| e.is_disconnected())
                {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }

    /// Makes `stream` the connection callers write to.
    fn attach(&self, stream: &TcpStream) -> bool {
        let Ok(writer) = stream.try_clone() else {
            return false;
        };
        let mut conn = self.conn.lock();
        if self.closing.load(Ordering::SeqCst) {
            return false;
        }
        conn.stream = Some(writer);
        conn.last_send = BootInstant::now();
        self.attached.notify_all();
        true
    }

    /// Reads and dispatches frames from one (attached) connection until it
    /// fails.
    fn serve(&self, mut stream: TcpStream) {
        let (negotiated, _) = {
            let id = self.id.lock();
            (id.negotiated, id.session)
        };
        let ping_every = (negotiated / 3).max(Duration::from_millis(1));
        // The Java client's rule: nothing heard for two thirds of the
        // timeout means the server is gone.
        let dead_after = negotiated * 2 / 3;
        let tick = (ping_every / 2).max(Duration::from_millis(1));
        let _ = stream.set_read_timeout(Some(tick));
        let mut buf = Vec::new();
        let mut last_recv = BootInstant::now();
        let why = loop {
            match read_frame(&mut stream, &mut buf) {
                Ok(body) => {
                    last_recv = BootInstant::now();
                    if let Err(e) = self.dispatch(&body) {
                        break e.to_string();
                    }
                }
                Err(e) if timed_out(&e) => {
                    if last_recv.since_now() >= dead_after {
                        break format!("no answer for {} ms", dead_after.as_millis());
                    }
                }
                Err(e) => break e.to_string(),
            }
            // A ping when nothing was sent for a third of the timeout.
            let mut conn = self.conn.lock();
            if conn.last_send.since_now() >= ping_every {
                let frame = Writer::request(xid::PING, op::PING).finish();
                let sent = conn
                    .stream
                    .as_mut()
                    .map(|s| s.write_all(&frame).is_ok())
                    .unwrap_or(false);
                if !sent {
                    break "sending a ping failed".into();
                }
                conn.last_send = BootInstant::now();
            }
        };
        if !self.closing.load(Ordering::SeqCst) {
            log::warn!(
                "distlock: lost the connection to ZooKeeper at {}: {why}",
                self.cfg.place
            );
        }
        let pending = {
            let mut conn = self.conn.lock();
            if let Some(s) = conn.stream.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut conn.pending)
        };
        let _ = stream.shutdown(Shutdown::Both);
        for (_, w) in pending {
            let _ = w.tx.send(Err(format!("the connection was lost: {why}")));
        }
        if let Some(l) = &*self.listener.lock() {
            let _ = l.send(Event::Disconnected);
        }
    }

    /// Handles one frame from the server.
    fn dispatch(&self, body: &[u8]) -> std::result::Result<(), Malformed> {
        let (x, zxid, code, rest) = proto::reply_header(body)?;
        {
            let mut id = self.id.lock();
            if zxid > id.last_zxid {
                id.last_zxid = zxid;
            }
        }
        match x {
            xid::PING => Ok(()),
            xid::NOTIFICATION => {
                let (kind, _state, path) = proto::watcher_event(rest)?;
                if let Some(l) = &*self.listener.lock() {
                    let _ = l.send(Event::Watch { kind, path });
                }
                Ok(())
            }
            x => {
                let waiter = self.conn.lock().pending.remove(&x);
                if let Some(Waiter { tx }) = waiter {
                    let _ = tx.send(Ok(Reply {
                        err: code,
                        body: rest.to_vec(),
                    }));
                }
                Ok(())
            }
        }
    }
}

/// `BootInstant` arithmetic the I/O loop needs.
trait SinceNow {
    fn since_now(self) -> Duration;
}

impl SinceNow for BootInstant {
    fn since_now(self) -> Duration {
        BootInstant::now().since(self)
    }
}
