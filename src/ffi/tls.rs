//! TLS certificates for `rediss://` servers, set on a `distlock_config`:
//! a CA to trust instead of the system's trust store, and a client
//! certificate with its key for servers that require mutual TLS. Each can
//! come from a PEM file or from PEM bytes in memory.
//!
//! Each setter reads and checks its PEM at once (certificates that parse,
//! a key that parses and belongs to the certificate), so that a wrong file
//! is reported by the call that named it, not as a failed handshake later.
//! Messages name a file that cannot be read, never show what is in it, and
//! never show anything of a key.

use super::args::read_str;
use super::config::{apply, config_of, distlock_config};
use super::outcome::{status_call, Failure, Outcome};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::ffi::c_char;
use std::io::Read;

/// Largest PEM input accepted, in bytes: a CA bundle, a certificate chain
/// or a key, from a file or from memory (1 MiB).
pub const DISTLOCK_MAX_PEM_LEN: usize = 1_048_576;
/// Longest accepted file path, in bytes.
pub const DISTLOCK_MAX_PATH_LEN: usize = 4096;

/// Where a PEM input came from, for messages.
enum Source<'a> {
    File(&'a str),
    Memory,
}

impl Source<'_> {
    /// "the TLS CA file \"/etc/ca.pem\"" or "the TLS CA PEM".
    fn name(&self, what: &str) -> String {
        match self {
            // Debug quoting shows a path with odd characters unambiguously.
            Source::File(path) => format!("the {what} file {path:?}"),
            Source::Memory => format!("the {what} PEM"),
        }
    }
}

/// Reads the file at `path`, at most [`DISTLOCK_MAX_PEM_LEN`] bytes.
fn read_file(path: &str, what: &str) -> Result<Vec<u8>, Failure> {
    let name = Source::File(path).name(what);
    if path.is_empty() {
        return Err(Failure::invalid(format!("the {what} file path is empty")));
    }
    let cannot = |e: std::io::Error| Failure::invalid(format!("cannot read {name}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(DISTLOCK_MAX_PEM_LEN).map_or(u64::MAX, |n| n + 1);
    file.take(limit).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() > DISTLOCK_MAX_PEM_LEN {
        return Err(Failure::invalid(format!(
            "{name} is larger than {DISTLOCK_MAX_PEM_LEN} bytes"
        )));
    }
    Ok(bytes)
}

/// Copies the `len` bytes at `ptr`, refusing NULL, empty and oversized
/// input.
///
/// # Safety
///
/// `ptr` is NULL or valid for reading `len` bytes.
unsafe fn read_bytes(ptr: *const u8, len: usize, what: &str) -> Result<Vec<u8>, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    if len == 0 {
        return Err(Failure::invalid(format!("{what} is empty (length 0)")));
    }
    if len > DISTLOCK_MAX_PEM_LEN {
        return Err(Failure::invalid(format!(
            "{what} is {len} bytes; at most {DISTLOCK_MAX_PEM_LEN} are accepted"
        )));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec())
}

/// The certificates in `pem`: at least one, each of them parseable.
fn certificates(
    pem: &[u8],
    source: &Source<'_>,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let name = source.name(what);
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        // The parser's own message may quote lines of the input.
        .map_err(|_| Failure::invalid(format!("{name} is not valid PEM")))?;
    if certs.is_empty() {
        return Err(Failure::invalid(format!(
            "{name} holds no certificate (a PEM block \"-----BEGIN CERTIFICATE-----\")"
        )));
    }
    for (i, cert) in certs.iter().enumerate() {
        if rustls::server::ParsedCertificate::try_from(cert).is_err() {
            return Err(Failure::invalid(format!(
                "{name}: certificate #{} is not a valid X.509 certificate",
                i + 1
            )));
        }
    }
    Ok(certs)
}

/// Checks a CA bundle: certificates that can serve as trust anchors.
fn check_ca(pem: &[u8], source: &Source<'_>) -> Outcome {
    let what = "TLS CA";
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certificates(pem, source, what)?.into_iter().enumerate() {
        if store.add(cert).is_err() {
            return Err(Failure::invalid(format!(
                "{}: certificate #{} cannot serve as a trusted CA",
                source.name(what),
                i + 1
            )));
        }
    }
    Ok(())
}

/// The private key in `pem`, as the TLS code will load it. Nothing of the
/// key is shown in messages.
fn private_key(
    pem: &[u8],
    source: &Source<'_>,
) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, Failure> {
    let name = source.name("TLS client key");
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        Failure::invalid(match e {
            rustls::pki_types::pem::Error::NoItemsFound => format!(
                "{name} holds no private key (a PEM block \"-----BEGIN PRIVATE KEY-----\", \
                 \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN EC PRIVATE KEY-----\")"
            ),
            _ => format!("{name} is not valid PEM"),
        })
    })?;
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| {
            Failure::invalid(format!(
                "{name} is not an RSA, ECDSA or Ed25519 private key this library can use"
            ))
        })
}

