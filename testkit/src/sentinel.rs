//! A throwaway `redis-server --sentinel` on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server --sentinel` process; killed (by pid) and its directory
/// removed on drop.
pub struct SentinelServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl SentinelServer {
    /// Starts a sentinel with `config` (the `sentinel monitor …` lines and
    /// any others, after the port, bind and logging lines this writes), and
    /// waits until it logs that it monitors its master.
    pub fn start(config: &str) -> SentinelServer {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind a loopback port")
                .port();
            let dir = std::env::temp_dir()
                .join(format!("distlock-sentinel-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("make the sentinel's directory");
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!("port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\n{config}"),
            )
            .expect("write sentinel.conf");
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .current_dir(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel");
            // Ready once it logs that it monitors the master.
            let out = child.stdout.take().expect("the sentinel's stdout");
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let mut told = false;
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if !told && line.contains("+monitor master") {
                        told = true;
                        let _ = tx.send(());
                    }
                }
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
                return SentinelServer { port, child, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("redis-server --sentinel did not start");
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A connection to the sentinel.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://{}", self.addr()))
            .expect("a sentinel URL")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the sentinel")
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
