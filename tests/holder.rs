//! Who holds a lock: the holder description written with each acquisition,
//! on every backend.

use distlock_testkit as support;

use distlock::{Client, Holder};
use support::{backends, AnyServer, RedisServer};

fn labelled(server: &AnyServer, label: &str) -> Client {
    Client::builder()
        .url(&server.url())
        .holder_label(label)
        .build()
        .expect("client")
}

backends!(
    inspect_names_the_holder_host_pid_and_label,
    |server: &AnyServer| {
        let c = labelled(server, "billing\nnightly");
        let g = c.lock("job").acquire().unwrap();
        let info = Client::open(&server.url()).unwrap().inspect("job").unwrap();
        assert_eq!(info.token.as_deref(), Some(g.token()), "the token alone");
        let holder = info.holder.expect("a holder description");
        assert_eq!(holder.pid, std::process::id());
        assert!(!holder.host.is_empty());
        assert_eq!(holder.label.as_deref(), Some("billing nightly"));
        assert!(holder
            .to_string()
            .ends_with(&format!(" pid {} (billing nightly)", std::process::id())));

        // The description survives renewal and fencing rewrites; the lock
        // still works like any other.
        let other = Client::open(&server.url()).unwrap();
        assert!(other.lock("job").try_acquire().unwrap().is_none());
        g.extend().unwrap();
        assert_eq!(c.inspect("job").unwrap().holder.unwrap().pid, holder.pid);

        // An operator frees it with the token alone.
        assert!(other.release_token("job", g.token()).unwrap());
        assert_eq!(other.inspect("job").unwrap().holder, None);
        assert_eq!(g.extend(), Err(distlock::Error::Lost));
    }
);

backends!(a_long_label_is_cut_not_refused, |server: &AnyServer| {
    let long = "x".repeat(1000);
    let c = labelled(server, &long);
    let _g = c.lock("long").acquire().unwrap();
    let label = c.inspect("long").unwrap().holder.unwrap().label.unwrap();
    assert_eq!(label, "x".repeat(distlock::MAX_LABEL_LEN));
    let none = Client::open(&server.url()).unwrap();
    let _h = none.lock("plain").acquire().unwrap();
    assert_eq!(none.inspect("plain").unwrap().holder.unwrap().label, None);
});

#[test]
fn a_token_that_is_a_prefix_of_the_holders_owns_nothing() {
    let server = RedisServer::start();
    let c = Client::open(&server.url()).unwrap();
    let g = c.lock("p").acquire().unwrap();
    let token = g.token().to_string();
    for wrong in [&token[..token.len() - 1], &token[..8]] {
        assert!(!c.release_token("p", wrong).unwrap(), "{wrong:?}");
    }
    // A value written by an older client, the bare token, is still owned.
    let mut raw = server.conn();
    let _: () = redis::cmd("SET")
        .arg("distlock:p")
        .arg(&token)
        .query(&mut raw)
        .unwrap();
    let info = c.inspect("p").unwrap();
    assert_eq!(
        (info.token.as_deref(), info.holder),
        (Some(&token[..]), None)
    );
    g.extend().unwrap();
    g.release().unwrap();
    assert!(c.inspect("p").unwrap().token.is_none());
}

#[test]
fn held_lists_each_locks_holder() {
    let server = RedisServer::start();
    let c = Client::builder()
        .url(&server.url())
        .holder_label("lister")
        .build()
        .unwrap();
    let _a = c.lock("a").acquire().unwrap();
    let _b = c.lock("b").acquire().unwrap();
    let held = c.held("*", 10).unwrap();
    assert_eq!(held.locks.len(), 2);
    for lock in &held.locks {
        let h: &Holder = lock.info.holder.as_ref().unwrap();
        assert_eq!(
            (h.pid, h.label.as_deref()),
            (std::process::id(), Some("lister"))
        );
    }
}
