//! The release feed: one pub/sub connection that hears every release of the
//! locks its handler asks about, and the poke that wakes it.

use super::errors::Secret;
use super::keys::{lock_key, lock_name, want_channel};
use super::{FeedHandler, WANTS};
use crate::error::Result;
use redis::{ConnectionLike, RedisError};
use std::collections::HashMap;
use std::time::Duration;

/// The start of a release message meant for one waiter (`to:<token>`);
/// every other message wakes every waiter of the name.
const TO: &str = "to:";

/// How long the release feed reads before checking its connection.
const FEED_IDLE: Duration = Duration::from_secs(5);

/// Runs a release feed on `conn` (see [`Store::run_feed`](super::Store::run_feed)): subscribes to
/// `control` and to the lock keys (`<prefix>:<name>`) the handler asks for
/// (or, for a name that starts with [`WANTS`], to the lock's want channel),
/// and reports releases (and announcements) until told to stop or the
/// connection fails.
pub(crate) fn feed_on(
    conn: &mut redis::Connection,
    prefix: &str,
    control: &str,
    handler: &mut dyn FeedHandler,
    secret: &Secret,
) -> Result<()> {
    let map = |e: RedisError| secret.to_error(&e);
    let channel_of = |name: &str| match name.strip_prefix(WANTS) {
        Some(lock) => want_channel(&lock_key(prefix, lock)),
        None => lock_key(prefix, name),
    };
    // The handler's name of each want channel subscribed to.
    let mut wants: HashMap<String, String> = HashMap::new();
    let mut feed = conn.as_pubsub();
    // Idle reads end every few seconds to check the connection.
    feed.set_read_timeout(Some(FEED_IDLE)).map_err(map)?;
    feed.subscribe(control).map_err(map)?;
    loop {
        let changes = handler.changes();
        if changes.stop {
            return Ok(());
        }
        for name in &changes.subscribe {
            let channel = channel_of(name);
            feed.subscribe(&channel).map_err(map)?;
            if name.starts_with(WANTS) {
                wants.insert(channel, name.clone());
            }
            handler.subscribed(name);
        }
        for name in &changes.unsubscribe {
            let channel = channel_of(name);
            feed.unsubscribe(&channel).map_err(map)?;
            wants.remove(&channel);
        }
        match feed.get_message() {
            Ok(msg) => {
                let channel = msg.get_channel_name();
                if let Some(name) = wants.get(channel) {
                    // Someone wants the lock: that is all the message says.
                    handler.released(name);
                } else if let Some(name) = lock_name(prefix, channel) {
                    let payload: Option<String> = msg.get_payload().ok();
                    match payload.as_deref().and_then(|p| p.strip_prefix(TO)) {
                        Some(token) => handler.released_to(name, token),
                        None => handler.released(name),
                    }
                }
            }
            Err(e) if e.is_timeout() => {
                feed.ping::<()>().map_err(map)?;
            }
            Err(e) => return Err(map(e)),
        }
    }
}

/// The command that wakes the release feed listening on `control`.
pub(crate) fn poke_cmd(control: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(control).arg("poke");
    cmd
}

/// Wakes the release feed listening on `control`.
pub(crate) fn publish_poke(
    c: &mut dyn ConnectionLike,
    control: &str,
) -> std::result::Result<(), RedisError> {
    poke_cmd(control).query(c)
}