/// Checks a client certificate chain and its key: both parse, and the key
/// is the first certificate's.
fn check_client(
    cert_pem: &[u8],
    cert_source: &Source<'_>,
    key_pem: &[u8],
    key_source: &Source<'_>,
) -> Outcome {
    let certs = certificates(cert_pem, cert_source, "TLS client certificate")?;
    let key = private_key(key_pem, key_source)?;
    match rustls::sign::CertifiedKey::new(certs, key).keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(Failure::invalid(format!(
                "{} is not the key of {} (their public keys differ)",
                key_source.name("TLS client key"),
                cert_source.name("TLS client certificate")
            )))
        }
        // A match, or a key whose public half cannot be compared.
        _ => Ok(()),
    }
}

/// What to check when opening a client failed in the TLS handshake: the
/// TLS library's words name the fault, not the setting that mends it.
/// `None` for other failures.
fn handshake_hint(message: &str) -> Option<&'static str> {
    const HINTS: [(&str, &str); 6] = [
        (
            "invalid peer certificate: UnknownIssuer",
            "the server's certificate is not signed by a CA this client trusts: give the CA \
             that signed it (the TLS CA setting, a PEM file or PEM bytes); without one only \
             the system's trust store is used",
        ),
        (
            "invalid peer certificate: NotValidForName",
            "the server's certificate is not issued for the host in the URL: connect by a \
             name (or IP address) the certificate lists",
        ),
        (
            "invalid peer certificate: Expired",
            "the server's certificate has expired (or this machine's clock is wrong)",
        ),
        (
            "alert: CertificateRequired",
            "the server requires a client certificate (tls-auth-clients): give one with its \
             key (the TLS client certificate setting)",
        ),
        (
            "alert: UnknownCA",
            "the server does not trust the client certificate: it must be signed by a CA in \
             the server's tls-ca-cert-file",
        ),
        (
            "alert: BadCertificate",
            "the server refused the client certificate: check that it is signed by a CA the \
             server trusts and is meant for client authentication",
        ),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|(_, hint)| *hint)
}

/// Adds what to check to a failed connection whose TLS handshake failed.
pub(super) fn explain_open(e: crate::Error) -> Failure {
    let mut failure = Failure::from(e);
    if failure.status == super::distlock_status::DISTLOCK_CONNECTION {
        if let Some(hint) = handshake_hint(&failure.message) {
            failure.message = format!("{} ({hint})", failure.message);
        }
    }
    failure
}

