//! From redis-rs errors to ours: which kind each failure is, which failures
//! make a connection unfit for reuse, and the scrubbing of passwords out of
//! every message.

use crate::error::Error;
use redis::{ErrorKind, RedisError, ServerErrorKind};
use std::sync::Arc;

/// The configured passwords, kept only to scrub them out of server messages.
#[derive(Clone, Default)]
pub(crate) struct Secret(Vec<Arc<str>>);

impl Secret {
    /// Remembers `password` (if any) as one more secret to scrub.
    pub(crate) fn add(&mut self, password: Option<&str>) {
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            self.0.push(Arc::from(p));
        }
    }

    /// `msg` with every configured password replaced by `<redacted>`.
    pub(crate) fn scrub(&self, mut msg: String) -> String {
        for s in &self.0 {
            if msg.contains(&**s) {
                msg = msg.replace(&**s, "<redacted>");
            }
        }
        msg
    }

    /// Turns a redis-rs error into ours, choosing the variant by kind, with
    /// the passwords scrubbed out of its message.
    pub(crate) fn to_error(&self, e: &RedisError) -> Error {
        let msg = self.scrub(e.to_string());
        match e.kind() {
            _ if is_auth_error(e) => Error::Auth(msg),
            ErrorKind::InvalidClientConfig => Error::InvalidArgument(msg),
            // Worth trying again on another connection: the server is gone
            // or a replica now (a failover happened), or the cluster is
            // reconfiguring.
            _ if breaks_connection(e) => Error::Connection(msg),
            _ => Error::Redis(msg),
        }
    }
}

/// The error for a URL (or address) that does not parse: says which one
/// (`what`) and why, without echoing it (it may hold a password).
pub(crate) fn unparsable(what: std::fmt::Arguments<'_>, e: &RedisError) -> Error {
    Error::invalid(format!("cannot parse {what} ({})", e.category()))
}

/// Whether `e` says the credentials were refused (or lack a permission).
pub(crate) fn is_auth_error(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// Errors that mean "this server cannot take writes right now, ask again":
/// a replica's READONLY after a failover, and cluster reconfiguration.
pub(crate) fn is_failover_error(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
        ) | ErrorKind::ClusterConnectionNotFound
    ) || e.code() == Some("READONLY")
}

/// Whether a connection that failed with `e` must not be used again.
///
/// After an I/O error or a timeout the reply to the command may still be in
/// flight, and the next command would read it; a dropped or refused
/// connection has no server behind it (a cluster connection that met a
/// refusal holds a socket to a node that is down); a failover error means
/// the connection leads to a server that no longer takes the writes.
/// Every other error is the server's answer, read in full: the connection
/// is fine.
pub(crate) fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || is_failover_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::new(kind, "test"))
    }

    /// The error a server reply `-<line>` becomes.
    fn server_error(line: &str) -> RedisError {
        let reply = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        reply.extract_error().unwrap_err()
    }

    #[test]
    fn failures_of_the_link_break_the_connection_and_answers_do_not() {
        let refused = io_error(io::ErrorKind::ConnectionRefused);
        assert!(refused.is_connection_refusal());
        assert!(breaks_connection(&refused));
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(breaks_connection(&io_error(kind)), "{kind:?}");
        }
        let readonly = server_error("READONLY You can't write against a read only replica.");
        assert!(breaks_connection(&readonly));
        assert!(breaks_connection(&server_error(
            "CLUSTERDOWN The cluster is down"
        )));
        // A full answer from a healthy server: the connection stays.
        for line in [
            "ERR unknown command 'NOPE'",
            "NOSCRIPT No matching script.",
            "WRONGPASS invalid username-password pair",
            "MOVED 3999 127.0.0.1:6381",
        ] {
            assert!(!breaks_connection(&server_error(line)), "{line}");
        }
    }

    #[test]
    fn errors_keep_their_kind_and_lose_the_password() {
        let mut secret = Secret::default();
        secret.add(Some("s3cret"));
        secret.add(Some(""));
        secret.add(None);
        let refused = secret.to_error(&io_error(io::ErrorKind::ConnectionRefused));
        assert!(matches!(refused, Error::Connection(_)), "{refused:?}");
        let auth = secret.to_error(&server_error("WRONGPASS s3cret is wrong"));
        match auth {
            Error::Auth(m) => assert!(!m.contains("s3cret") && m.contains("<redacted>"), "{m}"),
            other => panic!("{other:?}"),
        }
        let noperm = secret.to_error(&server_error("NOPERM no permission"));
        assert!(matches!(noperm, Error::Auth(_)), "{noperm:?}");
        let readonly = secret.to_error(&server_error("READONLY replica"));
        assert!(matches!(readonly, Error::Connection(_)), "{readonly:?}");
        let other = secret.to_error(&server_error("ERR wrong number of arguments"));
        assert!(matches!(other, Error::Redis(_)), "{other:?}");
    }
}
