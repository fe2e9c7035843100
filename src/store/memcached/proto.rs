//! memcached's meta protocol (1.6 and later), as much of it as the lock
//! needs: the requests it sends, the parser of the replies, and one
//! connection over `std::net::TcpStream` that sends a pipeline of requests
//! and reads one reply for each.
//!
//! Requests used (every one of them answers exactly once, so a pipeline of
//! `n` requests reads `n` replies):
//! - `ms <key> <len> T<secs> ME c`: add (store only if absent), reply `HD
//!   c<cas>` or `NS`;
//! - `ms <key> <len> C<cas> T<secs>`: compare-and-set (and so
//!   compare-and-touch), reply `HD`, `EX` (changed) or `NF` (gone);
//! - `ms <key> <len> T<secs>`: plain set, for side items only;
//! - `md <key> C<cas>`: compare-and-delete, reply `HD`, `EX` or `NF`;
//! - `mg <key> v c t`: value, CAS and remaining seconds (`-1`: none), reply
//!   `VA <len> c<cas> t<secs>` and the data, or `EN` on a miss;
//! - `ma <key> N0 J<initial> D<delta> v`: add `delta`, creating the item
//!   with `initial` (and no expiry) on a miss, reply `VA` and the number;
//! - `mn`: no-op, reply `MN`.
//!
//! The classic `delete` has no compare and is never sent.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest reply line accepted (the data of a `VA` reply is read apart).
const MAX_LINE: usize = 8 * 1024;
/// Largest value accepted in a reply (memcached's item limit is 1 MiB by
/// default, and at most 1 GiB).
const MAX_DATA: usize = 1 << 30;

/// What can go wrong talking to memcached.
#[derive(Debug)]
pub(crate) enum McError {
    /// The socket failed or timed out.
    Io(io::Error),
    /// The server sent something that is not a reply we understand.
    Protocol(String),
    /// The server answered with an error (`ERROR`, `CLIENT_ERROR`,
    /// `SERVER_ERROR`).
    Server(String),
}

impl McError {
    /// Whether the connection must not be used again: after an I/O error
    /// or a timeout a reply may still be in flight, and after an error or
    /// a reply we did not understand the stream may be out of step.
    pub(crate) fn breaks_connection(&self) -> bool {
        true
    }

    /// Whether it was a timeout.
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, McError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

impl std::fmt::Display for McError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McError::Io(e) => write!(f, "{e}"),
            McError::Protocol(m) => write!(f, "unexpected reply: {m}"),
            McError::Server(m) => write!(f, "server error: {m}"),
        }
    }
}

impl From<io::Error> for McError {
    fn from(e: io::Error) -> Self {
        McError::Io(e)
    }
}

/// Shorthand for results of this module.
pub(crate) type McResult<T> = std::result::Result<T, McError>;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `HD`: done (stored, deleted), with the item's CAS when asked for.
    Done {
        /// The `c` flag, if returned.
        cas: Option<u64>,
    },
    /// `NS`: not stored (an add found the item present).
    NotStored,
    /// `EX`: the CAS did not match (the item changed).
    Exists,
    /// `NF`: no such item (for a compare-and-set or delete).
    NotFound,
    /// `EN`: a get missed.
    Miss,
    /// `VA`: a value, with the flags asked for.
    Value {
        /// The data.
        data: Vec<u8>,
        /// The `c` flag, if returned.
        cas: Option<u64>,
        /// The `t` flag: remaining seconds, `-1` for no expiry.
        ttl: Option<i64>,
    },
    /// `MN`: the end of a pipeline.
    Noop,
}

