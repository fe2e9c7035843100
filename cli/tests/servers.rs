//! The server options of the `distlock` command, on real servers started
//! by the tests: Redlock over three `--node`s, a Redis Cluster, a master
//! found through Redis Sentinel, TLS with a private CA and with a client
//! certificate, the password file, the `DISTLOCK_*` variables, and the
//! usage errors when the options clash.

mod common;

use common::{exists, run, run_env, Proc, Scratch};
use distlock::Client;
use distlock_testkit::{dead_port, RedisServer, SentinelServer, TlsServer};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A password with every character that needs encoding in a URL.
const PW: &str = "s3cr:t@p/ss#w%rd+&=?é";
/// [`PW`] percent-encoded, for the tests' own connections.
const PW_ENCODED: &str = "s3cr%3At%40p%2Fss%23w%25rd%2B%26%3D%3F%C3%A9";

/// Whether `text` holds any part of [`PW`] that would give it away.
fn leaks(text: &str) -> bool {
    text.contains("s3cr") || text.contains("p%2Fss") || text.contains("w%rd")
}

/// A redis-server that requires [`PW`].
fn with_pw() -> RedisServer {
    RedisServer::start_with(&["--requirepass", PW])
}

/// `redis://127.0.0.1:<port>/<db>`, without credentials.
fn plain(port: u16, db: u32) -> String {
    format!("redis://127.0.0.1:{port}/{db}")
}

