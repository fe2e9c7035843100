//! etcd's JSON gateway over blocking HTTP/1.1: the members, the
//! authentication token, the error mapping and the base64 the gateway wants.
//!
//! The gateway serves etcd's gRPC API as JSON (`POST /v3/kv/txn` and so on):
//! keys and values are base64, 64-bit numbers are strings, and fields with
//! their zero value are left out of replies. A streaming RPC takes its
//! requests as consecutive JSON objects in one request body and answers
//! with one `{"result": …}` object a line: that is how one keepalive
//! request renews every lease of a round, and how the release feed reads
//! its watch.
//!
//! Requests go to the member that answered last; when it cannot be
//! reached (or says it has no leader) the next member is tried, so a
//! cluster keeps serving while one member is down.

use crate::error::{Error, Result};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// gRPC status codes the gateway puts in `code`.
mod code {
    /// The request's arguments are wrong (also: bad user or password).
    pub const INVALID_ARGUMENT: i64 = 3;
    /// The request's deadline passed on the server.
    pub const DEADLINE_EXCEEDED: i64 = 4;
    /// Not found (a lease).
    pub const NOT_FOUND: i64 = 5;
    /// The user may not do this.
    pub const PERMISSION_DENIED: i64 = 7;
    /// Too many requests.
    pub const RESOURCE_EXHAUSTED: i64 = 8;
    /// No leader, leader changed, server stopping, request timed out.
    pub const UNAVAILABLE: i64 = 14;
    /// The authentication token is missing, wrong or expired.
    pub const UNAUTHENTICATED: i64 = 16;
}

/// `bytes` in the standard base64 the gateway reads keys and values in.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a base64 field of a reply (absent: empty).
pub(crate) fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

/// A 64-bit number of a reply: a string, or absent for zero.
pub(crate) fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// A failed call: either the member could not be reached (or answered
/// that it cannot serve now), or it refused the request.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Connection trouble or an unavailable member: another member may
    /// serve the request; the request may or may not have been applied.
    Unreachable(String),
    /// The server refused the request (gRPC `code`, message).
    Refused(i64, String),
}

impl Failure {
    /// Whether the server said "not found" (a lease that is gone).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Failure::Refused(code::NOT_FOUND, _))
    }
}

/// The user and password to authenticate with, never shown.
struct Credentials {
    /// The etcd user.
    name: String,
    /// Its password.
    password: String,
}

/// The members of one etcd cluster, reached through its JSON gateway.
pub(crate) struct Gateway {
    /// The pooled keep-alive connections, with the command timeout.
    agent: ureq::Agent,
    /// The agent for watches: no read timeout but the feed's own.
    stream_agent: Mutex<Option<(Duration, ureq::Agent)>>,
    /// `http[s]://host:port` of every member.
    members: Vec<String>,
    /// The member to try first.
    current: AtomicUsize,
    /// etcd's user and password, when authentication is on.
    credentials: Option<Credentials>,
    /// The token `/v3/auth/authenticate` gave.
    token: Mutex<Option<String>>,
    /// TLS settings, for the stream agent.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Bounds connecting.
    connect_timeout: Duration,
    /// Bounds each unary call, connecting included.
    command_timeout: Duration,
    /// Requests in flight: the pool's busy connections.
    pub(crate) busy: AtomicU32,
    /// Set when the store is dropped.
    closing: AtomicBool,
    /// `etcd[s]://host:port,…`, for messages.
    place: String,
}

/// A streamed reply: one JSON object a line.
pub(crate) struct Stream {
    /// The reply body.
    lines: BufReader<Box<dyn Read + Send + Sync>>,
    /// The line being read.
    buf: String,
}

impl Stream {
    /// The next object (`None` at the end of the reply).
    pub(crate) fn next(&mut self) -> std::io::Result<Option<Value>> {
        loop {
            self.buf.clear();
            if self.lines.read_line(&mut self.buf)? == 0 {
                return Ok(None);
            }
            let line = self.buf.trim();
            if line.is_empty() {
                continue;
            }
            return serde_json::from_str(line)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
        }
    }
}