/// Appends `ms <key> <len> <flags>` and the data to `out`.
fn push_set(out: &mut Vec<u8>, key: &str, value: &[u8], flags: &str) {
    out.extend_from_slice(format!("ms {key} {} {flags}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request, as the bytes sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Req(pub(crate) Vec<u8>);

impl Req {
    /// Stores `value` at `key` for `secs` only if `key` is absent; asks for
    /// the new item's CAS.
    pub(crate) fn add(key: &str, value: &[u8], secs: u32) -> Req {
        let mut out = Vec::new();
        push_set(&mut out, key, value, &format!("T{secs} ME c"));
        Req(out)
    }

    /// Replaces `key` with `value` for `secs` only if its CAS is still
    /// `cas`; asks for the new CAS.
    pub(crate) fn cas_set(key: &str, value: &[u8], cas: u64, secs: u32) -> Req {
        let mut out = Vec::new();
        push_set(&mut out, key, value, &format!("C{cas} T{secs} c"));
        Req(out)
    }

    /// Stores `value` at `key` for `secs`, whatever was there.
    pub(crate) fn set(key: &str, value: &[u8], secs: u32) -> Req {
        let mut out = Vec::new();
        push_set(&mut out, key, value, &format!("T{secs}"));
        Req(out)
    }

    /// Deletes `key` only if its CAS is still `cas`.
    pub(crate) fn cas_delete(key: &str, cas: u64) -> Req {
        Req(format!("md {key} C{cas}\r\n").into_bytes())
    }

    /// The value, CAS and remaining seconds of `key`.
    pub(crate) fn get(key: &str) -> Req {
        Req(format!("mg {key} v c t\r\n").into_bytes())
    }

    /// Adds `delta` to the counter `key`, creating it (never expiring) with
    /// `initial` if missing; the reply holds the new value.
    pub(crate) fn incr(key: &str, initial: u64, delta: u64) -> Req {
        Req(format!("ma {key} N0 J{initial} D{delta} v\r\n").into_bytes())
    }

    /// A no-op that answers `MN`.
    pub(crate) fn noop() -> Req {
        Req(b"mn\r\n".to_vec())
    }
}

/// The number after the one-letter flag `flag` among `tokens`.
fn flag<T: std::str::FromStr>(tokens: &[&str], flag: char) -> McResult<Option<T>> {
    for t in tokens {
        if let Some(v) = t.strip_prefix(flag) {
            return v
                .parse()
                .map(Some)
                .map_err(|_| McError::Protocol(format!("bad {flag} flag {t:?}")));
        }
    }
    Ok(None)
}

/// Reads one line without its `\r\n` (at most [`MAX_LINE`] bytes).
fn read_line(r: &mut impl BufRead) -> McResult<String> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64 + 2).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(McError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "memcached closed the connection",
        )));
    }
    if !line.ends_with(b"\r\n") {
        return Err(McError::Protocol(if n > MAX_LINE {
            "reply line too long".into()
        } else {
            "reply line cut short".into()
        }));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| McError::Protocol("reply line is not UTF-8".into()))
}

/// Reads one reply.
pub(crate) fn read_reply(r: &mut impl BufRead) -> McResult<Reply> {
    let line = read_line(r)?;
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    let Some((&code, flags)) = tokens.split_first() else {
        return Err(McError::Protocol("empty reply line".into()));
    };
    Ok(match code {
        "HD" => Reply::Done {
            cas: flag(flags, 'c')?,
        },
        "NS" => Reply::NotStored,
        "EX" => Reply::Exists,
        "NF" => Reply::NotFound,
        "EN" => Reply::Miss,
        "MN" => Reply::Noop,
        "VA" => {
            let (len, flags) = flags
                .split_first()
                .ok_or_else(|| McError::Protocol("VA without a length".into()))?;
            let len: usize = len
                .parse()
                .ok()
                .filter(|n| *n <= MAX_DATA)
                .ok_or_else(|| McError::Protocol(format!("bad VA length {len:?}")))?;
            let mut data = vec![0; len + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(McError::Protocol("VA data not ended by CRLF".into()));
            }
            data.truncate(len);
            Reply::Value {
                data,
                cas: flag(flags, 'c')?,
                ttl: flag(flags, 't')?,
            }
        }
        "ERROR" => {
            return Err(McError::Server(
                "ERROR (unknown command: memcached 1.6 or later is needed for the meta protocol)"
                    .into(),
            ))
        }
        "CLIENT_ERROR" | "SERVER_ERROR" => return Err(McError::Server(line)),
        _ => {
            let shown: String = line.chars().take(40).collect();
            return Err(McError::Protocol(format!("{shown:?}")));
        }
    })
}

