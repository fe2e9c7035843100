//! The bounds every input is checked against, and the checks themselves:
//! lock names, leases, key prefixes and duration settings. The client, the
//! lock, the loader and the C layer all check through here, so a bound is
//! written once and every entry point reports it with the same words.

use crate::error::{Error, Result};
use std::time::Duration;

/// Longest accepted lock name, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Shortest accepted lease.
pub const MIN_TTL: Duration = Duration::from_millis(10);
/// Longest accepted lease.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most permits a semaphore may have: each holder is one member of a sorted
/// set that every acquisition of the semaphore looks at.
pub const MAX_PERMITS: u32 = 10_000;
/// Longest accepted key prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;
/// Longest accepted timeout or interval setting: connect and command
/// timeouts, the replica acknowledgement timeout, `max_retry_interval` and
/// `handoff_budget`.
pub(crate) const MAX_SETTING: Duration = Duration::from_secs(3600);
/// Longest accepted hold-time cap.
pub(crate) const MAX_HOLD_CAP: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most connections one pool may open.
pub(crate) const MAX_POOL_SIZE: u32 = 1024;

/// A lock name: 1 to [`MAX_KEY_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("lock name is empty"));
    }
    if name.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "lock name is {} bytes; the maximum is {MAX_KEY_LEN}",
            name.len()
        )));
    }
    Ok(())
}

/// A lease: [`MIN_TTL`] to [`MAX_TTL`].
pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(Error::invalid(format!(
            "ttl must be between {} ms and {} h, got {} ms",
            MIN_TTL.as_millis(),
            MAX_TTL.as_secs() / 3600,
            ttl.as_millis()
        )));
    }
    Ok(())
}

/// A semaphore's permit count: 1 to [`MAX_PERMITS`].
pub(crate) fn check_permits(permits: u32) -> Result<()> {
    if permits == 0 || permits > MAX_PERMITS {
        return Err(Error::invalid(format!(
            "a semaphore must have 1 to {MAX_PERMITS} permits, got {permits}"
        )));
    }
    Ok(())
}

/// A key prefix: 1 to [`MAX_PREFIX_LEN`] bytes without braces (so lock
/// keys never carry a Redis Cluster hash tag of the prefix's making).
pub(crate) fn check_prefix(p: &str) -> Result<()> {
    let braced = p.contains(['{', '}']);
    if p.is_empty() || p.len() > MAX_PREFIX_LEN || braced {
        return Err(Error::invalid(format!(
            "prefix must be 1 to {MAX_PREFIX_LEN} bytes without '{{' or '}}', got {} bytes{}",
            p.len(),
            if braced { " with a brace" } else { "" }
        )));
    }
    Ok(())
}

/// A timeout or interval setting called `name`: 1 ms to [`MAX_SETTING`].
pub(crate) fn check_setting(name: &str, t: Duration) -> Result<()> {
    if t < Duration::from_millis(1) || t > MAX_SETTING {
        return Err(Error::invalid(format!(
            "{name} must be between 1 ms and 1 hour, got {}",
            shown(t)
        )));
    }
    Ok(())
}

/// A duration for a message: in milliseconds, or "an unbounded time" for
/// values no clock could reach.
pub(crate) fn shown(d: Duration) -> String {
    if d >= Duration::from_secs(u64::MAX / 1000) {
        "an unbounded time".to_string()
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_messages_name_the_value() {
        assert!(check_name(&"n".repeat(MAX_KEY_LEN)).is_ok());
        assert!(check_name(&"n".repeat(MAX_KEY_LEN + 1))
            .unwrap_err()
            .to_string()
            .contains("1025 bytes"));
        assert!(check_ttl(MIN_TTL).is_ok() && check_ttl(MAX_TTL).is_ok());
        assert!(check_ttl(MIN_TTL - Duration::from_nanos(1)).is_err());
        assert!(check_permits(1).is_ok() && check_permits(MAX_PERMITS).is_ok());
        assert!(check_permits(0)
            .unwrap_err()
            .to_string()
            .contains("1 to 10000 permits, got 0"));
        assert!(check_permits(MAX_PERMITS + 1).is_err());
        assert!(check_prefix(&"p".repeat(MAX_PREFIX_LEN)).is_ok());
        assert!(check_prefix("a}b")
            .unwrap_err()
            .to_string()
            .contains("with a brace"));
        assert!(check_setting("x", MAX_SETTING).is_ok());
        assert!(check_setting("x", Duration::MAX)
            .unwrap_err()
            .to_string()
            .contains("x must be between 1 ms and 1 hour, got an unbounded time"));
    }
}
