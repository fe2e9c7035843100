//! A throwaway memcached on a free loopback port.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A memcached child process (no UDP, 16 MB, never evicting); killed by pid
/// on drop.
pub struct MemcachedServer {
    /// The TCP port it listens on (127.0.0.1).
    pub port: u16,
    child: Child,
    extra: Vec<String>,
}

/// `-M` (never evict; memcached answers "out of memory" instead), unless
/// the caller asks for an evicting server.
fn no_evict(evict: bool) -> &'static [&'static str] {
    if evict {
        &[]
    } else {
        &["-M"]
    }
}

/// Starts memcached on `port` and waits (at most 5 s) until it accepts a
/// connection; `None` if it exits or never listens (the port was taken).
fn spawn_on(port: u16, extra: &[String]) -> Option<Child> {
    let bin = std::env::var("MEMCACHED").unwrap_or_else(|_| "memcached".into());
    let mut cmd = Command::new(&bin);
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(["-m", "16"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // memcached refuses to run as root unless told which user to be.
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (is memcached installed?)"));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        // Another test's memcached may have won the port: ours is the one
        // that answers with our child's pid.
        match pid_on(port) {
            Some(pid) if pid == child.id() => return Some(child),
            Some(_) => break,
            None => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The pid of the memcached listening on `port`, from `stats`.
fn pid_on(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while !got.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|p| p.trim().parse().ok())
}

impl MemcachedServer {
    /// Starts memcached on a free loopback port. Panics with a hint when
    /// memcached is missing.
    pub fn start() -> Self {
        Self::start_with(no_evict(false))
    }

    /// Starts a memcached that evicts items when full (no `-M`), as a
    /// cache would run: distlock must refuse it.
    pub fn start_evicting() -> Self {
        Self::start_with(no_evict(true))
    }

    /// Starts memcached with extra arguments (give `-M` yourself to keep it
    /// from evicting). Retries on a port race.
    pub fn start_with(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind a loopback port")
                .port();
            if let Some(child) = spawn_on(port, &extra) {
                return MemcachedServer { port, child, extra };
            }
        }
        panic!("memcached did not start after 5 attempts");
    }

    /// `memcache://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (by pid).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if let Some(child) = spawn_on(self.port, &self.extra) {
                self.child = child;
                return;
            }
        }
        panic!("memcached did not restart on port {}", self.port);
    }

    /// Sends raw text commands and returns what came back once the reply
    /// ends with `until` (say `"MN\r\n"` after an `mn`), for disturbing
    /// and inspecting items behind the library's back.
    pub fn raw(&self, commands: &str, until: &str) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to memcached");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(commands.as_bytes()).expect("send to memcached");
        let mut got = Vec::new();
        let mut buf = [0; 4096];
        while !got.ends_with(until.as_bytes()) {
            let n = s.read(&mut buf).expect("read from memcached");
            assert!(n > 0, "memcached closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.stop();
    }
}