/// Reads `STAT <name> <value>` lines up to `END`.
pub(crate) fn read_stats(r: &mut impl BufRead) -> McResult<Vec<(String, String)>> {
    let mut stats = Vec::new();
    loop {
        let line = read_line(r)?;
        if line == "END" {
            return Ok(stats);
        }
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("STAT"), Some(k), v) => stats.push((k.to_string(), v.unwrap_or("").to_string())),
            (Some("ERROR" | "CLIENT_ERROR" | "SERVER_ERROR"), _, _) => {
                return Err(McError::Server(line))
            }
            _ => return Err(McError::Protocol(format!("in stats: {line:?}"))),
        }
    }
}

/// One connection to memcached.
pub(crate) struct Conn {
    /// Reads replies.
    reader: BufReader<TcpStream>,
    /// Sends requests (a clone of the reader's socket).
    writer: TcpStream,
    /// Which run of the server this connection talks to (see
    /// [`Conn::identify`]); `None` until known.
    pub(crate) server: Option<u64>,
}

/// Connects to the first address of `addr` that answers within `connect`,
/// with `command` as the read and write timeout.
pub(crate) fn connect(addr: &str, connect: Duration, command: Duration) -> McResult<Conn> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, connect) {
            Ok(s) => {
                s.set_read_timeout(Some(command))?;
                s.set_write_timeout(Some(command))?;
                s.set_nodelay(true)?;
                let writer = s.try_clone()?;
                return Ok(Conn {
                    reader: BufReader::new(s),
                    writer,
                    server: None,
                });
            }
            Err(e) => last = e,
        }
    }
    Err(McError::Io(last))
}

impl Conn {
    /// Sends `reqs` in one write and reads one reply for each, in order.
    pub(crate) fn exec(&mut self, reqs: &[Req]) -> McResult<Vec<Reply>> {
        let mut out = Vec::with_capacity(reqs.iter().map(|r| r.0.len()).sum());
        for r in reqs {
            out.extend_from_slice(&r.0);
        }
        self.writer.write_all(&out)?;
        reqs.iter().map(|_| read_reply(&mut self.reader)).collect()
    }

    /// Sends one request and reads its reply.
    pub(crate) fn one(&mut self, req: Req) -> McResult<Reply> {
        let mut r = self.exec(std::slice::from_ref(&req))?;
        Ok(r.remove(0))
    }

    /// `stats` or `stats <group>`: the name/value pairs.
    pub(crate) fn stats(&mut self, group: &str) -> McResult<Vec<(String, String)>> {
        let cmd = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        self.writer.write_all(cmd.as_bytes())?;
        read_stats(&mut self.reader)
    }

