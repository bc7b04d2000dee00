//! `GET /v1/stats?window=1h&by=category`: receipts and rates over the last `window` (whole
//! minutes, up to `stats.retention_days`), grouped by category, template, region, sender or
//! minute, from the store's per-minute rollups (so the same from every node, and across
//! restarts). Parses and checks the query, asks [`crate::store::Store::stats`], and answers.
//! May call the store.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiState,
    error::{ApiError, ErrorBody},
    format_time,
};
use crate::store::{StatsDimension, StatsFigures, StatsKey, StatsQuery};

/// The window when the query names none.
pub const DEFAULT_WINDOW: &str = "1h";
/// The grouping when the query names none.
pub const DEFAULT_BY: &str = "category";
/// What a group without a template, a known region or a known sender is called.
pub const NONE_KEY: &str = "(none)";

const FIELDS: [&str; 2] = ["window", "by"];
const MINUTE_MS: i64 = 60_000;

/// A window of whole minutes, as `5m`, `15m`, `1h`, `24h` or `7d` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub minutes: i64,
}

/// Reads a window: a whole number and a unit (`m`, `h`, `d`), from one minute up to
/// `max_days`. The error says what is wrong, for the field `window`.
pub fn parse_window(text: &str, max_days: u32) -> Result<Window, String> {
    let shape = || format!("{text:?} is not a window such as 5m, 15m, 1h, 24h or 7d (units m, h, d)");
    // The unit is the last character, whatever its width: a multi-byte one is refused below.
    let unit_at = text.char_indices().last().map(|(at, _)| at).ok_or_else(shape)?;
    let (number, unit) = text.split_at(unit_at);
    let minutes_per_unit = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 24 * 60,
        _ => return Err(shape()),
    };
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(shape());
    }
    let most = i64::from(max_days) * 24 * 60;
    let minutes = number
        .parse::<i64>()
        .ok()
        .and_then(|count| count.checked_mul(minutes_per_unit))
        .filter(|minutes| *minutes <= most);
    match minutes {
        Some(minutes) if minutes >= 1 => Ok(Window { minutes }),
        Some(_) => Err(format!("{text:?}: a window is at least one minute")),
        None => Err(format!(
            "{text:?} is longer than the {max_days} days of stats kept (stats.retention_days)"
        )),
    }
}

fn parse_by(text: &str) -> Result<StatsDimension, ApiError> {
    Ok(match text {
        "category" => StatsDimension::Category,
        "template" => StatsDimension::Template,
        "region" => StatsDimension::Region,
        "sender" => StatsDimension::Sender,
        "minute" => StatsDimension::Minute,
        other => {
            return Err(ApiError::invalid(
                "by",
                format!("{other:?} is not a grouping; use category, template, region, sender or minute"),
            ));
        }
    })
}

/// The query as documented; the handler reads it as a map to name an unknown parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// How far back from now: whole minutes and up, `5m`, `15m`, `1h`, `24h`, `7d` (units m,
    /// h, d), at most `stats.retention_days`; `1h` when left out. The current minute is
    /// included.
    pub window: Option<String>,
    /// `category` (when left out), `template` (messages that are not templates grouped as
    /// `(none)`), `region` (the country calling code, as `"65"`), `sender` (the phone number
    /// id; `(none)` holds acceptances, counted before a number is chosen, and SMS), or
    /// `minute` (each minute of the window, in time order, empty ones included).
    pub by: Option<String>,
}

// Fields in alphabetical order: every answer of the API lists its keys sorted.

/// Failures with one of Meta's error codes.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct FailureCodeBody {
    pub code: i64,
    pub count: i64,
}

/// One group's receipts and rates.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsGroupBody {
    pub accepted: i64,
    pub delivered: i64,
    /// delivered / sent, to four places; `null` when nothing was sent.
    pub delivered_rate: Option<f64>,
    pub expired: i64,
    pub failed: i64,
    /// By code; failures without a code are in `failed` only.
    pub failure_codes: Vec<FailureCodeBody>,
    pub fell_back: i64,
    /// The category; the template's name; the country calling code; the phone number id;
    /// or the minute's start (RFC 3339). `(none)` for no template, region or sender.
    pub key: String,
    /// From `sent` to `delivered`, from the rollups' histogram; `null` without samples.
    pub median_ms_to_delivered: Option<i64>,
    pub median_ms_to_read: Option<i64>,
    /// Messages read (a read without a delivered counts as delivered too).
    pub read: i64,
    /// read / delivered, to four places; `null` when nothing was delivered.
    pub read_rate: Option<f64>,
    pub rejected: i64,
    pub sent: i64,
}

/// The whole window's receipts and rates.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsTotalBody {
    pub accepted: i64,
    pub delivered: i64,
    pub delivered_rate: Option<f64>,
    pub expired: i64,
    pub failed: i64,
    pub failure_codes: Vec<FailureCodeBody>,
    pub fell_back: i64,
    pub median_ms_to_delivered: Option<i64>,
    pub median_ms_to_read: Option<i64>,
    pub read: i64,
    pub read_rate: Option<f64>,
    pub rejected: i64,
    pub sent: i64,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptsBody {
    /// `category`, `template`, `region`, `sender` or `minute`.
    pub by: String,
    /// The window's first minute (RFC 3339).
    pub from: String,
    pub groups: Vec<StatsGroupBody>,
    /// The end of the window (RFC 3339): the end of the current minute.
    pub to: String,
    pub total: StatsTotalBody,
    /// As asked.
    pub window: String,
}

