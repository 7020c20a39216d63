//! The node's clock: the wall clock (`dynakv_storage::clock`), shifted in
//! tests to show that a node whose clock is far off changes nothing that must
//! not depend on it. Clocks only measure silences (liveness), stamp
//! incarnations, versions and hints, and age tombstones; the ring and the
//! causal order never read them.

/// Test-only shift of this process's wall clock (`DYNAKV_TEST_CLOCK_OFFSET_MS`),
/// to show that a node whose clock is far off changes nothing in the ring.
fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("DYNAKV_TEST_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Wall-clock milliseconds: gossip generations and liveness (never placement).
pub fn now_ms() -> u64 {
    dynakv_storage::clock::now_ms().saturating_add_signed(clock_offset_ms())
}
