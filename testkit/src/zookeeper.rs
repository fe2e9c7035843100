//! Throwaway ZooKeeper servers on free loopback ports (Debian's
//! `libzookeeper-java` run by a headless JRE): one server shared by every
//! test of a test binary, each test in a chroot of its own; servers of a
//! test's own (to restart or kill); a three-server ensemble. A small raw
//! client (its own few lines of jute, independent of the library's) looks
//! at and changes the tree behind the library's back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server's jar (its manifest names the other jars it needs).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// ZooKeeper's tick for tests: sessions are checked this often.
const TICK_MS: u32 = 50;

use crate::server::free_port;

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    crate::server::scratch_dir("zk", name)
}

/// One ZooKeeper server process, killed by pid on drop (or, for the
/// shared one, when the test binary exits), its data dir removed.
pub struct ZkProcess {
    /// The client port (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    /// `server.N=…` lines and this server's id, in an ensemble.
    quorum: Option<(String, u32)>,
    child: Option<Child>,
    /// Whether the process dies with the thread that started it.
    tied: bool,
}

impl ZkProcess {
    fn new(port: u16, dir: PathBuf, quorum: Option<(String, u32)>) -> Self {
        ZkProcess {
            port,
            dir,
            quorum,
            child: None,
            tied: false,
        }
    }

    fn write_config(&self) -> PathBuf {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let mut cfg = format!(
            "tickTime={TICK_MS}\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nminSessionTimeout=100\nmaxSessionTimeout=60000\n\
             4lw.commands.whitelist=srvr,ruok\nmaxClientCnxns=0\n",
            data.display(),
            self.port
        );
        if let Some((servers, id)) = &self.quorum {
            std::fs::write(data.join("myid"), id.to_string()).expect("myid");
            cfg.push_str("initLimit=40\nsyncLimit=10\n");
            cfg.push_str(servers);
        }
        let path = self.dir.join("zoo.cfg");
        std::fs::write(&path, cfg).expect("zoo.cfg");
        path
    }

    fn command(&self) -> Command {
        let cfg = self.write_config();
        let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
        let main = if self.quorum.is_some() {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        } else {
            "org.apache.zookeeper.server.ZooKeeperServerMain"
        };
        let mut cmd = Command::new(java);
        cmd.args([
            "-Xmx128m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
            // Test servers: the page cache is durable enough (a killed
            // process loses nothing), and writes answer without an fsync.
            "-Dzookeeper.forceSync=no",
            // Small transaction logs (the default preallocates 64 MiB).
            "-Dzookeeper.preAllocSize=1024",
            // Elections give up on a dead peer quickly.
            "-Dzookeeper.cnxTimeout=500",
            "-cp",
            ZOOKEEPER_JAR,
            main,
        ])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    }

    fn spawn(&mut self) {
        assert!(
            std::path::Path::new(ZOOKEEPER_JAR).exists(),
            "{ZOOKEEPER_JAR} is missing: install libzookeeper-java and a JRE \
             (scripts/ensure-deps.sh does)"
        );
        let mut cmd = self.command();
        if self.tied {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("start java (install a JRE)"));
    }

    /// Waits (at most `limit`) until the server answers a request.
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = &mut self.child {
                if c.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            if let Ok(mut raw) = Raw::connect(self.port) {
                if raw.exists("/").is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server (its data stays for a restart).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, with its data.
    pub fn start_again(&mut self) {
        self.spawn();
        assert!(
            self.wait_ready(Duration::from_secs(20)),
            "ZooKeeper did not restart on port {}",
            self.port
        );
    }

    /// `leader`, `follower` or `standalone`, from the `srvr` command.
    pub fn mode(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"srvr").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_string)
    }
}

impl Drop for ZkProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts one standalone server on a free port (five tries).
fn start_process(tied: bool) -> ZkProcess {
    for _ in 0..5 {
        let mut p = ZkProcess::new(free_port(), scratch("server"), None);
        p.tied = tied;
        p.spawn();
        if p.wait_ready(Duration::from_secs(20)) {
            return p;
        }
        p.stop();
    }
    panic!("ZooKeeper did not start after 5 attempts");
}

