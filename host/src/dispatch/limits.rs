//! The limits the Cloud API enforces, enforced here first: each sender number's throughput
//! and the per-recipient pair rate, each a token bucket (GCRA: one "theoretical arrival time"
//! per key), and the daily business-initiated tier. A send that would break a rate limit
//! waits a little in place or, when the wait is longer than the hold, goes back to the queue
//! with the time it may leave. Rate-limit answers from Meta push the bucket they are about
//! into the future.
//!
//! Sender pool: with several numbers configured, each recipient keeps to one of them
//! ([`sender_index`]) and each number has its own throughput bucket.
//!
//! The tier counts the distinct recipients a conversation was opened with in the last 24 h
//! (a map of recipient → when their conversation opened, and the same entries in time order,
//! dropped as they age out, so memory holds at most one day's recipients). A recipient with a
//! conversation still open does not count again. When the tier is full, `bulk` sends to new
//! recipients go back to the queue for an hour; every other class still goes (and counts).
//!
//! Owns its state behind one mutex, never held across an `.await`. Calls nothing but the
//! pure [`sender_index`].

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{
    channel::cloud_api::sender_index,
    config::CloudApiConfig,
    message::{PhoneNumber, Priority},
};

/// Recipient buckets kept before idle ones are dropped (an idle bucket equals a fresh one).
/// After a prune the bound doubles past what is left, so pruning stays amortised O(1).
const PRUNE_AT: usize = 10_000;

/// How long a business-initiated conversation lasts, and the tier's rolling window.
pub const TIER_WINDOW_MS: i64 = 24 * 60 * 60 * 1_000;

/// A `bulk` send refused by a full tier is due again after this long.
pub const TIER_RETRY_MS: i64 = 60 * 60 * 1_000;

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

/// Why a send goes back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueReason {
    /// The sender number's throughput or the recipient's pair rate.
    RateLimit,
    /// The daily business-initiated tier is full (only `bulk` waits for it).
    DailyTier,
}

impl RequeueReason {
    /// The history line for the requeue.
    pub fn cause(self) -> &'static str {
        match self {
            RequeueReason::RateLimit => "waiting for the sender's or recipient's rate limit",
            RequeueReason::DailyTier => {
                "waiting for room in the daily business-initiated tier (channel.cloud_api.daily_tier_limit)"
            }
        }
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
        reason: RequeueReason,
    },
}

/// Where a recipient stands against the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TierStanding {
    /// A conversation opened within the window is still open: free.
    Open,
    /// A new conversation, and the tier has room for it.
    Room,
    /// A new conversation, and the tier is full.
    Full,
}

/// The recipients a business-initiated conversation was opened with in the last 24 h.
/// Every recipient is once in `opened` and once in `order`, oldest first.
#[derive(Debug, Default)]
struct Tier {
    limit: usize,
    opened: HashMap<PhoneNumber, i64>,
    order: VecDeque<(i64, PhoneNumber)>,
}

impl Tier {
    fn new(limit: u32) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            ..Self::default()
        }
    }

    /// Drops the conversations opened `TIER_WINDOW_MS` or longer ago.
    fn prune(&mut self, now_ms: i64) {
        let cutoff = now_ms - TIER_WINDOW_MS;
        while let Some((opened_ms, _)) = self.order.front() {
            if *opened_ms > cutoff {
                break;
            }
            if let Some((_, recipient)) = self.order.pop_front() {
                self.opened.remove(&recipient);
            }
        }
    }

    fn standing(&mut self, recipient: &PhoneNumber, now_ms: i64) -> TierStanding {
        self.prune(now_ms);
        if self.opened.contains_key(recipient) {
            TierStanding::Open
        } else if self.opened.len() < self.limit {
            TierStanding::Room
        } else {
            TierStanding::Full
        }
    }

    /// Counts a conversation opened with `recipient` now.
    fn open(&mut self, recipient: &PhoneNumber, now_ms: i64) {
        if !self.opened.contains_key(recipient) {
            self.opened.insert(recipient.clone(), now_ms);
            self.order.push_back((now_ms, recipient.clone()));
        }
    }

    fn len(&self) -> usize {
        self.opened.len()
    }
}

struct State {
    /// One throughput bucket per sender number of the pool.
    senders: Vec<Bucket>,
    /// Per sender number: nothing leaves before this (a throughput answer from Meta), whatever
    /// the rate becomes meanwhile.
    senders_paused_until_us: Vec<i64>,
    recipients: HashMap<PhoneNumber, Bucket>,
    prune_at: usize,
    /// The per-number rate this node may use: its share of the configured one.
    sender_rate: Option<Rate>,
    /// None: no tier limit, nothing kept.
    tier: Option<Tier>,
}

