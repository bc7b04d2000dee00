//! The state machine of one rule over one subject (the node, or one template): fed
//! `(now_ms, value)` samples, it goes ok → pending (the condition holds, not yet for `for_ms`)
//! → firing → clearing (back past `clear`, not yet for `clear_for_ms`) → ok, and says when it
//! fires and when it resolves: once per episode. A value between `clear` and the threshold
//! neither resolves a firing rule nor fires it again (hysteresis). Time is passed in; no I/O.
//! Calls nothing else in wasp.

use super::config::Rule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Ok,
    /// The condition has held since `since`, not yet for `for_ms`.
    Pending { since: i64 },
    /// Fired at `since`.
    Firing { since: i64 },
    /// Fired at `since`; back on the good side of `clear` since `clearing_since`.
    Clearing { since: i64, clearing_since: i64 },
}

/// What one sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Unchanged,
    Fired,
    Resolved,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Episode {
    pub phase: Phase,
    /// The last value seen; `None` when the last sample had too few to count.
    pub value: Option<f64>,
    pub last_fired_ms: Option<i64>,
    pub last_resolved_ms: Option<i64>,
}

fn held(since: i64, now_ms: i64, hold_ms: u64) -> bool {
    now_ms.saturating_sub(since) >= i64::try_from(hold_ms).unwrap_or(i64::MAX)
}