    /// Learns which run of the server this is: its pid and start time
    /// (`time - uptime`, constant for a run), from `stats`. A CAS read on
    /// one run means nothing on the next, whose counter restarted.
    pub(crate) fn identify(&mut self) -> McResult<()> {
        let stats = self.stats("")?;
        let field = |k: &str| -> Option<u64> {
            stats
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.parse().ok())
        };
        self.server = match (field("pid"), field("time"), field("uptime")) {
            (Some(pid), Some(time), Some(uptime)) => {
                Some((pid << 32) | (time.saturating_sub(uptime) & 0xffff_ffff))
            }
            _ => None,
        };
        Ok(())
    }

    /// `version`: the server's version string.
    pub(crate) fn version(&mut self) -> McResult<String> {
        self.writer.write_all(b"version\r\n")?;
        let line = read_line(&mut self.reader)?;
        line.strip_prefix("VERSION ")
            .map(str::to_string)
            .ok_or_else(|| McError::Protocol(format!("to version: {line:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn replies(frames: &[u8], n: usize) -> Vec<McResult<Reply>> {
        let mut r = Cursor::new(frames.to_vec());
        (0..n).map(|_| read_reply(&mut r)).collect()
    }

    #[test]
    fn requests_are_the_meta_commands_documented() {
        assert_eq!(
            Req::add("distlock:a", b"tok", 3).0,
            b"ms distlock:a 3 T3 ME c\r\ntok\r\n"
        );
        assert_eq!(
            Req::cas_set("k", b"tok 64", 17, 2).0,
            b"ms k 6 C17 T2 c\r\ntok 64\r\n"
        );
        assert_eq!(Req::set("k#wait", b"", 3).0, b"ms k#wait 0 T3\r\n\r\n");
        assert_eq!(Req::cas_delete("k", 9).0, b"md k C9\r\n");
        assert_eq!(Req::get("k").0, b"mg k v c t\r\n");
        assert_eq!(
            Req::incr("k#fence", 127, 64).0,
            b"ma k#fence N0 J127 D64 v\r\n"
        );
        assert_eq!(Req::noop().0, b"mn\r\n");
    }

    #[test]
    fn recorded_replies_parse() {
        // As memcached 1.6.18 answered: an add that won, one that lost, a
        // get with value, CAS and TTL, a miss, the end of a pipeline, a
        // CAS mismatch, a delete of nothing, and a counter.
        let got = replies(
            b"HD c3\r\nNS c0\r\nVA 3 c3 t1\r\nabc\r\nEN\r\nMN\r\nEX\r\nNF\r\nVA 4\r\n1064\r\nHD\r\n",
            9,
        );
        let got: Vec<Reply> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            vec![
                Reply::Done { cas: Some(3) },
                Reply::NotStored,
                Reply::Value {
                    data: b"abc".to_vec(),
                    cas: Some(3),
                    ttl: Some(1)
                },
                Reply::Miss,
                Reply::Noop,
                Reply::Exists,
                Reply::NotFound,
                Reply::Value {
                    data: b"1064".to_vec(),
                    cas: None,
                    ttl: None
                },
                Reply::Done { cas: None },
            ]
        );
        // No expiry, and data holding CRLF and spaces.
        let v = replies(b"VA 6 t-1 c9\r\na \r\nb \r\n", 1)
            .remove(0)
            .unwrap();
        assert_eq!(
            v,
            Reply::Value {
                data: b"a \r\nb ".to_vec(),
                cas: Some(9),
                ttl: Some(-1)
            }
        );
    }

    #[test]
    fn errors_and_garbage_are_refused_and_break_the_connection() {
        for (frame, want) in [
            (&b"ERROR\r\n"[..], "memcached 1.6 or later"),
            (b"CLIENT_ERROR bad data chunk\r\n", "bad data chunk"),
            (b"SERVER_ERROR out of memory\r\n", "out of memory"),
            (b"+OK\r\n", "unexpected reply"),
            (b"HD c3", "cut short"),
            (b"HD cx\r\n", "bad c flag"),
            (b"VA 3\r\nabcd\r\n", "not ended by CRLF"),
            (b"VA x\r\n", "bad VA length"),
            (b"VA 99999999999\r\n", "bad VA length"),
            (b"\r\n", "empty reply"),
        ] {
            let e = replies(frame, 1).remove(0).unwrap_err();
            assert!(e.to_string().contains(want), "{frame:?}: {e}");
            assert!(e.breaks_connection());
        }
        let long = [vec![b'H'; MAX_LINE + 10], b"\r\n".to_vec()].concat();
        let e = replies(&long, 1).remove(0).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let e = replies(b"", 1).remove(0).unwrap_err();
        assert!(matches!(e, McError::Io(_)), "{e}");
        // Data shorter than announced: the stream ended.
        let e = replies(b"VA 10\r\nabc\r\n", 1).remove(0).unwrap_err();
        assert!(matches!(e, McError::Io(_)), "{e}");
    }

    #[test]
    fn stats_parse_up_to_end() {
        let mut r = Cursor::new(
            b"STAT evictions off\r\nSTAT cas_enabled yes\r\nSTAT version 1.6.18\r\nEND\r\n"
                .to_vec(),
        );
        let s = read_stats(&mut r).unwrap();
        assert_eq!(s[0], ("evictions".into(), "off".into()));
        assert_eq!(s.len(), 3);
        let mut bad = Cursor::new(b"STAT a b\r\nVALUE x\r\n".to_vec());
        assert!(read_stats(&mut bad).is_err());
    }
}
