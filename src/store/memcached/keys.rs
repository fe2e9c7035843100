//! Key layout on memcached, which takes keys of at most 250 bytes without
//! spaces or control characters.
//!
//! A lock's base key is `<prefix>:<name>` when that is at most 244 bytes of
//! printable ASCII other than space and `#`; otherwise it is `#` followed by
//! the 64 hex digits of the SHA-256 of `<prefix>:<name>`. Beside the lock
//! item (the base key) live:
//! - `<base>#fence`: the fencing counter (the last fence handed out);
//! - `<base>#value`: a loader's cached value;
//! - `<base>#wait`: a marker that some client waits for the lock.
//!
//! Plain base keys hold no `#` and hashed ones hold exactly one, at the
//! start; side keys end with `#<kind>`: the families never collide. Two
//! names that hash alike would share a lock, which costs waiting, never
//! exclusion.

/// Longest plain base key: 250 bytes less the longest side suffix.
const MAX_PLAIN: usize = 250 - "#fence".len();

/// The item keys of one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The lock item: `<token> <fence>`, with the lease as its TTL.
    pub lock: String,
    /// The fencing counter.
    pub fence: String,
    /// A loader's cached value.
    pub value: String,
    /// The waiter marker.
    pub wait: String,
}

/// Whether `key` can be sent as it is.
fn plain(key: &str) -> bool {
    key.len() <= MAX_PLAIN && key.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'#')
}

impl Keys {
    /// The keys of the lock `name` under `prefix`.
    pub(crate) fn new(prefix: &str, name: &str) -> Keys {
        let full = format!("{prefix}:{name}");
        let base = if plain(&full) {
            full
        } else {
            let digest = ring::digest::digest(&ring::digest::SHA256, full.as_bytes());
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("#{hex}")
        };
        Keys {
            fence: format!("{base}#fence"),
            value: format!("{base}#value"),
            wait: format!("{base}#wait"),
            lock: base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_keep_their_key_and_odd_ones_are_hashed() {
        let k = Keys::new("distlock", "orders:42");
        assert_eq!(k.lock, "distlock:orders:42");
        assert_eq!(k.fence, "distlock:orders:42#fence");
        for name in ["a b", "nul\0", "🔒", "a#b", &"n".repeat(300), "tab\t"] {
            let k = Keys::new("distlock", name);
            assert!(k.lock.starts_with('#') && k.lock.len() == 65, "{name:?}");
            for key in [&k.lock, &k.fence, &k.value, &k.wait] {
                assert!(key.len() <= 250 && plain_bytes(key), "{key}");
            }
        }
        // Same name, same key; another name, another key.
        assert_eq!(Keys::new("p", "a b"), Keys::new("p", "a b"));
        assert_ne!(Keys::new("p", "a b").lock, Keys::new("p", "a  b").lock);
        assert_ne!(Keys::new("p", "a b").lock, Keys::new("q", "a b").lock);
        // The longest plain key, and one byte more.
        let long = "n".repeat(MAX_PLAIN - "p:".len());
        assert_eq!(Keys::new("p", &long).lock, format!("p:{long}"));
        assert!(Keys::new("p", &format!("{long}n")).lock.starts_with('#'));
        // SHA-256 of "distlock:a b", as sha256sum computes it.
        assert_eq!(
            Keys::new("distlock", "a b").lock,
            "#a9799c1533e8cd241ddcbd851e0a6c7b4a5bad783f162c951fabed6c58ea7ae7"
        );
    }

    fn plain_bytes(key: &str) -> bool {
        key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    }
}
