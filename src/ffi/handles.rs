//! Registries of the handles given out to C.
//!
//! A handle is the address of a value this module owns through an `Arc`.
//! The address is only ever used as a key: every call looks it up here and
//! works on a cloned `Arc`, so an unknown or freed handle is reported instead
//! of dereferenced, and a handle freed by one thread while another still
//! uses it stays alive until that use ends.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The live handles of one kind, by address.
pub(crate) struct Registry<T> {
    live: Mutex<HashMap<usize, Arc<T>>>,
}

impl<T> Registry<T> {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Registry {
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Takes ownership of `value` and returns the handle that names it.
    pub(crate) fn insert(&self, value: T) -> *mut T {
        let value = Arc::new(value);
        let handle = Arc::as_ptr(&value).cast_mut();
        self.live.lock().insert(handle as usize, value);
        handle
    }

    /// The value behind `handle`, if it is live.
    pub(crate) fn get(&self, handle: *const T) -> Option<Arc<T>> {
        if handle.is_null() {
            return None;
        }
        self.live.lock().get(&(handle as usize)).cloned()
    }

    /// Forgets `handle`, returning its value if it was live. The value is
    /// dropped once the last call still using it returns.
    pub(crate) fn remove(&self, handle: *const T) -> Option<Arc<T>> {
        if handle.is_null() {
            return None;
        }
        let mut live = self.live.lock();
        let value = live.remove(&(handle as usize));
        if live.is_empty() {
            // Give the table back, so that a program that freed every handle
            // leaves nothing of ours allocated at exit.
            *live = HashMap::new();
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_found_until_removed() {
        let reg = Registry::new();
        let a = reg.insert(7u64);
        let b = reg.insert(8u64);
        assert_ne!(a, b);
        assert_eq!(reg.get(a).as_deref(), Some(&7));
        let kept = reg.get(b).expect("live");
        assert_eq!(reg.remove(b).as_deref(), Some(&8));
        assert!(reg.get(b).is_none());
        assert!(reg.remove(b).is_none());
        // A use that started before the removal still sees the value.
        assert_eq!(*kept, 8);
        assert!(reg.get(std::ptr::null()).is_none());
        assert!(reg.get(0x1000 as *const u64).is_none());
    }
}
