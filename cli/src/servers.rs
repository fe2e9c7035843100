//! Where the locks live: the server options shared by every form, their
//! `DISTLOCK_*` environment variables, the password file and the TLS
//! files, turned into a [`distlock::Builder`].
//!
//! Four options choose the servers, as the library's `url`, `nodes`,
//! `cluster` and `sentinel` do: `--url` (one server), `--node` (Redlock),
//! `--cluster` (seeds of a Redis Cluster) and `--sentinel` with `--master`.
//! Only `--url` may go with `--sentinel`: it then gives the master's
//! scheme, credentials and db. If any of them is on the command line, the
//! command line alone chooses, and the environment variables of all five
//! are not read; otherwise the variables choose, by the same rules.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use std::fmt;
use std::path::{Path, PathBuf};

/// Help for `--url`; not a doc comment, whose brackets rustdoc would take
/// for links.
const URL_HELP: &str = "One Redis server: redis://[[user]:password@]host[:port][/db], \
    or rediss:// for TLS [default: redis://127.0.0.1:6379/0]";

/// Help for `--node`.
const NODE_HELP: &str = "A Redlock node: repeat it (or separate URLs with commas) for 3 or \
    more independent servers, 5 being usual; the lock is held while a majority grants it";

/// Help for `--cluster`.
const CLUSTER_HELP: &str = "A seed node of a Redis Cluster: repeat it (or separate URLs with \
    commas); give several, so that one being down does not matter";

/// Help for `--sentinel`.
const SENTINEL_HELP: &str = "A Redis Sentinel, host:port or redis://[user:password@]host:port \
    when it needs credentials of its own: repeat it (or separate addresses with commas); \
    needs --master. With --url too, that URL gives the master's scheme, credentials and db \
    (its host and port are not used)";

/// Help for `--password-file`.
const PASSWORD_FILE_HELP: &str = "Read the servers' password from FILE (one trailing newline \
    is dropped) and put it into every server URL (with --sentinel, the master's), so that \
    it appears in no command line or environment";

/// The environment variables of the server options, also those removed
/// when empty (an empty variable counts as unset).
pub const SERVER_ENV: [&str; 10] = [
    "DISTLOCK_URL",
    "DISTLOCK_NODES",
    "DISTLOCK_CLUSTER",
    "DISTLOCK_SENTINELS",
    "DISTLOCK_MASTER",
    "DISTLOCK_TLS_CA",
    "DISTLOCK_TLS_CERT",
    "DISTLOCK_TLS_KEY",
    "DISTLOCK_PASSWORD_FILE",
    "DISTLOCK_PREFIX",
];

/// Where the locks live: the server options, shared by every form.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Server options")]
pub struct ServerArgs {
    /// One server (see [`URL_HELP`]).
    #[arg(long, value_name = "URL", global = true, env = "DISTLOCK_URL",
          hide_env_values = true, help = URL_HELP)]
    pub url: Option<String>,
    /// Redlock nodes (see [`NODE_HELP`]).
    #[arg(long = "node", value_name = "URL", global = true, env = "DISTLOCK_NODES",
          value_delimiter = ',', hide_env_values = true, help = NODE_HELP)]
    pub nodes: Vec<String>,
    /// Cluster seeds (see [`CLUSTER_HELP`]).
    #[arg(long = "cluster", value_name = "URL", global = true, env = "DISTLOCK_CLUSTER",
          value_delimiter = ',', hide_env_values = true, help = CLUSTER_HELP)]
    pub cluster: Vec<String>,
    /// Sentinel addresses (see [`SENTINEL_HELP`]).
    #[arg(long = "sentinel", value_name = "ADDR", global = true, env = "DISTLOCK_SENTINELS",
          value_delimiter = ',', hide_env_values = true, help = SENTINEL_HELP)]
    pub sentinels: Vec<String>,
    /// The name the sentinels know the master by (with --sentinel)
    #[arg(
        long,
        value_name = "NAME",
        global = true,
        env = "DISTLOCK_MASTER",
        hide_env_values = true
    )]
    pub master: Option<String>,
    /// Trust this CA certificate (PEM) for rediss:// servers instead of
    /// the system's roots (one server or Redlock)
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "DISTLOCK_TLS_CA",
        hide_env_values = true
    )]
    pub tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to rediss:// servers that
    /// ask for one; goes with --tls-key
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "DISTLOCK_TLS_CERT",
        hide_env_values = true
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        env = "DISTLOCK_TLS_KEY",
        hide_env_values = true
    )]
    pub tls_key: Option<PathBuf>,
    /// The password file (see [`PASSWORD_FILE_HELP`]).
    #[arg(long, value_name = "FILE", global = true, env = "DISTLOCK_PASSWORD_FILE",
          hide_env_values = true, help = PASSWORD_FILE_HELP)]
    pub password_file: Option<PathBuf>,
    /// Key prefix: lock KEY lives at PREFIX:KEY
    #[arg(long, value_name = "PREFIX", default_value = distlock::DEFAULT_PREFIX,
          global = true, env = "DISTLOCK_PREFIX", hide_env_values = true)]
    pub prefix: String,
    /// The servers chosen, set by [`ServerArgs::resolve`] after parsing.
    #[arg(skip)]
    choice: Choice,
}

