//! Arbitrary bytes as the C strings of the C ABI: URLs, node and cluster
//! URLs, sentinel addresses and master names, prefixes, lock keys, plus the
//! numeric config setters and status names.
//!
//! The input is split at its NUL bytes into chunks; each chunk is one call:
//! its first byte picks the function, the rest is the string (so every
//! string is a proper NUL-terminated C string; non-UTF-8 is kept). The
//! calls work on one `distlock_config`, so the lists fill up and the
//! 64-entry limits are reached.
//!
//! Checked for every call: no panic (a caught panic would come back as
//! `DISTLOCK_INTERNAL`), only `DISTLOCK_OK` or `DISTLOCK_INVALID_ARGUMENT`,
//! the same verdict as the Rust builder's `check()` and a model of the
//! config's limits, a readable last error that never shows a password, and
//! (with AddressSanitizer, cargo fuzz's default) no read past the length
//! limit of an unterminated buffer.
//!
//! Nothing here connects: no client is ever opened (neither
//! `distlock_client_open` nor `distlock_client_open_config` is called), and
//! `distlock_acquire` only gets NULL or unknown client handles, which it
//! refuses before reading the key. The finished config goes through
//! `distlock_config_check`, which validates it without connecting.
#![no_main]

use distlock::ffi::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

const OK: i32 = distlock_status::DISTLOCK_OK as i32;
const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;
/// A password no error message may show.
const SECRET: &str = "Zq7SecretPw";

/// The string setters, in the order the chunks pick them.
#[derive(Clone, Copy, Debug)]
enum Setter {
    Url,
    Node,
    Cluster,
    Master,
    Sentinel,
    Prefix,
}

const SETTERS: [Setter; 6] = [
    Setter::Url,
    Setter::Node,
    Setter::Cluster,
    Setter::Master,
    Setter::Sentinel,
    Setter::Prefix,
];

impl Setter {
    fn max_len(self) -> usize {
        match self {
            Setter::Url | Setter::Node | Setter::Cluster | Setter::Sentinel => DISTLOCK_MAX_URL_LEN,
            Setter::Master => DISTLOCK_MAX_MASTER_NAME_LEN,
            Setter::Prefix => DISTLOCK_MAX_PREFIX_LEN,
        }
    }

    /// # Safety
    ///
    /// `s` is NULL, NUL-terminated, or at least `max_len() + 1` bytes long.
    unsafe fn call(self, cfg: *mut distlock_config, s: *const c_char) -> i32 {
        // SAFETY: passed on from the caller.
        unsafe {
            match self {
                Setter::Url => distlock_config_set_url(cfg, s),
                Setter::Node => distlock_config_add_node(cfg, s),
                Setter::Cluster => distlock_config_add_cluster_url(cfg, s),
                Setter::Master => distlock_config_set_sentinel(cfg, s),
                Setter::Sentinel => distlock_config_add_sentinel(cfg, s),
                Setter::Prefix => distlock_config_set_prefix(cfg, s),
            }
        }
    }
}

/// What the config holds, as far as the limits go.
#[derive(Default)]
struct Model {
    nodes: usize,
    cluster: usize,
    sentinels: usize,
}

impl Model {
    fn list(&mut self, setter: Setter) -> Option<&mut usize> {
        match setter {
            Setter::Node => Some(&mut self.nodes),
            Setter::Cluster => Some(&mut self.cluster),
            Setter::Sentinel => Some(&mut self.sentinels),
            _ => None,
        }
    }

    /// Whether `setter` must accept `text` (already known to be UTF-8 and
    /// within its length limit).
    fn accepts(&mut self, setter: Setter, text: &str) -> bool {
        let url_ok = || distlock::Client::builder().url(text).check().is_ok();
        let value_ok = match setter {
            Setter::Url | Setter::Node | Setter::Cluster => url_ok(),
            Setter::Master | Setter::Sentinel => !text.is_empty(),
            Setter::Prefix => distlock::Client::builder().prefix(text).check().is_ok(),
        };
        let room = self.list(setter).is_none_or(|n| *n < DISTLOCK_MAX_SERVERS);
        value_ok && room
    }
}

/// This thread's last error, which every failed call must have set.
fn last_error(what: &str) -> String {
    let p = distlock_last_error();
    assert!(!p.is_null(), "{what}: failed without a last error");
    // SAFETY: a non-NULL last error is a NUL-terminated string, valid until
    // this thread's next failed call.
    let msg = unsafe { CStr::from_ptr(p) };
    let msg = msg
        .to_str()
        .unwrap_or_else(|_| panic!("{what}: last error is not UTF-8"));
    msg.to_owned()
}