/// What a [`Gateway`] is built from.
pub(crate) struct GatewayConfig<'a> {
    /// `host:port` of every member.
    pub members: &'a [String],
    /// TLS (`etcds://`), with the certificates to use.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// User and password, if authentication is on.
    pub credentials: Option<(String, String)>,
    /// Bounds connecting.
    pub connect_timeout: Duration,
    /// Bounds each reply.
    pub command_timeout: Duration,
    /// Most idle connections kept per member.
    pub pool_size: u32,
    /// How the store is named in messages.
    pub place: String,
}

/// rustls under ureq: ureq's own rustls feature would also build a
/// process-wide default configuration (with bundled roots) that is never
/// freed; this one uses only the configuration given.
struct Rustls(Arc<rustls::ClientConfig>);

/// A TLS connection for ureq.
struct TlsStream(rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>);

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsStream")
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl ureq::ReadWrite for TlsStream {
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.0.get_ref().socket()
    }
}

impl ureq::TlsConnector for Rustls {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> std::result::Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let io_err = |kind, e: String| ureq::Error::from(std::io::Error::new(kind, e));
        // rustls takes IPv6 addresses without their brackets.
        let name = dns_name.trim_start_matches('[').trim_end_matches(']');
        let sni = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|e| {
            io_err(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} as a TLS server name: {e}"),
            )
        })?;
        let mut conn = rustls::ClientConnection::new(self.0.clone(), sni)
            .map_err(|e| io_err(std::io::ErrorKind::Other, format!("TLS: {e}")))?;
        conn.complete_io(&mut io)
            .map_err(|e| io_err(e.kind(), format!("TLS handshake: {e}")))?;
        Ok(Box::new(TlsStream(rustls::StreamOwned::new(conn, io))))
    }
}

/// An agent with these timeouts and TLS settings.
fn agent(
    tls: &Option<Arc<rustls::ClientConfig>>,
    connect: Duration,
    read: Duration,
    idle: usize,
) -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(read)
        .timeout_write(read)
        .max_idle_connections_per_host(idle)
        .max_idle_connections(idle * 8)
        .redirects(0)
        .try_proxy_from_env(false)
        .user_agent(concat!("distlock/", env!("CARGO_PKG_VERSION")));
    if let Some(tls) = tls {
        b = b.tls_connector(Arc::new(Rustls(tls.clone())));
    }
    b.build()
}

impl Gateway {
    /// A gateway to these members; nothing is sent yet.
    pub(crate) fn new(cfg: GatewayConfig<'_>) -> Gateway {
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let idle = usize::try_from(cfg.pool_size.max(1)).unwrap_or(1);
        Gateway {
            agent: agent(&cfg.tls, cfg.connect_timeout, cfg.command_timeout, idle),
            stream_agent: Mutex::new(None),
            members: cfg
                .members
                .iter()
                .map(|m| format!("{scheme}://{m}"))
                .collect(),
            current: AtomicUsize::new(0),
            credentials: cfg
                .credentials
                .map(|(name, password)| Credentials { name, password }),
            token: Mutex::new(None),
            tls: cfg.tls,
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            busy: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            place: cfg.place,
        }
    }

    /// Marks the gateway's store as gone (see [`closing`](Self::closing)).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Whether the store is gone: background work may give up.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// `etcd[s]://host:port,…`.
    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// An error of ours for a failure that no member got past.
    pub(crate) fn error(&self, f: Failure) -> Error {
        match f {
            Failure::Unreachable(m) => Error::Connection(format!("{}: {m}", self.place)),
            Failure::Refused(code::UNAUTHENTICATED | code::PERMISSION_DENIED, m) => {
                Error::Auth(format!("{}: {m}", self.place))
            }
            Failure::Refused(code::INVALID_ARGUMENT, m) if m.contains("authentication failed") => {
                Error::Auth(format!("{}: {m}", self.place))
            }
            Failure::Refused(code::INVALID_ARGUMENT, m) if m.contains("user name is empty") => {
                Error::Auth(format!(
                    "{}: {m} (authentication is on: give etcd://user:password@host:port)",
                    self.place
                ))
            }
            Failure::Refused(_, m) => Error::Redis(format!("{}: {m}", self.place)),
        }
    }