/// The shared server's scratch dir, removed when the test binary exits.
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_shared_dir() {
    if let Some(dir) = SHARED_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The server shared by the tests of this binary: started on first use by
/// a thread that lives as long as the process, so that the server dies
/// with the test binary (PR_SET_PDEATHSIG) even though statics never drop.
fn shared() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("zk-shared-server".into())
            .spawn(move || {
                let p = start_process(true);
                let _ = SHARED_DIR.set(p.dir.clone());
                // SAFETY: registers a plain function with no arguments.
                #[allow(unsafe_code)]
                unsafe {
                    libc::atexit(remove_shared_dir);
                }
                let _ = tx.send(p.port);
                // Keeps the server (and this thread, its parent) alive.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the server thread");
        rx.recv_timeout(Duration::from_secs(120))
            .expect("the shared ZooKeeper started")
    })
}

/// A ZooKeeper server for one test: the shared one or one of its own, and
/// a chroot of its own.
pub struct ZkServer {
    /// The client port.
    pub port: u16,
    /// The test's chroot (`/t-<pid>-<n>`).
    pub chroot: String,
    own: Option<ZkProcess>,
}

impl ZkServer {
    /// The shared server, in a fresh chroot.
    pub fn start() -> Self {
        let port = shared();
        ZkServer {
            port,
            chroot: fresh_chroot(),
            own: None,
        }
    }

    /// A server of this test's own (it may stop and restart it).
    pub fn start_own() -> Self {
        let p = start_process(false);
        ZkServer {
            port: p.port,
            chroot: fresh_chroot(),
            own: Some(p),
        }
    }

    /// `zk://127.0.0.1:<port>/<chroot>`.
    pub fn url(&self) -> String {
        format!("zk://127.0.0.1:{}{}", self.port, self.chroot)
    }

    /// A raw session on the server.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port).expect("a raw ZooKeeper session")
    }

    /// The path of the lock `key` (`<prefix>:<name>`, plain names only).
    pub fn lock_path(&self, key: &str) -> String {
        let (prefix, name) = key.split_once(':').expect("prefix:name");
        format!("{}/{prefix}/locks/{name}", self.chroot)
    }

    /// Nodes below the chroot that hold something: locks and cached
    /// values (not folders, nor the waiters' nodes).
    pub fn items(&self) -> usize {
        let mut raw = self.raw();
        let mut n = 0;
        for prefix in raw.children(&self.chroot) {
            let root = format!("{}/{prefix}", self.chroot);
            for folder in ["locks", "cache"] {
                n += raw.children(&format!("{root}/{folder}")).len();
            }
        }
        n
    }

    /// Deletes the lock `key` (`<prefix>:<name>`) behind the library's back.
    pub fn delete(&self, key: &str) {
        let path = self.lock_path(key);
        assert_eq!(self.raw().delete(&path), 0, "delete {path}");
    }

    /// Deletes every lock and cached value of the chroot.
    pub fn flush(&self) {
        let mut raw = self.raw();
        for prefix in raw.children(&self.chroot) {
            let root = format!("{}/{prefix}", self.chroot);
            for folder in ["locks", "cache"] {
                let folder = format!("{root}/{folder}");
                for child in raw.children(&folder) {
                    raw.delete(&format!("{folder}/{child}"));
                }
            }
        }
    }

    /// Waits, at most five seconds, until a client's waiter node for the
    /// lock `name` (default prefix) exists.
    pub fn wait_until_waiting(&self, name: &str) {
        let folder = format!("{}/distlock/waiters/{name}", self.chroot);
        let mut raw = self.raw();
        let start = Instant::now();
        while raw.children(&folder).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "nobody waits for {name:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The server process, when it is this test's own.
    pub fn process(&mut self) -> &mut ZkProcess {
        self.own
            .as_mut()
            .expect("only a server of the test's own (ZkServer::start_own) can be stopped")
    }

    /// Kills the test's own server and starts it again with its data.
    pub fn restart(&mut self) {
        let p = self.process();
        p.stop();
        p.start_again();
    }
}

fn fresh_chroot() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/t-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Three servers of one ensemble on loopback.
pub struct ZkEnsemble {
    /// The servers, by id − 1.
    pub servers: Vec<ZkProcess>,
    /// The chroot the tests use.
    pub chroot: String,
}

