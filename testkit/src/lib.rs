//! Real parts for distlock's tests, examples and benchmarks: throwaway
//! redis-server, memcached, etcd and ZooKeeper processes on free loopback ports, a loopback TCP proxy that
//! can delay, cut or lose replies, and the overlap checker of the safety
//! suite. Dev-only: never published, never a dependency of the library.

pub mod backend;
pub mod checker;
pub mod etcd;
pub mod memcached;
pub mod proxy;
pub mod sentinel;
pub mod server;
pub mod zookeeper;

pub use backend::AnyServer;
pub use etcd::{EtcdCluster, EtcdServer};
pub use memcached::MemcachedServer;
pub use proxy::{Mode, TcpProxy};
pub use sentinel::SentinelServer;
pub use server::RedisServer;
pub use zookeeper::{ZkEnsemble, ZkServer};

/// Keys in the server's current database.
pub fn dbsize(server: &RedisServer) -> usize {
    redis::cmd("DBSIZE")
        .query(&mut server.conn())
        .expect("DBSIZE")
}

/// Runs `f` on a new thread; its result arrives on the channel (which
/// disconnects if `f` panics).
pub fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> crossbeam_channel::Receiver<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Threads of this process, from /proc.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Runs this test binary again as a child process that runs only the test
/// `entry`, with the environment variable `key` set to `value` (the entry
/// test does its work only when it sees the variable).
pub fn spawn_entry(entry: &str, key: &str, value: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--exact", entry, "--test-threads=1"])
        .env(key, value)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn a worker process")
}

/// Sends `sig` to process `pid` (a redis-server or worker this test
/// started), and checks that it was delivered.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// A loopback port nothing listens on (bound a moment ago, then freed).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("a bound address").port()
}

/// A redis-server with a TLS port beside its plain one; its certificate,
/// for 127.0.0.1, is signed by a throwaway CA.
pub struct TlsServer {
    /// The server; `server.port` is the plain port.
    pub server: RedisServer,
    /// The TLS port.
    pub tls_port: u16,
    /// The CA certificate (PEM) to trust.
    pub ca_pem: Vec<u8>,
}

impl TlsServer {
    /// Makes the certificates with openssl and starts the server.
    pub fn start() -> TlsServer {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("distlock-tls-{}-{n}", std::process::id()));
        let (ca, cert, key) = test_pki(&dir);
        let tls_port = dead_port();
        let server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
        let ca_pem = std::fs::read(&ca).expect("read the CA certificate");
        // The server read its files when it started.
        let _ = std::fs::remove_dir_all(&dir);
        TlsServer {
            server,
            tls_port,
            ca_pem,
        }
    }
}

/// A test CA, and a server certificate for 127.0.0.1 it signed, made with
/// openssl: `(ca.pem, server.pem, server.key)`.
pub(crate) fn test_pki(dir: &std::path::Path) -> (String, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(p("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=distlock test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p("san.ext"),
            "-out",
            &p("server.pem"),
        ],
    ];
    for args in steps {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is needed for the TLS test")
            .success();
        assert!(ok, "openssl {args:?} failed");
    }
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// Waits, at most five seconds, until someone subscribes to releases of
/// the lock `name` (default prefix): a waiter is then really waiting.
/// Nothing tells the test when a subscription lands, so this asks Redis.
pub fn wait_until_subscribed(server: &RedisServer, name: &str) {
    let channel = format!("distlock:{name}");
    let mut raw = server.conn();
    let start = std::time::Instant::now();
    loop {
        let (_, n): (Vec<u8>, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query(&mut raw)
            .expect("PUBSUB NUMSUB");
        if n > 0 {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "nobody subscribed to {channel:?}"
        );
        std::thread::yield_now();
    }
}

/// The token part of a lock value read from the server: distlock writes
/// the token, a newline and the holder's description.
pub fn token_part(value: Option<String>) -> Option<String> {
    value.map(|v| match v.split_once('\n') {
        Some((token, _)) => token.to_string(),
        None => v,
    })
}

/// Waits at most `limit` for a guard's loss signal (`guard.lost()`, which
/// disconnects when the lock is lost); how long it took, or `None`.
pub fn lost_after(
    lost: &crossbeam_channel::Receiver<()>,
    limit: std::time::Duration,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    matches!(
        lost.recv_timeout(limit),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    )
    .then(|| start.elapsed())
}

/// Whether a guard's loss signal (`guard.lost()`) fires within `limit`.
pub fn lost_within(lost: &crossbeam_channel::Receiver<()>, limit: std::time::Duration) -> bool {
    lost_after(lost, limit).is_some()
}
