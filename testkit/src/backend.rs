//! One test body for every backend: [`AnyServer`] is a throwaway Redis or
//! memcached server, and [`backends!`](crate::backends) turns one body into
//! a test per backend.

use crate::{MemcachedServer, RedisServer};

/// A throwaway lock server of either backend.
pub enum AnyServer {
    /// A redis-server.
    Redis(RedisServer),
    /// A memcached.
    Memcached(MemcachedServer),
}

impl AnyServer {
    /// A fresh redis-server.
    pub fn redis() -> AnyServer {
        AnyServer::Redis(RedisServer::start())
    }

    /// A fresh memcached.
    pub fn memcached() -> AnyServer {
        AnyServer::Memcached(MemcachedServer::start())
    }

    /// The URL a client is opened with.
    pub fn url(&self) -> String {
        match self {
            AnyServer::Redis(s) => s.url(),
            AnyServer::Memcached(s) => s.url(),
        }
    }

    /// Whether this is memcached (whose TTLs are whole seconds).
    pub fn is_memcached(&self) -> bool {
        matches!(self, AnyServer::Memcached(_))
    }

    /// How long after a lease's end the server may still hold it: nothing
    /// for Redis, up to two seconds for memcached (TTLs are sent as whole
    /// seconds plus one).
    pub fn expiry_slack(&self) -> std::time::Duration {
        match self {
            AnyServer::Redis(_) => std::time::Duration::ZERO,
            AnyServer::Memcached(_) => std::time::Duration::from_secs(2),
        }
    }

    /// Erases everything the server holds, as an empty restart would
    /// (without closing connections).
    pub fn flush(&self) {
        match self {
            AnyServer::Redis(s) => {
                let _: () = redis::cmd("FLUSHALL")
                    .query(&mut s.conn())
                    .expect("FLUSHALL");
            }
            AnyServer::Memcached(s) => {
                assert_eq!(s.raw("flush_all\r\n", "\r\n"), "OK\r\n");
            }
        }
    }

    /// Keys (Redis) or items (memcached) the server holds.
    pub fn items(&self) -> usize {
        match self {
            AnyServer::Redis(s) => crate::dbsize(s),
            AnyServer::Memcached(s) => {
                let stats = s.raw("stats\r\n", "END\r\n");
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix("STAT curr_items "))
                    .and_then(|n| n.trim().parse().ok())
                    .expect("curr_items in stats")
            }
        }
    }

    /// Deletes the item or key `key` behind the library's back.
    pub fn delete(&self, key: &str) {
        match self {
            AnyServer::Redis(s) => {
                let _: () = redis::cmd("DEL")
                    .arg(key)
                    .query(&mut s.conn())
                    .expect("DEL");
            }
            AnyServer::Memcached(s) => {
                s.raw(&format!("md {key}\r\nmn\r\n"), "MN\r\n");
            }
        }
    }

    /// Waits, at most five seconds, until some client waits for releases
    /// of the lock `name` (default prefix): on Redis a subscription to its
    /// channel, on memcached the waiter marker its release feed writes.
    pub fn wait_until_waiting(&self, name: &str) {
        let s = match self {
            AnyServer::Redis(s) => return crate::wait_until_subscribed(s, name),
            AnyServer::Memcached(s) => s,
        };
        let start = std::time::Instant::now();
        while s.raw(&format!("mg distlock:{name}#wait v\r\n"), "\r\n") == "EN\r\n" {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "nobody waits for {name:?}"
            );
            std::thread::yield_now();
        }
    }

    /// Kills the server and starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        match self {
            AnyServer::Redis(s) => s.restart(),
            AnyServer::Memcached(s) => s.restart(),
        }
    }
}

/// One test per backend from one body: `backends!(name, |server:
/// &AnyServer| { .. });` makes `name::redis` and `name::memcached`, each
/// running the body against a fresh server of its kind. A body that needs
/// to restart the server takes `&mut AnyServer`, with `backends!(mut name,
/// |server: &mut AnyServer| ..)`.
#[macro_export]
macro_rules! backends {
    (mut $name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn redis() {
                let mut server = $crate::AnyServer::redis();
                ($body)(&mut server)
            }
            #[test]
            fn memcached() {
                let mut server = $crate::AnyServer::memcached();
                ($body)(&mut server)
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn redis() {
                ($body)(&$crate::AnyServer::redis())
            }
            #[test]
            fn memcached() {
                ($body)(&$crate::AnyServer::memcached())
            }
        }
    };
}
