//! The etcd key layout (documented in the README):
//! - `<prefix>:<name>` holds the owner's token and holder description,
//!   attached to the lock's own lease; its revision is the fence;
//! - `{<prefix>:<name>}:value` a loader's cached value, on a lease of its TTL;
//! - `{<prefix>:<name>}:waiter:<feed>` one key per client waiting for the
//!   lock, on that client's release-feed lease (what `pass_on` counts);
//! - `{<prefix>}:feed:<feed>` the key a poke deletes to wake that feed.
//!
//! The prefix may not contain braces, so lock keys (which start with it)
//! and side keys (which start with `{`) never collide, and the lock keys
//! are exactly the range from `<prefix>:` up to `<prefix>;`.

/// The keys of one lock.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `<prefix>:<name>`.
    pub lock: String,
    /// The cached value's key.
    pub value: String,
    /// The start of its waiter keys.
    pub waiters: String,
}

impl Keys {
    /// The keys of the lock `name` under `prefix`.
    pub(crate) fn new(prefix: &str, name: &str) -> Keys {
        let lock = format!("{prefix}:{name}");
        Keys {
            value: format!("{{{lock}}}:value"),
            waiters: format!("{{{lock}}}:waiter:"),
            lock,
        }
    }

    /// The waiter key of the feed `control`.
    pub(crate) fn waiter(&self, control: &str) -> String {
        format!("{}{control}", self.waiters)
    }
}

/// The key a poke of the feed `control` deletes.
pub(crate) fn feed_key(prefix: &str, control: &str) -> String {
    format!("{{{prefix}}}:feed:{control}")
}

/// The first key after every key that starts with `start` (etcd's
/// `range_end` for a prefix).
pub(crate) fn prefix_end(start: &[u8]) -> Vec<u8> {
    let mut end = start.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

/// Whether `text` matches the glob `pattern` as Redis `SCAN MATCH` reads
/// it: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\` escapes.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p + 1, text[t]),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
            Some(c) => (*c == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((sp, st))) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Matches `c` against the class starting after `[` at `p`: the index
/// after its `]` if it matches.
fn class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let x = *pattern.get(p)?;
        if x == b']' && !first {
            break;
        }
        first = false;
        let x = if x == b'\\' {
            p += 1;
            *pattern.get(p)?
        } else {
            x
        };
        if pattern.get(p + 1) == Some(&b'-') && pattern.get(p + 2).is_some_and(|e| *e != b']') {
            let hi = pattern[p + 2];
            let (lo, hi) = if x <= hi { (x, hi) } else { (hi, x) };
            hit |= (lo..=hi).contains(&c);
            p += 3;
        } else {
            hit |= x == c;
            p += 1;
        }
    }
    (hit != negate).then_some(p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_keys_sit_outside_the_lock_range() {
        let k = Keys::new("distlock", "orders:42");
        assert_eq!(k.lock, "distlock:orders:42");
        assert_eq!(k.value, "{distlock:orders:42}:value");
        assert_eq!(k.waiter("c1"), "{distlock:orders:42}:waiter:c1");
        assert_eq!(feed_key("distlock", "c1"), "{distlock}:feed:c1");
        assert_eq!(prefix_end(b"distlock:"), b"distlock;");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn globs_match_as_redis_scan_does() {
        for (p, t, want) in [
            ("p:*", "p:orders:42", true),
            ("p:orders:*", "p:jobs:1", false),
            ("p:?", "p:a", true),
            ("p:?", "p:ab", false),
            ("p:[ab]x", "p:bx", true),
            ("p:[^ab]x", "p:bx", false),
            ("p:[a-c]*", "p:cat", true),
            ("p:\\*", "p:*", true),
            ("p:\\*", "p:a", false),
            ("p:*:42", "p:orders:42", true),
            ("p:*a*b", "p:xaybzb", true),
            ("p:*a*b", "p:xaybz", false),
            ("*", "", true),
        ] {
            assert_eq!(glob_match(p.as_bytes(), t.as_bytes()), want, "{p} ~ {t}");
        }
    }
}
