//! A client's counters for C: `Client::stats` as `distlock_client_stats`.

use super::args::check_out;
use super::outcome::{status_call, Failure};
use super::{client_of, distlock_client};
use crate::Stats;
use std::mem::{offset_of, size_of};
use std::time::Duration;

/// What a client's locks have done since it was opened, filled by
/// `distlock_client_stats`. Counts only grow (subtract two snapshots for a
/// rate); times are in microseconds.
///
/// Set `struct_size` to `sizeof(distlock_stats)` before the call: later
/// versions may append fields, and the library writes no byte past
/// `struct_size`, so a program built against this header keeps working
/// with a newer library, and one built against an older header gets the
/// fields it knows.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct distlock_stats {
    /// Set by the caller: `sizeof(distlock_stats)`.
    pub struct_size: usize,
    /// Acquisitions that returned a guard (from the server, or handed on by
    /// another thread of the same client).
    pub acquired: u64,
    /// Of those, the ones that had to wait: the lock was held when asked.
    pub contended: u64,
    /// Acquisitions given up at their timeout (a try, `timeout_ms == 0`,
    /// that finds the lock held is not counted: it did not wait).
    pub timed_out: u64,
    /// Acquisitions given up because their `distlock_cancel` was triggered.
    pub cancelled: u64,
    /// Locks lost while held: taken over, deleted, or their lease ran out
    /// before a renewal was confirmed (also past the maximum hold).
    pub lost: u64,
    /// Leases the renewal thread extended.
    pub renewals: u64,
    /// Renewals that failed to reach the server (retried until the lease
    /// runs out).
    pub renewal_failures: u64,
    /// Leases handed from one thread of this client to the next without a
    /// round trip (the local fast path).
    pub local_handoffs: u64,
    /// Times the release-notification connection failed and was reopened.
    pub feed_reconnects: u64,
    /// Median time from an acquire call to its guard, over all `acquired`,
    /// in microseconds (0 before the first acquisition).
    pub wait_p50_us: u64,
    /// 99th percentile of the same, in microseconds.
    pub wait_p99_us: u64,
    /// Longest acquire wait, in microseconds.
    pub wait_max_us: u64,
    /// Acquisitions granted from a lock this client lingered on after its
    /// release (`distlock_config_set_linger_ms`), without a round trip.
    /// Appended: a caller built before it passes a smaller `struct_size`.
    pub lingered: u64,
}

/// The smallest `struct_size` accepted: the end of `acquired`, the first
/// counter (`sizeof(size_t) + 8` on 64-bit targets).
const MIN_SIZE: usize = offset_of!(distlock_stats, acquired) + size_of::<u64>();

/// `d` in whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Every field after `struct_size`: where it lives, and its value in `s`.
fn fields(s: &Stats) -> [(usize, u64); 13] {
    [
        (offset_of!(distlock_stats, acquired), s.acquired),
        (offset_of!(distlock_stats, contended), s.contended),
        (offset_of!(distlock_stats, timed_out), s.timed_out),
        (offset_of!(distlock_stats, cancelled), s.cancelled),
        (offset_of!(distlock_stats, lost), s.lost),
        (offset_of!(distlock_stats, renewals), s.renewals),
        (
            offset_of!(distlock_stats, renewal_failures),
            s.renewal_failures,
        ),
        (offset_of!(distlock_stats, local_handoffs), s.local_handoffs),
        (
            offset_of!(distlock_stats, feed_reconnects),
            s.feed_reconnects,
        ),
        (offset_of!(distlock_stats, wait_p50_us), micros(s.wait_p50)),
        (offset_of!(distlock_stats, wait_p99_us), micros(s.wait_p99)),
        (offset_of!(distlock_stats, wait_max_us), micros(s.wait_max)),
        (offset_of!(distlock_stats, lingered), s.lingered),
    ]
}

/// Writes each field of `s` that lies wholly within the first `size` bytes
/// of `*out`; `struct_size` and every byte past `size` are left alone.
///
/// # Safety
///
/// `out` is non-NULL, aligned for `distlock_stats`, and its first `size`
/// bytes are writable.
unsafe fn fill(out: *mut distlock_stats, size: usize, s: &Stats) {
    for (offset, value) in fields(s) {
        if offset + size_of::<u64>() <= size {
            // SAFETY: the field ends within the `size` writable bytes, and
            // a field offset of an aligned struct is aligned for its u64.
            unsafe { out.cast::<u8>().add(offset).cast::<u64>().write(value) };
        }
    }
}

