//! Bounds on what a peer that has proven nothing can make this node do:
//! concurrent handshakes per source address, and log lines about refusals
//! (one per interval, with a count of those suppressed), so neither memory
//! nor the log grows with an attacker's effort.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lets one line through per interval; counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines suppressed since the last one)` if a line may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock();
        let now = Instant::now();
        if s.0
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            s.1 += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut s.1);
        s.0 = Some(now);
        Some(suppressed)
    }
}

/// At most `per_ip` things at once per source address, and `total` in all.
#[derive(Debug)]
pub struct PerIpLimit {
    per_ip: usize,
    total: usize,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A slot of a [`PerIpLimit`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl PerIpLimit {
    /// A limit of `per_ip` per address and `total` overall.
    pub fn new(per_ip: usize, total: usize) -> Arc<PerIpLimit> {
        Arc::new(PerIpLimit {
            per_ip,
            total,
            held: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for `ip`, or `None` if it or everyone holds all theirs.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock();
        if held.0 >= self.total {
            return None;
        }
        let mine = held.1.entry(ip).or_default();
        if *mine >= self.per_ip {
            return None;
        }
        *mine += 1;
        held.0 += 1;
        Some(Slot {
            limit: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.limit.held.lock();
        held.0 -= 1;
        if let Some(n) = held.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.1.remove(&self.ip);
            }
        }
    }
}

/// `text` cut to at most `max` characters, for logging words a peer chose.
pub fn truncated(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_lets_one_line_through_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
    }

    #[test]
    fn slots_are_bounded_per_address_and_in_all_and_come_back() {
        let limit = PerIpLimit::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let a1 = limit.try_take(a).expect("a1");
        let _a2 = limit.try_take(a).expect("a2");
        assert!(limit.try_take(a).is_none(), "per address");
        let _b1 = limit.try_take(b).expect("b1");
        assert!(limit.try_take(b).is_none(), "in all");
        drop(a1);
        assert!(limit.try_take(b).is_some(), "a slot came back");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncated("héllo", 2), "hé");
        assert_eq!(truncated("hi", 10), "hi");
    }
}
