//! Looking at a lock and freeing it by its token, for operators and tools:
//! `Client::inspect` and `Client::release_token` for C.

use super::args::{check_out, millis, read_str};
use super::outcome::{status_call, Failure};
use super::{client_of, distlock_client, put, DISTLOCK_MAX_KEY_LEN};
use crate::store::holder::{MAX_HOST_LEN, MAX_LABEL_LEN};
use crate::Holder;
use std::ffi::c_char;
use std::mem::{offset_of, size_of};

/// Longest token `distlock_client_release_token` accepts, in bytes (a
/// guard's token is `DISTLOCK_TOKEN_LEN`).
pub const DISTLOCK_MAX_TOKEN_LEN: usize = 4096;

/// Longest holder host name in a `distlock_lock_info`, in bytes (without
/// the NUL): longer ones are cut.
pub const DISTLOCK_MAX_HOLDER_HOST_LEN: usize = 64;
/// Longest holder label in a `distlock_lock_info`, in bytes (without the
/// NUL): longer ones are cut.
pub const DISTLOCK_MAX_HOLDER_LABEL_LEN: usize = 64;

const _: () = assert!(DISTLOCK_MAX_HOLDER_HOST_LEN == MAX_HOST_LEN);
const _: () = assert!(DISTLOCK_MAX_HOLDER_LABEL_LEN == MAX_LABEL_LEN);

/// What the server holds for one lock right now, filled by
/// `distlock_client_inspect`.
///
/// Set `struct_size` to `sizeof(distlock_lock_info)` before the call: later
/// versions may append fields, and the library writes no byte past
/// `struct_size`, so a program built against this header keeps working
/// with a newer library. A program built against the first version of
/// this struct (which ended at `fence`) still works too: it gets the
/// fields up to `fence`, and none of the holder's; one built against the
/// second (which ended at `holder_label`) gets every field but `shares`
/// and `writers_waiting`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct distlock_lock_info {
    /// Set by the caller: `sizeof(distlock_lock_info)`.
    pub struct_size: usize,
    /// Whether someone holds the lock.
    pub held: bool,
    /// Whether `remaining_ms` is known: false when the lock is free, and
    /// when its key has no expiry (set by something other than distlock).
    pub has_remaining: bool,
    /// Whether `fence` is set: false if no fencing token was ever handed
    /// out for this key.
    pub has_fence: bool,
    /// Length in bytes of the holder's token, without its NUL (0 when
    /// free). A token distlock wrote is `DISTLOCK_TOKEN_LEN` bytes; a key
    /// set by something else may hold a longer value.
    pub token_len: usize,
    /// The holder's remaining lease in milliseconds, if `has_remaining`.
    pub remaining_ms: u64,
    /// The highest fencing token handed out (or reserved) for this key so
    /// far, if `has_fence`: at least the holder's fence, and less than the
    /// fence of every later acquisition.
    pub fence: u64,
    /// Whether the holder described itself (the `holder_*` fields): false
    /// when the lock is free, and for a lock taken by an older distlock or
    /// set by something else. (Added after `fence`: written only when
    /// `struct_size` covers the whole struct.)
    pub has_holder: bool,
    /// The holder's process id, if `has_holder` (else 0).
    pub holder_pid: u32,
    /// The holder's host name, NUL-terminated (empty unless `has_holder`),
    /// cut to `DISTLOCK_MAX_HOLDER_HOST_LEN` bytes.
    pub holder_host: [c_char; 65],
    /// The holder's label (`distlock_config_set_holder_label`),
    /// NUL-terminated; empty when it set none. Cut to
    /// `DISTLOCK_MAX_HOLDER_LABEL_LEN` bytes.
    pub holder_label: [c_char; 65],
    /// How many shares of a read-write lock or semaphore of this name are
    /// held (readers, the writer, or permits); 0 for a plain lock. While
    /// shares are held, `held` is true, the token is empty and
    /// `remaining_ms` is the longest share's. (Added after
    /// `holder_label`.)
    pub shares: u32,
    /// Writers waiting for a read-write lock of this name (new readers
    /// wait behind them). (Added after `holder_label`.)
    pub writers_waiting: u32,
}

