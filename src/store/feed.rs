//! The release feed: one pub/sub connection that hears every release of the
//! locks its handler asks about, and the poke that wakes it.

use super::errors::Secret;
use super::keys::{lock_key, lock_name};
use super::FeedHandler;
use crate::error::Result;
use redis::{ConnectionLike, RedisError};
use std::time::Duration;

/// The start of a release message meant for one waiter (`to:<token>`);
/// every other message wakes every waiter of the name.
const TO: &str = "to:";

/// How long the release feed reads before checking its connection.
const FEED_IDLE: Duration = Duration::from_secs(5);

/// Runs a release feed on `conn` (see [`Store::run_feed`](super::Store::run_feed)): subscribes to
/// `control` and to the lock keys (`<prefix>:<name>`) the handler asks for,
/// and reports releases until told to stop or the connection fails.
pub(crate) fn feed_on(
    conn: &mut redis::Connection,
    prefix: &str,
    control: &str,
    handler: &mut dyn FeedHandler,
    secret: &Secret,
) -> Result<()> {
    let map = |e: RedisError| secret.to_error(&e);
    let key = |name: &str| lock_key(prefix, name);
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
            feed.subscribe(key(name)).map_err(map)?;
            handler.subscribed(name);
        }
        for name in &changes.unsubscribe {
            feed.unsubscribe(key(name)).map_err(map)?;
        }
        match feed.get_message() {
            Ok(msg) => {
                let channel = msg.get_channel_name();
                if let Some(name) = lock_name(prefix, channel) {
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

/// Wakes the release feed listening on `control`.
pub(crate) fn publish_poke(
    c: &mut dyn ConnectionLike,
    control: &str,
) -> std::result::Result<(), RedisError> {
    redis::cmd("PUBLISH").arg(control).arg("poke").query(c)
}