/// Which servers the options chose.
#[derive(Clone, Default, PartialEq, Eq)]
enum Choice {
    /// Nothing given: [`distlock::DEFAULT_URL`].
    #[default]
    Default,
    /// `--url`.
    Single(String),
    /// `--node`, with how the option is named in messages.
    Redlock(Vec<String>, &'static str),
    /// `--cluster`, with how the option is named in messages.
    Cluster(Vec<String>, &'static str),
    /// `--sentinel` and `--master`, with `--url` if given.
    Sentinel {
        /// The master's scheme, credentials and db.
        url: Option<String>,
        /// The sentinels' addresses.
        sentinels: Vec<String>,
        /// The master's name.
        master: String,
    },
}

/// The options that choose the servers: argument id, flag, variable.
const CHOOSERS: [(&str, &str, &str); 5] = [
    ("url", "--url", "DISTLOCK_URL"),
    ("nodes", "--node", "DISTLOCK_NODES"),
    ("cluster", "--cluster", "DISTLOCK_CLUSTER"),
    ("sentinels", "--sentinel", "DISTLOCK_SENTINELS"),
    ("master", "--master", "DISTLOCK_MASTER"),
];

impl ServerArgs {
    /// Decides which servers the options choose, from where each value
    /// came (`matches` of the whole command line): the command line if it
    /// has any of the choosing options, else the environment. `Err` is a
    /// usage error naming the options (or variables) that clash.
    pub fn resolve(&mut self, matches: &ArgMatches) -> Result<(), String> {
        let from_cli = CHOOSERS
            .iter()
            .any(|(id, ..)| matches.value_source(id) == Some(ValueSource::CommandLine));
        let want = if from_cli {
            ValueSource::CommandLine
        } else {
            ValueSource::EnvVariable
        };
        let given = |i: usize| matches.value_source(CHOOSERS[i].0) == Some(want);
        let name = |i: usize| {
            if from_cli {
                CHOOSERS[i].1
            } else {
                CHOOSERS[i].2
            }
        };
        let (url, nodes, cluster) = (given(0), given(1), given(2));
        let sentinel = given(3) || given(4);
        let sentinel_name = if given(3) { name(3) } else { name(4) };
        // Every pair that both choose the servers, but --url with
        // --sentinel (the master's credentials).
        let kinds = [
            (url && !sentinel, name(0)),
            (nodes, name(1)),
            (cluster, name(2)),
            (sentinel, sentinel_name),
        ];
        let mut chosen = kinds.iter().filter(|(on, _)| *on).map(|(_, n)| *n);
        if let (Some(a), Some(b)) = (chosen.next(), chosen.next()) {
            return Err(if from_cli {
                format!(
                    "{a} and {b} cannot be used together: each chooses the servers \
                     (give one of --url, --node, --cluster or --sentinel; only --url may go \
                     with --sentinel, for the master's credentials and db)"
                )
            } else {
                format!(
                    "{a} and {b} are both set, and each chooses the servers: unset one \
                     (server options on the command line replace all of these variables)"
                )
            });
        }
        if sentinel && !(given(3) && given(4)) {
            let (has, lacks, what) = if given(3) {
                (3, 4, "NAME, the name the sentinels know the master by")
            } else {
                (4, 3, "ADDR, the address of a sentinel")
            };
            let mut msg = format!("{} needs {} {what}", name(has), name(lacks));
            if from_cli && matches.value_source(CHOOSERS[lacks].0) == Some(ValueSource::EnvVariable)
            {
                msg.push_str(&format!(
                    " (server options on the command line replace the variables, \
                     {} among them)",
                    CHOOSERS[lacks].2
                ));
            }
            return Err(msg);
        }
        self.choice = if sentinel {
            Choice::Sentinel {
                url: self.url.clone().filter(|_| url),
                sentinels: self.sentinels.clone(),
                master: self.master.clone().unwrap_or_default(),
            }
        } else if nodes {
            Choice::Redlock(self.nodes.clone(), name(1))
        } else if cluster {
            Choice::Cluster(self.cluster.clone(), name(2))
        } else if url {
            Choice::Single(self.url.clone().unwrap_or_default())
        } else {
            Choice::Default
        };
        Ok(())
    }

    /// A builder with the chosen servers, the password and TLS files, and
    /// the prefix. `Err` is a usage error (a file that cannot be read, a
    /// password given twice, TLS files without a TLS server); it never
    /// holds the password or a file's content.
    pub fn builder(&self) -> Result<distlock::Builder, String> {
        let password = match &self.password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        let with_pw = |url: &str, what: &str| match &password {
            Some(pw) => add_password(url, pw, what),
            None => Ok(url.to_string()),
        };
        let list = |urls: &[String], name: &str| {
            urls.iter()
                .enumerate()
                .map(|(i, u)| with_pw(u, &format!("{name} #{}", i + 1)))
                .collect::<Result<Vec<_>, _>>()
        };
        let b = distlock::Client::builder();
        let (b, urls) = match &self.choice {
            Choice::Default => {
                let url = with_pw(distlock::DEFAULT_URL, "the default URL")?;
                (b.url(&url), vec![url])
            }
            Choice::Single(url) => {
                let url = with_pw(url, "--url")?;
                (b.url(&url), vec![url])
            }
            Choice::Redlock(urls, name) => {
                let urls = list(urls, name)?;
                (b.nodes(&urls), urls)
            }
            // The library refuses TLS files with these two.
            Choice::Cluster(urls, name) => (b.cluster(list(urls, name)?), Vec::new()),
            Choice::Sentinel {
                url,
                sentinels,
                master,
            } => {
                let url = with_pw(
                    url.as_deref().unwrap_or(distlock::DEFAULT_URL),
                    "the master's URL",
                )?;
                (b.url(&url).sentinel(sentinels, master), Vec::new())
            }
        };
        let b = self.with_tls(b, &urls)?;
        Ok(b.prefix(&self.prefix))
    }

    /// `b` with the TLS files, if any; `urls` are the servers they are
    /// for (empty for Cluster and Sentinel, which the library checks).
    fn with_tls(
        &self,
        mut b: distlock::Builder,
        urls: &[String],
    ) -> Result<distlock::Builder, String> {
        let pair = (&self.tls_cert, &self.tls_key);
        if self.tls_ca.is_none() && pair == (&None, &None) {
            return Ok(b);
        }
        if !urls.is_empty() && !urls.iter().any(|u| u.starts_with("rediss://")) {
            return Err(
                "--tls-ca, --tls-cert and --tls-key are for TLS servers, and no \
                 server URL here is rediss://"
                    .to_string(),
            );
        }
        if let Some(ca) = &self.tls_ca {
            b = b.tls_root_ca(read_pem(ca, "CA certificate (--tls-ca)")?);
        }
        match pair {
            (Some(cert), Some(key)) => Ok(b.tls_client_cert(
                read_pem(cert, "client certificate (--tls-cert)")?,
                read_pem(key, "client key (--tls-key)")?,
            )),
            (None, None) => Ok(b),
            _ => Err("--tls-cert and --tls-key go together: give both or neither".to_string()),
        }
    }
}

/// Reads a PEM file; `Err` names the file (never its content).
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "the {what} {} is not in PEM form (no -----BEGIN line)",
            path.display()
        ));
    }
    Ok(pem)
}