const _: () = assert!(DISTLOCK_MAX_HOLDER_HOST_LEN + 1 == 65);
const _: () = assert!(DISTLOCK_MAX_HOLDER_LABEL_LEN + 1 == 65);

/// The size of the first version of `distlock_lock_info`, which ended at
/// `fence`: the smallest `struct_size` accepted.
const FIRST_SIZE: usize = offset_of!(distlock_lock_info, fence) + size_of::<u64>();

impl distlock_lock_info {
    /// A free lock's answer, for a caller's struct of `struct_size` bytes.
    fn free(struct_size: usize) -> Self {
        distlock_lock_info {
            struct_size,
            held: false,
            has_remaining: false,
            has_fence: false,
            token_len: 0,
            remaining_ms: 0,
            fence: 0,
            has_holder: false,
            holder_pid: 0,
            holder_host: [0; 65],
            holder_label: [0; 65],
            shares: 0,
            writers_waiting: 0,
        }
    }

    /// Sets the holder fields from `holder`.
    fn set_holder(&mut self, holder: &Holder) {
        self.has_holder = true;
        self.holder_pid = holder.pid;
        fill_text(&mut self.holder_host, &holder.host);
        fill_text(
            &mut self.holder_label,
            holder.label.as_deref().unwrap_or(""),
        );
    }
}

/// Copies `text` into `buf` with a NUL after it, cut at a character
/// boundary to fit, NULs replaced by `?`.
fn fill_text(buf: &mut [c_char; 65], text: &str) {
    let mut end = 0;
    for ch in text.chars() {
        if end + ch.len_utf8() > buf.len() - 1 {
            break;
        }
        end += ch.len_utf8();
    }
    for (slot, byte) in buf.iter_mut().zip(text.as_bytes()[..end].iter()) {
        *slot = if *byte == 0 { b'?' } else { *byte } as c_char;
    }
    buf[end] = 0;
}

/// Writes `info` to the caller's struct of `size` bytes (at least
/// `FIRST_SIZE`): every field that ends within `size`, so a caller built
/// against an earlier, shorter version of the struct gets its own fields.
///
/// # Safety
///
/// `out` is non-NULL, aligned, and its first `size` bytes are writable.
unsafe fn write_info(out: *mut distlock_lock_info, size: usize, info: &distlock_lock_info) {
    if size >= size_of::<distlock_lock_info>() {
        // SAFETY: the whole struct is writable.
        unsafe { put(out, *info) };
        return;
    }
    macro_rules! fields {
        ($($field:ident),*) => {$(
            let end = offset_of!(distlock_lock_info, $field) + size_of_val(&info.$field);
            if end <= size {
                // SAFETY: the field ends within the `size` writable bytes.
                unsafe { std::ptr::addr_of_mut!((*out).$field).write(info.$field) };
            }
        )*};
    }
    fields!(
        held,
        has_remaining,
        has_fence,
        token_len,
        remaining_ms,
        fence,
        has_holder,
        holder_pid,
        holder_host,
        holder_label,
        shares,
        writers_waiting
    );
}

