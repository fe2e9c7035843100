//! A loopback TCP proxy that injects faults (lost replies, latency,
//! dropped connections, black holes).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to traffic.
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// On the first reply to a request containing `needle`: run `hook` (with
    /// the reply already applied on the server), then cut the connection so
    /// the client never sees the reply.
    DropReplyTo {
        needle: Vec<u8>,
        hook: Box<dyn FnOnce() + Send>,
    },
    /// New connections are accepted and read, but nothing is forwarded and
    /// nothing is ever answered.
    BlackHole,
    /// Every reply is held back this long.
    Delay(std::time::Duration),
}

/// A loopback TCP proxy in front of one upstream port.
pub struct TcpProxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
    /// Both ends of every forwarded connection, to cut them.
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(Vec::new()));
        let (m, s, l) = (mode.clone(), stop.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                serve(client, upstream, m.clone(), &l);
            }
        });
        TcpProxy {
            port,
            mode,
            stop,
            live,
        }
    }

    /// Closes every connection made so far, as a server restart would.
    pub fn cut_all(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// True once a `DropReplyTo` has fired (the mode is back to `Pass`).
    pub fn is_passing(&self) -> bool {
        matches!(*self.mode.lock().unwrap(), Mode::Pass)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(client: TcpStream, upstream: u16, mode: Arc<Mutex<Mode>>, live: &Mutex<Vec<TcpStream>>) {
    if matches!(*mode.lock().unwrap(), Mode::BlackHole) {
        std::thread::spawn(move || {
            let mut client = client;
            let mut buf = [0u8; 4096];
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
        });
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut ends = live.lock().unwrap();
    ends.extend(client.try_clone().ok());
    ends.extend(server.try_clone().ok());
    drop(ends);
    let armed = Arc::new(AtomicBool::new(false));
    let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mode_up, armed_up) = (mode.clone(), armed.clone());
    // client -> server: arm the drop when a request carries the needle.
    std::thread::spawn(move || {
        let (mut from, mut to) = (c_read, s_write);
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Mode::DropReplyTo { needle, .. } = &*mode_up.lock().unwrap() {
                if buf[..n]
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
                {
                    armed_up.store(true, Ordering::SeqCst);
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
    // server -> client: swallow the armed reply and cut the connection.
    std::thread::spawn(move || {
        let (mut from, mut to) = (server, client);
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = match &*mode.lock().unwrap() {
                Mode::Delay(d) => Some(*d),
                _ => None,
            };
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
            if armed.load(Ordering::SeqCst) {
                let taken = std::mem::replace(&mut *mode.lock().unwrap(), Mode::Pass);
                if let Mode::DropReplyTo { hook, .. } = taken {
                    hook();
                }
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
