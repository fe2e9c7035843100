//! The glob of `Client::held`, for stores that filter keys themselves
//! (etcd, ZooKeeper): the syntax of Redis `SCAN MATCH`.

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
