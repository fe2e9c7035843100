//! Who holds a lock: the description every store writes after the token.
//!
//! A lock's value on the server is the owner's token, a newline, and the
//! holder's description (host, pid and the application's label, one per
//! line), written by the same command that takes the lock: no extra round
//! trip and no extra key. Every store compares ownership with [`owns`], so a
//! value written by an older client (the bare token) still counts as held,
//! and an operator's `release_token` needs only the token.

use std::fmt;

/// The longest host name kept, in bytes; a longer one is cut.
pub const MAX_HOST_LEN: usize = 64;
/// The longest label kept, in bytes; a longer one is cut.
pub const MAX_LABEL_LEN: usize = 64;

/// Who took a lock: recorded with each acquisition, shown by
/// [`Client::inspect`](crate::Client::inspect) and `distlock status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The host name of the holder's machine (cut to 64 bytes).
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The label the holder's application set with
    /// [`Builder::holder_label`](crate::Builder::holder_label), if any
    /// (cut to 64 bytes).
    pub label: Option<String>,
}

impl Holder {
    /// This process, with `label`.
    pub(crate) fn this_process(label: Option<&str>) -> Holder {
        Holder {
            host: cut(&host_name(), MAX_HOST_LEN),
            pid: std::process::id(),
            label: label
                .map(|l| cut(l, MAX_LABEL_LEN))
                .filter(|l| !l.is_empty()),
        }
    }

    /// The text written after the token: host, pid and label, one a line.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.host,
            self.pid,
            self.label.as_deref().unwrap_or("")
        )
    }

    fn decode(text: &str) -> Option<Holder> {
        let mut lines = text.splitn(3, '\n');
        let host = lines.next()?.to_owned();
        let pid = lines.next()?.parse().ok()?;
        let label = lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
        Some(Holder { host, pid, label })
    }
}

impl fmt::Display for Holder {
    /// `<host> pid <pid>`, then ` (<label>)` when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pid {}", self.host, self.pid)?;
        match &self.label {
            Some(label) => write!(f, " ({label})"),
            None => Ok(()),
        }
    }
}

/// The value a store writes for `token` held by `holder` (its encoding).
pub(crate) fn lock_value(token: &str, holder: &str) -> String {
    format!("{token}\n{holder}")
}

/// Whether the stored `value` is held with `token`: the bare token, or the
/// token followed by a newline and a holder description. The Lua scripts
/// carry the same compare (`src/lua/owns.lua`).
pub(crate) fn owns(value: &[u8], token: &str) -> bool {
    let token = token.as_bytes();
    value == token || (value.starts_with(token) && value.get(token.len()) == Some(&b'\n'))
}

/// A stored value split into its token and holder (`None` when the value
/// is a bare token or its description cannot be read).
pub(crate) fn split_value(value: &str) -> (String, Option<Holder>) {
    match value.split_once('\n') {
        Some((token, rest)) => (token.to_owned(), Holder::decode(rest)),
        None => (value.to_owned(), None),
    }
}

/// `text` with control characters (newlines included) replaced by spaces,
/// cut at a character boundary to at most `max` bytes.
fn cut(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// This machine's host name, or `unknown` if the system will not say.
#[allow(unsafe_code)]
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]).into_owned() {
        name if name.is_empty() => "unknown".to_owned(),
        name => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_owns_compares_the_token_only() {
        let holder = Holder::this_process(Some("billing\nnightly"));
        assert_eq!(holder.label.as_deref(), Some("billing nightly"));
        assert_eq!(holder.pid, std::process::id());
        let value = lock_value("tok", &holder.encode());
        assert!(owns(value.as_bytes(), "tok"));
        assert!(owns(b"tok", "tok"));
        assert!(!owns(value.as_bytes(), "to"));
        assert!(!owns(b"tok2\nh\n1\n", "tok"));
        assert!(!owns(b"to", "tok"));
        let (token, back) = split_value(&value);
        assert_eq!(token, "tok");
        assert_eq!(back, Some(holder));
        assert_eq!(split_value("bare"), ("bare".to_owned(), None));
        assert_eq!(split_value("t\ngarbage").1, None);
    }

    #[test]
    fn long_descriptions_are_cut_not_refused() {
        let long = "é".repeat(100);
        let holder = Holder::this_process(Some(&long));
        let label = holder.label.unwrap();
        assert!(label.len() <= MAX_LABEL_LEN && label.len() >= MAX_LABEL_LEN - 1);
        assert!(label.chars().all(|c| c == 'é'));
        assert_eq!(Holder::this_process(Some("")).label, None);
        assert!(!Holder::this_process(None).host.is_empty());
        let shown = Holder {
            host: "h".into(),
            pid: 7,
            label: Some("l".into()),
        };
        assert_eq!(shown.to_string(), "h pid 7 (l)");
    }
}
