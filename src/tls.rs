//! TLS set-up for `rediss://` URLs.

/// Makes ring the process-wide rustls crypto provider, unless the
/// application already chose one (then theirs is kept).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An Err only means a provider is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
