//! ZooKeeper's wire format (jute), as much of it as the lock needs.
//!
//! Every packet is a big-endian `int` length followed by that many bytes.
//! Inside, jute writes `int` as 4 bytes and `long` as 8 (both big-endian,
//! two's complement), `boolean` as one byte, and `buffer` and `ustring` as
//! an `int` length (`-1` for null) followed by the bytes; a `vector` is an
//! `int` count followed by its items. Records are their fields in the
//! order `zookeeper.jute` declares them, with nothing between.
//!
//! The session starts with a `ConnectRequest` (no header) answered by a
//! `ConnectResponse`; after that every request is a `RequestHeader` (`xid`,
//! `type`) and its record, and every answer a `ReplyHeader` (`xid`, `zxid`,
//! `err`) followed by the response record when `err` is 0. Watch events
//! come with xid −1, ping answers with xid −2.

use std::fmt;

/// The opcodes used (`ZooDefs.OpCode`).
pub(crate) mod op {
    /// Delete a node, if at the version given (−1: any).
    pub const DELETE: i32 = 2;
    /// A node's data and stat.
    pub const GET_DATA: i32 = 4;
    /// Replace a node's data, if at the version given.
    pub const SET_DATA: i32 = 5;
    /// The names of a node's children.
    pub const GET_CHILDREN: i32 = 8;
    /// Keeps the session alive.
    pub const PING: i32 = 11;
    /// Several writes at once, all or nothing.
    #[allow(dead_code)]
    pub const MULTI: i32 = 14;
    /// Create a node; answers its path and stat.
    pub const CREATE2: i32 = 15;
    /// Inside a multi: fail unless the node is at this version.
    #[allow(dead_code)]
    pub const CHECK: i32 = 13;
    /// Create a container node (removed by the server once empty).
    pub const CREATE_CONTAINER: i32 = 19;
    /// A watch that stays (ZooKeeper 3.6 and later).
    pub const ADD_WATCH: i32 = 106;
    /// Ends the session: its ephemeral nodes go at once.
    pub const CLOSE_SESSION: i32 = -11;
    /// In a multi reply: this operation failed.
    #[allow(dead_code)]
    pub const ERROR: i32 = -1;
}

/// The error codes used (`KeeperException.Code`).
pub(crate) mod err {
    /// The operation was done.
    pub const OK: i32 = 0;
    /// A parent of the path does not exist, or the node does not.
    pub const NO_NODE: i32 = -101;
    /// The ACL refuses it.
    pub const NO_AUTH: i32 = -102;
    /// The node is at another version.
    pub const BAD_VERSION: i32 = -103;
    /// The node is there already.
    pub const NODE_EXISTS: i32 = -110;
    /// The session has expired.
    pub const SESSION_EXPIRED: i32 = -112;
    /// An earlier operation of the multi failed; this one was not done.
    #[allow(dead_code)]
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
}

/// `CreateMode` flags.
pub(crate) mod mode {
    /// Stays until deleted.
    pub const PERSISTENT: i32 = 0;
    /// Deleted with the session that created it.
    pub const EPHEMERAL: i32 = 1;
    /// Removed by the server once its last child is gone.
    pub const CONTAINER: i32 = 4;
}

/// The special xids.
pub(crate) mod xid {
    /// A watch event.
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its answer.
    pub const PING: i32 = -2;
}

/// Watch event types (`Watcher.Event.EventType`).
pub(crate) mod event {
    /// A node was deleted.
    pub const NODE_DELETED: i32 = 2;
}

/// `AddWatchMode.PERSISTENT_RECURSIVE`: every node below the path.
pub const PERSISTENT_RECURSIVE: i32 = 1;

/// The longest frame accepted from the server (its own default
/// `jute.maxbuffer` is 1 MiB; a little more for headers).
pub(crate) const MAX_FRAME: usize = (1 << 20) + 4096;