/// Trusts the CA certificates in the PEM file at `path` (instead of the
/// system's trust store) for `rediss://` servers: for a server whose
/// certificate a private CA signed, or that is self-signed. The file is
/// read and checked now (it must hold at least one certificate, at most
/// `DISTLOCK_MAX_PEM_LEN` bytes); later changes to it are not seen.
/// Replaces a CA set before. Custom certificates work with one server or
/// Redlock, not with Cluster or Sentinel (`distlock_config_check` refuses
/// that combination).
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config; a NULL, empty, non-UTF-8 or over-long
/// (`DISTLOCK_MAX_PATH_LEN`) path; a file that cannot be read (the message
/// names it and says why); or one that holds no usable certificate.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_tls_ca_file(
    cfg: *mut distlock_config,
    path: *const c_char,
) -> i32 {
    status_call("distlock_config_set_tls_ca_file", || {
        // A dead handle is reported before any file is read.
        config_of(cfg)?;
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { read_str(path, "path", DISTLOCK_MAX_PATH_LEN) }?;
        let pem = read_file(&path, "TLS CA")?;
        check_ca(&pem, &Source::File(&path))?;
        apply(cfg, |b| b.tls_root_ca(pem))
    })
}

/// Trusts the CA certificates in the `len` bytes of PEM at `pem`, as
/// `distlock_config_set_tls_ca_file` does with a file. The bytes are
/// copied: they need not outlive the call.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL `pem`, a `len` of 0 or over
/// `DISTLOCK_MAX_PEM_LEN`, or PEM that holds no usable certificate.
///
/// # Safety
///
/// `pem` is NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_tls_ca_pem(
    cfg: *mut distlock_config,
    pem: *const u8,
    len: usize,
) -> i32 {
    status_call("distlock_config_set_tls_ca_pem", || {
        // A dead handle is reported before any file is read.
        config_of(cfg)?;
        // SAFETY: the caller guarantees `len` readable bytes at `pem`.
        let pem = unsafe { read_bytes(pem, len, "pem") }?;
        check_ca(&pem, &Source::Memory)?;
        apply(cfg, |b| b.tls_root_ca(pem))
    })
}

/// Presents the client certificate (chain) in the PEM file at `cert_path`,
/// with the private key in the PEM file at `key_path`, to `rediss://`
/// servers that require client authentication (mutual TLS, Redis's
/// `tls-auth-clients`). Both files are read and checked now: the
/// certificates must parse, and the key (PKCS#8, PKCS#1 RSA or SEC1 EC)
/// must be the first certificate's. Replaces a client certificate set
/// before. One server or Redlock only, as for the CA. The key is never
/// shown in any message.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config; a NULL, empty, non-UTF-8 or over-long path; a file that
/// cannot be read (named in the message); a certificate file without a
/// usable certificate; or a key file without a usable key, or with the key
/// of another certificate.
///
/// # Safety
///
/// `cert_path` and `key_path` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_tls_client_cert_files(
    cfg: *mut distlock_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> i32 {
    status_call("distlock_config_set_tls_client_cert_files", || {
        // A dead handle is reported before any file is read.
        config_of(cfg)?;
        // SAFETY: the caller guarantees NULL or NUL-terminated strings.
        let cert_path = unsafe { read_str(cert_path, "cert_path", DISTLOCK_MAX_PATH_LEN) }?;
        // SAFETY: as above.
        let key_path = unsafe { read_str(key_path, "key_path", DISTLOCK_MAX_PATH_LEN) }?;
        let cert = read_file(&cert_path, "TLS client certificate")?;
        let key = read_file(&key_path, "TLS client key")?;
        check_client(
            &cert,
            &Source::File(&cert_path),
            &key,
            &Source::File(&key_path),
        )?;
        apply(cfg, |b| b.tls_client_cert(cert, key))
    })
}

