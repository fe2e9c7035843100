//! Seed 004 end to end: a fleet of HTTP processes in front of a slow
//! database, protected from a cache stampede by distlock's loader.
//!
//! ```text
//! cargo run --release --example fleet -- [--url URL] [--servers N] [--requests M] [--keys K]
//! ```
//!
//! Starts a throwaway redis-server (unless `--url`), N server processes
//! (tiny_http, no async runtime) answering `GET /fetch?key=...`, then fires M
//! concurrent requests for K keys spread over all servers. The "database" is
//! a function that takes 300 ms and counts its calls in Redis. The report
//! shows the database calls per key (target: exactly one per key across all
//! processes) and the request latencies. A request without `key` gets 400.

use distlock::Client;
use redis::Commands;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The slow database: counts the call, takes 300 ms.
fn database(raw: &mut redis::Connection, run: &str, key: &str) -> Result<Vec<u8>, String> {
    let _: u64 = raw
        .incr(format!("fleet:{run}:db-calls:{key}"), 1)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(format!("row for {key}").into_bytes())
}

fn key_param(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

/// One HTTP server process; prints `ready <port>` once listening.
fn serve(url: &str, run: &str) -> Result<(), String> {
    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or("no port")?;
    let client = Client::open(url).map_err(|e| e.to_string())?;
    let loader = client.loader();
    println!("ready {port}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    std::thread::scope(|s| {
        for _ in 0..32 {
            let (server, loader) = (&server, loader.clone());
            s.spawn(move || {
                let mut raw = match redis::Client::open(url).and_then(|c| c.get_connection()) {
                    Ok(c) => c,
                    Err(_) => return,
                };
                while let Ok(req) = server.recv() {
                    let target = req.url().to_string();
                    let response = if !target.starts_with("/fetch") {
                        tiny_http::Response::from_string("not found").with_status_code(404)
                    } else if let Some(key) = key_param(&target) {
                        match loader.get_or_load(key, Duration::from_secs(60), || {
                            database(&mut raw, run, key)
                        }) {
                            Ok(v) => tiny_http::Response::from_data(v),
                            Err(e) => tiny_http::Response::from_string(e.to_string())
                                .with_status_code(503),
                        }
                    } else {
                        tiny_http::Response::from_string("missing key parameter")
                            .with_status_code(400)
                    };
                    let _ = req.respond(response);
                }
            });
        }
    });
    Ok(())
}

/// `GET path` on 127.0.0.1:`port`; the status code and the body.
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("bad response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    arg(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name}: {v:?} is not a number"))
    })
}

fn run(args: &[String]) -> Result<bool, String> {
    let servers = number(args, "--servers", 3)?.max(1);
    let requests = number(args, "--requests", 300)?.max(1);
    let keys = number(args, "--keys", 3)?.max(1);
    let redis = arg(args, "--url")
        .is_none()
        .then(distlock_testkit::server::RedisServer::start);
    let url = arg(args, "--url").unwrap_or_else(|| redis.as_ref().expect("started").url());
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children: Vec<Child> = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..servers {
        let mut child = Command::new(&exe)
            .args(["--serve", &url, "--run", &run_id])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        children.push(child);
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("a server did not start: {line:?}"))?;
        ports.push(port);
    }
    println!(
        "{servers} server processes, {requests} concurrent requests for {keys} keys (run {run_id})"
    );
    let start = Instant::now();
    let results: Vec<Result<(u16, Duration), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..requests)
            .map(|i| {
                let port = ports[i % ports.len()];
                let path = format!("/fetch?key={run_id}-k{}", i % keys);
                s.spawn(move || {
                    let t = Instant::now();
                    get(port, &path).map(|(status, _)| (status, t.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err("request thread panicked".into())))
            .collect()
    });
    let wall = start.elapsed();
    let bad_request = get(ports[0], "/fetch").map(|(status, _)| status);
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let mut lat: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(status, _)| *status == 200)
        .map(|(_, d)| *d)
        .collect();
    lat.sort_unstable();
    let ok = lat.len();
    let mut raw = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    let mut exact = true;
    for k in 0..keys {
        let calls: Option<u64> = raw
            .get(format!("fleet:{run_id}:db-calls:{run_id}-k{k}"))
            .map_err(|e| e.to_string())?;
        let calls = calls.unwrap_or(0);
        exact &= calls == 1;
        println!("key k{k}: {calls} database call(s)");
    }
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p) as usize)
            .copied()
    };
    println!(
        "requests answered 200: {ok} of {requests} in {:.0} ms",
        wall.as_secs_f64() * 1e3
    );
    if let (Some(p50), Some(p99), Some(max)) = (pct(0.5), pct(0.99), lat.last()) {
        println!("latency: p50 {p50:.0?} p99 {p99:.0?} max {max:.0?} (the database takes 300 ms)");
    }
    println!(
        "request without key: HTTP {}",
        bad_request.clone().unwrap_or(0)
    );
    println!(
        "one database call per key across all processes: {}",
        if exact { "yes" } else { "NO" }
    );
    Ok(exact && ok == requests && bad_request == Ok(400))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match (arg(&args, "--serve"), arg(&args, "--run")) {
        (Some(url), Some(run_id)) => serve(&url, &run_id).map(|()| true),
        _ => run(&args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fleet: {e}");
            ExitCode::from(2)
        }
    }
}