    /// Sends `body` to `path` on one member, with the auth token.
    fn send_to(
        &self,
        agent: &ureq::Agent,
        member: &str,
        path: &str,
        body: &[u8],
        token: Option<&str>,
        limit: Duration,
    ) -> std::result::Result<ureq::Response, Failure> {
        // A deadline for the whole request: ureq applies its read timeout
        // to a reused connection only once the headers are in, so a member
        // that stopped answering would block the headers' read forever.
        let mut req = agent
            .post(&format!("{member}{path}"))
            .timeout(limit)
            .set("Content-Type", "application/json");
        if let Some(token) = token {
            req = req.set("Authorization", token);
        }
        if path == "/v3/watch" {
            // The member cancels the watch when it loses its leader, so the
            // feed moves on instead of hearing nothing.
            req = req.set("Grpc-Metadata-hasleader", "true");
        }
        match req.send_bytes(body) {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => {
                // The gateway sends an error body with a trailer: read what
                // comes, and take the first JSON value of it.
                let mut text = Vec::new();
                let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut text);
                let reply: Value = serde_json::Deserializer::from_slice(&text)
                    .into_iter::<Value>()
                    .next()
                    .and_then(|v| v.ok())
                    .unwrap_or(Value::Null);
                let code = num(&reply["code"]);
                let msg = reply["message"]
                    .as_str()
                    .or(reply["error"].as_str())
                    .map_or_else(|| format!("HTTP status {status}"), str::to_owned);
                if code == code::UNAVAILABLE
                    || code == code::DEADLINE_EXCEEDED
                    || code == code::RESOURCE_EXHAUSTED
                    || (code == 0 && status >= 500)
                {
                    Err(Failure::Unreachable(format!("{member}: {msg}")))
                } else {
                    Err(Failure::Refused(code, msg))
                }
            }
            Err(ureq::Error::Transport(t)) => {
                // The URL holds no secret (credentials travel in a header),
                // but keep the message to the kind and detail.
                let mut detail = t.message().map(str::to_owned).unwrap_or_default();
                let mut source = std::error::Error::source(&t);
                while let Some(e) = source {
                    detail.push_str(&format!(": {e}"));
                    source = e.source();
                }
                Err(Failure::Unreachable(
                    format!("{member}: {} {detail}", t.kind())
                        .trim_end()
                        .to_owned(),
                ))
            }
        }
    }

    /// A fresh authentication token from `member`.
    fn authenticate(
        &self,
        agent: &ureq::Agent,
        member: &str,
    ) -> std::result::Result<Option<String>, Failure> {
        let Some(c) = &self.credentials else {
            return Ok(None);
        };
        let body = json!({"name": c.name, "password": c.password}).to_string();
        let resp = self.send_to(
            agent,
            member,
            "/v3/auth/authenticate",
            body.as_bytes(),
            None,
            self.command_timeout,
        )?;
        let reply = read_json(resp)?;
        let token = reply["token"].as_str().map(str::to_owned);
        *self.token.lock() = token.clone();
        Ok(token)
    }

    /// Sends `body` to `path`, starting with the current member and moving
    /// on when one cannot serve; authenticates first when needed, and
    /// again once when the token has expired.
    fn send(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &[u8],
        limit: Duration,
    ) -> std::result::Result<ureq::Response, Failure> {
        let start = self.current.load(Ordering::Relaxed);
        let n = self.members.len();
        let mut failures: Vec<String> = Vec::new();
        for i in 0..n {
            let at = (start + i) % n;
            let member = &self.members[at];
            let outcome = (|| {
                let mut token = self.token.lock().clone();
                if token.is_none() {
                    token = self.authenticate(agent, member)?;
                }
                match self.send_to(agent, member, path, body, token.as_deref(), limit) {
                    Err(Failure::Refused(code::UNAUTHENTICATED, _))
                        if self.credentials.is_some() =>
                    {
                        let token = self.authenticate(agent, member)?;
                        self.send_to(agent, member, path, body, token.as_deref(), limit)
                    }
                    other => other,
                }
            })();
            match outcome {
                Err(Failure::Unreachable(m)) => {
                    failures.push(m);
                    // Later calls start with the next member.
                    let _ = self.current.compare_exchange(
                        at,
                        (at + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => return other,
            }
        }
        Err(Failure::Unreachable(if failures.is_empty() {
            "no member to ask".into()
        } else {
            failures.join("; ")
        }))
    }

    /// One unary call: `body` to `path`, the JSON reply.
    pub(crate) fn call(&self, path: &str, body: &Value) -> std::result::Result<Value, Failure> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let out = self
            .send(
                &self.agent,
                path,
                body.to_string().as_bytes(),
                self.command_timeout,
            )
            .and_then(read_json);
        self.busy.fetch_sub(1, Ordering::Relaxed);
        out
    }

    /// [`call`](Self::call), with a failure as our error.
    pub(crate) fn ask(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(path, body).map_err(|f| self.error(f))
    }

    /// One call of a streaming RPC that ends when its requests do (lease
    /// keepalive): every request in one body, every `result` of the reply.
    pub(crate) fn call_all(&self, path: &str, bodies: &[Value]) -> Result<Vec<Value>> {
        let mut body = Vec::new();
        for b in bodies {
            body.extend_from_slice(b.to_string().as_bytes());
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        let out = self
            .send(&self.agent, path, &body, self.command_timeout)
            .and_then(|resp| {
                let mut stream = Stream {
                    lines: BufReader::new(resp.into_reader()),
                    buf: String::new(),
                };
                let mut out = Vec::new();
                while let Some(v) = stream
                    .next()
                    .map_err(|e| Failure::Unreachable(e.to_string()))?
                {
                    if let Some(err) = v.get("error") {
                        return Err(refusal(err));
                    }
                    out.push(v["result"].clone());
                }
                Ok(out)
            });
        self.busy.fetch_sub(1, Ordering::Relaxed);
        out.map_err(|f| self.error(f))
    }

    /// Opens a stream (a watch) that ends after `idle` (its deadline).
    pub(crate) fn open_stream(
        &self,
        path: &str,
        body: &[u8],
        idle: Duration,
    ) -> std::result::Result<Stream, Failure> {
        let agent = {
            let mut slot = self.stream_agent.lock();
            match &*slot {
                Some((d, a)) if *d == idle => a.clone(),
                _ => {
                    let a = agent(&self.tls, self.connect_timeout, idle, 1);
                    *slot = Some((idle, a.clone()));
                    a
                }
            }
        };
        let resp = self.send(&agent, path, body, idle)?;
        Ok(Stream {
            lines: BufReader::new(resp.into_reader()),
            buf: String::new(),
        })
    }
}

/// The failure an `{"error": …}` object of a stream describes.
fn refusal(err: &Value) -> Failure {
    let code = num(&err["grpc_code"]).max(num(&err["code"]));
    let msg = err["message"].as_str().unwrap_or("error").to_owned();
    if code == code::UNAVAILABLE || code == code::DEADLINE_EXCEEDED {
        Failure::Unreachable(msg)
    } else {
        Failure::Refused(code, msg)
    }
}

/// The JSON body of a unary reply.
fn read_json(resp: ureq::Response) -> std::result::Result<Value, Failure> {
    let text = resp
        .into_string()
        .map_err(|e| Failure::Unreachable(format!("reading the reply: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::Unreachable(format!("the reply is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_fields_decode_with_their_zero_values_left_out() {
        assert_eq!(b64("p:a"), "cDph");
        assert_eq!(unb64(&json!("cDph")), b"p:a");
        assert_eq!(unb64(&Value::Null), b"");
        assert_eq!(num(&json!("9007199254740993")), 9_007_199_254_740_993);
        assert_eq!(num(&Value::Null), 0);
        assert_eq!(num(&json!(7)), 7);
    }

    #[test]
    fn stream_errors_say_whether_another_member_may_serve() {
        assert!(matches!(
            refusal(&json!({"grpc_code": 14, "message": "etcdserver: no leader"})),
            Failure::Unreachable(_)
        ));
        assert!(refusal(&json!({"code": 5, "message": "lease not found"})).is_not_found());
    }
}
