//! The rate limits the Cloud API enforces, enforced here first: the sender number's
//! throughput and the per-recipient pair rate, each a token bucket (GCRA: one "theoretical
//! arrival time" per key). A send that would break a limit waits a little in place or, when
//! the wait is longer than the hold, goes back to the queue with the time it may leave.
//! Rate-limit answers from Meta push the bucket they are about into the future.
//!
//! Owns its state behind one mutex, never held across an `.await`. Calls nothing.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{config::CloudApiConfig, message::PhoneNumber};

/// Recipient buckets kept before idle ones are dropped (an idle bucket equals a fresh one).
/// After a prune the bound doubles past what is left, so pruning stays amortised O(1).
const PRUNE_AT: usize = 10_000;

/// One token bucket in GCRA form, in microseconds since the limiter's origin.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tat_us: i64,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    interval_us: i64,
    /// How far ahead of the steady rate a burst may run.
    tolerance_us: i64,
}

impl Rate {
    fn new(interval_us: i64, burst: u32) -> Self {
        let interval_us = interval_us.max(1);
        Self {
            interval_us,
            tolerance_us: interval_us * i64::from(burst.max(1) - 1),
        }
    }

    fn wait_us(self, bucket: Bucket, now_us: i64) -> i64 {
        (bucket.tat_us.max(now_us) - self.tolerance_us - now_us).max(0)
    }

    fn take(self, bucket: &mut Bucket, now_us: i64) {
        bucket.tat_us = bucket.tat_us.max(now_us) + self.interval_us;
    }

    /// Nothing leaves before `until_us`; then the steady rate, no burst.
    fn pause(self, bucket: &mut Bucket, until_us: i64) {
        bucket.tat_us = bucket.tat_us.max(until_us + self.tolerance_us);
    }
}

/// What a send may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Now,
    /// Go after this wait (no longer than the hold); the tokens are taken.
    After(Duration),
    /// Back to the queue, due at this time (ms since the epoch); nothing is taken.
    Requeue {
        due_at_ms: i64,
    },
}

struct State {
    sender: Bucket,
    recipients: HashMap<PhoneNumber, Bucket>,
    prune_at: usize,
}

pub struct Limits {
    origin: Instant,
    sender_rate: Option<Rate>,
    pair_rate: Option<Rate>,
    hold_us: i64,
    state: Mutex<State>,
}

