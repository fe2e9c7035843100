//! What only the memcached backend does, against a real memcached on
//! loopback: its item layout and losses (deleted item, empty restart, a
//! holder paused beyond its lease), each signalled through `lost()`.
//! Exclusion across processes and a stopped holder process are in
//! `tests/processes.rs`, for every backend.

use distlock_testkit as support;

use distlock::{Client, Error};
use std::time::{Duration, Instant};
use support::MemcachedServer;

fn client(server: &MemcachedServer) -> Client {
    Client::open(&server.url()).expect("client")
}

#[test]
fn the_lock_item_holds_token_and_fence_with_the_ttl_in_whole_seconds_plus_one() {
    let server = MemcachedServer::start();
    let c = client(&server);
    let g = c.lock("orders:42").acquire().unwrap();
    let got = server.raw("mg distlock:orders:42 v t\r\n", "\r\n");
    let header = got.lines().next().unwrap();
    assert!(
        header.ends_with(" t31") || header.ends_with(" t30"),
        "30 s lease sent as 31 s: {got:?}"
    );
    assert!(
        got.contains(&format!("{} {}", g.token(), g.fence())),
        "{got:?}"
    );
    let info = c.inspect("orders:42").unwrap();
    assert_eq!(info.key, "distlock:orders:42");
    assert_eq!(info.token.as_deref(), Some(g.token()));
    assert_eq!(
        info.fence,
        Some(g.fence() + 63),
        "the counter holds the block's end"
    );
    g.release().unwrap();
    assert_eq!(server.raw("mg distlock:orders:42 v\r\n", "\r\n"), "EN\r\n");
    assert_eq!(c.inspect("orders:42").unwrap().token, None);
}

#[test]
fn odd_and_long_names_are_hashed_and_still_exclude() {
    let server = MemcachedServer::start();
    let (a, b) = (client(&server), client(&server));
    for name in ["with space", "nul\0byte", "🔒", "x#y", &"n".repeat(1024)] {
        let g = a.lock(name).acquire().unwrap();
        assert!(b.lock(name).try_acquire().unwrap().is_none(), "{name:?}");
        let info = b.inspect(name).unwrap();
        assert!(
            info.key.starts_with('#') && info.key.len() == 65,
            "{info:?}"
        );
        assert_eq!(info.token.as_deref(), Some(g.token()));
        g.release().unwrap();
        assert!(b.lock(name).try_acquire().unwrap().is_some(), "{name:?}");
    }
}

