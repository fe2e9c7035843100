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
}
