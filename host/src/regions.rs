//! Region health: per country calling code, the share of failed upstream outcomes and the
//! median upstream latency over a sliding window. A region turns degraded when its error
//! rate stays above `degrade_error_rate` for `degrade_after_ms`, and healthy again only when
//! it stays below the lower `recover_error_rate` for `recover_after_ms` (hysteresis), so a
//! region on the edge does not flap. Time is passed in, so the rules test on any clock.
//! Owns its counters in memory (per node); calls nothing else in wasp.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};

pub const DEFAULT_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_DEGRADE_ERROR_RATE: f64 = 0.2;
pub const DEFAULT_DEGRADE_AFTER_MS: u64 = 10_000;
pub const DEFAULT_RECOVER_ERROR_RATE: f64 = 0.05;
pub const DEFAULT_RECOVER_AFTER_MS: u64 = 30_000;
pub const DEFAULT_MIN_SAMPLES: u64 = 20;

/// Width of one bucket of the sliding window.
const BUCKET_MS: i64 = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    pub window_ms: u64,
    pub degrade_error_rate: f64,
    pub degrade_after_ms: u64,
    pub recover_error_rate: f64,
    pub recover_after_ms: u64,
    /// Outcomes a window needs before its rate counts.
    pub min_samples: u64,
}

impl Default for RegionConfig {
    fn default() -> Self {
        Self {
            window_ms: DEFAULT_WINDOW_MS,
            degrade_error_rate: DEFAULT_DEGRADE_ERROR_RATE,
            degrade_after_ms: DEFAULT_DEGRADE_AFTER_MS,
            recover_error_rate: DEFAULT_RECOVER_ERROR_RATE,
            recover_after_ms: DEFAULT_RECOVER_AFTER_MS,
            min_samples: DEFAULT_MIN_SAMPLES,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    start_ms: i64,
    total: u64,
    errors: u64,
}

#[derive(Debug, Default)]
struct Region {
    buckets: VecDeque<Bucket>,
    /// Recent upstream latencies for the median, newest last.
    latencies_ms: VecDeque<u32>,
    degraded: bool,
    /// Since when the rate has been on the other side of the threshold that would flip `degraded`.
    crossing_since_ms: Option<i64>,
    changed_at_ms: Option<i64>,
}

/// A region's health as policies and `GET /v1/regions` see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionState {
    pub country_code: u16,
    pub error_rate: f64,
    pub samples: u64,
    pub p50_latency_ms: u32,
    pub degraded: bool,
    pub changed_at_ms: Option<i64>,
}

const LATENCY_SAMPLES: usize = 256;

pub struct RegionHealth {
    config: RegionConfig,
    regions: Mutex<BTreeMap<u16, Region>>,
}

impl RegionHealth {
    pub fn new(config: RegionConfig) -> Self {
        Self {
            config,
            regions: Mutex::new(BTreeMap::new()),
        }
    }

    /// One upstream outcome for a recipient in `country_code`; `latency_ms` when it was a call.
    pub fn record(&self, country_code: u16, failed: bool, latency_ms: Option<u32>, now_ms: i64) {
        let mut regions = self.regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let region = regions.entry(country_code).or_default();
        let start_ms = now_ms - now_ms.rem_euclid(BUCKET_MS);
        match region.buckets.back_mut() {
            Some(bucket) if bucket.start_ms == start_ms => {
                bucket.total += 1;
                bucket.errors += u64::from(failed);
            }
            _ => region.buckets.push_back(Bucket {
                start_ms,
                total: 1,
                errors: u64::from(failed),
            }),
        }
        if let Some(latency) = latency_ms {
            if region.latencies_ms.len() >= LATENCY_SAMPLES {
                region.latencies_ms.pop_front();
            }
            region.latencies_ms.push_back(latency);
        }
        self.evaluate(country_code, region, now_ms);
    }

    /// The latency of a call that went through, without counting it as an outcome (delivery
    /// statuses count those).
    pub fn observe_latency(&self, country_code: u16, latency_ms: u32, now_ms: i64) {
        let mut regions = self.regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let region = regions.entry(country_code).or_default();
        if region.latencies_ms.len() >= LATENCY_SAMPLES {
            region.latencies_ms.pop_front();
        }
        region.latencies_ms.push_back(latency_ms);
        self.evaluate(country_code, region, now_ms);
    }

