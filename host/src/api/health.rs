//! `GET /v1/health/rules`: each health rule as this node evaluated it last (whether it fires,
//! since when, the value it saw, its last firing and resolution, the templates it flagged),
//! and whether the node is in degraded mode. Reads [`crate::health::Health`] only.

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiState, error::ErrorBody, format_time};
use crate::health::{RuleState, config::Direction};

// Fields in alphabetical order: every answer of the API lists its keys sorted.

/// A template a rule per template follows: pending or firing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectBody {
    /// Its own read rate over the rule's baseline.
    pub baseline: Option<f64>,
    pub firing: bool,
    /// Its read rate over the rule's window.
    pub read_rate: Option<f64>,
    /// When it began firing (RFC 3339); null while pending.
    pub since: Option<String>,
    /// The template's name.
    pub subject: String,
    /// `read_rate / baseline`, what the rule compares; null with too few messages.
    pub value: Option<f64>,
}

/// One rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBody {
    /// `scale_out`, `degrade` or `flag_template`.
    pub action: &'static str,
    /// The value past which it resolves (after `clear_for_ms` there).
    pub clear: f64,
    pub clear_for_ms: u64,
    /// `above` or `below`: the side of `threshold` it fires on.
    pub direction: &'static str,
    pub firing: bool,
    /// How long the condition must hold before it fires.
    pub for_ms: u64,
    pub last_fired_at: Option<String>,
    pub last_resolved_at: Option<String>,
    /// `upstream_5xx_rate`, `backlog` or `template_read_rate`.
    pub metric: &'static str,
    pub name: String,
    /// When the current firing began (the earliest of its subjects); null when not firing.
    pub since: Option<String>,
    /// A rule per template: the templates pending or firing.
    pub subjects: Vec<SubjectBody>,
    pub threshold: f64,
    /// The value last seen; null with too few samples, and for a rule per template.
    pub value: Option<f64>,
}

/// The answer of `GET /v1/health/rules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthRulesBody {
    /// Whether a rule holds this node in degraded mode (bulk paused, media degraded).
    pub degraded: bool,
    pub rules: Vec<RuleBody>,
}

impl From<RuleState> for RuleBody {
    fn from(state: RuleState) -> Self {
        let firing = state.firing();
        let since = state.since().map(format_time);
        let RuleState {
            rule,
            episode,
            subjects,
        } = state;
        Self {
            action: rule.action.as_str(),
            clear: rule.clear,
            clear_for_ms: rule.clear_for_ms,
            direction: match rule.direction {
                Direction::Above => "above",
                Direction::Below => "below",
            },
            firing,
            for_ms: rule.for_ms,
            last_fired_at: episode.last_fired_ms.map(format_time),
            last_resolved_at: episode.last_resolved_ms.map(format_time),
            metric: rule.metric.as_str(),
            name: rule.name,
            since,
            subjects: subjects
                .into_iter()
                .map(|(subject, state)| SubjectBody {
                    baseline: state.baseline,
                    firing: state.episode.firing(),
                    read_rate: state.read_rate,
                    since: state.episode.since().map(format_time),
                    subject,
                    value: state.episode.value,
                })
                .collect(),
            threshold: rule.threshold,
            value: episode.value,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/health/rules",
    tag = "health",
    responses(
        (status = 200, description = "The health rules as this node evaluated them last", body = HealthRulesBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rules(State(state): State<ApiState>) -> Json<HealthRulesBody> {
    Json(HealthRulesBody {
        degraded: state.health.degraded(),
        rules: state.health.rules().into_iter().map(RuleBody::from).collect(),
    })
}
