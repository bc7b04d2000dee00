//! `GET/PUT /v1/contacts/{wa_id}`: what wasp knows of a contact (read-only facts) and the
//! attributes and opt-out a business sets. The facts reach every plugin call's context.

use axum::{
    Extension, Json,
    extract::{Path, State},
    response::{IntoResponse as _, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    ApiState,
    auth::{self, AuditWritten, Caller},
    error::{ApiError, ErrorBody, StrictJson},
    format_time,
};
use crate::{
    facts,
    message::PhoneNumber,
    store::{CategoryCounts, Contact, ContactAttributes, ContactWrite, SendCounts},
};

pub const MAX_CONTACT_TAGS: usize = 50;

/// `PUT /v1/contacts/{wa_id}`: `attributes`, `opted_out`, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    #[serde(default)]
    pub attributes: Option<ContactAttributes>,
    #[serde(default)]
    pub opted_out: Option<bool>,
}

// The answers below list their fields in alphabetical order: the order they had on the wire
// when they were built with `json!` (serde_json sorts object keys), kept byte for byte.

/// Business-initiated sends to the contact by category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsBody {
    pub authentication: u32,
    pub marketing: u32,
    pub service: u32,
    pub utility: u32,
}

impl From<CategoryCounts> for CountsBody {
    fn from(counts: CategoryCounts) -> Self {
        Self {
            authentication: counts.authentication,
            marketing: counts.marketing,
            service: counts.service,
            utility: counts.utility,
        }
    }
}

/// What wasp knows of a contact; read-only, and what every plugin call sees.
#[derive(Debug, Serialize, ToSchema)]
pub struct FactsBody {
    pub country_code: Option<u16>,
    pub first_seen: Option<String>,
    pub interactions: u32,
    pub last_inbound: Option<String>,
    pub sent_24h: CountsBody,
    pub sent_7d: CountsBody,
    pub service_window_expires_at: Option<String>,
    pub service_window_open: bool,
    /// IANA; the attribute if set, else derived from the number.
    pub time_zone: String,
    pub utc_offset_minutes: i32,
}

/// The answer of `GET` and `PUT /v1/contacts/{wa_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactBody {
    /// As set by the business; built as a JSON value so its keys keep their sorted order.
    #[schema(value_type = ContactAttributes)]
    pub attributes: Value,
    pub facts: FactsBody,
    pub opted_out: bool,
    pub updated_at: Option<String>,
    /// Digits, without `+`.
    pub wa_id: String,
}

/// Accepts `6591234567` or `+6591234567`; answers the number.
fn number_of(wa_id: &str) -> Result<PhoneNumber, ApiError> {
    let with_plus = if wa_id.starts_with('+') {
        wa_id.to_owned()
    } else {
        format!("+{wa_id}")
    };
    PhoneNumber::parse(&with_plus).map_err(|error| ApiError::invalid("wa_id", error.to_string()))
}

fn contact_body(number: &PhoneNumber, contact: Option<&Contact>, sends: &SendCounts, now_ms: i64) -> ContactBody {
    let last_inbound_ms = contact.and_then(|contact| contact.last_inbound_ms);
    let window_expires = last_inbound_ms.map(|at| at + facts::SERVICE_WINDOW_MS);
    let time_zone = contact
        .and_then(|contact| contact.attributes.time_zone.clone())
        .unwrap_or_else(|| facts::zone_for(number).to_owned());
    let attributes = contact.map(|contact| contact.attributes.clone()).unwrap_or_default();
    ContactBody {
        // Plain strings and lists: this cannot fail.
        attributes: serde_json::to_value(attributes).unwrap_or_default(),
        facts: FactsBody {
            country_code: number.country_code(),
            first_seen: contact.map(|contact| format_time(contact.first_seen_ms)),
            interactions: contact.map_or(0, |contact| contact.interactions),
            last_inbound: last_inbound_ms.map(format_time),
            sent_24h: sends.last_24h.into(),
            sent_7d: sends.last_7d.into(),
            service_window_expires_at: window_expires.filter(|expires| *expires > now_ms).map(format_time),
            service_window_open: window_expires.is_some_and(|expires| expires > now_ms),
            utc_offset_minutes: facts::utc_offset_minutes(&time_zone, now_ms),
            time_zone,
        },
        opted_out: contact.is_some_and(|contact| contact.opted_out),
        updated_at: contact.map(|contact| format_time(contact.updated_at_ms)),
        wa_id: number.digits().to_owned(),
    }
}

/// A contact's facts: 404 only when wasp has neither heard from nor sent to the number.
#[utoipa::path(
    get,
    path = "/v1/contacts/{wa_id}",
    tag = "contacts",
    params(("wa_id" = String, Path, description = "The number, digits with or without `+`", example = "6591234567")),
    responses(
        (status = 200, description = "The contact's facts and attributes", body = ContactBody),
        (status = 400, description = "The number is not a phone number", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 404, description = "wasp has neither heard from nor sent to the number", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<ApiState>, Path(wa_id): Path<String>) -> Result<Json<ContactBody>, ApiError> {
    let number = number_of(&wa_id)?;
    let now = crate::store::now_ms();
    let contact = state
        .store
        .contacts(&[number.digits()])
        .await
        .map_err(|error| ApiError::internal("reading a contact", &error))?
        .pop();
    let sends = state
        .store
        .send_counts(&[number.digits()], now)
        .await
        .map_err(|error| ApiError::internal("reading a contact's sends", &error))?
        .remove(number.digits());
    if contact.is_none() && sends.is_none() {
        return Err(ApiError::not_found(format!("no contact {}", number.digits())));
    }
    Ok(Json(contact_body(
        &number,
        contact.as_ref(),
        &sends.unwrap_or_default(),
        now,
    )))
}

#[utoipa::path(
    put,
    path = "/v1/contacts/{wa_id}",
    tag = "contacts",
    params(("wa_id" = String, Path, description = "The number, digits with or without `+`", example = "6591234567")),
    request_body = ContactRequest,
    responses(
        (status = 200, description = "Written; the contact as it now stands", body = ContactBody),
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
    Path(wa_id): Path<String>,
    StrictJson(request): StrictJson<ContactRequest>,
) -> Result<Response, ApiError> {
    let number = number_of(&wa_id)?;
    if let Some(attributes) = &request.attributes {
        if let Some(zone) = &attributes.time_zone
            && !facts::is_known_zone(zone)
        {
            return Err(ApiError::invalid(
                "attributes.time_zone",
                format!("{zone:?} is not an IANA time zone such as \"Europe/Berlin\""),
            ));
        }
        if attributes.tags.len() > MAX_CONTACT_TAGS {
            return Err(ApiError::invalid(
                "attributes.tags",
                format!("at most {MAX_CONTACT_TAGS} tags"),
            ));
        }
    }
    if request.attributes.is_none() && request.opted_out.is_none() {
        return Err(ApiError::invalid(
            "attributes",
            "send `attributes`, `opted_out`, or both",
        ));
    }
    // The audit row is written in the same transaction as the contact.
    state
        .store
        .contact_writes_audited(
            vec![ContactWrite::Put {
                wa_id: number.digits().to_owned(),
                attributes: request.attributes,
                opted_out: request.opted_out,
                at_ms: crate::store::now_ms(),
            }],
            auth::entry(&caller, "contact.put", Some(number.digits().to_owned()), "ok"),
        )
        .await
        .map_err(|error| ApiError::internal("writing a contact", &error))?;
    let mut response = get(State(state), Path(wa_id)).await?.into_response();
    response.extensions_mut().insert(AuditWritten);
    Ok(response)
}
