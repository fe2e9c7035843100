//! A throwaway redis-server on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server child process; killed (by pid) and its directory removed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    password: Option<String>,
}

/// A free loopback port (bound a moment ago).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// A fresh scratch directory for a `kind` of server (`etcd`, `zk`): under
/// the temporary directory, named by this process, a counter and `name`.
pub(crate) fn scratch_dir(kind: &str, name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "distlock-{kind}-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch dir");
    dir
}

/// Starts redis-server on `port` (with `env` added to its environment) and
/// waits until it says it is ready (it logs "Ready to accept
/// connections"); `None` if it does not come up.
fn spawn_on(port: u16, dir: &PathBuf, extra: &[String], env: &[(String, String)]) -> Option<Child> {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    std::fs::create_dir_all(dir).expect("create a scratch dir");
    let mut child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--loglevel", "notice", "--logfile", ""])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (is redis-server installed?)"));
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
    if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl RedisServer {
    /// Starts redis-server without persistence on a free loopback port.
    /// Panics with a hint when redis-server is missing.
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
        Self::start_with_env(extra, &[])
    }

    /// Starts redis-server with extra arguments and `env` added to its
    /// environment (kept for restarts), e.g. an LD_PRELOAD library that
    /// moves its clock. Retries on a port race.
    pub fn start_with_env(extra: &[&str], env: &[(String, String)]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env = env.to_vec();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("distlock-test-{}-{port}", std::process::id()));
            if let Some(child) = spawn_on(port, &dir, &extra, &env) {
                return RedisServer {
                    port,
                    child,
                    dir,
                    extra,
                    env,
                    password: None,
                };
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("redis-server did not start after 5 attempts");
    }

    /// Kills the server (by pid); `restart` brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server and starts a new, empty one on the same port, as a
    /// crash and restart without persistence would.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if let Some(child) = spawn_on(self.port, &self.dir, &self.extra, &self.env) {
                self.child = child;
                return;
            }
        }
        panic!("redis-server did not restart on port {}", self.port);
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

    /// The counter `field` of `INFO stats` (`total_commands_processed`,
    /// `total_connections_received`, ...), read on a new connection (which
    /// the connection counts include).
    pub fn stat(&self, field: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut self.conn())
            .expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in INFO stats"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