/// The password in the file at `path`, without one trailing newline.
/// `Err` names the file, never what is in it.
fn read_password(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the password file {shown}: {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("the password file {shown} is not UTF-8"))?;
    let pw = text.strip_suffix('\n').unwrap_or(&text);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err(format!("the password file {shown} is empty"));
    }
    if pw.contains(['\n', '\r']) {
        return Err(format!(
            "the password file {shown} has more than one line: it must hold the password \
             alone (one trailing newline is allowed)"
        ));
    }
    Ok(pw.to_string())
}

/// The parts of a URL around its credentials: everything up to `://`, the
/// user-info (without its `@`), and the rest.
fn split_url(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Some((&url[..start], Some(&rest[..at]), &rest[at + 1..])),
        None => Some((&url[..start], None, rest)),
    }
}

/// `s` with every byte but the unreserved ones of RFC 3986 percent-encoded,
/// as the user-info and the query of a URL need.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `password`: in the user-info of `redis://` and `rediss://`
/// URLs (after the user name, if any), as `pass=` in the query of
/// `unix://` and `redis+unix://` ones. `what` names the URL in errors,
/// which show neither the URL nor the password.
fn add_password(url: &str, password: &str, what: &str) -> Result<String, String> {
    let Some((scheme, userinfo, rest)) = split_url(url) else {
        return Err(format!(
            "{what} is not a URL (scheme://...), so the password file cannot go into it"
        ));
    };
    let encoded = percent_encode(password);
    let lower = scheme.to_ascii_lowercase();
    let twice =
        || format!("{what} has a password already; with --password-file, leave it out of the URL");
    if lower == "unix://" || lower == "redis+unix://" {
        let (body, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url, ""),
        };
        let query = body.split_once('?').map_or("", |(_, q)| q);
        if query.split('&').any(|kv| kv.starts_with("pass=")) {
            return Err(twice());
        }
        let sep = if body.contains('?') { '&' } else { '?' };
        return Ok(format!("{body}{sep}pass={encoded}{fragment}"));
    }
    let user = match userinfo {
        None => "",
        Some(info) => match info.split_once(':') {
            Some((_, pw)) if !pw.is_empty() => return Err(twice()),
            Some((user, _)) => user,
            None => info,
        },
    };
    Ok(format!("{scheme}{user}:{encoded}@{rest}"))
}

