//! `distlock status` and `distlock release`: looking at a lock and freeing
//! it, for operators.

use crate::{connect, exit_for, say, ServerArgs, EXIT_CONFLICT};
use std::fmt::Write as _;

/// Exit status of `status` for a free lock and of `release` when nothing
/// was released.
const EXIT_NO: u8 = EXIT_CONFLICT;

/// `distlock status KEY [--json]`: prints what the server holds for `key`.
/// 0 if the lock is held, 1 if it is free.
pub fn status(server: &ServerArgs, key: &str, json: bool) -> u8 {
    let client = match connect(server, distlock::DEFAULT_TTL, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let info = match client.inspect(key) {
        Ok(info) => info,
        Err(e) => {
            say!("{e}");
            return exit_for(&e);
        }
    };
    let held = info.token.is_some() || !info.shares.is_empty();
    if json {
        println!("{}", status_json(key, &info));
    } else {
        print!("{}", status_text(&info));
    }
    if held {
        0
    } else {
        EXIT_NO
    }
}

/// The human-readable form of `info`, one `field: value` per line.
fn status_text(info: &distlock::LockInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "key:       {}", info.key);
    match (&info.token, info.remaining) {
        (Some(token), remaining) => {
            let _ = writeln!(out, "held:      yes");
            if let Some(holder) = &info.holder {
                let _ = writeln!(out, "held by:   {holder}");
            }
            let _ = writeln!(out, "token:     {token}");
            if let Some(r) = remaining {
                let _ = writeln!(out, "remaining: {:.3}s", r.as_secs_f64());
            }
        }
        (None, _) if !info.shares.is_empty() => {
            let kind = info.shares[0].kind;
            let what = match (kind, info.shares.len()) {
                (distlock::ShareKind::Read, 1) => "1 reader".to_string(),
                (distlock::ShareKind::Read, n) => format!("{n} readers"),
                (distlock::ShareKind::Write, _) => "a writer".to_string(),
                (distlock::ShareKind::Permit, 1) => "1 permit".to_string(),
                (distlock::ShareKind::Permit, n) => format!("{n} permits"),
            };
            let _ = writeln!(out, "held:      yes, by {what}");
            for share in &info.shares {
                let _ = writeln!(
                    out,
                    "share:     {} {} remaining {:.3}s",
                    share.kind.as_str(),
                    share.token,
                    share.remaining.as_secs_f64()
                );
            }
        }
        (None, _) => {
            let _ = writeln!(out, "held:      no");
        }
    }
    if info.writers_waiting > 0 {
        let _ = writeln!(out, "waiting:   {} writer(s)", info.writers_waiting);
    }
    match info.fence {
        Some(f) => {
            let _ = writeln!(out, "fence:     {f}");
        }
        None => {
            let _ = writeln!(out, "fence:     none (never acquired)");
        }
    }
    out
}