/// Presents the client certificate (chain) in the `cert_len` bytes of PEM
/// at `cert`, with the private key in the `key_len` bytes of PEM at `key`,
/// as `distlock_config_set_tls_client_cert_files` does with files. The
/// bytes are copied: they need not outlive the call.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown config, a NULL pointer, a length of 0 or over
/// `DISTLOCK_MAX_PEM_LEN`, a certificate without a usable certificate, or
/// a key that is unusable or belongs to another certificate.
///
/// # Safety
///
/// `cert` is NULL or valid for reading `cert_len` bytes; `key` is NULL or
/// valid for reading `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn distlock_config_set_tls_client_cert_pem(
    cfg: *mut distlock_config,
    cert: *const u8,
    cert_len: usize,
    key: *const u8,
    key_len: usize,
) -> i32 {
    status_call("distlock_config_set_tls_client_cert_pem", || {
        // A dead handle is reported before any file is read.
        config_of(cfg)?;
        // SAFETY: the caller guarantees `cert_len` readable bytes at `cert`.
        let cert = unsafe { read_bytes(cert, cert_len, "cert") }?;
        // SAFETY: the caller guarantees `key_len` readable bytes at `key`.
        let key = unsafe { read_bytes(key, key_len, "key") }?;
        check_client(&cert, &Source::Memory, &key, &Source::Memory)?;
        apply(cfg, |b| b.tls_client_cert(cert, key))
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::{distlock_config_free, distlock_config_new};
    use super::super::distlock_status;
    use super::super::test_support::{c, last};
    use super::*;

    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;

    /// A PEM block of the given label around bytes that are no DER.
    fn fake(label: &str, body: &str) -> Vec<u8> {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n").into_bytes()
    }

    #[test]
    fn failed_handshakes_say_what_to_check() {
        let untrusted = crate::Error::Connection(
            "127.0.0.1:1/0: invalid peer certificate: UnknownIssuer".into(),
        );
        let f = explain_open(untrusted);
        assert_eq!(f.status, distlock_status::DISTLOCK_CONNECTION);
        assert!(
            f.message
                .starts_with("cannot talk to the lock server: 127.0.0.1:1/0: invalid peer")
                && f.message.contains("give the CA that signed it"),
            "{}",
            f.message
        );
        let no_cert = explain_open(crate::Error::Connection(
            "h: received fatal alert: CertificateRequired".into(),
        ));
        assert!(no_cert.message.contains("requires a client certificate"));
        // Other failures are left as they were.
        for e in [
            crate::Error::Connection("h: connection refused".into()),
            crate::Error::invalid("invalid peer certificate: UnknownIssuer"),
        ] {
            let plain = Failure::from(e.clone()).message;
            assert_eq!(explain_open(e).message, plain);
        }
    }

    #[test]
    fn bad_certificates_and_keys_are_refused_without_showing_them() {
        std::thread::spawn(|| {
            let cfg = distlock_config_new();
            let dir = std::env::temp_dir().join(format!("distlock-ffi-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let write = |name: &str, bytes: &[u8]| {
                let p = dir.join(name);
                std::fs::write(&p, bytes).unwrap();
                c(p.to_str().unwrap())
            };
            let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
            let key_file = write("key.pem", &fake("PRIVATE KEY", secret));
            let not_pem = write("notes.txt", b"just some text\n");
            let cert_file = write("cert.pem", &fake("CERTIFICATE", "AAAA"));
            let missing = c(dir.join("missing.pem").to_str().unwrap());
            // SAFETY: NUL-terminated strings, or NULL; byte pointers with
            // their lengths.
            unsafe {
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, missing.as_ptr()),
                    INVALID
                );
                let msg = last();
                assert!(
                    msg.contains("cannot read the TLS CA file") && msg.contains("missing.pem"),
                    "{msg}"
                );
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, not_pem.as_ptr()),
                    INVALID
                );
                assert!(last().contains("holds no certificate"), "{}", last());
                assert!(!last().contains("just some text"));
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, cert_file.as_ptr()),
                    INVALID
                );
                assert!(last().contains("certificate #1"), "{}", last());
                // A key file where the CA goes: its content is not shown.
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, key_file.as_ptr()),
                    INVALID
                );
                assert!(!last().contains(secret), "{}", last());
                let dir_path = c(dir.to_str().unwrap());
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, dir_path.as_ptr()),
                    INVALID
                );
                assert!(last().contains("cannot read"), "{}", last());
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, c("").as_ptr()),
                    INVALID
                );
                assert!(last().contains("path is empty"), "{}", last());
                assert_eq!(
                    distlock_config_set_tls_ca_file(cfg, std::ptr::null()),
                    INVALID
                );
                assert_eq!(
                    distlock_config_set_tls_ca_pem(cfg, std::ptr::null(), 5),
                    INVALID
                );
                assert_eq!(
                    distlock_config_set_tls_ca_pem(cfg, b"x".as_ptr(), 0),
                    INVALID
                );
                assert!(last().contains("empty"), "{}", last());
                let big = vec![b'A'; DISTLOCK_MAX_PEM_LEN + 1];
                assert_eq!(
                    distlock_config_set_tls_ca_pem(cfg, big.as_ptr(), big.len()),
                    INVALID
                );
                assert!(last().contains("at most 1048576"), "{}", last());
                let huge = write("huge.pem", &big);
                assert_eq!(distlock_config_set_tls_ca_file(cfg, huge.as_ptr()), INVALID);
                assert!(last().contains("larger than 1048576"), "{}", last());
                let bad = b"-----BEGIN CERTIFICATE-----\n%%%%\n";
                assert_eq!(
                    distlock_config_set_tls_ca_pem(cfg, bad.as_ptr(), bad.len()),
                    INVALID
                );
                assert!(last().contains("the TLS CA PEM"), "{}", last());

                // The key's file is named when it cannot be read; a key that
                // does not parse is never shown.
                assert_eq!(
                    distlock_config_set_tls_client_cert_files(
                        cfg,
                        cert_file.as_ptr(),
                        missing.as_ptr()
                    ),
                    INVALID
                );
                assert!(
                    last().contains("cannot read the TLS client key file"),
                    "{}",
                    last()
                );
                assert_eq!(
                    distlock_config_set_tls_client_cert_files(
                        cfg,
                        std::ptr::null(),
                        key_file.as_ptr()
                    ),
                    INVALID
                );
                assert!(last().contains("cert_path is NULL"), "{}", last());
                // The certificate is checked before the key.
                let key = fake("PRIVATE KEY", secret);
                assert_eq!(
                    distlock_config_set_tls_client_cert_pem(
                        cfg,
                        b"c".as_ptr(),
                        1,
                        key.as_ptr(),
                        key.len()
                    ),
                    INVALID
                );
                assert!(last().contains("TLS client certificate PEM"), "{}", last());
                // Keys that are no keys: never shown.
                let not_der = private_key(&key, &Source::Memory).err().unwrap().message;
                assert!(
                    not_der.contains("not an RSA, ECDSA or Ed25519"),
                    "{not_der}"
                );
                let none = private_key(b"no key here", &Source::File("/k.pem"))
                    .err()
                    .unwrap()
                    .message;
                assert!(
                    none.contains("file \"/k.pem\" holds no private key"),
                    "{none}"
                );
                let cut = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n");
                let cut = private_key(cut.as_bytes(), &Source::Memory)
                    .err()
                    .unwrap()
                    .message;
                assert!(cut.contains("not valid PEM"), "{cut}");
                for m in [not_der, none, cut] {
                    assert!(!m.contains(secret), "{m}");
                }
                assert_eq!(
                    distlock_config_set_tls_client_cert_pem(
                        cfg,
                        b"c".as_ptr(),
                        1,
                        std::ptr::null(),
                        3
                    ),
                    INVALID
                );
                assert!(last().contains("key is NULL"), "{}", last());
            }
            distlock_config_free(cfg);
            // SAFETY: NULL is allowed for the config.
            unsafe {
                assert_eq!(
                    distlock_config_set_tls_ca_pem(std::ptr::null_mut(), b"x".as_ptr(), 1),
                    INVALID
                );
            }
            assert!(last().contains("config handle is NULL"), "{}", last());
            let _ = std::fs::remove_dir_all(&dir);
        })
        .join()
        .unwrap();
    }
}