impl Episode {
    /// Whether the rule fires (or is clearing, which still counts as firing).
    pub fn firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. } | Phase::Clearing { .. })
    }

    /// When the current firing began.
    pub fn since(&self) -> Option<i64> {
        match self.phase {
            Phase::Firing { since } | Phase::Clearing { since, .. } => Some(since),
            Phase::Ok | Phase::Pending { .. } => None,
        }
    }

    /// One sample. `None` (too few samples to count) holds a firing rule where it is and
    /// calls off a pending one: no evidence either way.
    pub fn observe(&mut self, rule: &Rule, now_ms: i64, value: Option<f64>) -> Step {
        self.value = value;
        let Some(value) = value else {
            match self.phase {
                Phase::Pending { .. } => self.phase = Phase::Ok,
                Phase::Clearing { since, .. } => self.phase = Phase::Firing { since },
                Phase::Ok | Phase::Firing { .. } => {}
            }
            return Step::Unchanged;
        };
        match self.phase {
            Phase::Ok | Phase::Pending { .. } if !rule.breaches(value) => {
                self.phase = Phase::Ok;
                Step::Unchanged
            }
            Phase::Ok | Phase::Pending { .. } => {
                let since = match self.phase {
                    Phase::Pending { since } => since,
                    _ => now_ms,
                };
                if held(since, now_ms, rule.for_ms) {
                    self.phase = Phase::Firing { since: now_ms };
                    self.last_fired_ms = Some(now_ms);
                    Step::Fired
                } else {
                    self.phase = Phase::Pending { since };
                    Step::Unchanged
                }
            }
            Phase::Firing { since } | Phase::Clearing { since, .. } if !rule.clears(value) => {
                self.phase = Phase::Firing { since };
                Step::Unchanged
            }
            Phase::Firing { since } | Phase::Clearing { since, .. } => {
                let clearing_since = match self.phase {
                    Phase::Clearing { clearing_since, .. } => clearing_since,
                    _ => now_ms,
                };
                if held(clearing_since, now_ms, rule.clear_for_ms) {
                    self.phase = Phase::Ok;
                    self.last_resolved_ms = Some(now_ms);
                    Step::Resolved
                } else {
                    self.phase = Phase::Clearing { since, clearing_since };
                    Step::Unchanged
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::config::{Action, Direction, Metric};

    fn rule() -> Rule {
        Rule {
            name: "backlog".into(),
            metric: Metric::Backlog,
            direction: Direction::Above,
            threshold: 100.0,
            clear: 80.0,
            for_ms: 10_000,
            clear_for_ms: 30_000,
            window_ms: 0,
            baseline_ms: 0,
            min_samples: 0,
            action: Action::Degrade,
            step: 0,
        }
    }

    /// Feeds `value` every second from `from_ms` to `to_ms` (inclusive); the steps that changed something.
    fn feed(episode: &mut Episode, from_ms: i64, to_ms: i64, value: Option<f64>) -> Vec<(i64, Step)> {
        let rule = rule();
        (from_ms..=to_ms)
            .step_by(1_000)
            .map(|now| (now, episode.observe(&rule, now, value)))
            .filter(|(_, step)| *step != Step::Unchanged)
            .collect()
    }

    #[test]
    fn fires_after_for_ms_and_not_before() {
        let mut episode = Episode::default();
        assert!(feed(&mut episode, 0, 9_000, Some(150.0)).is_empty());
        assert_eq!(episode.phase, Phase::Pending { since: 0 });
        assert!(!episode.firing());
        assert_eq!(
            feed(&mut episode, 10_000, 10_000, Some(150.0)),
            vec![(10_000, Step::Fired)]
        );
        assert_eq!((episode.since(), episode.last_fired_ms), (Some(10_000), Some(10_000)));
    }

    #[test]
    fn a_dip_before_for_ms_starts_the_wait_again() {
        let mut episode = Episode::default();
        feed(&mut episode, 0, 8_000, Some(150.0));
        feed(&mut episode, 9_000, 9_000, Some(90.0));
        assert_eq!(episode.phase, Phase::Ok);
        assert!(feed(&mut episode, 10_000, 19_000, Some(150.0)).is_empty());
        assert_eq!(
            feed(&mut episode, 20_000, 20_000, Some(150.0)),
            vec![(20_000, Step::Fired)]
        );
    }

    #[test]
    fn fires_once_per_episode() {
        let mut episode = Episode::default();
        let steps = feed(&mut episode, 0, 600_000, Some(500.0));
        assert_eq!(steps, vec![(10_000, Step::Fired)]);
    }

    #[test]
    fn between_clear_and_threshold_neither_resolves_nor_fires_again() {
        let mut episode = Episode::default();
        feed(&mut episode, 0, 10_000, Some(150.0));
        assert!(feed(&mut episode, 11_000, 200_000, Some(90.0)).is_empty());
        assert!(episode.firing());
        // Back above the threshold: still the same episode.
        assert!(feed(&mut episode, 201_000, 300_000, Some(150.0)).is_empty());
        assert_eq!(episode.since(), Some(10_000));
    }

    #[test]
    fn resolves_after_clear_for_ms_past_clear() {
        let mut episode = Episode::default();
        feed(&mut episode, 0, 10_000, Some(150.0));
        assert!(
            feed(&mut episode, 11_000, 40_000, Some(50.0)).is_empty(),
            "not before clear_for_ms"
        );
        assert!(episode.firing());
        assert_eq!(
            feed(&mut episode, 41_000, 41_000, Some(50.0)),
            vec![(41_000, Step::Resolved)]
        );
        assert!(!episode.firing());
        assert_eq!(episode.last_resolved_ms, Some(41_000));
        // A new episode fires again after its own for_ms.
        let steps = feed(&mut episode, 42_000, 60_000, Some(150.0));
        assert_eq!(steps, vec![(52_000, Step::Fired)]);
    }

    #[test]
    fn a_rise_while_clearing_starts_the_clearing_wait_again() {
        let mut episode = Episode::default();
        feed(&mut episode, 0, 10_000, Some(150.0));
        feed(&mut episode, 11_000, 30_000, Some(50.0));
        feed(&mut episode, 31_000, 31_000, Some(90.0));
        assert_eq!(episode.phase, Phase::Firing { since: 10_000 });
        assert!(feed(&mut episode, 32_000, 61_000, Some(50.0)).is_empty());
        assert_eq!(
            feed(&mut episode, 62_000, 62_000, Some(50.0)),
            vec![(62_000, Step::Resolved)]
        );
    }

    #[test]
    fn too_few_samples_hold_a_firing_rule_and_call_off_a_pending_one() {
        let mut episode = Episode::default();
        feed(&mut episode, 0, 5_000, Some(150.0));
        feed(&mut episode, 6_000, 6_000, None);
        assert_eq!(episode.phase, Phase::Ok);
        feed(&mut episode, 10_000, 20_000, Some(150.0));
        assert!(feed(&mut episode, 21_000, 100_000, None).is_empty());
        assert!(episode.firing());
        assert_eq!(episode.value, None);
    }
}
