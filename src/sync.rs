//! The one locking helper every module shares.

use std::sync::{Mutex, MutexGuard};

/// Locks, recovering from poisoning: every critical section in jwtgate
/// leaves its data consistent, so a panic elsewhere must not lock everyone
/// out.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
