//! Counts of Cloud API calls over a sliding window of one-second buckets: every call, and
//! those answered 5xx or never answered (unreachable, timed out). The dispatch workers count;
//! the health evaluator reads the share over a rule's window. Time is passed in.
//! Owns its buckets in memory; calls nothing else in wasp.

use std::{collections::VecDeque, sync::Mutex};

use super::config::MAX_WINDOW_MS;

const BUCKET_MS: i64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start_ms: i64,
    calls: u64,
    faults: u64,
}

/// Calls and faults over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub calls: u64,
    pub faults: u64,
}

impl Window {
    pub fn rate(self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.faults as f64 / self.calls as f64
        }
    }
}

#[derive(Debug, Default)]
pub struct UpstreamOutcomes {
    buckets: Mutex<VecDeque<Bucket>>,
}

impl UpstreamOutcomes {
    pub fn new() -> Self {
        Self::default()
    }

    /// One call; `fault` when it was answered 5xx or not at all.
    pub fn record(&self, fault: bool, now_ms: i64) {
        let start_ms = now_ms - now_ms.rem_euclid(BUCKET_MS);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match buckets.back_mut() {
            Some(bucket) if bucket.start_ms == start_ms => {
                bucket.calls += 1;
                bucket.faults += u64::from(fault);
            }
            _ => buckets.push_back(Bucket {
                start_ms,
                calls: 1,
                faults: u64::from(fault),
            }),
        }
        let oldest = now_ms - i64::try_from(MAX_WINDOW_MS).unwrap_or(i64::MAX / 2) - BUCKET_MS;
        while buckets.front().is_some_and(|bucket| bucket.start_ms < oldest) {
            buckets.pop_front();
        }
    }

    /// Calls and faults of the buckets that end inside the last `window_ms`.
    pub fn window(&self, now_ms: i64, window_ms: u64) -> Window {
        let start = now_ms - i64::try_from(window_ms).unwrap_or(i64::MAX / 2);
        let buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .iter()
            .filter(|bucket| bucket.start_ms + BUCKET_MS > start && bucket.start_ms <= now_ms)
            .fold(Window::default(), |sum, bucket| Window {
                calls: sum.calls + bucket.calls,
                faults: sum.faults + bucket.faults,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_only_recent_calls() {
        let outcomes = UpstreamOutcomes::new();
        for index in 0..10 {
            outcomes.record(index < 2, 1_000 + index);
        }
        outcomes.record(true, 50_500);
        assert_eq!(outcomes.window(50_900, 60_000), Window { calls: 11, faults: 3 });
        assert_eq!(outcomes.window(50_900, 10_000), Window { calls: 1, faults: 1 });
        assert_eq!(outcomes.window(200_000, 60_000), Window::default());
        assert!((outcomes.window(50_900, 60_000).rate() - 3.0 / 11.0).abs() < 1e-9);
        assert_eq!(Window::default().rate(), 0.0);
    }
}
