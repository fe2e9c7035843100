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
