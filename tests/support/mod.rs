//! Real parts for integration tests: throwaway redis-server processes on free
//! loopback ports, and a loopback TCP proxy that can lose replies.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A redis-server child process; killed (by pid) and its directory removed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
    password: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

impl RedisServer {
    /// Starts redis-server without persistence on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts redis-server requiring `password`.
    pub fn with_password(password: &str) -> Self {
        let mut s = Self::start_with(&["--requirepass", password]);
        s.password = Some(password.to_string());
        s
    }

    /// Starts redis-server with extra arguments. Retries on a port race.
    pub fn start_with(extra: &[&str]) -> Self {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!("distlock-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create a scratch dir");
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--loglevel", "notice", "--logfile", ""])
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (is redis-server installed?)"));
            // redis-server says when it is ready; read its log instead of polling.
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let mut ready = false;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if !ready && line.contains("Ready to accept connections") {
                        ready = true;
                        let _ = tx.send(());
                    }
                }
            });
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(()) => {
                    return RedisServer {
                        port,
                        child,
                        dir,
                        password: None,
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        panic!("redis-server did not start after 5 attempts");
    }

    /// `redis://[:password@]127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// A direct connection, for inspecting and disturbing keys.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("connect to the test redis")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
}

/// A loopback TCP proxy in front of one upstream port.
pub struct TcpProxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
}

impl TcpProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                serve(client, upstream, m.clone());
            }
        });
        TcpProxy { port, mode, stop }
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

fn serve(client: TcpStream, upstream: u16, mode: Arc<Mutex<Mode>>) {
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
                if buf[..n].windows(needle.len()).any(|w| w == needle.as_slice()) {
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

/// Threads of this process, from /proc.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}
