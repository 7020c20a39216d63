//! The wall clock, read in one place: milliseconds since the Unix epoch.
//!
//! Only stamps and ages use it (a hint's age, a tombstone's, a version's
//! timestamp); placement and causality never do.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