/// The name of an error code, for messages.
pub(crate) fn err_name(code: i32) -> String {
    let name = match code {
        -1 => "system error",
        -2 => "runtime inconsistency",
        -3 => "data inconsistency",
        -4 => "connection loss",
        -5 => "marshalling error",
        -6 => "unimplemented",
        -7 => "operation timeout",
        -8 => "bad arguments",
        -12 => "unknown session",
        -13 => "new config has no quorum",
        -14 => "reconfig in progress",
        -100 => "API error",
        err::NO_NODE => "no node",
        err::NO_AUTH => "not authorised",
        err::BAD_VERSION => "bad version",
        -108 => "no children for ephemerals",
        err::NODE_EXISTS => "node exists",
        -111 => "not empty",
        err::SESSION_EXPIRED => "session expired",
        -113 => "invalid callback",
        -114 => "invalid ACL",
        -115 => "authentication failed",
        -118 => "session moved",
        -119 => "not read-only",
        -121 => "no watcher",
        -122 => "request timeout",
        -123 => "reconfig disabled",
        -125 => "quota exceeded",
        -127 => "throttled",
        _ => return format!("error {code}"),
    };
    format!("{name} ({code})")
}

/// A frame being written: the length is filled in by [`finish`](Self::finish).
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty frame.
    pub(crate) fn new() -> Self {
        Writer { buf: vec![0; 4] }
    }

    /// A request frame with its header.
    pub(crate) fn request(xid: i32, op: i32) -> Self {
        let mut w = Writer::new();
        w.int(xid).int(op);
        w
    }

    /// Appends an `int`.
    pub(crate) fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `long`.
    pub(crate) fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `boolean`.
    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    /// Appends a `buffer` (or the bytes of a `ustring`).
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = i32::try_from(v.len()).unwrap_or(i32::MAX);
        self.int(len);
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a `ustring`.
    pub(crate) fn string(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Appends the ACL vector that lets anyone do anything (`world:anyone`,
    /// all permissions): the lock tree is shared by every client.
    pub(crate) fn open_acl(&mut self) -> &mut Self {
        self.int(1).int(31).string("world").string("anyone")
    }

    /// The frame, its length in front.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len() - 4).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// The body of a frame that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a malformed reply from ZooKeeper ({})", self.0)
    }
}

/// Reads the fields of one frame's body (without its length).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether everything was read.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// An `int`.
    pub(crate) fn int(&mut self) -> Result<i32, Malformed> {
        let b = self.take(4, "short int")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `long`.
    pub(crate) fn long(&mut self) -> Result<i64, Malformed> {
        let b = self.take(8, "short long")?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A `boolean`.
    pub(crate) fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.take(1, "short boolean")?[0] != 0)
    }

    /// A `buffer` (empty for null).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.int()?;
        if len < 0 {
            return Ok(&[]);
        }
        self.take(usize::try_from(len).unwrap_or(usize::MAX), "short buffer")
    }

    /// A `ustring`.
    pub(crate) fn string(&mut self) -> Result<String, Malformed> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Malformed("a string is not UTF-8"))
    }

    /// A `Stat`.
    pub(crate) fn stat(&mut self) -> Result<Stat, Malformed> {
        let czxid = self.long()?;
        let mzxid = self.long()?;
        let _ctime = self.long()?;
        let _mtime = self.long()?;
        let version = self.int()?;
        let _cversion = self.int()?;
        let _aversion = self.int()?;
        let ephemeral_owner = self.long()?;
        let _data_length = self.int()?;
        let num_children = self.int()?;
        let _pzxid = self.long()?;
        Ok(Stat {
            czxid,
            mzxid,
            version,
            ephemeral_owner,
            num_children,
        })
    }

    /// A `vector<ustring>`.
    pub(crate) fn strings(&mut self) -> Result<Vec<String>, Malformed> {
        let n = self.int()?;
        let mut out = Vec::new();
        for _ in 0..n.max(0) {
            out.push(self.string()?);
        }
        Ok(out)
    }
}