/// A connection to a server that requires [`PW`], on `db`.
fn conn_pw(port: u16, db: u32) -> redis::Connection {
    redis::Client::open(format!("redis://:{PW_ENCODED}@127.0.0.1:{port}/{db}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("connect with the password")
}

/// Writes `text` to `name` in `dir`; returns the path as a string.
fn write(dir: &Scratch, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// A password file holding [`PW`] and a newline.
fn pw_file(dir: &Scratch) -> String {
    write(dir, "password", format!("{PW}\n").as_bytes())
}

/// A usage-error case: arguments, environment, and what standard error
/// must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Polls `done` every 20 ms until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `distlock args... KEY -c 'echo ready; read _'` and waits until
/// the command runs; closing the process's stdin lets it finish.
fn hold(args: &[&str], env: &[(&str, &str)], key: &str) -> Proc {
    let mut all = args.to_vec();
    all.extend([key, "-c", "echo ready; read _; exit 0"]);
    let p = Proc::spawn_env(&all, env);
    p.stdout_line(|l| l == "ready");
    p
}

/// Lets a [`hold`] finish; checks that it exits 0.
fn finish(mut p: Proc) {
    drop(p.stdin.take());
    assert_eq!(p.code(), 0, "{}", p.stderr());
}

#[test]
fn three_nodes_make_redlock_with_the_password_in_every_url() {
    let servers: Vec<RedisServer> = (0..3).map(|_| with_pw()).collect();
    let urls: Vec<String> = servers.iter().map(|s| plain(s.port, 0)).collect();
    let dir = Scratch::new("srv-redlock");
    let pw = pw_file(&dir);
    let mut nodes: Vec<&str> = Vec::new();
    for u in &urls {
        nodes.extend(["--node", u.as_str()]);
    }
    nodes.extend(["--password-file", &pw]);

    // The command holds the lock on every node while it runs.
    let p = hold(&nodes, &[], "job");
    for s in &servers {
        assert!(exists(&mut conn_pw(s.port, 0), "distlock:job"));
    }
    // status takes the same options.
    let mut status = nodes.clone();
    status.extend(["status", "job"]);
    let (code, out, err) = run(&status);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("held:      yes"), "{out}");
    finish(p);
    for s in &servers {
        assert!(!exists(&mut conn_pw(s.port, 0), "distlock:job"));
    }

    // A lock the library holds over the same nodes is busy for the
    // command; release takes the options too. The list may be one
    // comma-separated value.
    let auth: Vec<String> = servers
        .iter()
        .map(|s| format!("redis://:{PW_ENCODED}@127.0.0.1:{}/0", s.port))
        .collect();
    let c = Client::builder().nodes(&auth).build().unwrap();
    let g = c.lock("busy").acquire().unwrap();
    let joined = urls.join(",");
    let base = ["--node", joined.as_str(), "--password-file", pw.as_str()];
    let mut busy = base.to_vec();
    busy.extend(["-n", "busy", "-c", "true"]);
    let (code, _, err) = run(&busy);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("held elsewhere"), "{err}");
    let mut release = base.to_vec();
    release.extend(["release", "busy", "--token", g.token()]);
    let (code, _, err) = run(&release);
    assert_eq!(code, 0, "{err}");

    // The same from the environment.
    let env = [
        ("DISTLOCK_NODES", joined.as_str()),
        ("DISTLOCK_PASSWORD_FILE", pw.as_str()),
    ];
    let (code, _, err) = run_env(&["-n", "busy", "-c", "true"], &env);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn fewer_than_three_nodes_are_refused_by_the_library() {
    let a = plain(dead_port(), 0);
    let b = plain(dead_port(), 0);
    let two = format!("{a},{b}");
    let cases: &[Case] = &[
        (
            &["--node", &a, "--node", &b, "k", "-c", "true"],
            &[],
            "2 given",
        ),
        (&["--node", &a, "k", "-c", "true"], &[], "1 given"),
        (&["status", "--node", &a, "--node", &b, "k"], &[], "2 given"),
        (&["k", "-c", "true"], &[("DISTLOCK_NODES", &two)], "2 given"),
    ];
    for (args, env, given) in cases {
        let (code, _, err) = run_env(args, env);
        assert_eq!(code, 2, "{args:?}: {err}");
        let want = format!("Redlock needs at least 3 independent nodes (5 is usual); {given}");
        assert!(err.starts_with("distlock: "), "{err}");
        assert!(err.contains(&want), "{args:?}: {err}");
    }
}

#[test]
fn server_options_that_clash_are_named() {
    let u = plain(dead_port(), 0);
    let cases: &[Case] = &[
        (
            &["--url", &u, "--node", &u],
            &[],
            "--url and --node cannot be used together",
        ),
        (
            &["--node", &u, "--cluster", &u],
            &[],
            "--node and --cluster cannot be used together",
        ),
        (
            &[
                "--cluster",
                &u,
                "--sentinel",
                "127.0.0.1:1",
                "--master",
                "m",
            ],
            &[],
            "--cluster and --sentinel cannot be used together",
        ),
        (
            &["--node", &u, "--master", "m"],
            &[],
            "--node and --master cannot be used together",
        ),
        (
            &[],
            &[("DISTLOCK_URL", &u), ("DISTLOCK_CLUSTER", &u)],
            "DISTLOCK_URL and DISTLOCK_CLUSTER are both set",
        ),
        (
            &["--sentinel", "127.0.0.1:1"],
            &[],
            "--sentinel needs --master NAME",
        ),
        (&["--master", "m"], &[], "--master needs --sentinel ADDR"),
        (
            &["--master", "m"],
            &[("DISTLOCK_SENTINELS", "127.0.0.1:1")],
            "replace the variables, DISTLOCK_SENTINELS among them",
        ),
        (
            &[],
            &[("DISTLOCK_MASTER", "m")],
            "DISTLOCK_MASTER needs DISTLOCK_SENTINELS ADDR",
        ),
        (
            &["--tls-cert", "c.pem", "--url", "rediss://127.0.0.1:1"],
            &[],
            "go together",
        ),
    ];
    for (args, env, says) in cases {
        let mut all = args.to_vec();
        all.extend(["k", "-c", "true"]);
        let (code, _, err) = run_env(&all, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {err}");
        assert!(err.starts_with("distlock: "), "{err}");
        assert!(err.contains(says), "{args:?} {env:?}: {err}");
    }
    // --url goes with --sentinel: no clash, so it reaches the (dead)
    // sentinel and fails there.
    let (code, _, err) = run(&[
        "--url",
        &u,
        "--sentinel",
        &format!("127.0.0.1:{}", dead_port()),
        "--master",
        "m",
        "k",
        "-c",
        "true",
    ]);
    assert_eq!(code, 69, "{err}");
}

#[test]
fn the_command_line_replaces_the_environments_choice_of_servers() {
    let server = RedisServer::start();
    let url = server.url();
    let dead = plain(dead_port(), 0);
    let dead3 = [dead.as_str(); 3].join(",");
    // Variables naming unreachable servers, a command line naming a live one.
    for (var, value) in [
        ("DISTLOCK_URL", dead.as_str()),
        ("DISTLOCK_NODES", dead3.as_str()),
        ("DISTLOCK_CLUSTER", dead.as_str()),
    ] {
        let (code, _, err) = run_env(&["--url", &url, "k", "-c", "true"], &[(var, value)]);
        assert_eq!(code, 0, "{var}: {err}");
    }
    // The prefix has a variable too; an empty variable counts as unset.
    let p = hold(
        &[],
        &[("DISTLOCK_URL", &url), ("DISTLOCK_PREFIX", "envp")],
        "k",
    );
    assert!(exists(&mut server.conn(), "envp:k"));
    finish(p);
    let (code, _, err) = run_env(
        &["--url", &url, "k", "-c", "true"],
        &[("DISTLOCK_PREFIX", ""), ("DISTLOCK_NODES", "")],
    );
    assert_eq!(code, 0, "{err}");
}

/// A Redis Cluster of one master that owns every slot: the cheapest real
/// cluster.
fn one_node_cluster() -> RedisServer {
    let node = RedisServer::start_with(&["--cluster-enabled", "yes"]);
    redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query::<()>(&mut node.conn())
        .expect("CLUSTER ADDSLOTSRANGE");
    wait_until("cluster_state:ok", Duration::from_secs(20), || {
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut node.conn())
            .is_ok_and(|i| i.contains("cluster_state:ok"))
    });
    node
}

#[test]
fn cluster_seeds_reach_a_redis_cluster() {
    let node = one_node_cluster();
    let url = node.url();
    let p = hold(&["--cluster", &url], &[], "job");
    assert!(exists(&mut node.conn(), "distlock:job"));
    let (code, out, err) = run(&["status", "job", "--cluster", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("held:      yes"), "{out}");
    // A cluster client of the library sees the command's lock.
    let c = Client::builder().cluster([&url]).build().unwrap();
    assert!(c.inspect("job").unwrap().token.is_some());
    finish(p);
    assert!(!exists(&mut node.conn(), "distlock:job"));
    let (code, _, err) = run_env(&["-n", "job", "-c", "true"], &[("DISTLOCK_CLUSTER", &url)]);
    assert_eq!(code, 0, "{err}");
    // Custom TLS certificates are for one server or Redlock: the
    // library says so.
    let dir = Scratch::new("srv-cluster");
    let ca = write(&dir, "ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let (code, _, err) = run(&["--cluster", &url, "--tls-ca", &ca, "k", "-c", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not Cluster or Sentinel"), "{err}");
}

/// A `redis-server --sentinel` watching the master at `master_port` as
/// `m`, with [`PW`] to talk to it.
fn sentinel_of(master_port: u16) -> SentinelServer {
    SentinelServer::start(&format!(
        "sentinel monitor m 127.0.0.1 {master_port} 1\nsentinel auth-pass m \"{PW}\"\n"
    ))
}

#[test]
fn sentinel_and_master_find_the_master_with_the_urls_db_and_the_password() {
    let master = with_pw();
    let sentinel = sentinel_of(master.port);
    let addr = sentinel.addr();
    let dir = Scratch::new("srv-sentinel");
    let pw = pw_file(&dir);
    let base = [
        "--sentinel",
        addr.as_str(),
        "--master",
        "m",
        "--password-file",
        &pw,
    ];

    let p = hold(&base, &[], "job");
    assert!(exists(&mut conn_pw(master.port, 0), "distlock:job"));
    finish(p);

    // --url gives the master's db (its host and port are not used).
    let mut with_url = vec!["--url", "redis://not-used.invalid:1/3"];
    with_url.extend_from_slice(&base);
    let p = hold(&with_url, &[], "job");
    assert!(exists(&mut conn_pw(master.port, 3), "distlock:job"));
    assert!(!exists(&mut conn_pw(master.port, 0), "distlock:job"));
    finish(p);

    // From the environment.
    let env = [
        ("DISTLOCK_SENTINELS", addr.as_str()),
        ("DISTLOCK_MASTER", "m"),
        ("DISTLOCK_PASSWORD_FILE", pw.as_str()),
    ];
    let (code, _, err) = run_env(&["-n", "job", "-c", "true"], &env);
    assert_eq!(code, 0, "{err}");
    // Without the password the master refuses.
    let (code, _, err) = run(&["--sentinel", &addr, "--master", "m", "job", "-c", "true"]);
    assert_eq!(code, 69, "{err}");
}

#[test]
fn tls_ca_trusts_a_private_ca() {
    let tls = TlsServer::start();
    let dir = Scratch::new("srv-tls");
    let ca = write(&dir, "ca.pem", &tls.ca_pem);
    let url = format!("rediss://127.0.0.1:{}/0", tls.tls_port);
    let (code, _, err) = run(&["--url", &url, "--tls-ca", &ca, "k", "-c", "true"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_env(
        &["-n", "k", "-c", "true"],
        &[("DISTLOCK_URL", &url), ("DISTLOCK_TLS_CA", &ca)],
    );
    assert_eq!(code, 0, "{err}");
    // The system's roots do not know the test CA.
    let (code, _, err) = run(&["--url", &url, "k", "-c", "true"]);
    assert_eq!(code, 69, "{err}");

    // Files that cannot be used are usage errors naming the file.
    let missing = dir.join("missing.pem");
    let missing = missing.to_string_lossy();
    let not_pem = write(&dir, "notes.txt", b"hello\n");
    let plain_url = plain(tls.server.port, 0);
    let cases: &[(&[&str], String)] = &[
        (
            &["--url", &url, "--tls-ca", &missing],
            format!("cannot read the CA certificate (--tls-ca) {missing}"),
        ),
        (
            &["--url", &url, "--tls-ca", &not_pem],
            format!("{not_pem} is not in PEM form"),
        ),
        (
            &["--url", &plain_url, "--tls-ca", &ca],
            "no server URL here is rediss://".to_string(),
        ),
    ];
    for (args, says) in cases {
        let mut all = args.to_vec();
        all.extend(["k", "-c", "true"]);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says.as_str()), "{args:?}: {err}");
        assert!(!err.contains("hello"), "{err}");
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// made with openssl (EC keys: quick to make) in `dir`: the paths of
/// `(ca.pem, server.pem, server.key, client.pem, client.key)`.
fn mtls_pki(dir: &Path) -> [String; 5] {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(p("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(p("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut steps: Vec<Vec<String>> = Vec::new();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut ca = owned(&["req", "-x509"]);
    ca.extend(owned(&ec));
    ca.extend(owned(&["-days", "1", "-subj", "/CN=distlock cli test CA"]));
    ca.extend(["-keyout".into(), p("ca.key"), "-out".into(), p("ca.pem")]);
    steps.push(ca);
    for who in ["server", "client"] {
        let mut req = owned(&["req"]);
        req.extend(owned(&ec));
        req.extend(["-subj".into(), format!("/CN={who}")]);
        req.extend(["-keyout".into(), p(&format!("{who}.key"))]);
        req.extend(["-out".into(), p(&format!("{who}.csr"))]);
        steps.push(req);
        let mut sign = owned(&["x509", "-req", "-days", "1", "-CAcreateserial"]);
        sign.extend(["-in".into(), p(&format!("{who}.csr"))]);
        sign.extend(["-CA".into(), p("ca.pem"), "-CAkey".into(), p("ca.key")]);
        sign.extend(["-extfile".into(), p(&format!("{who}.ext"))]);
        sign.extend(["-out".into(), p(&format!("{who}.pem"))]);
        steps.push(sign);
    }
    for args in steps {
        let ok = Command::new("openssl")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is needed for the TLS tests")
            .success();
        assert!(ok, "openssl {args:?} failed");
    }
    [
        p("ca.pem"),
        p("server.pem"),
        p("server.key"),
        p("client.pem"),
        p("client.key"),
    ]
}

#[test]
fn tls_cert_and_key_pass_a_server_that_requires_client_certificates() {
    let dir = Scratch::new("srv-mtls");
    let [ca, server_cert, server_key, cert, key] = mtls_pki(&dir.0);
    let tls_port = dead_port().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &server_cert,
        "--tls-key-file",
        &server_key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "yes",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "k",
        "-c",
        "true",
    ]);
    assert_eq!(code, 0, "{err}");
    let env = [
        ("DISTLOCK_URL", url.as_str()),
        ("DISTLOCK_TLS_CA", ca.as_str()),
        ("DISTLOCK_TLS_CERT", cert.as_str()),
        ("DISTLOCK_TLS_KEY", key.as_str()),
    ];
    let (code, _, err) = run_env(&["-n", "k", "-c", "true"], &env);
    assert_eq!(code, 0, "{err}");
    // Without a client certificate the server refuses the handshake.
    let (code, _, err) = run(&["--url", &url, "--tls-ca", &ca, "k", "-c", "true"]);
    assert_eq!(code, 69, "{err}");
    // Only one of the pair.
    let (code, _, err) = run(&[
        "--url",
        &url,
        "--tls-ca",
        &ca,
        "--tls-key",
        &key,
        "k",
        "-c",
        "true",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--tls-cert and --tls-key go together"),
        "{err}"
    );
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(!err.contains(key_line), "{err}");
    drop(server);
}

#[test]
fn the_password_file_goes_into_the_url_and_never_into_messages() {
    let server = with_pw();
    let dir = Scratch::new("srv-pw");
    let pw = pw_file(&dir);
    let url = plain(server.port, 0);
    let user_url = format!("redis://default@127.0.0.1:{}/0", server.port);
    for u in [&url, &user_url] {
        let p = hold(&["--url", u, "--password-file", &pw], &[], "job");
        assert!(exists(&mut conn_pw(server.port, 0), "distlock:job"));
        finish(p);
    }
    // Also for status and release, and from the environment.
    let (code, out, err) = run(&["status", "job", "--url", &url, "--password-file", &pw]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("held:      no"), "{out}");
    let (code, _, err) = run_env(
        &["release", "job", "--token", "t"],
        &[("DISTLOCK_URL", &url), ("DISTLOCK_PASSWORD_FILE", &pw)],
    );
    assert_eq!(code, 1, "{err}");
    // The default URL takes the password too (nothing listens there in
    // the test, or something that refuses it): never shown.
    let (_, _, err) = run(&["--password-file", &pw, "-n", "job", "-c", "true"]);
    assert!(!leaks(&err), "{err}");

    // No password: refused by the server.
    let (code, _, err) = run(&["--url", &url, "job", "-c", "true"]);
    assert_eq!(code, 69, "{err}");

    // Failing runs with the password in play: none shows it.
    let wrong = write(&dir, "wrong", b"s3cr-wrong-pw\n");
    let dead = plain(dead_port(), 0);
    let bad_port = format!("redis://127.0.0.1:{}9999/0", server.port);
    // (A majority of dead Redlock nodes fails one way or another.)
    let cases: &[(&[&str], Option<i32>)] = &[
        (&["--url", &url, "--password-file", &wrong], Some(69)),
        (&["--url", &dead, "--password-file", &pw], Some(69)),
        (&["-v", "--url", &dead, "--password-file", &pw], Some(69)),
        (&["--url", &bad_port, "--password-file", &pw], Some(2)),
        (
            &["--node", &url, "--node", &dead, "--password-file", &pw],
            Some(2),
        ),
        (
            &[
                "--node",
                &url,
                "--node",
                &dead,
                "--node",
                &dead,
                "--password-file",
                &pw,
            ],
            None,
        ),
    ];
    for (args, want) in cases {
        let mut all = args.to_vec();
        all.extend(["job", "-c", "true"]);
        let (code, out, err) = run(&all);
        if let Some(want) = want {
            assert_eq!(code, *want, "{args:?}: {err}");
        } else {
            assert_ne!(code, 0, "{args:?}: {err}");
        }
        assert!(!leaks(&err) && !leaks(&out), "{args:?}: {err}");
    }
    // A URL with a password already, or a file that cannot be used: usage
    // errors naming the file, not what is in it.
    let with_both = format!("redis://:{PW_ENCODED}@127.0.0.1:{}/0", server.port);
    let missing = dir.join("missing").to_string_lossy().into_owned();
    let empty = write(&dir, "empty", b"\n");
    let two_lines = write(&dir, "two", b"s3cr-one\ns3cr-two\n");
    let cases: &[(&[&str], String)] = &[
        (
            &["--url", &with_both, "--password-file", &pw],
            "--url has a password already".into(),
        ),
        (
            &["--url", &url, "--password-file", &missing],
            format!("cannot read the password file {missing}"),
        ),
        (
            &["--url", &url, "--password-file", &empty],
            format!("the password file {empty} is empty"),
        ),
        (
            &["--url", &url, "--password-file", &two_lines],
            format!("the password file {two_lines} has more than one line"),
        ),
    ];
    for (args, says) in cases {
        let mut all = args.to_vec();
        all.extend(["job", "-c", "true"]);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says.as_str()), "{args:?}: {err}");
        assert!(!leaks(&err), "{args:?}: {err}");
    }
    // --help shows the variables' names, never their values.
    let (code, out, _) = run_env(&["--help"], &[("DISTLOCK_URL", &with_both)]);
    assert_eq!(code, 0);
    assert!(
        out.contains("DISTLOCK_URL") && out.contains("DISTLOCK_PASSWORD_FILE"),
        "{out}"
    );
    assert!(!leaks(&out), "{out}");
}

#[test]
fn a_memcache_url_runs_the_command_under_a_memcached_lock() {
    let server = distlock_testkit::MemcachedServer::start();
    let url = server.url();
    let dir = Scratch::new("memcached");
    let marker = dir.join("ran");
    // The command runs with the lock held and sees its fence.
    let script = format!("echo \"$DISTLOCK_FENCE\" > {}", marker.display());
    let (code, _, err) = run(&["--url", &url, "jobs:mc", "-c", &script]);
    assert_eq!(code, 0, "{err}");
    let fence: u64 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(fence > 0);
    // Held by another client: -n gives up with the conflict code, and
    // status reports the holder.
    let c = Client::open(&url).unwrap();
    let g = c.lock("jobs:mc").acquire().unwrap();
    assert!(g.fence() > fence, "fences go up on memcached too");
    let (code, _, _) = run(&["--url", &url, "-n", "jobs:mc", "--", "true"]);
    assert_eq!(code, 1);
    let (code, out, err) = run(&["--url", &url, "status", "jobs:mc", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("\"token\":\"{}\"", g.token())),
        "{out}"
    );
    g.release().unwrap();
    let (code, _, _) = run(&["--url", &url, "status", "jobs:mc"]);
    assert_eq!(code, 1, "free after the release");
}
