//! Throwaway etcd members on free loopback ports: one server, or a
//! three-member cluster, each with its data in a scratch directory.

use base64::Engine as _;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One etcd member process; killed by pid on drop, its data dir removed.
pub struct EtcdServer {
    /// The client port (127.0.0.1).
    pub port: u16,
    /// The peer port.
    pub peer_port: u16,
    /// The member's name in its cluster.
    pub name: String,
    /// `name=http://127.0.0.1:peer,…` of the whole cluster.
    cluster: String,
    /// Its data directory.
    dir: PathBuf,
    child: Option<Child>,
    /// Whether the data dir is ours to remove.
    owns_dir: bool,
    /// `--heartbeat-interval` and `--election-timeout`, in ms.
    timing: (u32, u32),
    /// A TLS client port beside the plain one, and its certificate files
    /// (`--cert-file`, `--key-file`).
    tls: Option<(u16, String, String)>,
}

/// Fast elections for tests: leases of 1 s at least.
const FAST: (u32, u32) = (10, 50);

use crate::server::free_port;

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    crate::server::scratch_dir("etcd", name)
}

/// `base64(s)`.
pub fn b64(s: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl EtcdServer {
    /// Starts one etcd on free loopback ports, waiting (at most 10 s) until
    /// it serves. Panics with a hint when etcd is missing.
    pub fn start() -> Self {
        Self::start_with_timing(FAST.0, FAST.1)
    }

    /// Starts one etcd with this heartbeat interval and election timeout
    /// (ms); etcd's own defaults are 100 and 1000 (then its shortest
    /// lease is 2 s).
    pub fn start_with_timing(heartbeat: u32, election: u32) -> Self {
        for _ in 0..5 {
            let (port, peer_port) = (free_port(), free_port());
            let name = "m0".to_string();
            let cluster = format!("{name}=http://127.0.0.1:{peer_port}");
            let mut s = EtcdServer {
                port,
                peer_port,
                name,
                cluster,
                dir: scratch("m0"),
                child: None,
                owns_dir: true,
                timing: (heartbeat, election),
                tls: None,
            };
            if s.spawn("new").is_ok() && s.wait_ready(Duration::from_secs(10)) {
                return s;
            }
            s.stop();
        }
        panic!("etcd did not start after 5 attempts");
    }

    /// Starts one etcd that also serves TLS (a certificate for 127.0.0.1
    /// signed by a throwaway CA): the server, its TLS port and the CA
    /// certificate (PEM) to trust.
    pub fn start_tls() -> (Self, u16, Vec<u8>) {
        let mut s = Self::start();
        s.stop();
        let (ca, cert, key) = crate::test_pki(&s.dir.join("pki"));
        let tls_port = free_port();
        s.tls = Some((tls_port, cert, key));
        s.spawn("existing").expect("restart etcd with TLS");
        assert!(s.wait_ready(Duration::from_secs(10)), "etcd with TLS");
        let ca = std::fs::read(ca).expect("read the CA certificate");
        (s, tls_port, ca)
    }

    /// Starts the process; `state` is `new` or `existing`.
    fn spawn(&mut self, state: &str) -> std::io::Result<()> {
        let bin = std::env::var("ETCD").unwrap_or_else(|_| "etcd".into());
        let mut client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&bin);
        if let Some((port, cert, key)) = &self.tls {
            client.push_str(&format!(",https://127.0.0.1:{port}"));
            cmd.args(["--cert-file", cert, "--key-file", key]);
        }
        let child = cmd
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", state])
            .args(["--heartbeat-interval", &self.timing.0.to_string()])
            .args(["--election-timeout", &self.timing.1.to_string()])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start {bin}: {e} (is etcd-server installed?)"),
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the member answers a linearizable read (a leader is
    /// elected), or `limit` passes.
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = &mut self.child {
                if c.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            if self
                .try_call("/v3/kv/range", &json!({"key": b64("\0")}))
                .is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// `etcd://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.port)
    }

    /// The member's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// One gateway call, or why it failed.
    pub fn try_call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        match agent
            .post(&format!("http://127.0.0.1:{}{path}", self.port))
            .send_string(&body.to_string())
        {
            Ok(r) => serde_json::from_str(&r.into_string().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One gateway call; panics on failure.
    pub fn call(&self, path: &str, body: &Value) -> Value {
        self.try_call(path, body)
            .unwrap_or_else(|e| panic!("etcd {path}: {e}"))
    }

    /// Every key the server holds (a scratch server's keys are all ours).
    pub fn keys(&self) -> Vec<String> {
        let r = self.call(
            "/v3/kv/range",
            &json!({"key": b64("\0"), "range_end": b64("\0"), "keys_only": true}),
        );
        r["kvs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|kv| {
                        let k = base64::engine::general_purpose::STANDARD
                            .decode(kv["key"].as_str().unwrap_or(""))
                            .unwrap_or_default();
                        String::from_utf8_lossy(&k).into_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits, at most five seconds, until some client's release feed
    /// keeps a waiter key for the lock `name` (default prefix).
    pub fn wait_until_waiting_keys(&self, name: &str) {
        let start = Instant::now();
        let prefix = format!("{{distlock:{name}}}:waiter:");
        while !self.keys().iter().any(|k| k.starts_with(&prefix)) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "nobody waits for {name:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Deletes `key` behind the library's back.
    pub fn delete(&self, key: &str) {
        self.call("/v3/kv/deleterange", &json!({"key": b64(key)}));
    }

    /// Deletes every key.
    pub fn flush(&self) {
        self.call(
            "/v3/kv/deleterange",
            &json!({"key": b64("\0"), "range_end": b64("\0")}),
        );
    }

    /// The lease `key` is on (0: none or no key).
    pub fn lease_of(&self, key: &str) -> i64 {
        let r = self.call("/v3/kv/range", &json!({"key": b64(key)}));
        r["kvs"][0]["lease"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Revokes `lease` behind the library's back.
    pub fn revoke(&self, lease: i64) {
        self.call("/v3/lease/revoke", &json!({"ID": lease.to_string()}));
    }

    /// The member's id and the leader's id it knows of.
    pub fn status(&self) -> Result<(String, String), String> {
        let r = self.try_call("/v3/maintenance/status", &json!({}))?;
        Ok((
            r["header"]["member_id"].as_str().unwrap_or("").to_string(),
            r["leader"].as_str().unwrap_or("").to_string(),
        ))
    }

    /// Kills the member (by pid).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the member (SIGSTOP) until [`resume`](Self::resume).
    pub fn pause(&self) {
        crate::signal(self.pid(), libc::SIGSTOP);
    }

    /// Lets a paused member run again (SIGCONT).
    pub fn resume(&self) {
        crate::signal(self.pid(), libc::SIGCONT);
    }

    /// Kills the member and starts it again on the same ports with the
    /// same data (etcd is durable: its revisions, and so fences, go on).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn("existing").expect("restart etcd");
        assert!(
            self.wait_ready(Duration::from_secs(10)),
            "etcd did not restart on port {}",
            self.port
        );
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Three etcd members on loopback, one cluster.
pub struct EtcdCluster {
    /// The members.
    pub members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts three members and waits until they have a leader.
    pub fn start() -> Self {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<EtcdServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, peer_port))| {
                let mut s = EtcdServer {
                    port: *port,
                    peer_port: *peer_port,
                    name: format!("m{i}"),
                    cluster: cluster.clone(),
                    dir: scratch(&format!("m{i}")),
                    child: None,
                    owns_dir: true,
                    timing: FAST,
                    tls: None,
                };
                s.spawn("new").expect("start an etcd member");
                s
            })
            .collect();
        for m in &mut members {
            assert!(
                m.wait_ready(Duration::from_secs(20)),
                "member {} never served",
                m.name
            );
        }
        EtcdCluster { members }
    }

    /// `etcd://` with every member.
    pub fn url(&self) -> String {
        let list: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        format!("etcd://{}", list.join(","))
    }

    /// The index of the member that leads now (asked of the running ones).
    pub fn leader(&self) -> Option<usize> {
        let ids: Vec<Option<(String, String)>> = self
            .members
            .iter()
            .map(|m| {
                if m.child.is_some() {
                    m.status().ok()
                } else {
                    None
                }
            })
            .collect();
        let leader = ids.iter().flatten().map(|(_, l)| l.clone()).next()?;
        ids.iter()
            .position(|s| s.as_ref().is_some_and(|(me, _)| *me == leader))
    }
}
