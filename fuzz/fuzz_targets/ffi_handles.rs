//! Arbitrary pointers and strings at the C ABI: unknown handles must be
//! refused with DISTLOCK_INVALID_ARGUMENT, never dereferenced.
#![no_main]

use distlock::ffi::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut word = [0u8; 8];
    let n = data.len().min(8);
    word[..n].copy_from_slice(&data[..n]);
    let addr = usize::from_le_bytes(word) | 1;
    let guard = addr as *mut distlock_guard;
    let mut fence = 0u64;
    let mut held = false;
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the library promises to check handles against its registry
    // before any use; that promise is what this target exercises.
    unsafe {
        let _ = distlock_guard_fence(guard, &mut fence);
        let _ = distlock_guard_is_held(guard, &mut held);
        let _ = distlock_guard_token(guard, buf.as_mut_ptr(), buf.len());
        let _ = distlock_guard_release(guard);
        distlock_guard_free(guard);
        distlock_client_close(addr as *mut distlock_client);
    }
    let status = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
    let _ = distlock_status_name(status);
});