impl Limits {
    pub fn new(config: &CloudApiConfig, hold_ms: u64) -> Self {
        // The sender's burst is a tenth of a second's worth: Meta counts per second, and a
        // smaller burst keeps what it sees steady.
        let sender_rate = (config.messages_per_second > 0).then(|| {
            let per_second = config.messages_per_second;
            Rate::new(1_000_000 / i64::from(per_second), (per_second / 10).max(1))
        });
        let pair_rate = (config.pair_burst > 0 && config.pair_interval_ms > 0).then(|| {
            Rate::new(
                i64::try_from(config.pair_interval_ms.saturating_mul(1_000)).unwrap_or(i64::MAX / 4),
                config.pair_burst,
            )
        });
        Self {
            origin: Instant::now(),
            sender_rate,
            pair_rate,
            hold_us: i64::try_from(hold_ms.saturating_mul(1_000)).unwrap_or(i64::MAX / 4),
            state: Mutex::new(State {
                sender: Bucket { tat_us: 0 },
                recipients: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    fn now_us(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks both limits for one send to `recipient`.
    pub fn admit(&self, recipient: &PhoneNumber) -> Admission {
        let now = self.now_us();
        let mut state = self.lock();
        let fresh = Bucket { tat_us: now };
        let sender_wait = self.sender_rate.map_or(0, |rate| rate.wait_us(state.sender, now));
        let pair_bucket = state.recipients.get(recipient).copied().unwrap_or(fresh);
        let pair_wait = self.pair_rate.map_or(0, |rate| rate.wait_us(pair_bucket, now));
        let wait = sender_wait.max(pair_wait);
        if wait > self.hold_us {
            let wait_ms = wait / 1_000 + 1;
            return Admission::Requeue {
                due_at_ms: crate::store::now_ms() + wait_ms,
            };
        }
        // Taken at the time the send will leave.
        let at = now + wait;
        if let Some(rate) = self.sender_rate {
            rate.take(&mut state.sender, at);
        }
        if let Some(rate) = self.pair_rate {
            let mut bucket = pair_bucket;
            rate.take(&mut bucket, at);
            if state.recipients.len() >= state.prune_at {
                state.recipients.retain(|_, bucket| bucket.tat_us > now);
                state.prune_at = (state.recipients.len() * 2).max(PRUNE_AT);
            }
            state.recipients.insert(recipient.clone(), bucket);
        }
        if wait == 0 {
            Admission::Now
        } else {
            Admission::After(Duration::from_micros(u64::try_from(wait).unwrap_or_default()))
        }
    }

    /// A throughput answer from Meta: the whole sender waits `for_ms`.
    pub fn slow_sender(&self, for_ms: i64) {
        let until = self.now_us() + for_ms.saturating_mul(1_000);
        let mut state = self.lock();
        let rate = self.sender_rate.unwrap_or(Rate::new(1, 1));
        rate.pause(&mut state.sender, until);
    }

    /// A pair-rate answer from Meta: this recipient waits `for_ms`.
    pub fn slow_recipient(&self, recipient: &PhoneNumber, for_ms: i64) {
        let now = self.now_us();
        let until = now + for_ms.saturating_mul(1_000);
        let rate = self.pair_rate.unwrap_or(Rate::new(1, 1));
        let mut state = self.lock();
        let bucket = state
            .recipients
            .entry(recipient.clone())
            .or_insert(Bucket { tat_us: now });
        rate.pause(bucket, until);
    }

    /// How many sends the sender limit lets through within the hold: the most worth claiming.
    pub fn sender_headroom(&self) -> usize {
        let Some(rate) = self.sender_rate else {
            return usize::MAX;
        };
        let now = self.now_us();
        let state = self.lock();
        let earliest = state.sender.tat_us.max(now);
        let room = now + self.hold_us + rate.tolerance_us - earliest;
        if room < 0 {
            return 0;
        }
        usize::try_from(room / rate.interval_us + 1).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_second: u32, pair_interval_ms: u64, pair_burst: u32) -> CloudApiConfig {
        CloudApiConfig {
            messages_per_second: per_second,
            pair_interval_ms,
            pair_burst,
            ..CloudApiConfig::default()
        }
    }

    #[test]
    fn gcra_allows_the_burst_then_the_steady_rate() {
        let rate = Rate::new(1_000, 3);
        let mut bucket = Bucket { tat_us: 0 };
        for _ in 0..3 {
            assert_eq!(rate.wait_us(bucket, 0), 0);
            rate.take(&mut bucket, 0);
        }
        assert_eq!(rate.wait_us(bucket, 0), 1_000);
        assert_eq!(rate.wait_us(bucket, 1_000), 0);
        rate.pause(&mut bucket, 50_000);
        assert_eq!(rate.wait_us(bucket, 10_000), 40_000);
    }

    #[test]
    fn a_recipient_past_its_burst_goes_back_to_the_queue() {
        let limits = Limits::new(&config(0, 60_000, 2), 10);
        let to = PhoneNumber::parse("+6591234567").unwrap();
        let other = PhoneNumber::parse("+6591234568").unwrap();
        assert_eq!(limits.admit(&to), Admission::Now);
        assert_eq!(limits.admit(&to), Admission::Now);
        let before = crate::store::now_ms();
        match limits.admit(&to) {
            Admission::Requeue { due_at_ms } => assert!(due_at_ms >= before + 59_000, "{due_at_ms} vs {before}"),
            other => panic!("expected a requeue, got {other:?}"),
        }
        assert_eq!(limits.admit(&other), Admission::Now);
    }

    #[test]
    fn the_sender_limit_waits_in_place_within_the_hold() {
        // 100/s: a burst of 10, then one every 10 ms.
        let limits = Limits::new(&config(100, 0, 0), 1_000);
        let to = PhoneNumber::parse("+6591234567").unwrap();
        assert!(limits.sender_headroom() >= 100);
        let waits: Vec<Admission> = (0..12).map(|_| limits.admit(&to)).collect();
        assert!(
            waits[..10].iter().all(|admission| *admission == Admission::Now),
            "{waits:?}"
        );
        assert!(matches!(waits[10], Admission::After(_)), "{waits:?}");
        limits.slow_sender(5_000);
        assert!(matches!(limits.admit(&to), Admission::Requeue { .. }));
        assert_eq!(limits.sender_headroom(), 0);
    }
}