/// What the lock reads of a node's `Stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stat {
    /// The zxid that created it.
    pub czxid: i64,
    /// The zxid that last wrote its data.
    pub mzxid: i64,
    /// How many times its data was written.
    pub version: i32,
    /// The session that owns it, if ephemeral (0 otherwise).
    pub ephemeral_owner: i64,
    /// How many children it has.
    pub num_children: i32,
}

/// The session's first packet: protocol version 0, the last zxid seen
/// (a server that has seen less refuses us), the session timeout asked
/// for, and the session id and password (zeros for a new session).
pub(crate) fn connect_request(
    last_zxid: i64,
    timeout_ms: i32,
    session: i64,
    passwd: &[u8],
) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(0).long(last_zxid).int(timeout_ms).long(session);
    if passwd.is_empty() {
        w.bytes(&[0; 16]);
    } else {
        w.bytes(passwd);
    }
    w.bool(false);
    w.finish()
}

/// The server's answer to [`connect_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectResponse {
    /// The session timeout the server chose, in ms; 0 or less: the session
    /// asked for has expired.
    pub timeout_ms: i32,
    /// The session's id.
    pub session: i64,
    /// The session's password, for reconnecting.
    pub passwd: Vec<u8>,
}

/// Parses the body of a `ConnectResponse`.
pub(crate) fn connect_response(body: &[u8]) -> Result<ConnectResponse, Malformed> {
    let mut r = Reader::new(body);
    let _protocol = r.int()?;
    let timeout_ms = r.int()?;
    let session = r.long()?;
    let passwd = r.bytes()?.to_vec();
    // `readOnly` came with 3.4; older servers leave it out.
    Ok(ConnectResponse {
        timeout_ms,
        session,
        passwd,
    })
}

/// A `ReplyHeader`: the xid answered, the zxid of the server's state, the
/// error code; the rest of the body follows.
pub(crate) fn reply_header(body: &[u8]) -> Result<(i32, i64, i32, &[u8]), Malformed> {
    let mut r = Reader::new(body);
    let xid = r.int()?;
    let zxid = r.long()?;
    let err = r.int()?;
    Ok((xid, zxid, err, r.buf))
}

/// A `WatcherEvent`: its type, the session state, the path.
pub(crate) fn watcher_event(body: &[u8]) -> Result<(i32, i32, String), Malformed> {
    let mut r = Reader::new(body);
    let kind = r.int()?;
    let state = r.int()?;
    let path = r.string()?;
    Ok((kind, state, path))
}

