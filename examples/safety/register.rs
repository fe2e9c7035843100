//! The protected resource: a fenced register on a redis-server of its own,
//! which no fault touches, and what each hold did to it.
//!
//! Every plain-lock hold reads the register with its fence as its first
//! step and writes the value read plus one with the same fence as its last
//! (`register.lua` refuses any fence lower than the highest it accepted).
//! Fencing reads as well as writes is what keeps the register whole when
//! the lock cannot (a server that forgot a held lock): a stale holder's
//! write after a newer holder's read is refused, so no increment is lost.

use std::time::Duration;

/// The environment variable that gives workers the register's URL.
pub const REGISTER_VAR: &str = "DISTLOCK_SAFETY_REGISTER";

/// The register's key (one register per round, on a server per round).
const KEY: &str = "safety-register";

/// What one hold did to the register: the hold's start is the read's
/// invocation and its end the write's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    /// When the read completed.
    pub read_ret: u128,
    /// The value read, if the read was accepted.
    pub read: Option<u64>,
    /// When the write was invoked (0 if there was none).
    pub write_call: u128,
    /// Whether the write was accepted; `None` if nothing was written (the
    /// read was refused).
    pub written: Option<bool>,
    /// The worker thread (within its process) that held.
    pub thread: usize,
}

impl Visit {
    /// `read_ret read_ok value write_call written thread`, appended to the
    /// hold's line.
    pub fn fields(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.read_ret,
            u8::from(self.read.is_some()),
            self.read.unwrap_or(0),
            self.write_call,
            match self.written {
                Some(true) => "1",
                Some(false) => "0",
                None => "-",
            },
            self.thread
        )
    }

    /// Parses [`Visit::fields`] from the fields after a hold's five.
    pub fn parse(line: &str) -> Option<Visit> {
        let f: Vec<&str> = line.split_whitespace().skip(5).collect();
        let [read_ret, read_ok, value, write_call, written, thread] = f[..] else {
            return None;
        };
        Some(Visit {
            read_ret: read_ret.parse().ok()?,
            read: (read_ok == "1").then(|| value.parse().ok()).flatten(),
            write_call: write_call.parse().ok()?,
            written: match written {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            },
            thread: thread.parse().ok()?,
        })
    }
}

/// A worker's connection to the register.
pub struct Register {
    conn: redis::Connection,
    script: redis::Script,
}

impl Register {
    /// Connects to the register at `url`.
    pub fn connect(url: &str) -> Result<Register, String> {
        let conn = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .map_err(|e| format!("the register: {e}"))?;
        Ok(Register {
            conn,
            script: redis::Script::new(include_str!("register.lua")),
        })
    }

    /// One access: a read (`value` None) or a write; `Some(value)` read or
    /// written if accepted, `None` if refused.
    fn access(&mut self, fence: u64, value: Option<u64>) -> Result<Option<u64>, String> {
        let arg = value.map(|v| v.to_string()).unwrap_or_default();
        let reply: Vec<String> = self
            .script
            .key(KEY)
            .arg(fence.to_string())
            .arg(arg)
            .invoke(&mut self.conn)
            .map_err(|e| format!("the register: {e}"))?;
        match reply.as_slice() {
            [ok] if ok == "0" => Ok(None),
            [ok, v] if ok == "1" => v
                .parse()
                .map(Some)
                .map_err(|_| format!("the register returned {v:?}")),
            other => Err(format!("the register returned {other:?}")),
        }
    }

    /// Reads with `fence`: the value, if the register accepted the fence.
    pub fn read(&mut self, fence: u64) -> Result<Option<u64>, String> {
        self.access(fence, None)
    }

    /// Writes `value` with `fence`: whether the register accepted it.
    pub fn write(&mut self, fence: u64, value: u64) -> Result<bool, String> {
        Ok(self.access(fence, Some(value))?.is_some())
    }
}