/// Reads what the server holds for the lock `key`: whether it is held, the
/// holder's token, description (host, pid, label) and remaining lease, and
/// the last fencing token handed out; for a read-write lock or a
/// semaphore, how many shares are held and how many writers wait. One round trip; nothing is written. For operators and tools: only
/// a guard proves ownership, and the answer may be stale as soon as it
/// arrives.
///
/// `out->struct_size` must be set (see `distlock_lock_info`). The holder's
/// token and a NUL go to `token_buf`, which holds `token_buf_len` bytes:
/// `DISTLOCK_TOKEN_LEN + 1` fit any token distlock writes. `token_buf` may
/// be NULL (with `token_buf_len` 0) when the token is not wanted. When the
/// lock is free, `token_buf` receives an empty string.
///
/// Returns `DISTLOCK_OK`; `DISTLOCK_INVALID_ARGUMENT` for a NULL or
/// unknown client, a NULL, empty, non-UTF-8 or over-long key, a NULL `out`
/// or a `struct_size` smaller than the first version of
/// `distlock_lock_info` (the struct up to `fence`), a
/// NULL `token_buf` with a non-zero `token_buf_len`, or a `token_buf` too
/// small for the token: then every field of `*out` is filled
/// (`token_len` says how large a buffer is needed) and `token_buf` is left
/// as it was; or `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS`. On the other failures `*out` says the lock is free.
///
/// # Safety
///
/// `key` is NULL or a NUL-terminated string; `token_buf` is NULL or valid
/// for writing `token_buf_len` bytes; `out` is NULL or points to a
/// `distlock_lock_info` whose first `out->struct_size` bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_inspect(
    client: *mut distlock_client,
    key: *const c_char,
    token_buf: *mut c_char,
    token_buf_len: usize,
    out: *mut distlock_lock_info,
) -> i32 {
    status_call("distlock_client_inspect", || {
        check_out(out, "out")?;
        // SAFETY: `out` is non-NULL, and the caller guarantees it points to
        // a distlock_lock_info, whose first field is `struct_size`.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        let ours = size_of::<distlock_lock_info>();
        if size < FIRST_SIZE {
            return Err(Failure::invalid(format!(
                "out->struct_size is {size}; set it to sizeof(distlock_lock_info), {ours}"
            )));
        }
        let mut info = distlock_lock_info::free(size);
        // SAFETY: `size` is at least FIRST_SIZE, and the caller guarantees
        // that many bytes writable.
        unsafe { write_info(out, size, &info) };
        if token_buf.is_null() && token_buf_len > 0 {
            return Err(Failure::invalid(format!(
                "token_buf is NULL but token_buf_len is {token_buf_len}"
            )));
        }
        let client = client_of(client)?;
        // SAFETY: the caller guarantees `key` is NULL or NUL-terminated.
        let key = unsafe { read_str(key, "key", DISTLOCK_MAX_KEY_LEN) }?;
        let found = client.client.inspect(&key)?;
        info.held = found.token.is_some() || !found.shares.is_empty();
        info.shares = u32::try_from(found.shares.len()).unwrap_or(u32::MAX);
        info.writers_waiting = u32::try_from(found.writers_waiting).unwrap_or(u32::MAX);
        let token = found.token.unwrap_or_default();
        info.token_len = token.len();
        if let Some(left) = found.remaining {
            info.has_remaining = true;
            info.remaining_ms = millis(left);
        }
        if let Some(fence) = found.fence {
            info.has_fence = true;
            info.fence = fence;
        }
        if let Some(holder) = &found.holder {
            info.set_holder(holder);
        }
        // SAFETY: as above.
        unsafe { write_info(out, size, &info) };
        if token_buf.is_null() {
            return Ok(());
        }
        if token_buf_len <= token.len() {
            return Err(Failure::invalid(format!(
                "token_buf_len is {token_buf_len}; the token needs {} bytes with its NUL",
                token.len() + 1
            )));
        }
        // SAFETY: `token_buf` is non-NULL and the caller guarantees
        // `token_buf_len` writable bytes, more than the token's length; the
        // token is our own allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(token.as_ptr(), token_buf.cast::<u8>(), token.len());
            token_buf.add(token.len()).write(0);
        }
        Ok(())
    })
}

