//! The `host:port,host:port` lists of etcd and ZooKeeper URLs.

use crate::error::{Error, Result};

/// Parses a comma-separated list of `host[:port]` (an IPv6 host in
/// brackets), each with `default_port` when it names none, into
/// `host:port` strings. `what` names one entry in messages ("member",
/// "server"); `bad` turns a reason into the caller's error.
pub(crate) fn parse_hosts(
    list: &str,
    what: &str,
    default_port: u16,
    bad: impl Fn(&str) -> Error,
) -> Result<Vec<String>> {
    let mut hosts = Vec::new();
    for (i, entry) in list.split(',').enumerate() {
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, Some(p)),
            _ => (entry, None),
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad(&format!("{what} #{} has no host", i + 1)));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                bad(&format!(
                    "the port of {what} #{} is not a number from 1 to 65535",
                    i + 1
                ))
            })?,
            None => default_port,
        };
        hosts.push(format!("{host}:{port}"));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_get_the_default_port_and_bad_entries_are_named() {
        let bad = |why: &str| Error::invalid(why.to_string());
        assert_eq!(
            parse_hosts("a,b:7,[::1]:8,[::1]", "server", 2181, bad).unwrap(),
            ["a:2181", "b:7", "[::1]:8", "[::1]:2181"]
        );
        let e = parse_hosts("a,:2", "server", 1, bad).unwrap_err();
        assert!(e.to_string().contains("server #2 has no host"), "{e}");
        let e = parse_hosts("a:x", "member", 1, bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("the port of member #1 is not a number from 1 to 65535"),
            "{e}"
        );
        assert!(parse_hosts("a:0", "member", 1, bad).is_err());
    }
}