pub struct Limits {
    origin: Instant,
    /// The configured messages per second per number, before this node's share.
    sender_per_second: u32,
    pair_rate: Option<Rate>,
    hold_us: i64,
    state: Mutex<State>,
}

/// A per-number rate of `per_second` (none when zero). The burst is a tenth of a second's
/// worth: Meta counts per second, and a smaller burst keeps what it sees steady.
fn sender_rate(per_second: f64) -> Option<Rate> {
    (per_second > 0.0).then(|| {
        #[allow(clippy::cast_possible_truncation)]
        let interval_us = (1_000_000.0 / per_second).ceil() as i64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let burst = ((per_second / 10.0) as u32).max(1);
        Rate::new(interval_us, burst)
    })
}

impl Limits {
    pub fn new(config: &CloudApiConfig, hold_ms: u64) -> Self {
        let sender_rate = sender_rate(f64::from(config.messages_per_second));
        let pair_rate = (config.pair_burst > 0 && config.pair_interval_ms > 0).then(|| {
            Rate::new(
                i64::try_from(config.pair_interval_ms.saturating_mul(1_000)).unwrap_or(i64::MAX / 4),
                config.pair_burst,
            )
        });
        Self {
            origin: Instant::now(),
            sender_per_second: config.messages_per_second,
            pair_rate,
            hold_us: i64::try_from(hold_ms.saturating_mul(1_000)).unwrap_or(i64::MAX / 4),
            state: Mutex::new(State {
                senders: vec![Bucket { tat_us: 0 }; config.senders().len().max(1)],
                senders_paused_until_us: vec![0; config.senders().len().max(1)],
                recipients: HashMap::new(),
                prune_at: PRUNE_AT,
                sender_rate,
                tier: (config.daily_tier_limit > 0).then(|| Tier::new(config.daily_tier_limit)),
            }),
        }
    }