/// Checks a status: never a caught panic, only OK or INVALID_ARGUMENT,
/// and a failure leaves a message.
fn outcome(what: &str, status: i32) -> Option<String> {
    if status == OK {
        return None;
    }
    let msg = last_error(what);
    assert_ne!(
        status,
        distlock_status::DISTLOCK_INTERNAL as i32,
        "{what}: internal error: {msg}"
    );
    assert_eq!(status, INVALID, "{what}: unexpected status {status}: {msg}");
    Some(msg)
}

/// One string setter call with `bytes` (no NULs) as a C string, checked
/// against the builder and the model; returns the failure message, if any.
fn set_string(
    cfg: *mut distlock_config,
    model: &mut Model,
    setter: Setter,
    bytes: &[u8],
) -> Option<String> {
    let what = format!("{setter:?}({:?})", String::from_utf8_lossy(bytes));
    let c = CString::new(bytes).expect("chunks hold no NUL");
    // SAFETY: a NUL-terminated string.
    let status = unsafe { setter.call(cfg, c.as_ptr()) };
    let failed = outcome(&what, status);
    // The length is checked first, then UTF-8, then the value.
    let refused = |why: &str| {
        let msg = failed
            .as_deref()
            .unwrap_or_else(|| panic!("{what}: accepted; expected a refusal saying {why:?}"));
        assert!(msg.contains(why), "{what}: {msg}");
    };
    if bytes.len() > setter.max_len() {
        refused("longer than");
        return failed;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        refused("UTF-8");
        return failed;
    };
    let expected = model.accepts(setter, text);
    assert_eq!(
        failed.is_none(),
        expected,
        "{what}: the C ABI and the builder disagree: {failed:?}"
    );
    if failed.is_none() {
        if let Some(n) = model.list(setter) {
            *n += 1;
        }
    }
    failed
}

/// A URL setter given `redis://fz:SECRET@<bytes>`: whatever the verdict,
/// the message must not show the password.
fn set_url_with_password(cfg: *mut distlock_config, model: &mut Model, pick: u8, bytes: &[u8]) {
    let setter = [Setter::Url, Setter::Node, Setter::Cluster][usize::from(pick % 3)];
    let mut url = format!("redis://fz:{SECRET}@").into_bytes();
    url.extend_from_slice(bytes);
    if let Some(msg) = set_string(cfg, model, setter, &url) {
        assert!(
            !msg.contains(SECRET),
            "{setter:?}: the message shows the password: {msg}"
        );
    }
}

/// A string setter given a buffer of exactly `max_len() + 1` bytes and no
/// NUL: refused as too long, without reading past the buffer.
fn set_unterminated(cfg: *mut distlock_config, pick: u8, bytes: &[u8]) {
    let setter = SETTERS[usize::from(pick) % SETTERS.len()];
    let fill: &[u8] = if bytes.is_empty() { b"a" } else { bytes };
    // Exactly this long, so that AddressSanitizer sees any read past it.
    let buf: Box<[u8]> = fill
        .iter()
        .copied()
        .cycle()
        .take(setter.max_len() + 1)
        .collect();
    // SAFETY: `max_len() + 1` readable bytes.
    let status = unsafe { setter.call(cfg, buf.as_ptr().cast()) };
    let msg = outcome(&format!("{setter:?}(unterminated)"), status);
    let msg = msg.unwrap_or_else(|| panic!("{setter:?}: accepted an over-long string"));
    assert!(msg.contains("longer than"), "{setter:?}: {msg}");
}

/// `distlock_acquire` with NULL and unknown client handles: refused before
/// the key is read, so nothing connects.
fn acquire_without_client(bytes: &[u8]) {
    let key = CString::new(bytes).expect("chunks hold no NUL");
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    let ttl_ms = u64::from_le_bytes(word);
    let timeout_ms = i64::from_le_bytes(word).rotate_left(13);
    let mut bogus = 0u64;
    let cancel = distlock_cancel_new();
    assert!(!cancel.is_null());
    for client in [
        std::ptr::null_mut(),
        std::ptr::addr_of_mut!(bogus).cast::<distlock_client>(),
    ] {
        let mut out = std::ptr::dangling_mut::<distlock_guard>();
        // SAFETY: `key` is NUL-terminated and `out` a valid place for a
        // pointer; no client exists in this process, so none is used.
        let status =
            unsafe { distlock_acquire(client, key.as_ptr(), ttl_ms, timeout_ms, cancel, &mut out) };
        let msg = outcome("distlock_acquire", status).expect("no client: must fail");
        assert!(msg.contains("client handle"), "{msg}");
        assert!(out.is_null(), "out not cleared on failure");
    }
    distlock_cancel_free(cancel);
}

