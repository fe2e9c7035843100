//! One test body for every backend: [`AnyServer`] is a throwaway Redis,
//! memcached, etcd or ZooKeeper server, and [`backends!`](crate::backends) turns one body into
//! a test per backend.

use crate::{EtcdServer, MemcachedServer, RedisServer, ZkServer};

/// A throwaway lock server of either backend.
pub enum AnyServer {
    /// A redis-server.
    Redis(RedisServer),
    /// A memcached.
    Memcached(MemcachedServer),
    /// A one-member etcd.
    Etcd(EtcdServer),
    /// A chroot of its own on the ZooKeeper server shared by the test
    /// binary.
    Zk(ZkServer),
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

    /// A fresh one-member etcd.
    pub fn etcd() -> AnyServer {
        AnyServer::Etcd(EtcdServer::start())
    }

    /// A chroot of its own on the shared ZooKeeper.
    pub fn zk() -> AnyServer {
        AnyServer::Zk(ZkServer::start())
    }

    /// Whether this is etcd.
    pub fn is_etcd(&self) -> bool {
        matches!(self, AnyServer::Etcd(_))
    }

    /// Whether this is ZooKeeper.
    pub fn is_zk(&self) -> bool {
        matches!(self, AnyServer::Zk(_))
    }

    /// Whether the server keeps a fencing counter item per lock name
    /// (Redis, memcached); etcd's fences are revisions and ZooKeeper's
    /// zxids, with no item.
    pub fn keeps_fence_counters(&self) -> bool {
        !self.is_etcd() && !self.is_zk()
    }

    /// The URL a client is opened with.
    pub fn url(&self) -> String {
        match self {
            AnyServer::Redis(s) => s.url(),
            AnyServer::Memcached(s) => s.url(),
            AnyServer::Etcd(s) => s.url(),
            AnyServer::Zk(s) => s.url(),
        }
    }

    /// Whether this is memcached (whose TTLs are whole seconds).
    pub fn is_memcached(&self) -> bool {
        matches!(self, AnyServer::Memcached(_))
    }

    /// How long after a lease's end the server may still hold it: nothing
    /// for Redis, up to two seconds for memcached (TTLs are sent as whole
    /// seconds plus one), and for etcd a second (whole seconds, rounded up,
    /// counted by the leader's ticks); for ZooKeeper nothing (the holder's
    /// own client deletes a lock whose TTL ran out).
    pub fn expiry_slack(&self) -> std::time::Duration {
        match self {
            AnyServer::Redis(_) | AnyServer::Zk(_) => std::time::Duration::ZERO,
            AnyServer::Memcached(_) => std::time::Duration::from_secs(2),
            AnyServer::Etcd(_) => std::time::Duration::from_secs(2),
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
            AnyServer::Etcd(s) => s.flush(),
            AnyServer::Zk(s) => s.flush(),
        }
    }

    /// Keys (Redis, etcd) or items (memcached) the server holds; on etcd
    /// without the release feeds' own keys (waiter and control keys, on
    /// the feeds' leases).
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
            AnyServer::Etcd(s) => s
                .keys()
                .iter()
                .filter(|k| !k.contains("}:waiter:") && !k.contains("}:feed:"))
                .count(),
            AnyServer::Zk(s) => s.items(),
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
            AnyServer::Etcd(s) => s.delete(key),
            AnyServer::Zk(s) => s.delete(key),
        }
    }

    /// Waits, at most five seconds, until some client waits for releases
    /// of the lock `name` (default prefix): on Redis a subscription to its
    /// channel, on memcached and etcd the waiter marker its release feed
    /// writes.
    pub fn wait_until_waiting(&self, name: &str) {
        let s = match self {
            AnyServer::Redis(s) => return crate::wait_until_subscribed(s, name),
            AnyServer::Memcached(s) => s,
            AnyServer::Etcd(s) => return s.wait_until_waiting_keys(name),
            AnyServer::Zk(s) => return s.wait_until_waiting(name),
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

    /// Kills the server and starts it again on the same port: empty for
    /// Redis and memcached, with its data for etcd and ZooKeeper (which
    /// are durable). The shared ZooKeeper cannot restart: a test that
    /// restarts takes a server of its own (`ZkServer::start_own`).
    pub fn restart(&mut self) {
        match self {
            AnyServer::Redis(s) => s.restart(),
            AnyServer::Memcached(s) => s.restart(),
            AnyServer::Etcd(s) => s.restart(),
            AnyServer::Zk(s) => s.restart(),
        }
    }
}

/// One test per backend from one body: `backends!(name, |server:
/// &AnyServer| { .. });` makes `name::redis`, `name::memcached`,
/// `name::etcd` and `name::zk`, each
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
            #[test]
            fn etcd() {
                let mut server = $crate::AnyServer::etcd();
                ($body)(&mut server)
            }
            #[test]
            fn zk() {
                let mut server = $crate::AnyServer::Zk($crate::ZkServer::start_own());
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
            #[test]
            fn etcd() {
                ($body)(&$crate::AnyServer::etcd())
            }
            #[test]
            fn zk() {
                ($body)(&$crate::AnyServer::zk())
            }
        }
    };
}
