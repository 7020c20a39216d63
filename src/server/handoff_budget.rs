//! The node's cap on outgoing handoff bytes (`transfer_rate_mb_s`), shared by
//! ownership handoff and hinted handoff.

/// The longest one [`HandoffBudget::take`] charges.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The node's cap on outgoing handoff bytes (`transfer_rate_mb_s`), as a token
/// bucket: ownership handoff (partitions streamed to new replicas) and hinted
/// handoff (hints delivered to a returning replica) draw from the same one,
/// so together they stay under the cap and client traffic keeps its latency.
pub struct HandoffBudget {
    /// When the budget is next free.
    free_at: parking_lot::Mutex<tokio::time::Instant>,
    bytes_per_s: f64,
}

impl HandoffBudget {
    /// A budget of `mb_s` megabytes per second.
    pub fn new(mb_s: f64) -> HandoffBudget {
        HandoffBudget {
            free_at: parking_lot::Mutex::new(tokio::time::Instant::now()),
            bytes_per_s: mb_s * 1_000_000.0,
        }
    }

    /// The bytes the budget allows in 100 ms.
    pub fn per_tenth_of_a_second(&self) -> usize {
        (self.bytes_per_s / 10.0) as usize
    }

    /// Waits until `bytes` fit in the budget. The bytes are counted when the
    /// call is made: a caller dropped while it waits leaves them spent.
    pub async fn take(&self, bytes: usize) {
        // Capped, so an absurdly small rate slows handoff to a crawl instead
        // of overflowing a `Duration`.
        let cost = std::time::Duration::try_from_secs_f64(bytes as f64 / self.bytes_per_s)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT);
        let now = tokio::time::Instant::now();
        let wait_until = {
            let mut free = self.free_at.lock();
            let start = (*free).max(now);
            *free = start + cost;
            start
        };
        // Within budget: no timer (a sleep costs up to a timer tick).
        if wait_until > now {
            tokio::time::sleep_until(wait_until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_handoff_budget_spaces_callers_by_their_bytes() {
        // 1 MB/s: 100 kB costs 100 ms.
        let budget = Arc::new(HandoffBudget::new(1.0));
        let started = tokio::time::Instant::now();
        let takers: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                tokio::spawn(async move {
                    budget.take(100_000).await;
                    started.elapsed()
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in takers {
            done.push(t.await.expect("taker"));
        }
        done.sort();
        // The first goes at once; each one after waits for those before it.
        for (i, at) in done.iter().enumerate() {
            assert!(
                *at >= Duration::from_millis(100) * i as u32,
                "caller {i} went at {at:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_handoff_charge_is_capped_however_small_the_rate() {
        let tiny = HandoffBudget::new(f64::MIN_POSITIVE);
        let before = tokio::time::Instant::now();
        // Within budget: goes at once, charged at most MAX_WAIT (no overflow).
        tiny.take(usize::MAX).await;
        let free_at = *tiny.free_at.lock();
        assert!(free_at >= before + MAX_WAIT && free_at <= tokio::time::Instant::now() + MAX_WAIT);
        // 1,000 s of a 1 MB/s budget: charged MAX_WAIT too.
        let slow = HandoffBudget::new(1.0);
        let before = tokio::time::Instant::now();
        slow.take(1_000_000_000).await;
        let free_at = *slow.free_at.lock();
        assert!(free_at >= before + MAX_WAIT && free_at <= tokio::time::Instant::now() + MAX_WAIT);
    }
}