/// Deletes the lock `key` if, and only if, it is held with `token`: the
/// operator's way to free a lock whose holder is known to be dead (the
/// token comes from `distlock_client_inspect`, or from the holder's own
/// `distlock_guard_token`). A guard holding the lock with that token finds
/// it lost at its next renewal.
///
/// `*released` is set to true if the lock was deleted, false if it was not
/// held with `token` (free, or held with another token: then nothing is
/// changed).
///
/// Returns `DISTLOCK_OK` (whatever `*released` says);
/// `DISTLOCK_INVALID_ARGUMENT` for a NULL or unknown client, a NULL `released`,
/// a NULL, empty, non-UTF-8 or over-long key or token
/// (`DISTLOCK_MAX_TOKEN_LEN`); or `DISTLOCK_CONNECTION`, `DISTLOCK_AUTH` or
/// `DISTLOCK_REDIS`, when it is unknown whether the lock was deleted.
///
/// # Safety
///
/// `key` and `token` are NULL or NUL-terminated strings; `released` is
/// NULL or valid for writing a `bool`.
#[no_mangle]
pub unsafe extern "C" fn distlock_client_release_token(
    client: *mut distlock_client,
    key: *const c_char,
    token: *const c_char,
    released: *mut bool,
) -> i32 {
    status_call("distlock_client_release_token", || {
        check_out(released, "released")?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { put(released, false) };
        let client = client_of(client)?;
        // SAFETY: the caller guarantees NULL or NUL-terminated strings.
        let key = unsafe { read_str(key, "key", DISTLOCK_MAX_KEY_LEN) }?;
        // SAFETY: as above.
        let token = unsafe { read_str(token, "token", DISTLOCK_MAX_TOKEN_LEN) }?;
        let done = client.client.release_token(&key, &token)?;
        // SAFETY: as above.
        unsafe { put(released, done) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_text_is_cut_at_a_character_boundary_with_its_nul() {
        let mut buf = [0x7f as c_char; 65];
        fill_text(&mut buf, "host-1");
        assert_eq!(&buf[..7], b"host-1\0".map(|b| b as c_char));
        let long = "é".repeat(40); // 80 bytes, 2 per character
        fill_text(&mut buf, &long);
        assert_eq!(buf[64], 0);
        let kept: Vec<u8> = buf[..64].iter().map(|&c| c as u8).collect();
        assert_eq!(std::str::from_utf8(&kept).unwrap(), "é".repeat(32));
        fill_text(&mut buf, "a\0b");
        assert_eq!(&buf[..4], b"a?b\0".map(|b| b as c_char));
    }

    #[test]
    fn a_first_version_struct_gets_only_its_fields() {
        let mut info = distlock_lock_info::free(0);
        info.held = true;
        info.fence = 7;
        info.set_holder(&Holder {
            host: "h".into(),
            pid: 42,
            label: Some("l".into()),
        });
        assert!(info.has_holder && info.holder_pid == 42 && info.holder_label[0] == b'l' as c_char);
        const WORDS: usize = size_of::<distlock_lock_info>() / 8 + 1;
        let mut buf = [u64::MAX; WORDS];
        let out = buf.as_mut_ptr().cast::<distlock_lock_info>();
        // SAFETY: the buffer is aligned and longer than the struct.
        unsafe { write_info(out, FIRST_SIZE, &info) };
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert!(bytes[FIRST_SIZE..].iter().all(|&b| b == 0xff));
        assert_eq!(buf[0], u64::MAX, "struct_size is not written");
        // SAFETY: the first version's fields were written.
        unsafe {
            assert!((*out).held);
            assert_eq!((*out).fence, 7);
        }
        // SAFETY: as above; the whole struct this time.
        unsafe { write_info(out, size_of::<distlock_lock_info>(), &info) };
        // SAFETY: written just now.
        assert_eq!(unsafe { (*out).holder_pid }, 42);
    }

    #[test]
    fn a_second_version_struct_gets_the_holder_but_not_the_shares() {
        let mut info = distlock_lock_info::free(0);
        info.held = true;
        info.holder_pid = 42;
        info.holder_label[0] = b'l' as c_char;
        info.shares = 3;
        info.writers_waiting = 1;
        let second = offset_of!(distlock_lock_info, holder_label) + 65;
        const WORDS: usize = size_of::<distlock_lock_info>() / 8 + 1;
        let mut buf = [u64::MAX; WORDS];
        let out = buf.as_mut_ptr().cast::<distlock_lock_info>();
        // SAFETY: the buffer is aligned and longer than the struct.
        unsafe { write_info(out, second, &info) };
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert!(
            bytes[second..].iter().all(|&b| b == 0xff),
            "nothing past it"
        );
        // SAFETY: the second version's fields were written.
        unsafe {
            assert!((*out).held);
            assert_eq!((*out).holder_pid, 42);
            assert_eq!((*out).holder_label[0], b'l' as c_char);
        }
        // SAFETY: as above; the whole struct this time.
        unsafe { write_info(out, size_of::<distlock_lock_info>(), &info) };
        // SAFETY: written just now.
        unsafe {
            assert_eq!((*out).shares, 3);
            assert_eq!((*out).writers_waiting, 1);
        }
    }
}