    fn now_us(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks every limit for one send of class `priority` to `recipient`.
    pub fn admit(&self, recipient: &PhoneNumber, priority: Priority) -> Admission {
        let now_ms = crate::store::now_ms();
        let now = self.now_us();
        let mut state = self.lock();
        let standing = state.tier.as_mut().map(|tier| tier.standing(recipient, now_ms));
        if standing == Some(TierStanding::Full) && priority == Priority::Bulk {
            return Admission::Requeue {
                due_at_ms: now_ms + TIER_RETRY_MS,
                reason: RequeueReason::DailyTier,
            };
        }
        let sender = sender_index(recipient, state.senders.len());
        let fresh = Bucket { tat_us: now };
        let sender_rate = state.sender_rate;
        let sender_wait = sender_rate.map_or(0, |rate| rate.wait_us(state.senders[sender], now));
        let pair_bucket = state.recipients.get(recipient).copied().unwrap_or(fresh);
        let pair_wait = self.pair_rate.map_or(0, |rate| rate.wait_us(pair_bucket, now));
        let wait = sender_wait.max(pair_wait);
        if wait > self.hold_us {
            let wait_ms = wait / 1_000 + 1;
            return Admission::Requeue {
                due_at_ms: now_ms + wait_ms,
                reason: RequeueReason::RateLimit,
            };
        }
        // Taken at the time the send will leave.
        let at = now + wait;
        if let Some(rate) = sender_rate {
            rate.take(&mut state.senders[sender], at);
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
        if let Some(tier) = state.tier.as_mut() {
            tier.open(recipient, now_ms);
        }
        if wait == 0 {
            Admission::Now
        } else {
            Admission::After(Duration::from_micros(u64::try_from(wait).unwrap_or_default()))
        }
    }

    /// Sets this node's share of each number's rate: `held` of `total` shards. Nodes split the
    /// shards evenly, so the shares add up to the configured rate across the cluster.
    ///
    /// What each bucket has booked ahead of now is rescaled to the new rate: booked at one a
    /// day while nothing was held, it would otherwise block the number for a day once shards
    /// come back. A pause Meta asked for stays as long as it was.
    pub fn set_share(&self, held: usize, total: u16) {
        if self.sender_per_second == 0 {
            return;
        }
        let share = if total == 0 {
            0.0
        } else {
            held as f64 / f64::from(total)
        };
        let rate = sender_rate(f64::from(self.sender_per_second) * share.min(1.0))
            // Nothing held: nothing is sent, a rate of one a day keeps the arithmetic whole.
            .unwrap_or(Rate::new(86_400_000_000, 1));
        let now = self.now_us();
        let mut state = self.lock();
        let previous = state.sender_rate.replace(rate);
        let Some(previous) = previous else {
            return;
        };
        let State {
            senders,
            senders_paused_until_us,
            ..
        } = &mut *state;
        for (bucket, paused_until) in senders.iter_mut().zip(senders_paused_until_us.iter()) {
            let ahead = bucket.tat_us - now;
            if ahead > 0 {
                let scaled = i128::from(ahead) * i128::from(rate.interval_us) / i128::from(previous.interval_us);
                bucket.tat_us = now + i64::try_from(scaled).unwrap_or(i64::MAX / 4);
            }
            if *paused_until > now {
                bucket.tat_us = bucket.tat_us.max(*paused_until + rate.tolerance_us);
            }
        }
    }

    /// A throughput answer from Meta: the whole sender waits `for_ms`. The answer does not
    /// say which number of the pool it was about, so every number waits.
    pub fn slow_sender(&self, for_ms: i64) {
        let until = self.now_us() + for_ms.saturating_mul(1_000);
        let mut state = self.lock();
        let rate = state.sender_rate.unwrap_or(Rate::new(1, 1));
        for bucket in &mut state.senders {
            rate.pause(bucket, until);
        }
        for paused_until in &mut state.senders_paused_until_us {
            *paused_until = (*paused_until).max(until);
        }
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

    /// How many sends the sender limits let through within the hold, summed over the
    /// numbers of the pool: the most worth claiming.
    pub fn sender_headroom(&self) -> usize {
        let now = self.now_us();
        let state = self.lock();
        let Some(rate) = state.sender_rate else {
            return usize::MAX;
        };
        state
            .senders
            .iter()
            .map(|bucket| {
                let earliest = bucket.tat_us.max(now);
                let room = now + self.hold_us + rate.tolerance_us - earliest;
                if room < 0 {
                    0
                } else {
                    usize::try_from(room / rate.interval_us + 1).unwrap_or(usize::MAX)
                }
            })
            .fold(0, usize::saturating_add)
    }

    /// Recipients counted against the daily tier now (0 without a tier limit).
    pub fn tier_recipients(&self) -> usize {
        let mut state = self.lock();
        state.tier.as_mut().map_or(0, |tier| {
            tier.prune(crate::store::now_ms());
            tier.len()
        })
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
        assert_eq!(limits.admit(&to, Priority::Normal), Admission::Now);
        assert_eq!(limits.admit(&to, Priority::Normal), Admission::Now);
        let before = crate::store::now_ms();
        match limits.admit(&to, Priority::Normal) {
            Admission::Requeue { due_at_ms, reason } => {
                assert_eq!(reason, RequeueReason::RateLimit);
                assert!(due_at_ms >= before + 59_000, "{due_at_ms} vs {before}")
            }
            other => panic!("expected a requeue, got {other:?}"),
        }
        assert_eq!(limits.admit(&other, Priority::Normal), Admission::Now);
    }

    #[test]
    fn the_sender_limit_waits_in_place_within_the_hold() {
        // 100/s: a burst of 10, then one every 10 ms.
        let limits = Limits::new(&config(100, 0, 0), 1_000);
        let to = PhoneNumber::parse("+6591234567").unwrap();
        assert!(limits.sender_headroom() >= 100);
        let waits: Vec<Admission> = (0..12).map(|_| limits.admit(&to, Priority::Normal)).collect();
        assert!(
            waits[..10].iter().all(|admission| *admission == Admission::Now),
            "{waits:?}"
        );
        assert!(matches!(waits[10], Admission::After(_)), "{waits:?}");
        limits.slow_sender(5_000);
        assert!(matches!(limits.admit(&to, Priority::Normal), Admission::Requeue { .. }));
        assert_eq!(limits.sender_headroom(), 0);
    }

    #[test]
    fn a_send_booked_while_nothing_was_held_does_not_block_the_number_later() {
        // 30/s configured, burst of 3 for the whole number.
        let limits = Limits::new(&config(30, 0, 0), 100);
        let to = PhoneNumber::parse("+6591234567").unwrap();
        // Every lease ran out for a moment: the share is nothing, and one send was admitted.
        limits.set_share(0, 256);
        assert_eq!(limits.admit(&to, Priority::Normal), Admission::Now);
        assert_eq!(limits.sender_headroom(), 0);
        // The shards are back: the number is usable again at once, not in a day.
        limits.set_share(256, 256);
        assert!(limits.sender_headroom() > 0);
        assert!(matches!(
            limits.admit(&to, Priority::Normal),
            Admission::Now | Admission::After(_)
        ));
    }

    #[test]
    fn a_pause_from_meta_outlasts_a_change_of_share() {
        let limits = Limits::new(&config(30, 0, 0), 100);
        let to = PhoneNumber::parse("+6591234567").unwrap();
        limits.slow_sender(5_000);
        limits.set_share(10, 256);
        limits.set_share(256, 256);
        assert_eq!(limits.sender_headroom(), 0);
        assert!(matches!(
            limits.admit(&to, Priority::Normal),
            Admission::Requeue { due_at_ms, .. } if due_at_ms >= crate::store::now_ms() + 4_000
        ));
    }

    fn number(index: usize) -> PhoneNumber {
        PhoneNumber::parse(&format!("+65912{index:05}")).unwrap()
    }

    #[test]
    fn the_tier_counts_distinct_recipients_and_repeats_are_free() {
        let mut tier = Tier::new(2);
        assert_eq!(tier.standing(&number(1), 0), TierStanding::Room);
        tier.open(&number(1), 0);
        tier.open(&number(1), 10);
        assert_eq!(tier.len(), 1);
        assert_eq!(tier.standing(&number(2), 20), TierStanding::Room);
        tier.open(&number(2), 20);
        assert_eq!(tier.standing(&number(3), 30), TierStanding::Full);
        // A recipient with a conversation still open costs nothing, even when full.
        assert_eq!(tier.standing(&number(1), 40), TierStanding::Open);
        assert_eq!(tier.len(), 2);
    }

    #[test]
    fn the_tier_forgets_conversations_a_day_old() {
        let mut tier = Tier::new(2);
        tier.open(&number(1), 0);
        tier.open(&number(2), 1_000);
        assert_eq!(tier.standing(&number(3), TIER_WINDOW_MS - 1), TierStanding::Full);
        // The first conversation ages out: room for one more, and its entry is gone.
        assert_eq!(tier.standing(&number(3), TIER_WINDOW_MS), TierStanding::Room);
        assert_eq!((tier.opened.len(), tier.order.len()), (1, 1));
        tier.open(&number(3), TIER_WINDOW_MS);
        // The first recipient opens a new conversation, which counts again.
        assert_eq!(tier.standing(&number(1), TIER_WINDOW_MS + 1), TierStanding::Full);
        tier.prune(3 * TIER_WINDOW_MS);
        assert_eq!((tier.opened.len(), tier.order.len()), (0, 0));
    }

    #[test]
    fn a_full_tier_defers_bulk_and_lets_critical_go() {
        let limits = Limits::new(
            &CloudApiConfig {
                daily_tier_limit: 2,
                ..config(0, 0, 0)
            },
            10,
        );
        assert_eq!(limits.admit(&number(1), Priority::Bulk), Admission::Now);
        assert_eq!(limits.admit(&number(2), Priority::Bulk), Admission::Now);
        let before = crate::store::now_ms();
        match limits.admit(&number(3), Priority::Bulk) {
            Admission::Requeue { due_at_ms, reason } => {
                assert_eq!(reason, RequeueReason::DailyTier);
                assert!(reason.cause().contains("tier"));
                assert!(due_at_ms >= before + TIER_RETRY_MS, "{due_at_ms} vs {before}");
            }
            other => panic!("expected a requeue, got {other:?}"),
        }
        // Recipients already in a conversation: free, bulk included.
        assert_eq!(limits.admit(&number(1), Priority::Bulk), Admission::Now);
        // Critical goes past a full tier, and counts.
        assert_eq!(limits.admit(&number(3), Priority::Critical), Admission::Now);
        assert_eq!(limits.tier_recipients(), 3);
        assert_eq!(limits.admit(&number(3), Priority::Bulk), Admission::Now);
    }

    #[test]
    fn without_a_tier_nothing_is_kept() {
        let limits = Limits::new(&config(0, 0, 0), 10);
        for index in 0..100 {
            assert_eq!(limits.admit(&number(index), Priority::Bulk), Admission::Now);
        }
        assert_eq!(limits.tier_recipients(), 0);
    }

    #[test]
    fn each_number_of_the_pool_has_its_own_throughput() {
        // 10/s per number: a burst of one each.
        let pool = CloudApiConfig {
            phone_number_ids: vec!["1001".into(), "1002".into()],
            ..config(10, 0, 0)
        };
        let limits = Limits::new(&pool, 0);
        assert_eq!(limits.sender_headroom(), 2);
        let first = number(0);
        let on_first = sender_index(&first, 2);
        let other = (1..100).map(number).find(|to| sender_index(to, 2) != on_first).unwrap();
        assert_eq!(limits.admit(&first, Priority::Normal), Admission::Now);
        assert_eq!(limits.admit(&other, Priority::Normal), Admission::Now);
        assert!(matches!(
            limits.admit(&first, Priority::Normal),
            Admission::Requeue { .. }
        ));
        limits.slow_sender(5_000);
        assert_eq!(limits.sender_headroom(), 0);
    }
}