impl ZkEnsemble {
    /// Starts three servers and waits (at most 60 s) until each serves.
    pub fn start() -> Self {
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let lines: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, election))| {
                format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1)
            })
            .collect();
        let mut servers: Vec<ZkProcess> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, _, _))| {
                let id = u32::try_from(i + 1).unwrap_or(1);
                ZkProcess::new(
                    *port,
                    scratch(&format!("peer{id}")),
                    Some((lines.clone(), id)),
                )
            })
            .collect();
        for s in &mut servers {
            s.spawn();
        }
        for s in &mut servers {
            assert!(
                s.wait_ready(Duration::from_secs(60)),
                "ensemble server on {} did not serve",
                s.port
            );
        }
        ZkEnsemble {
            servers,
            chroot: fresh_chroot(),
        }
    }

    /// `zk://` listing every server, with the chroot.
    pub fn url(&self) -> String {
        self.url_from(0)
    }

    /// `zk://` listing every server starting with server `first` (clients
    /// connect to the first one listed that answers), with the chroot.
    pub fn url_from(&self, first: usize) -> String {
        let n = self.servers.len();
        let hosts: Vec<String> = (0..n)
            .map(|k| format!("127.0.0.1:{}", self.servers[(first + k) % n].port))
            .collect();
        format!("zk://{}{}", hosts.join(","), self.chroot)
    }

    /// The index of the leader, if one is known.
    pub fn leader(&self) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.child.is_some() && s.mode().as_deref() == Some("leader"))
    }
}

/// A raw ZooKeeper session for looking behind the library's back: one
/// request at a time, watch events skipped.
pub struct Raw {
    stream: TcpStream,
    xid: i32,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn ustring(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn int_at(b: &[u8], at: usize) -> i32 {
    b.get(at..at + 4)
        .map_or(0, |x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

impl Raw {
    /// Opens a session (5 s timeout) on `127.0.0.1:port`.
    pub fn connect(port: u16) -> std::io::Result<Raw> {
        let mut stream = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut body = Vec::new();
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&5000i32.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&16i32.to_be_bytes());
        body.extend_from_slice(&[0; 16]);
        body.push(0);
        stream.write_all(&frame(&body))?;
        let mut raw = Raw { stream, xid: 1 };
        raw.read_frame()?;
        Ok(raw)
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Sends one request; its error code and response record.
    fn call(&mut self, op: i32, record: &[u8]) -> std::io::Result<(i32, Vec<u8>)> {
        let xid = self.xid;
        self.xid += 1;
        let mut body = Vec::new();
        body.extend_from_slice(&xid.to_be_bytes());
        body.extend_from_slice(&op.to_be_bytes());
        body.extend_from_slice(record);
        self.stream.write_all(&frame(&body))?;
        loop {
            let reply = self.read_frame()?;
            if int_at(&reply, 0) == xid {
                return Ok((int_at(&reply, 12), reply[16..].to_vec()));
            }
        }
    }

    /// Whether `path` exists (`Err` if the server does not answer).
    pub fn exists(&mut self, path: &str) -> std::io::Result<bool> {
        let mut r = Vec::new();
        ustring(&mut r, path);
        r.push(0);
        Ok(self.call(3, &r)?.0 == 0)
    }

    /// The names of the children of `path` (none if it does not exist).
    pub fn children(&mut self, path: &str) -> Vec<String> {
        let mut r = Vec::new();
        ustring(&mut r, path);
        r.push(0);
        let (code, body) = self.call(8, &r).expect("getChildren");
        if code != 0 {
            return Vec::new();
        }
        let n = int_at(&body, 0).max(0) as usize;
        let mut at = 4;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let len = int_at(&body, at) as usize;
            out.push(String::from_utf8_lossy(&body[at + 4..at + 4 + len]).into_owned());
            at += 4 + len;
        }
        out
    }

    /// The data of `path`, if it exists.
    pub fn data(&mut self, path: &str) -> Option<Vec<u8>> {
        let mut r = Vec::new();
        ustring(&mut r, path);
        r.push(0);
        let (code, body) = self.call(4, &r).expect("getData");
        if code != 0 {
            return None;
        }
        let len = int_at(&body, 0).max(0) as usize;
        Some(body[4..4 + len].to_vec())
    }

    /// Creates `path` holding `data` with `flags` (0 persistent, 1
    /// ephemeral), open to anyone: the error code (0: created).
    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> i32 {
        let mut r = Vec::new();
        ustring(&mut r, path);
        r.extend_from_slice(&(data.len() as i32).to_be_bytes());
        r.extend_from_slice(data);
        r.extend_from_slice(&1i32.to_be_bytes());
        r.extend_from_slice(&31i32.to_be_bytes());
        ustring(&mut r, "world");
        ustring(&mut r, "anyone");
        r.extend_from_slice(&flags.to_be_bytes());
        self.call(1, &r).expect("create").0
    }

    /// Deletes `path` at any version: the error code (0: deleted).
    pub fn delete(&mut self, path: &str) -> i32 {
        let mut r = Vec::new();
        ustring(&mut r, path);
        r.extend_from_slice(&(-1i32).to_be_bytes());
        self.call(2, &r).expect("delete").0
    }
}
