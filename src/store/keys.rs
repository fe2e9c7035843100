//! Key layout: the names of the lock key and of the side keys kept beside it.
//!
//! Key layout (documented in the README):
//! - `<prefix>:<name>` holds the owner's token, with the lease as its TTL;
//! - a fencing counter that shares the lock key's cluster slot:
//!   `{<prefix>:<name>}:fence`, or `{<tag>}:fence:<prefix>:<name>` when the
//!   lock key already carries a `{tag}`;
//! - a loader's cached value, named like the fence with `value` instead;
//! - a read-write lock's waiting writers, named like the fence with
//!   `writers` instead (the lock key itself is then a sorted set of
//!   holders: see [`shares`](super::shares));
//! - a fair lock's line of waiters and their places' deadlines, named like
//!   the fence with `line` and `places` instead.
//!
//! Lock keys start with the prefix (which may not contain braces) and side
//! keys start with `{`, so the families never collide.

use crate::error::{Error, Result};

/// `<prefix>:<name>`: the key that holds the owner's token (and the channel
/// its releases are published on).
pub(crate) fn lock_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:{name}")
}

/// The lock name that `key` (a lock key or release channel) stands for,
/// if it starts with `prefix`.
pub(crate) fn lock_name<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(prefix)?.strip_prefix(':')
}

/// The `{tag}` Redis Cluster would hash for `key`, if it has one.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// A key that belongs to `lock_key` (`kind` is `fence` or `value`), in the
/// same cluster slot.
fn side_key(lock_key: &str, kind: &str) -> String {
    match hash_tag(lock_key) {
        Some(tag) => format!("{{{tag}}}:{kind}:{lock_key}"),
        None => format!("{{{lock_key}}}:{kind}"),
    }
}

/// Whether the side keys of `lock_key` hash to its Redis Cluster slot. They
/// do unless the key has no `{tag}` yet contains a `}`: the side key's
/// `{<lock key>}` tag then ends at that `}`, on a part of the key only.
fn side_keys_share_slot(lock_key: &str) -> bool {
    hash_tag(lock_key).is_some() || !lock_key.contains('}')
}

/// Refuses a lock key whose side keys hash to another slot, where Redis
/// Cluster would answer a script that touches both with CROSSSLOT.
pub(crate) fn check_one_slot(lock_key: &str) -> Result<()> {
    if side_keys_share_slot(lock_key) {
        Ok(())
    } else {
        Err(Error::invalid(
            "in a Redis Cluster a lock name may not contain '}' unless a {tag} comes before \
             it: its fence counter would hash to another slot; add a {tag} or drop the '}'",
        ))
    }
}

/// The fencing counter of `lock_key`.
pub(crate) fn fence_key(lock_key: &str) -> String {
    side_key(lock_key, "fence")
}

/// The waiting writers of the read-write lock `lock_key` (see
/// [`shares`](super::shares)).
pub(crate) fn writers_key(lock_key: &str) -> String {
    side_key(lock_key, "writers")
}

/// The line of waiters of the fair lock `lock_key` (arrival order).
pub(crate) fn line_key(lock_key: &str) -> String {
    side_key(lock_key, "line")
}

/// Until when each waiter of the fair lock `lock_key` keeps its place.
pub(crate) fn places_key(lock_key: &str) -> String {
    side_key(lock_key, "places")
}

/// The channel on which a client that wants `lock_key` announces itself,
/// so that a holder lingering on it (see
/// [`Builder::linger`](crate::Builder::linger)) gives it up. A side key's
/// name: it never collides with a lock key or its release channel.
pub(crate) fn want_channel(lock_key: &str) -> String {
    side_key(lock_key, "want")
}

/// The cached value a loader keeps beside its lock `lock_key`.
pub(crate) fn value_key(lock_key: &str) -> String {
    side_key(lock_key, "value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_keys_share_the_slot_and_never_collide_with_lock_keys() {
        assert_eq!(
            fence_key("distlock:orders:42"),
            "{distlock:orders:42}:fence"
        );
        assert_eq!(
            fence_key("distlock:a{user7}b"),
            "{user7}:fence:distlock:a{user7}b"
        );
        // An empty tag does not count as a tag in Redis Cluster.
        assert_eq!(fence_key("distlock:a{}b"), "{distlock:a{}b}:fence");
        assert_eq!(
            hash_tag("{distlock:orders:42}:fence"),
            Some("distlock:orders:42")
        );
        assert_eq!(hash_tag("x{a}:fence:distlock:x{a}"), Some("a"));
    }

    #[test]
    fn side_keys_share_the_slot_exactly_when_the_check_says_so() {
        use redis::cluster_routing::Slot;
        let names = [
            "orders:42",
            "{",
            "{tag}",
            "x{tag}y",
            "a{b}c}d",
            "{}{x}",
            " ",
            "nul\0",
            "🔒",
            // No tag, and a `}`: the fence counter's tag would stop there.
            "}",
            "a}b",
            "{}",
            "}{",
            "a{}b}",
            "x}{y}",
        ];
        for name in names {
            let key = lock_key("distlock", name);
            let same = [
                fence_key(&key),
                value_key(&key),
                writers_key(&key),
                line_key(&key),
                places_key(&key),
                want_channel(&key),
            ]
            .iter()
            .all(|side| Slot::for_key(side) == Slot::for_key(&key));
            assert_eq!(check_one_slot(&key).is_ok(), same, "{name:?}");
        }
    }

    #[test]
    fn lock_names_come_back_from_their_keys() {
        let key = lock_key("distlock", "orders:42");
        assert_eq!(key, "distlock:orders:42");
        assert_eq!(lock_name("distlock", &key), Some("orders:42"));
        assert_eq!(lock_name("distlock", "distlockx:orders"), None);
        assert_eq!(lock_name("other", &key), None);
    }
}
