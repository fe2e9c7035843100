//! The `distlock` command: run a command under a distributed lock.

fn main() {}
