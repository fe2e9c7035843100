//! Settings and URLs from arbitrary bytes: `Builder::check` must return a
//! clear result, never panic, and never connect anywhere; `Debug` must
//! never show a password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// A password `Debug` output may not show.
const SECRET: &str = "Zq7SecretPw";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let url = parts.next().unwrap_or("");
    let prefix = parts.next().unwrap_or("distlock");
    let ttl_ms: u64 = parts
        .next()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let nodes: Vec<&str> = parts.next().unwrap_or("").split(' ').collect();
    let single = distlock::Client::builder()
        .url(url)
        .prefix(prefix)
        .ttl(Duration::from_millis(ttl_ms));
    let _ = single.check();
    let _ = format!("{single:?}");
    let _ = distlock::Client::builder().nodes(&nodes).check();
    let _ = distlock::Client::builder().cluster(&nodes).check();
    // Sentinel addresses (`host:port` or URLs) and a master name.
    let sentinel = distlock::Client::builder()
        .url(url)
        .sentinel(&nodes, prefix);
    let _ = sentinel.check();
    let _ = format!("{sentinel:?}");
    // The same, each with a password: Debug must hide it.
    let with_pw = |s: &str| {
        if let Some((scheme, rest)) = s.split_once("://") {
            format!("{scheme}://u:{SECRET}@{rest}")
        } else {
            format!("u:{SECRET}@{s}")
        }
    };
    let secret_nodes: Vec<String> = nodes.iter().map(|n| with_pw(n)).collect();
    let secret_url = with_pw(url);
    for b in [
        distlock::Client::builder().url(&secret_url),
        distlock::Client::builder().nodes(&secret_nodes),
        distlock::Client::builder().sentinel(&secret_nodes, "m"),
    ] {
        let shown = format!("{b:?}");
        assert!(!shown.contains(SECRET), "Debug shows the password: {shown}");
        if let Err(e) = b.check() {
            let msg = e.to_string();
            assert!(!msg.contains(SECRET), "check() shows the password: {msg}");
        }
    }
});
