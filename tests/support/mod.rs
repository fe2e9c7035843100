//! Real parts for integration tests: throwaway redis-server processes on free
//! loopback ports, and a loopback TCP proxy that can lose replies.
#![allow(dead_code)]

#[path = "../../examples/common/server.rs"]
mod server;
#[allow(unused_imports)]
pub use server::RedisServer;

#[path = "../../examples/common/proxy.rs"]
mod proxy;
#[allow(unused_imports)]
pub use proxy::{Mode, TcpProxy};

/// Threads of this process, from /proc.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}
