//! Settings and URLs from arbitrary bytes: `Builder::check` must return a
//! clear result, never panic, and never connect anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let url = parts.next().unwrap_or("");
    let prefix = parts.next().unwrap_or("distlock");
    let ttl_ms: u64 = parts.next().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let nodes: Vec<&str> = parts.next().unwrap_or("").split(' ').collect();
    let single = distlock::Client::builder()
        .url(url)
        .prefix(prefix)
        .ttl(Duration::from_millis(ttl_ms));
    let _ = single.check();
    let _ = format!("{single:?}");
    let _ = distlock::Client::builder().nodes(&nodes).check();
    let _ = distlock::Client::builder().cluster(&nodes).check();
});
