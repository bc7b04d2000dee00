//! `GET /v1/audit` (scope `admin`): the audit log of admin actions, newest first, filtered by
//! `action`, `token_id`, `target`, `since` and `until` (RFC 3339), a page at a time
//! (`limit`, `cursor` from the previous page's `next_cursor`).

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
use crate::store::AuditFilter;

/// Rows a page has unless `limit` says otherwise.
pub const DEFAULT_AUDIT_LIMIT: usize = 50;
/// The most rows a page has.
pub const MAX_AUDIT_LIMIT: usize = 500;

const FIELDS: [&str; 7] = ["action", "token_id", "target", "since", "until", "limit", "cursor"];

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    let moment = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time such as 2026-01-31T12:00:00Z"),
        )
    })?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::invalid(field, format!("{text:?} is out of range")))
}

fn non_empty(field: &str, value: Option<&String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.is_empty() => Err(ApiError::invalid(field, "is empty; leave it out to not filter")),
        other => Ok(other.cloned()),
    }
}

/// The filter a query string asks for; `400` naming the field at fault.
pub fn filter_of(query: &HashMap<String, String>) -> Result<AuditFilter, ApiError> {
    if let Some(unknown) = query.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(ApiError::invalid(
            unknown.as_str(),
            format!("is not a filter; use {}", FIELDS.join(", ")),
        ));
    }
    let limit = match query.get("limit") {
        None => DEFAULT_AUDIT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_AUDIT_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("a whole number from 1 to {MAX_AUDIT_LIMIT}"),
                ));
            }
        },
    };
    let before_seq = query
        .get("cursor")
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|seq| *seq > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "use the `next_cursor` of the previous page"))
        })
        .transpose()?;
    let since_ms = query.get("since").map(|text| parse_time("since", text)).transpose()?;
    let until_ms = query.get("until").map(|text| parse_time("until", text)).transpose()?;
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since > until
    {
        return Err(ApiError::invalid("until", "is before `since`"));
    }
    Ok(AuditFilter {
        action: non_empty("action", query.get("action"))?,
        token_id: non_empty("token_id", query.get("token_id"))?,
        target: non_empty("target", query.get("target"))?,
        since_ms,
        until_ms,
        before_seq,
        limit,
    })
}

/// The query as documented; the handler reads it as a map to name an unknown filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Such as `plugin.activate`.
    pub action: Option<String>,
    pub token_id: Option<String>,
    /// A plugin name, a wa_id, a token id.
    pub target: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339, not before `since`.
    pub until: Option<String>,
    /// 1 to 500; 50 when left out.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

// Fields in alphabetical order: the order they had on the wire when they were built with
// `json!` (serde_json sorts object keys), kept byte for byte.

/// One admin action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryBody {
    /// Such as `plugin.activate`.
    pub action: String,
    pub at: String,
    /// `ok`, or the error code the API answered.
    pub outcome: String,
    pub seq: i64,
    pub target: Option<String>,
    /// `bootstrap` for the configured admin token.
    pub token_id: String,
}

/// The answer of `GET /v1/audit`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryBody>,
    /// Pass back as `cursor` for the next page; `null`: no more.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log, newest first", body = AuditPage),
        (status = 400, description = "A parameter is invalid or unknown", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    let mut filter = filter_of(&query)?;
    let limit = filter.limit;
    // One more than asked tells whether another page follows.
    filter.limit = limit + 1;
    let mut records = state
        .store
        .audit_log(&filter)
        .await
        .map_err(|error| ApiError::internal("reading the audit log", &error))?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = if more {
        records.last().map(|record| record.seq.to_string())
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries: records
            .into_iter()
            .map(|record| AuditEntryBody {
                action: record.entry.action,
                at: format_time(record.entry.at_ms),
                outcome: record.entry.outcome,
                seq: record.seq,
                target: record.entry.target,
                token_id: record.entry.token_id,
            })
            .collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn filters_parse_and_bad_ones_name_their_field() {
        let filter = filter_of(&query(&[
            ("action", "plugin.activate"),
            ("since", "2026-01-01T00:00:00Z"),
            ("until", "2026-01-02T00:00:00+01:00"),
            ("limit", "500"),
            ("cursor", "42"),
        ]))
        .unwrap();
        assert_eq!(filter.action.as_deref(), Some("plugin.activate"));
        assert_eq!(filter.since_ms, Some(1_767_225_600_000));
        assert_eq!(filter.until_ms, Some(1_767_225_600_000 + 23 * 3_600_000));
        assert_eq!(filter.limit, 500);
        assert_eq!(filter.before_seq, Some(42));
        assert_eq!(filter_of(&query(&[])).unwrap().limit, DEFAULT_AUDIT_LIMIT);

        for (key, value) in [
            ("since", "yesterday"),
            ("until", "2026-13-01T00:00:00Z"),
            ("limit", "0"),
            ("limit", "501"),
            ("limit", "ten"),
            ("cursor", "abc"),
            ("action", ""),
            ("colour", "red"),
        ] {
            let error = filter_of(&query(&[(key, value)])).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(key), "{key}={value}");
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