/// `info` as one JSON object:
/// `{"name","key","held","token","remaining_ms","fence","holder","shares","writers_waiting"}`,
/// with `null` for what the server does not have; `holder` is
/// `{"host","pid","label"}`, `shares` a list of `{"kind","token","remaining_ms"}`
/// (empty for a plain lock).
fn status_json(name: &str, info: &distlock::LockInfo) -> String {
    let opt_str = |s: Option<&str>| s.map_or_else(|| "null".to_string(), json_string);
    let opt_num = |n: Option<u128>| n.map_or_else(|| "null".to_string(), |n| n.to_string());
    let holder = info.holder.as_ref().map_or_else(
        || "null".to_string(),
        |h| {
            format!(
                "{{\"host\":{},\"pid\":{},\"label\":{}}}",
                json_string(&h.host),
                h.pid,
                opt_str(h.label.as_deref())
            )
        },
    );
    let shares: Vec<String> = info
        .shares
        .iter()
        .map(|s| {
            format!(
                "{{\"kind\":\"{}\",\"token\":{},\"remaining_ms\":{}}}",
                s.kind.as_str(),
                json_string(&s.token),
                s.remaining.as_millis()
            )
        })
        .collect();
    format!(
        "{{\"name\":{},\"key\":{},\"held\":{},\"token\":{},\"remaining_ms\":{},\"fence\":{},\"holder\":{holder},\"shares\":[{}],\"writers_waiting\":{}}}",
        json_string(name),
        json_string(&info.key),
        info.token.is_some() || !info.shares.is_empty(),
        opt_str(info.token.as_deref()),
        opt_num(info.remaining.map(|r| r.as_millis())),
        opt_num(info.fence.map(u128::from)),
        shares.join(","),
        info.writers_waiting,
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `distlock list [PATTERN] [--limit N] [--json]`: prints the locks held
/// now whose names match `pattern`, one per line. 0 if any is held, 1 if
/// none.
pub fn list(server: &ServerArgs, pattern: &str, limit: usize, json: bool) -> u8 {
    let client = match connect(server, distlock::DEFAULT_TTL, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let held = match client.held(pattern, limit) {
        Ok(held) => held,
        Err(e) => {
            say!("{e}");
            return exit_for(&e);
        }
    };
    for lock in &held.locks {
        if json {
            println!("{}", status_json(&lock.name, &lock.info));
        } else {
            let remaining = lock
                .info
                .remaining
                .map_or_else(|| "-".to_string(), |r| format!("{:.3}s", r.as_secs_f64()));
            let fence = lock
                .info
                .fence
                .map_or_else(|| "-".to_string(), |f| f.to_string());
            let holder = lock
                .info
                .holder
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string);
            println!(
                "{}\t{holder}\t{}\tremaining {remaining}\tfence {fence}",
                lock.name,
                lock.info.token.as_deref().unwrap_or("-"),
            );
        }
    }
    if json {
        println!("{{\"truncated\":{}}}", held.truncated);
    } else if held.truncated {
        say!("stopped after {limit} locks (--limit): there may be more");
    }
    if held.locks.is_empty() {
        EXIT_NO
    } else {
        0
    }
}

/// `distlock release KEY --token TOKEN`: deletes the lock if it is held with
/// `token`. 0 if released, 1 if it was not held with that token.
pub fn release(server: &ServerArgs, key: &str, token: &str) -> u8 {
    let client = match connect(server, distlock::DEFAULT_TTL, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.release_token(key, token) {
        Ok(true) => 0,
        Ok(false) => {
            say!("{key} is not held with that token; nothing released");
            EXIT_NO
        }
        Err(e) => {
            say!("{e}");
            exit_for(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_escapes_and_nulls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
        let free = distlock::LockInfo {
            key: "p:k".into(),
            token: None,
            remaining: None,
            fence: None,
            holder: None,
            shares: Vec::new(),
            writers_waiting: 0,
        };
        assert_eq!(
            status_json("k", &free),
            "{\"name\":\"k\",\"key\":\"p:k\",\"held\":false,\"token\":null,\"remaining_ms\":null,\"fence\":null,\"holder\":null,\"shares\":[],\"writers_waiting\":0}"
        );
        let held = distlock::LockInfo {
            token: Some("t".into()),
            remaining: Some(Duration::from_millis(1500)),
            fence: Some(7),
            holder: Some(distlock::Holder {
                host: "web-1".into(),
                pid: 42,
                label: Some("nightly \"backup\"".into()),
            }),
            ..free.clone()
        };
        assert!(status_json("k", &held).ends_with(
            "\"held\":true,\"token\":\"t\",\"remaining_ms\":1500,\"fence\":7,\
             \"holder\":{\"host\":\"web-1\",\"pid\":42,\"label\":\"nightly \\\"backup\\\"\"},\
             \"shares\":[],\"writers_waiting\":0}"
        ));
        let text = status_text(&held);
        assert!(text.contains("remaining: 1.500s"), "{text}");
        assert!(
            text.contains("held by:   web-1 pid 42 (nightly \"backup\")"),
            "{text}"
        );
        let read = |token: &str, ms| distlock::Share {
            kind: distlock::ShareKind::Read,
            token: token.into(),
            remaining: Duration::from_millis(ms),
        };
        let readers = distlock::LockInfo {
            shares: vec![read("r1", 900), read("r2", 2500)],
            remaining: Some(Duration::from_millis(2500)),
            writers_waiting: 1,
            ..free
        };
        let text = status_text(&readers);
        assert!(text.contains("held:      yes, by 2 readers"), "{text}");
        assert!(
            text.contains("share:     read r2 remaining 2.500s"),
            "{text}"
        );
        assert!(text.contains("waiting:   1 writer(s)"), "{text}");
        assert!(status_json("k", &readers).ends_with(
            "\"held\":true,\"token\":null,\"remaining_ms\":2500,\"fence\":null,\"holder\":null,\
             \"shares\":[{\"kind\":\"read\",\"token\":\"r1\",\"remaining_ms\":900},\
             {\"kind\":\"read\",\"token\":\"r2\",\"remaining_ms\":2500}],\"writers_waiting\":1}"
        ));
    }
}
