//! The error type shared by every distlock operation.

use std::fmt;

/// Everything that can go wrong when taking, keeping or giving back a lock.
///
/// The variants are coarse on purpose: a caller can tell apart "try again
/// later" ([`Error::Timeout`]), "you no longer own this lock" ([`Error::Lost`]),
/// "fix your call" ([`Error::InvalidArgument`]) and "the store is unwell"
/// ([`Error::Connection`], [`Error::Auth`], [`Error::Redis`]).
///
/// No message ever contains a password: URLs are never echoed, and server
/// replies are scrubbed of the configured secret before they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The lock was not acquired before the deadline given to
    /// [`Lock::acquire_timeout`](crate::Lock::acquire_timeout) (or the
    /// lock's configured maximum wait).
    Timeout,
    /// The lock is not (or no longer) held by this guard: its lease ran out,
    /// somebody deleted the key, another owner holds it now, or the guard
    /// belongs to the parent of a forked process.
    Lost,
    /// The acquisition was cancelled by the caller before it succeeded.
    Cancelled,
    /// A caller-supplied value is out of range or malformed; the text says
    /// which one and what is allowed.
    InvalidArgument(String),
    /// The server could not be reached, or the connection failed or timed
    /// out mid-command. Retrying later may succeed.
    Connection(String),
    /// The server refused the credentials (wrong username or password, or
    /// the user lacks permission for the commands distlock needs).
    Auth(String),
    /// The server answered with an error that is neither of the above.
    Redis(String),
}

impl Error {
    /// True when retrying the same call later can reasonably succeed
    /// (timeouts and connection failures).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout | Error::Connection(_))
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// The text that says what happened, without the sentence `Display`
    /// puts before it: for errors quoted inside other errors' messages.
    pub(crate) fn detail(&self) -> String {
        match self {
            Error::InvalidArgument(m) | Error::Connection(m) | Error::Auth(m) | Error::Redis(m) => {
                m.clone()
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out waiting for the lock"),
            Error::Lost => f.write_str(
                "lock not held: its lease expired, it was deleted, or another owner holds it now",
            ),
            Error::Cancelled => f.write_str("lock acquisition cancelled"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Connection(m) => write!(f, "cannot talk to the lock server: {m}"),
            Error::Auth(m) => write!(
                f,
                "the lock server refused the credentials (check username and password): {m}"
            ),
            Error::Redis(m) => write!(f, "the lock server returned an error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for `std::result::Result<T, distlock::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