fn failure_codes(figures: &StatsFigures) -> Vec<FailureCodeBody> {
    figures
        .failure_codes
        .iter()
        .map(|(code, count)| FailureCodeBody {
            code: *code,
            count: *count,
        })
        .collect()
}

fn key_text(key: &StatsKey) -> String {
    let or_none = |value: Option<String>| value.unwrap_or_else(|| NONE_KEY.to_owned());
    match key {
        StatsKey::Category(category) => category.as_str().to_owned(),
        StatsKey::Template(name) => or_none(name.clone()),
        StatsKey::Region(code) => or_none(code.map(|code| code.to_string())),
        StatsKey::Sender(id) => or_none(id.clone()),
        StatsKey::Minute(start_ms) => format_time(*start_ms),
    }
}

impl StatsGroupBody {
    fn new(key: String, figures: &StatsFigures) -> Self {
        let counts = &figures.counts;
        Self {
            accepted: counts.accepted,
            delivered: counts.delivered,
            delivered_rate: figures.delivered_rate(),
            expired: counts.expired,
            failed: counts.failed,
            failure_codes: failure_codes(figures),
            fell_back: counts.fell_back,
            key,
            median_ms_to_delivered: figures.median_ms_to_delivered,
            median_ms_to_read: figures.median_ms_to_read,
            read: counts.read,
            read_rate: figures.read_rate(),
            rejected: counts.rejected,
            sent: counts.sent,
        }
    }
}

impl From<&StatsFigures> for StatsTotalBody {
    fn from(figures: &StatsFigures) -> Self {
        let counts = &figures.counts;
        Self {
            accepted: counts.accepted,
            delivered: counts.delivered,
            delivered_rate: figures.delivered_rate(),
            expired: counts.expired,
            failed: counts.failed,
            failure_codes: failure_codes(figures),
            fell_back: counts.fell_back,
            median_ms_to_delivered: figures.median_ms_to_delivered,
            median_ms_to_read: figures.median_ms_to_read,
            read: counts.read,
            read_rate: figures.read_rate(),
            rejected: counts.rejected,
            sent: counts.sent,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "stats",
    params(StatsParams),
    responses(
        (status = 200, description = "Receipts and rates over the window, grouped", body = ReceiptsBody),
        (status = 400, description = "`window` or `by` is invalid, or a parameter is unknown", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ReceiptsBody>, ApiError> {
    if let Some(unknown) = query.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(ApiError::invalid(
            unknown.as_str(),
            format!("is not a parameter; use {}", FIELDS.join(", ")),
        ));
    }
    let window_text = query.get("window").map_or(DEFAULT_WINDOW, String::as_str);
    let window = parse_window(window_text, state.stats_retention_days)
        .map_err(|message| ApiError::invalid("window", message))?;
    let by_text = query.get("by").map_or(DEFAULT_BY, String::as_str);
    let by = parse_by(by_text)?;
    // The window ends with the current minute, so what just happened is in it.
    let to_ms = (crate::store::now_ms().div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
    let from_ms = to_ms - window.minutes * MINUTE_MS;
    let report = state
        .store
        .stats(&StatsQuery { from_ms, to_ms, by })
        .await
        .map_err(|error| ApiError::internal("reading the stats rollups", &error))?;
    Ok(Json(ReceiptsBody {
        by: by_text.to_owned(),
        from: format_time(report.from_ms),
        groups: report
            .groups
            .iter()
            .map(|group| StatsGroupBody::new(key_text(&group.key), &group.figures))
            .collect(),
        to: format_time(report.to_ms),
        total: StatsTotalBody::from(&report.total),
        window: window_text.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Category;

    #[test]
    fn windows_are_whole_minutes_hours_or_days() {
        for (text, minutes) in [
            ("1m", 1),
            ("5m", 5),
            ("15m", 15),
            ("1h", 60),
            ("24h", 1_440),
            ("7d", 10_080),
        ] {
            assert_eq!(parse_window(text, 35), Ok(Window { minutes }), "{text}");
        }
        assert_eq!(parse_window("35d", 35), Ok(Window { minutes: 35 * 1_440 }));
    }

    #[test]
    fn bad_windows_say_why() {
        for text in [
            "", "m", "30s", "1", "1.5h", "-5m", "+5m", "5 m", "5M", "h1", "1hh", "٣m", "\u{80}", "5\u{80}", "é",
        ] {
            let error = parse_window(text, 35).unwrap_err();
            assert!(error.contains("is not a window"), "{text}: {error}");
        }
        assert!(parse_window("0m", 35).unwrap_err().contains("at least one minute"));
        assert!(parse_window("36d", 35).unwrap_err().contains("stats.retention_days"));
        assert!(parse_window("50401m", 35).unwrap_err().contains("35 days"));
        assert!(
            parse_window("99999999999999999999d", 35)
                .unwrap_err()
                .contains("35 days")
        );
    }

    #[test]
    fn groupings_parse_and_a_bad_one_names_by() {
        assert_eq!(parse_by("minute").unwrap(), StatsDimension::Minute);
        assert_eq!(parse_by("region").unwrap(), StatsDimension::Region);
        let error = parse_by("country").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("by"));
    }

    #[test]
    fn keys_read_as_the_api_shows_them() {
        assert_eq!(key_text(&StatsKey::Category(Category::Utility)), "utility");
        assert_eq!(key_text(&StatsKey::Template(None)), "(none)");
        assert_eq!(key_text(&StatsKey::Region(Some(65))), "65");
        assert_eq!(key_text(&StatsKey::Sender(Some("1001".into()))), "1001");
        assert_eq!(key_text(&StatsKey::Minute(1_800_000_300_000)), "2027-01-15T08:05:00Z");
    }
}