#[test]
fn an_evicting_server_is_refused_with_the_fix() {
    let server = MemcachedServer::start_evicting();
    match Client::open(&server.url()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("-M"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn bad_urls_and_settings_are_refused_and_dead_servers_time_out() {
    for url in [
        "memcache://u:s3cret@127.0.0.1:1",
        "memcache://127.0.0.1:1/0",
        "memcache://h:x",
    ] {
        match Client::open(url) {
            Err(Error::InvalidArgument(m)) => assert!(!m.contains("s3cret"), "{m}"),
            other => panic!("{url}: expected InvalidArgument, got {other:?}"),
        }
    }
    let start = Instant::now();
    let url = format!("memcache://127.0.0.1:{}", support::dead_port());
    match Client::builder()
        .url(&url)
        .connect_timeout(Duration::from_millis(300))
        .build()
    {
        Err(Error::Connection(m)) => assert!(m.contains(&url), "{m}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    let server = MemcachedServer::start();
    let replicas = Client::builder()
        .url(&server.url())
        .replicas(1, Duration::from_millis(10))
        .build();
    assert!(
        matches!(replicas, Err(Error::InvalidArgument(_))),
        "{replicas:?}"
    );
}

#[test]
fn a_deleted_item_is_signalled_as_lost() {
    let server = MemcachedServer::start();
    let c = client(&server);
    let g = c
        .lock("deleted")
        .ttl(Duration::from_secs(1))
        .acquire()
        .unwrap();
    let deleted = Instant::now();
    server.raw("md distlock:deleted\r\nmn\r\n", "MN\r\n");
    let after = support::lost_after(&g.lost(), Duration::from_secs(2)).expect("loss noticed");
    println!("deleted item noticed after {after:?} (renewal every ~333 ms)");
    assert!(deleted.elapsed() < Duration::from_millis(1500));
    assert_eq!(g.release().unwrap_err(), Error::Lost);
}

#[test]
fn an_empty_restart_is_signalled_as_lost_and_fences_never_go_back() {
    let mut server = MemcachedServer::start();
    let c = client(&server);
    let mut last = 0;
    for _ in 0..5 {
        last = c.lock("restarted").acquire().unwrap().fence();
    }
    let g = c
        .lock("restarted")
        .ttl(Duration::from_secs(1))
        .acquire()
        .unwrap();
    assert!(g.fence() > last);
    last = g.fence();
    server.restart();
    let after = support::lost_after(&g.lost(), Duration::from_secs(3)).expect("loss noticed");
    println!("empty restart noticed after {after:?}");
    let g = c
        .lock("restarted")
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(
        g.fence() > last,
        "fence went back to {} after {last}",
        g.fence()
    );
}

#[test]
fn a_holder_paused_past_its_lease_learns_it_lost_and_spares_the_next_owner() {
    let server = MemcachedServer::start();
    let (a, b) = (client(&server), client(&server));
    let ttl = Duration::from_millis(500);
    let first = a
        .lock("paused")
        .ttl(ttl)
        .auto_renew(false)
        .acquire()
        .unwrap();
    let after = support::lost_after(&first.lost(), Duration::from_secs(2)).expect("lease ran out");
    println!("paused holder told after {after:?} (lease {ttl:?})");
    assert!(after <= ttl + Duration::from_millis(100), "{after:?}");
    // The item outlives the lease (whole seconds, plus one): the next owner
    // gets it within that slack, never before the lease's end.
    let start = Instant::now();
    let second = b
        .lock("paused")
        .acquire_timeout(Duration::from_secs(5))
        .unwrap();
    println!("next owner in after another {:?}", start.elapsed());
    assert!(second.fence() > first.fence());
    assert_eq!(first.extend().unwrap_err(), Error::Lost);
    assert_eq!(first.release().unwrap_err(), Error::Lost);
    assert_eq!(
        b.inspect("paused").unwrap().token.as_deref(),
        Some(second.token())
    );
}

/// A client that reaches memcached through `proxy`, with short timeouts.
fn proxied(proxy: &support::TcpProxy) -> Client {
    Client::builder()
        .url(&format!("memcache://127.0.0.1:{}", proxy.port))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[test]
fn a_lost_reply_to_the_add_or_the_fence_write_is_retried_and_wins_with_one_block() {
    let server = MemcachedServer::start();
    // The add's reply, then the reply to the write of the fence beside the
    // token (the first request with a C<cas> flag).
    for (name, needle) in [("lost-add", &b" ME c"[..]), ("lost-fence", b" C")] {
        let proxy = support::TcpProxy::start(server.port);
        let c = proxied(&proxy);
        proxy.set_mode(support::Mode::DropReplyTo {
            needle: needle.to_vec(),
            hook: Box::new(|| {}),
        });
        let g = c.lock(name).try_acquire().unwrap().expect("ours");
        assert!(proxy.is_passing(), "{name}: the reply was really dropped");
        let info = c.inspect(name).unwrap();
        assert_eq!(info.token.as_deref(), Some(g.token()), "{name}");
        // The retry found its own item: one block of fences was reserved.
        assert_eq!(info.fence, Some(g.fence() + 63), "{name}");
        g.release().unwrap();
    }
}

#[test]
fn a_lost_reply_then_taken_by_another_is_not_acquired_and_theirs_is_untouched() {
    let server = MemcachedServer::start();
    let proxy = support::TcpProxy::start(server.port);
    let c = proxied(&proxy);
    let port = server.port;
    proxy.set_mode(support::Mode::DropReplyTo {
        needle: b"distlock:lost-theirs ".to_vec(),
        hook: Box::new(move || {
            // Before the retry: our item vanished and someone else took it.
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(
                b"md distlock:lost-theirs\r\nms distlock:lost-theirs 12 T60\r\nsomeone-else\r\n",
            )
            .unwrap();
            let mut got = Vec::new();
            let mut buf = [0; 64];
            while !got.ends_with(b"HD\r\nHD\r\n") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
        }),
    });
    assert!(c.lock("lost-theirs").try_acquire().unwrap().is_none());
    assert!(proxy.is_passing());
    let info = c.inspect("lost-theirs").unwrap();
    assert_eq!(
        info.token.as_deref(),
        Some("someone-else"),
        "theirs was not touched"
    );
}

/// memcached's count of `key`'s reads, from `stats`.
fn stat(server: &MemcachedServer, name: &str) -> u64 {
    let stats = server.raw("stats\r\n", "END\r\n");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

/// The CAS of the lock item `key`, read by hand.
fn cas_of(server: &MemcachedServer, key: &str) -> String {
    let got = server.raw(&format!("mg {key} c\r\n"), "\r\n");
    got.trim().strip_prefix("HD ").unwrap_or(&got).to_string()
}

#[test]
fn renewal_is_one_compare_and_set_never_with_a_cas_from_before_a_restart() {
    let mut server = MemcachedServer::start();
    let a = client(&server);
    let lock = a.lock("x").ttl(Duration::from_secs(30)).auto_renew(false);
    let g = lock.acquire().unwrap();
    let kept = cas_of(&server, "distlock:x");

    // Restart empty and let another client take the same name with the
    // same steps: its item gets the CAS the old item had, since the
    // counter restarted. An extend with the old CAS would overwrite it.
    server.restart();
    let b = client(&server);
    let lock_b = b.lock("x").ttl(Duration::from_secs(30)).auto_renew(false);
    let gb = lock_b.acquire().unwrap();
    assert_eq!(cas_of(&server, "distlock:x"), kept, "the same CAS again");
    let mut answers = Vec::new();
    for _ in 0..3 {
        match g.extend() {
            // The pooled connection died with the server.
            Err(Error::Connection(_)) => continue,
            other => {
                answers.push(other);
                break;
            }
        }
    }
    assert_eq!(answers, [Err(Error::Lost)], "the old holder extended");
    assert_eq!(
        b.inspect("x").unwrap().token.as_deref(),
        Some(gb.token()),
        "the new holder's item was touched"
    );

    // An extend of a lock this client wrote last reads nothing first.
    let gets = stat(&server, "cmd_get");
    gb.extend().unwrap();
    gb.extend().unwrap();
    assert_eq!(stat(&server, "cmd_get"), gets, "extend sent an mg");
    assert_ne!(cas_of(&server, "distlock:x"), kept, "rewritten");
    // Rewritten behind its back with the same data (a new CAS): the next
    // extend reads before it decides, and keeps the lock.
    let got = server.raw("mg distlock:x v\r\nmn\r\n", "MN\r\n");
    let data = got.split("\r\n").nth(1).unwrap().to_string();
    assert!(data.starts_with(gb.token()), "{got:?}");
    let set = format!("ms distlock:x {} T30\r\n{data}\r\n", data.len());
    assert_eq!(server.raw(&set, "\r\n"), "HD\r\n");
    let gets = stat(&server, "cmd_get");
    gb.extend().unwrap();
    assert_eq!(
        stat(&server, "cmd_get"),
        gets + 1,
        "one mg after the CAS missed"
    );
    assert!(gb.is_held());
    gb.release().unwrap();
}

/// memcached reads (`cmd_get`) while another thread of a client polling
/// every `interval` waits `window` for a held lock.
fn reads_while_waiting(server: &MemcachedServer, interval: Duration, window: Duration) -> u64 {
    let c = Client::builder()
        .url(&server.url())
        .poll_interval(interval)
        .max_retry_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let holder = client(server);
    let name = format!("polled-{}", interval.as_millis());
    let g = holder.lock(name.as_str()).acquire().unwrap();
    let before = stat(server, "cmd_get");
    assert!(matches!(
        c.lock(name.as_str()).acquire_timeout(window),
        Err(Error::Timeout)
    ));
    let reads = stat(server, "cmd_get") - before;
    g.release().unwrap();
    reads
}

#[test]
fn the_poll_interval_sets_how_often_the_feed_reads() {
    let server = MemcachedServer::start();
    let window = Duration::from_millis(1000);
    let slow = reads_while_waiting(&server, Duration::from_millis(250), window);
    let fast = reads_while_waiting(&server, Duration::from_millis(5), window);
    println!("reads in {window:?} of waiting: {slow} polling every 250 ms, {fast} every 5 ms");
    assert!(slow <= 12, "{slow}");
    assert!(fast > 3 * slow, "{fast} vs {slow}");
    let e = Client::builder()
        .url(&server.url())
        .poll_interval(Duration::ZERO)
        .check()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: poll_interval must be between 1 ms and 1 hour, got 0 ms"
    );
    let e = Client::builder()
        .url(&server.url())
        .replicas(1, Duration::from_millis(100))
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("memcached has no replicas"), "{e}");
}
