//! `GET /v1/senders` and `PUT /v1/senders/{phone_number}`: the account's sender facts (tier,
//! quality, business-initiated sends in the last 24 h) as policies see them, each number's
//! record, and an operator's correction of a number's tier or quality.

use axum::{
    Extension, Json,
    extract::{Path, State},
    response::{IntoResponse as _, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    ApiState,
    auth::{self, AuditWritten, Caller},
    error::{ApiError, ErrorBody, StrictJson},
    format_time,
};
use crate::{message::Quality, store::SenderNumber};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderRequest {
    /// Business-initiated conversations per 24 h, at least 1; `null` or left out: unlimited.
    #[schema(minimum = 1)]
    pub tier_limit: Option<u32>,
    #[schema(example = "green")]
    pub quality: Quality,
}

// Fields in alphabetical order: the order they had on the wire when they were built with
// `json!` (serde_json sorts object keys), kept byte for byte.

/// One sender number's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct SenderNumberBody {
    /// Meta's event that set it (`UPGRADE`, `FLAGGED`, ...), if it came from a webhook.
    pub last_event: Option<String>,
    pub phone_number: String,
    pub quality: Quality,
    /// `webhook` or `admin`.
    pub source: String,
    pub tier_limit: Option<u32>,
    pub updated_at: String,
}

/// The answer of `GET /v1/senders`: the account's facts as policies see them, and each number.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendersBody {
    pub numbers: Vec<SenderNumberBody>,
    pub quality: Quality,
    /// Business-initiated WhatsApp sends in the last 24 hours.
    pub sent_24h: u32,
    pub tier_limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/senders",
    tag = "senders",
    responses(
        (status = 200, description = "The sender facts and numbers", body = SendersBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<SendersBody>, ApiError> {
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
    let numbers = numbers
        .into_iter()
        .map(|number| SenderNumberBody {
            last_event: number.last_event,
            phone_number: number.phone_number,
            quality: number.quality,
            source: number.source,
            tier_limit: number.tier_limit,
            updated_at: format_time(number.updated_at_ms),
        })
        .collect();
    Ok(Json(SendersBody {
        numbers,
        quality: facts.quality,
        sent_24h: facts.sent_24h,
        tier_limit: facts.tier_limit,
    }))
}

#[utoipa::path(
    put,
    path = "/v1/senders/{phone_number}",
    tag = "senders",
    params(("phone_number" = String, Path, description = "A display phone number or phone number id, digits", example = "6591234567")),
    request_body = SenderRequest,
    responses(
        (status = 200, description = "Recorded; the sender facts as they now stand", body = SendersBody),
        (status = 400, description = "A field is invalid, or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `contacts:write`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
