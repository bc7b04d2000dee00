//! `GET /v1/senders` and `PUT /v1/senders/{phone_number}`: the account's sender facts (tier,
//! quality, business-initiated sends in the last 24 h) as policies see them, each number's
//! record, and an operator's correction of a number's tier or quality.

use axum::{
    Extension, Json,
    extract::{Path, State},
    response::{IntoResponse as _, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiState,
    auth::{self, AuditWritten, Caller},
    error::ApiError,
    error::StrictJson,
    format_time,
};
use crate::{message::Quality, store::SenderNumber};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderRequest {
    /// Business-initiated conversations per 24 h; `null`: unlimited.
    pub tier_limit: Option<u32>,
    pub quality: Quality,
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let now = crate::store::now_ms();
    let facts = state
        .senders
        .fresh_facts(now)
        .await
        .map_err(|error| ApiError::internal("reading sender facts", &error))?;
    let numbers = state
        .senders
        .numbers()
        .await
        .map_err(|error| ApiError::internal("reading sender numbers", &error))?;
    let numbers: Vec<Value> = numbers
        .into_iter()
        .map(|number| {
            json!({
                "phone_number": number.phone_number,
                "tier_limit": number.tier_limit,
                "quality": number.quality,
                "last_event": number.last_event,
                "source": number.source,
                "updated_at": format_time(number.updated_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({
        "tier_limit": facts.tier_limit,
        "quality": facts.quality,
        "sent_24h": facts.sent_24h,
        "numbers": numbers,
    })))
}

pub async fn put(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(phone_number): Path<String>,
    StrictJson(request): StrictJson<SenderRequest>,
) -> Result<Response, ApiError> {
    let digits = phone_number.trim_start_matches('+');
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::invalid(
            "phone_number",
            "a display phone number or phone number id: digits only",
        ));
    }
    if request.tier_limit == Some(0) {
        return Err(ApiError::invalid(
            "tier_limit",
            "must be at least 1; use null for unlimited",
        ));
    }
    // The audit row is written in the same transaction as the number.
    state
        .senders
        .record_audited(
            SenderNumber {
                phone_number: digits.to_owned(),
                tier_limit: request.tier_limit,
                quality: request.quality,
                last_event: None,
                source: "admin".into(),
                updated_at_ms: crate::store::now_ms(),
            },
            auth::entry(&caller, "sender.put", Some(digits.to_owned()), "ok"),
        )
        .await
        .map_err(|error| ApiError::internal("writing a sender number", &error))?;
    let mut response = list(State(state)).await?.into_response();
    response.extensions_mut().insert(AuditWritten);
    Ok(response)
}