/// `url` with any password, and any query (which may hold one), hidden.
fn redact(url: &str) -> String {
    match split_url(url) {
        None => "<not a URL>".to_string(),
        Some((scheme, userinfo, rest)) => {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let user = userinfo.map(|u| u.split(':').next().unwrap_or_default());
            match user {
                Some(user) => format!("{scheme}{user}:***@{rest}"),
                None => format!("{scheme}{rest}"),
            }
        }
    }
}

impl fmt::Debug for ServerArgs {
    /// Shows the options with every URL's password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = |urls: &[String]| urls.iter().map(|u| redact(u)).collect::<Vec<_>>();
        let sentinels = self
            .sentinels
            .iter()
            .map(|a| {
                if a.contains("://") {
                    redact(a)
                } else {
                    redact(&format!("redis://{a}"))
                }
            })
            .collect::<Vec<_>>();
        f.debug_struct("ServerArgs")
            .field("url", &self.url.as_deref().map(redact))
            .field("nodes", &all(&self.nodes))
            .field("cluster", &all(&self.cluster))
            .field("sentinels", &sentinels)
            .field("master", &self.master)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("password_file", &self.password_file)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_into_the_url_encoded() {
        let pw = "p@ss:w/rd#?%+ é";
        let enc = "p%40ss%3Aw%2Frd%23%3F%25%2B%20%C3%A9";
        let cases = [
            ("redis://h:1/2", format!("redis://:{enc}@h:1/2")),
            ("rediss://alice@h", format!("rediss://alice:{enc}@h")),
            ("redis://alice:@h/0", format!("redis://alice:{enc}@h/0")),
            ("redis://:@h", format!("redis://:{enc}@h")),
            (
                "unix:///tmp/r.sock",
                format!("unix:///tmp/r.sock?pass={enc}"),
            ),
            (
                "redis+unix:///tmp/r.sock?db=2",
                format!("redis+unix:///tmp/r.sock?db=2&pass={enc}"),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(add_password(url, pw, "u").unwrap(), want, "{url}");
        }
        // The redis crate decodes it back.
        let info = redis::Client::open(add_password("redis://h/0", pw, "u").unwrap())
            .unwrap()
            .get_connection_info()
            .clone();
        assert_eq!(info.redis_settings().password(), Some(pw));
        for twice in ["redis://:x@h", "redis://u:x@h", "unix:///s?pass=x"] {
            let err = add_password(twice, pw, "--node #2").unwrap_err();
            assert!(err.starts_with("--node #2 has a password already"), "{err}");
            assert!(!err.contains(pw) && !err.contains(twice), "{err}");
        }
        let err = add_password("h:6379", pw, "--url").unwrap_err();
        assert!(
            err.contains("not a URL") && !err.contains("h:6379"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_passwords() {
        let args = ServerArgs {
            url: Some("redis://u:hunter2@h/0".into()),
            nodes: vec!["redis://:pw2@a".into()],
            cluster: vec!["unix:///s?pass=pw3".into()],
            sentinels: vec![":pw4@s:1".into()],
            ..ServerArgs::default()
        };
        let shown = format!("{args:?}");
        for secret in ["hunter2", "pw2", "pw3", "pw4"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("redis://u:***@h/0"), "{shown}");
    }
}