/// Fills `*out` with what the client's locks have done since it was
/// opened: acquisitions (and how many had to wait, timed out or were
/// cancelled), losses, renewals and their failures, local hand-offs,
/// release-feed reconnects, and the spread of acquire waits. No round trip
/// and no lock: cheap enough to call on every scrape of a metrics endpoint.
///
/// `out->struct_size` must be set (see `distlock_stats`); only the fields
/// that lie wholly within its first `struct_size` bytes are written, and
/// `struct_size` itself is not. Those fields are zeroed when the client is
/// NULL or unknown.
///
/// Returns `DISTLOCK_OK`, or `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown client, a NULL `out`, or an `out->struct_size` smaller than
/// `sizeof(size_t) + 8` (not even `acquired` fits; then nothing is
/// written).
///
/// # Safety
///
/// `out` is NULL, or points to memory aligned for a `distlock_stats` whose
/// first `out->struct_size` bytes (and at least the `struct_size` field)
/// are readable and writable.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_stats(
    client: *mut distlock_client,
    out: *mut distlock_stats,
) -> i32 {
    status_call("distlock_client_stats", || {
        check_out(out, "out")?;
        // SAFETY: `out` is non-NULL, and the caller guarantees it points to
        // a distlock_stats, whose first field is `struct_size`.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        if size < MIN_SIZE {
            return Err(Failure::invalid(format!(
                "out->struct_size is {size}; set it to sizeof(distlock_stats), {}",
                size_of::<distlock_stats>()
            )));
        }
        // SAFETY: the caller guarantees `size` writable bytes at `out`.
        unsafe { fill(out, size, &Stats::default()) };
        let stats = client_of(client)?.client.stats();
        // SAFETY: as above.
        unsafe { fill(out, size, &stats) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::last;
    use super::super::{
        distlock_acquire, distlock_client_close, distlock_client_open, distlock_guard_free,
        distlock_guard_release, distlock_status,
    };
    use super::*;
    use std::ffi::CString;

    const OK: i32 = distlock_status::DISTLOCK_OK as i32;
    const INVALID: i32 = distlock_status::DISTLOCK_INVALID_ARGUMENT as i32;
    /// What the caller's buffer holds before a call, to see what was written.
    const UNTOUCHED: u8 = 0xA5;
    const WORDS: usize = size_of::<distlock_stats>() / 8 + 2;

    /// A buffer two words longer than `distlock_stats`, every byte
    /// `UNTOUCHED`, with `struct_size` set to `size`.
    fn buffer(size: usize) -> [u64; WORDS] {
        let mut buf = [u64::from_ne_bytes([UNTOUCHED; 8]); WORDS];
        buf[0] = size as u64;
        buf
    }

    fn bytes(buf: &[u64; WORDS]) -> Vec<u8> {
        buf.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    /// Calls `distlock_client_stats` on a buffer whose `struct_size` is
    /// `size`.
    fn call(client: *mut distlock_client, size: usize) -> (i32, [u64; WORDS]) {
        let mut buf = buffer(size);
        // SAFETY: the buffer is aligned, and longer than any `size` used.
        let got = unsafe { distlock_client_stats(client, buf.as_mut_ptr().cast()) };
        (got, buf)
    }

    #[test]
    fn a_short_struct_size_gets_only_the_fields_it_covers() {
        assert_eq!(size_of::<usize>(), 8, "the tests assume a 64-bit target");
        assert_eq!(MIN_SIZE, size_of::<usize>() + 8);
        assert_eq!(size_of::<distlock_stats>(), 8 + 13 * 8);
        let s = Stats {
            acquired: 11,
            contended: 12,
            timed_out: 13,
            cancelled: 14,
            lost: 15,
            renewals: 16,
            renewal_failures: 17,
            local_handoffs: 18,
            feed_reconnects: 19,
            wait_p50: Duration::from_micros(20),
            wait_p99: Duration::from_micros(21),
            wait_max: Duration::from_nanos(22_999),
            lingered: 23,
        };
        for size in 0..=WORDS * 8 {
            let mut buf = buffer(size);
            // SAFETY: the buffer is aligned and `WORDS * 8` bytes long.
            unsafe { fill(buf.as_mut_ptr().cast(), size, &s) };
            let b = bytes(&buf);
            // Word i (from 1) holds 10 + i if it fits in `size`, and only
            // for the thirteen fields; nothing else changes.
            assert_eq!(buf[0], size as u64);
            for (i, w) in buf.iter().enumerate().skip(1) {
                let fits = (i + 1) * 8 <= size && i <= 13;
                if fits {
                    assert_eq!(*w, 10 + i as u64, "size {size}, word {i}");
                } else {
                    assert!(
                        b[i * 8..(i + 1) * 8].iter().all(|&x| x == UNTOUCHED),
                        "size {size}: word {i} written"
                    );
                }
            }
        }
    }

    #[test]
    fn null_unknown_and_short_arguments_are_refused() {
        std::thread::spawn(|| {
            // SAFETY: NULL `out` is allowed.
            let got = unsafe { distlock_client_stats(std::ptr::null_mut(), std::ptr::null_mut()) };
            assert_eq!(got, INVALID);
            assert!(last().contains("out is NULL"), "{}", last());

            // A NULL or unknown client zeroes what `struct_size` covers.
            let full = size_of::<distlock_stats>();
            let (got, buf) = call(std::ptr::null_mut(), full);
            assert_eq!(got, INVALID);
            assert!(last().contains("client handle is NULL"), "{}", last());
            assert_eq!(buf[0], full as u64);
            assert!(buf[1..14].iter().all(|&w| w == 0), "{buf:?}");
            assert!(bytes(&buf)[full..].iter().all(|&x| x == UNTOUCHED));

            let mut not_a_client = 0u64;
            let bogus = std::ptr::addr_of_mut!(not_a_client).cast::<distlock_client>();
            let (got, buf) = call(bogus, MIN_SIZE + 4);
            assert_eq!(got, INVALID);
            assert!(last().contains("unknown or already freed"), "{}", last());
            assert_eq!(buf[1], 0);
            assert!(bytes(&buf)[MIN_SIZE..].iter().all(|&x| x == UNTOUCHED));
            assert_eq!(not_a_client, 0);

            // Too short for even `acquired`: nothing is written.
            for size in [0, 1, MIN_SIZE - 1] {
                let (got, buf) = call(bogus, size);
                assert_eq!(got, INVALID);
                let msg = last();
                assert!(
                    msg.contains(&format!("struct_size is {size}")) && msg.contains("112"),
                    "{msg}"
                );
                assert!(bytes(&buf)[8..].iter().all(|&x| x == UNTOUCHED));
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_live_client_reports_its_acquisitions_within_struct_size() {
        let server = distlock_testkit::RedisServer::start();
        let url = CString::new(server.url()).unwrap();
        let mut client = std::ptr::null_mut();
        // SAFETY: a NUL-terminated URL and a valid place for the handle.
        assert_eq!(
            unsafe { distlock_client_open(url.as_ptr(), std::ptr::null(), &mut client) },
            OK
        );
        let full = size_of::<distlock_stats>();
        let (got, before) = call(client, full);
        assert_eq!(got, OK);
        assert!(before[1..13].iter().all(|&w| w == 0), "{before:?}");
        for _ in 0..2 {
            let mut guard = std::ptr::null_mut();
            // SAFETY: a NUL-terminated key and a valid place for the handle.
            let got = unsafe {
                distlock_acquire(
                    client,
                    c"k".as_ptr(),
                    0,
                    0,
                    std::ptr::null_mut(),
                    &mut guard,
                )
            };
            assert_eq!(got, OK);
            assert_eq!(distlock_guard_release(guard), OK);
            distlock_guard_free(guard);
        }
        let (got, buf) = call(client, full);
        assert_eq!(got, OK);
        let read = |i: usize| buf[i];
        assert_eq!((read(1), read(2), read(3), read(4)), (2, 0, 0, 0));
        let (p50, p99, max) = (read(10), read(11), read(12));
        assert!(p50 <= p99 && p99 <= max && max > 0, "{p50} {p99} {max}");
        assert!(bytes(&buf)[full..].iter().all(|&x| x == UNTOUCHED));
        // An older caller's struct, ending after `contended`.
        let (got, short) = call(client, MIN_SIZE + 8);
        assert_eq!(got, OK);
        assert_eq!((short[1], short[2]), (2, 0));
        assert!(bytes(&short)[MIN_SIZE + 8..]
            .iter()
            .all(|&x| x == UNTOUCHED));
        distlock_client_close(client);
        // A closed client is unknown.
        assert_eq!(call(client, full).0, INVALID);
    }
}
