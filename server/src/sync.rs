//! Locks that survive a panicking holder.
//!
//! The engine's mutexes guard plain data (counters, views, lists of workers) that stays
//! consistent between statements, so a panic elsewhere while one was held must not take the
//! status page, the snapshot or the API down with it: the guard is taken back as it is.

use std::sync::{Mutex, MutexGuard};

pub trait LockExt<T> {
    /// The lock, recovered if a previous holder panicked.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        match self.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_back_with_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(5));
        let held = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().expect("first");
            panic!("holder dies");
        })
        .join();
        assert!(mutex.is_poisoned());
        *mutex.lock_or_recover() += 1;
        assert_eq!(*mutex.lock_or_recover(), 6);
    }
}