/// One numeric setter, picked by `pick`, with a value from `bytes`.
fn set_number(cfg: *mut distlock_config, pick: u8, bytes: &[u8]) {
    let mut word = [0u8; 12];
    let n = bytes.len().min(12);
    word[..n].copy_from_slice(&bytes[..n]);
    let v = u64::from_le_bytes(word[..8].try_into().unwrap());
    let w = u32::from_le_bytes(word[8..].try_into().unwrap());
    let ms = Duration::from_millis;
    let b = distlock::Client::builder;
    let (what, status, builder) = match pick % 11 {
        0 => ("ttl", distlock_config_set_ttl_ms(cfg, v), b().ttl(ms(v))),
        1 => (
            "pool_size",
            distlock_config_set_pool_size(cfg, w),
            b().pool_size(w),
        ),
        2 => (
            "connect_timeout",
            distlock_config_set_connect_timeout_ms(cfg, v),
            b().connect_timeout(ms(v)),
        ),
        3 => (
            "command_timeout",
            distlock_config_set_command_timeout_ms(cfg, v),
            b().command_timeout(ms(v)),
        ),
        4 => (
            "max_hold",
            distlock_config_set_max_hold_ms(cfg, v),
            b().max_hold((v > 0).then(|| ms(v))),
        ),
        5 => (
            "max_retry_interval",
            distlock_config_set_max_retry_interval_ms(cfg, v),
            b().max_retry_interval(ms(v)),
        ),
        6 => (
            "fast_path",
            distlock_config_set_fast_path(cfg, v & 1 == 1),
            b().fast_path(v & 1 == 1),
        ),
        7 => (
            "handoff_limit",
            distlock_config_set_handoff_limit(cfg, w),
            b().handoff_limit(w),
        ),
        8 => (
            "handoff_budget",
            distlock_config_set_handoff_budget_ms(cfg, v),
            b().handoff_budget(ms(v)),
        ),
        9 => (
            "replicas",
            distlock_config_set_replicas(cfg, w, v),
            b().replicas(w, ms(v)),
        ),
        _ => {
            let status = i32::from_le_bytes(word[..4].try_into().unwrap());
            // SAFETY: status names are static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(distlock_status_name(status)) };
            assert!(name.to_bytes().starts_with(b"DISTLOCK_"));
            return;
        }
    };
    let failed = outcome(what, status);
    assert_eq!(
        failed.is_none(),
        builder.check().is_ok(),
        "{what}({v}, {w}): the C ABI and the builder disagree: {failed:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut cfg = distlock_config_new();
    assert!(!cfg.is_null());
    let mut model = Model::default();
    for chunk in data.split(|&b| b == 0) {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        match op % 11 {
            n @ 0..=5 => {
                set_string(cfg, &mut model, SETTERS[usize::from(n)], body);
            }
            6 => acquire_without_client(body),
            7 => {
                let (pick, rest) = body.split_first().unwrap_or((&0, &[]));
                set_number(cfg, *pick, rest);
            }
            8 => {
                let (pick, rest) = body.split_first().unwrap_or((&0, &[]));
                set_url_with_password(cfg, &mut model, *pick, rest);
            }
            9 => {
                let (pick, rest) = body.split_first().unwrap_or((&0, &[]));
                set_unterminated(cfg, *pick, rest);
            }
            _ => {
                // A freed config is refused; then start again with a new one.
                distlock_config_free(cfg);
                let url = c"redis://127.0.0.1:1/0";
                // SAFETY: a NUL-terminated string.
                let status = unsafe { distlock_config_set_url(cfg, url.as_ptr()) };
                let msg = outcome("set_url on a freed config", status).expect("must fail");
                assert!(msg.contains("config"), "{msg}");
                cfg = distlock_config_new();
                assert!(!cfg.is_null());
                model = Model::default();
            }
        }
    }
    // The whole config, checked as opening it would check it first.
    if let Some(msg) = outcome("distlock_config_check", distlock_config_check(cfg)) {
        assert!(!msg.contains(SECRET), "config check shows the password: {msg}");
    }
    distlock_config_free(cfg);
});