    /// The state of one region now (healthy with no samples when it has none).
    pub fn state(&self, country_code: u16, now_ms: i64) -> RegionState {
        let mut regions = self.regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match regions.get_mut(&country_code) {
            Some(region) => self.evaluate(country_code, region, now_ms),
            None => RegionState {
                country_code,
                error_rate: 0.0,
                samples: 0,
                p50_latency_ms: 0,
                degraded: false,
                changed_at_ms: None,
            },
        }
    }

    /// Every region seen, by country calling code.
    pub fn all(&self, now_ms: i64) -> Vec<RegionState> {
        let mut regions = self.regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        regions
            .iter_mut()
            .map(|(code, region)| self.evaluate(*code, region, now_ms))
            .collect()
    }

    fn evaluate(&self, country_code: u16, region: &mut Region, now_ms: i64) -> RegionState {
        let window_start = now_ms - i64::try_from(self.config.window_ms).unwrap_or(i64::MAX / 2);
        while region
            .buckets
            .front()
            .is_some_and(|bucket| bucket.start_ms + BUCKET_MS <= window_start)
        {
            region.buckets.pop_front();
        }
        let (total, errors) = region.buckets.iter().fold((0, 0), |(total, errors), bucket| {
            (total + bucket.total, errors + bucket.errors)
        });
        let error_rate = if total == 0 { 0.0 } else { errors as f64 / total as f64 };
        let enough = total >= self.config.min_samples;
        // Past the threshold that would flip the state: degrade above the high mark, recover
        // below the low one (or when the window has emptied).
        let crossing = if region.degraded {
            total == 0 || (enough && error_rate < self.config.recover_error_rate)
        } else {
            enough && error_rate > self.config.degrade_error_rate
        };
        if crossing {
            let since = *region.crossing_since_ms.get_or_insert(now_ms);
            let hold_ms = if region.degraded {
                self.config.recover_after_ms
            } else {
                self.config.degrade_after_ms
            };
            if now_ms - since >= i64::try_from(hold_ms).unwrap_or(i64::MAX) {
                region.degraded = !region.degraded;
                region.crossing_since_ms = None;
                region.changed_at_ms = Some(now_ms);
                if region.degraded {
                    tracing::warn!(country_code, error_rate, samples = total, "region degraded");
                } else {
                    tracing::info!(country_code, error_rate, samples = total, "region healthy again");
                }
            }
        } else {
            region.crossing_since_ms = None;
        }
        let mut latencies: Vec<u32> = region.latencies_ms.iter().copied().collect();
        latencies.sort_unstable();
        RegionState {
            country_code,
            error_rate,
            samples: total,
            p50_latency_ms: latencies.get(latencies.len() / 2).copied().unwrap_or(0),
            degraded: region.degraded,
            changed_at_ms: region.changed_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> RegionHealth {
        RegionHealth::new(RegionConfig {
            window_ms: 10_000,
            degrade_error_rate: 0.5,
            degrade_after_ms: 2_000,
            recover_error_rate: 0.1,
            recover_after_ms: 3_000,
            min_samples: 5,
        })
    }

    #[test]
    fn degrades_only_after_holding_above_the_threshold() {
        let health = health();
        for index in 0..10 {
            health.record(62, true, Some(40), 1_000 + index);
        }
        assert!(!health.state(62, 1_500).degraded, "not before degrade_after_ms");
        assert!(health.state(62, 3_100).degraded);
        assert!(!health.state(65, 3_100).degraded, "other regions are untouched");
        assert_eq!(health.state(62, 3_100).p50_latency_ms, 40);
    }

    #[test]
    fn recovers_with_hysteresis() {
        let health = health();
        for index in 0..10 {
            health.record(62, true, None, 1_000 + index);
        }
        assert!(health.state(62, 3_100).degraded);
        // 20% errors: below the degrade mark but above the recover mark: stays degraded.
        for second in 4..20 {
            for index in 0..10 {
                health.record(62, index < 2, None, second * 1_000 + index);
            }
        }
        assert!(health.state(62, 19_500).degraded);
        // Then clean traffic: healthy once the window is below 10% for recover_after_ms.
        for second in 20..40 {
            for index in 0..10 {
                health.record(62, false, None, second * 1_000 + index);
            }
        }
        let state = health.state(62, 39_500);
        assert!(!state.degraded, "{state:?}");
        assert!(state.changed_at_ms.is_some());
    }

    #[test]
    fn few_samples_do_not_degrade() {
        let health = health();
        for index in 0..3 {
            health.record(91, true, None, 1_000 + index);
        }
        assert!(!health.state(91, 10_000).degraded);
    }
}
