//! Handles made once per key and shared after: the metric series each function's calls record.
//!
//! Looking a metric series up by name and labels formats its labels and hashes the whole key on every call;
//! a process that records one per call keeps the handle the first lookup registered instead. Keys are the
//! labels' sources (a deployed function, an HTTP status code), so the map holds as many handles as the
//! recorder holds series anyway.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::{PoisonError, RwLock},
};

/// Each key's handle, made by the first caller to ask for it.
#[derive(Debug)]
pub struct Handles<K, H> {
    by_key: RwLock<HashMap<K, H>>,
}

impl<K, H> Default for Handles<K, H> {
    fn default() -> Self {
        Self { by_key: RwLock::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, H: Clone> Handles<K, H> {
    /// `key`'s handle; `make` makes it the first time. The key is copied only then, so a lookup by a borrowed
    /// key costs a hash and a read lock.
    pub fn get<Q>(&self, key: &Q, make: impl FnOnce() -> H) -> H
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // A panic while holding the lock leaves the map whole (an insert either happened or did not).
        if let Some(handle) = self.by_key.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return handle.clone();
        }
        let mut by_key = self.by_key.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = by_key.get(key) {
            return handle.clone();
        }
        let handle = make();
        by_key.insert(key.to_owned(), handle.clone());
        handle
    }

    /// How many keys have a handle; only the tests need to know.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, sync::Arc, thread};

    use super::*;

    #[test]
    fn makes_each_keys_handle_once() {
        let handles: Handles<String, u32> = Handles::default();
        let made = Cell::new(0);
        let make = |value| {
            made.set(made.get() + 1);
            value
        };
        assert_eq!(handles.get("a", || make(1)), 1);
        assert_eq!(handles.get("a", || make(2)), 1, "the first handle is kept");
        assert_eq!(handles.get("b", || make(3)), 3);
        assert_eq!(made.get(), 2);
        assert_eq!(handles.len(), 2);
    }

    #[test]
    fn threads_racing_for_one_key_share_one_handle() {
        let handles: Arc<Handles<u16, Arc<u16>>> = Arc::default();
        let got: Vec<Arc<u16>> = (0..8)
            .map(|_| {
                let handles = handles.clone();
                thread::spawn(move || handles.get(&200, || Arc::new(200)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        assert!(got.iter().all(|handle| Arc::ptr_eq(handle, &got[0])), "every thread got the same handle");
        assert_eq!(handles.len(), 1);
    }
}