/// One operation of a multi. The lock's own operations each touch one
/// node and need none; multi is here for the tools that clear a tree (the
/// test kit's frames are checked against it) and is tested on recorded
/// frames.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultiOp<'a> {
    /// Fail unless `path` is at `version`.
    Check { path: &'a str, version: i32 },
    /// Delete `path` at `version` (−1: any).
    Delete { path: &'a str, version: i32 },
    /// Write `data` to `path` at `version`.
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    /// Create `path` holding `data`, with `flags` (see [`mode`]).
    Create {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
}

/// Writes the record of a multi: each operation behind a `MultiHeader`
/// (`type`, `done` false, `err` −1), then a closing header (−1, true, −1).
#[allow(dead_code)]
pub(crate) fn multi(w: &mut Writer, ops: &[MultiOp<'_>]) {
    for o in ops {
        match *o {
            MultiOp::Check { path, version } => {
                w.int(op::CHECK).bool(false).int(-1);
                w.string(path).int(version);
            }
            MultiOp::Delete { path, version } => {
                w.int(op::DELETE).bool(false).int(-1);
                w.string(path).int(version);
            }
            MultiOp::SetData {
                path,
                data,
                version,
            } => {
                w.int(op::SET_DATA).bool(false).int(-1);
                w.string(path).bytes(data).int(version);
            }
            MultiOp::Create { path, data, flags } => {
                w.int(op::CREATE2).bool(false).int(-1);
                w.string(path).bytes(data).open_acl().int(flags);
            }
        }
    }
    w.int(-1).bool(true).int(-1);
}

/// One result of a multi.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MultiResult {
    /// Done; the stat, for writes that answer one.
    Done(Option<Stat>),
    /// Failed with this error code.
    Failed(i32),
}

/// Parses the body of a multi reply.
#[allow(dead_code)]
pub(crate) fn multi_results(body: &[u8]) -> Result<Vec<MultiResult>, Malformed> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    loop {
        let kind = r.int()?;
        let done = r.bool()?;
        let _err = r.int()?;
        if done {
            return Ok(out);
        }
        out.push(match kind {
            op::CREATE2 => {
                let _path = r.string()?;
                MultiResult::Done(Some(r.stat()?))
            }
            op::SET_DATA => MultiResult::Done(Some(r.stat()?)),
            op::DELETE | op::CHECK => MultiResult::Done(None),
            op::ERROR => MultiResult::Failed(r.int()?),
            _ => return Err(Malformed("an unknown operation in a multi reply")),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The frames below were recorded once from a real ZooKeeper 3.8.0
    // (Debian's libzookeeper-java, `ZooKeeperServerMain` on loopback with
    // tickTime=100): a throwaway script wrote each request by hand from
    // zookeeper.jute (connect asking 1000 ms, addWatch of `/` persistent
    // recursive, create2 of the ephemeral `/lock2` holding `tok`, the same
    // create2 again, a multi [check at 0, setData at 0], a delete) and
    // printed every frame read back, length prefix stripped. Session id,
    // password, zxids and times are that run's.

    /// The server's `ConnectResponse` to a new session asking 1000 ms.
    const CONNECT_RESPONSE: &[u8] = &[
        0, 0, 0, 0, 0, 0, 3, 232, 1, 0, 1, 71, 4, 19, 0, 1, 0, 0, 0, 16, 66, 229, 225, 185, 48, 63,
        185, 16, 26, 35, 200, 216, 45, 127, 115, 246, 0,
    ];

    /// The session id of that run.
    const SESSION: i64 = 0x0100_0147_0413_0001;

    #[test]
    fn a_recorded_connect_response_parses() {
        let r = connect_response(CONNECT_RESPONSE).unwrap();
        assert_eq!(r.timeout_ms, 1000);
        assert_eq!(r.session, SESSION);
        assert_eq!(r.passwd.len(), 16);
        assert_eq!(r.passwd[0], 66);
    }

    #[test]
    fn the_connect_request_is_laid_out_as_the_jute_file_says() {
        let f = connect_request(0x10, 1000, 0, &[]);
        assert_eq!(&f[..4], &(f.len() as u32 - 4).to_be_bytes());
        let mut r = Reader::new(&f[4..]);
        assert_eq!(r.int().unwrap(), 0, "protocolVersion");
        assert_eq!(r.long().unwrap(), 0x10, "lastZxidSeen");
        assert_eq!(r.int().unwrap(), 1000, "timeOut");
        assert_eq!(r.long().unwrap(), 0, "sessionId");
        assert_eq!(r.bytes().unwrap(), &[0; 16], "passwd");
        assert!(!r.bool().unwrap(), "readOnly");
        assert!(r.is_empty());
    }

    /// The answer to addWatch (xid 9): a header alone.
    const ADD_WATCH_REPLY: &[u8] = &[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0];

    /// The reply to the create2 of the ephemeral node (xid 1).
    const CREATE2_REPLY: &[u8] = &[
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 6, 47, 108, 111, 99, 107, 50, 0,
        0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 1, 162, 52, 141, 63, 88, 0, 0, 1, 162,
        52, 141, 63, 88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 71, 4, 19, 0, 1, 0, 0, 0, 3,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8,
    ];

    #[test]
    fn a_recorded_create2_reply_gives_the_stat_and_owner() {
        let (xid, zxid, code, body) = reply_header(ADD_WATCH_REPLY).unwrap();
        assert_eq!((xid, zxid, code, body.len()), (9, 7, 0, 0));
        let (xid, zxid, code, body) = reply_header(CREATE2_REPLY).unwrap();
        assert_eq!((xid, zxid, code), (1, 8, 0));
        let mut r = Reader::new(body);
        assert_eq!(r.string().unwrap(), "/lock2");
        let stat = r.stat().unwrap();
        assert_eq!((stat.czxid, stat.mzxid, stat.version), (8, 8, 0));
        assert_eq!(stat.ephemeral_owner, SESSION);
        assert!(r.is_empty());
    }

    /// The reply to the same create2 sent again (xid 2): node exists.
    const NODE_EXISTS_REPLY: &[u8] = &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 255, 255, 255, 146];

    #[test]
    fn a_recorded_error_reply_has_no_body() {
        let (xid, zxid, code, body) = reply_header(NODE_EXISTS_REPLY).unwrap();
        assert_eq!((xid, zxid, code), (2, 9, err::NODE_EXISTS));
        assert!(body.is_empty());
        assert_eq!(err_name(code), "node exists (-110)");
    }

    /// The persistent recursive watch's event for the delete of /lock2
    /// (xid −1, zxid −1).
    const DELETED_EVENT: &[u8] = &[
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0,
        0, 3, 0, 0, 0, 6, 47, 108, 111, 99, 107, 50,
    ];

    #[test]
    fn a_recorded_watch_event_names_the_deleted_node() {
        let (x, _, code, body) = reply_header(DELETED_EVENT).unwrap();
        assert_eq!((x, code), (xid::NOTIFICATION, 0));
        let (kind, state, path) = watcher_event(body).unwrap();
        assert_eq!(
            (kind, state, path.as_str()),
            (event::NODE_DELETED, 3, "/lock2")
        );
    }

    /// The multi [check /lock2 at 0, setData /lock2 at 0] (xid 3).
    const MULTI_REPLY: &[u8] = &[
        0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1, 162, 52, 141, 63, 88,
        0, 0, 1, 162, 52, 141, 63, 99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 71, 4, 19, 0,
        1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 255, 255, 255, 255, 1, 255, 255, 255,
        255,
    ];

    #[test]
    fn a_recorded_multi_reply_lists_each_result() {
        let (_, zxid, code, body) = reply_header(MULTI_REPLY).unwrap();
        assert_eq!((zxid, code), (10, 0));
        let results = multi_results(body).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0], MultiResult::Done(None));
        let MultiResult::Done(Some(stat)) = results[1] else {
            panic!("{results:?}")
        };
        assert_eq!((stat.czxid, stat.mzxid, stat.version), (8, 10, 1));
    }

    #[test]
    fn a_multi_is_written_behind_headers_and_closed() {
        let mut w = Writer::request(3, op::MULTI);
        multi(
            &mut w,
            &[
                MultiOp::Check {
                    path: "/a",
                    version: 0,
                },
                MultiOp::Delete {
                    path: "/a",
                    version: 0,
                },
            ],
        );
        let f = w.finish();
        let mut r = Reader::new(&f[4..]);
        assert_eq!((r.int().unwrap(), r.int().unwrap()), (3, op::MULTI));
        for kind in [op::CHECK, op::DELETE] {
            assert_eq!(r.int().unwrap(), kind);
            assert!(!r.bool().unwrap());
            assert_eq!(r.int().unwrap(), -1);
            assert_eq!(r.string().unwrap(), "/a");
            assert_eq!(r.int().unwrap(), 0);
        }
        assert_eq!(r.int().unwrap(), -1);
        assert!(r.bool().unwrap());
        assert_eq!(r.int().unwrap(), -1);
        assert!(r.is_empty());
    }

    #[test]
    fn short_frames_are_malformed_not_panics() {
        assert!(reply_header(&[0, 0, 1]).is_err());
        assert!(connect_response(&CONNECT_RESPONSE[..10]).is_err());
        assert!(Reader::new(&[0, 0, 0, 9, 1]).bytes().is_err());
        assert!(multi_results(&[0, 0, 0, 2]).is_err());
    }
}
