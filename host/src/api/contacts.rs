//! `GET/PUT /v1/contacts/{wa_id}`: what wasp knows of a contact (read-only facts) and the
//! attributes and opt-out a business sets. The facts reach every plugin call's context.

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
use crate::{
    facts,
    message::PhoneNumber,
    store::{Contact, ContactAttributes, ContactWrite, SendCounts},
};

pub const MAX_CONTACT_TAGS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    #[serde(default)]
    pub attributes: Option<ContactAttributes>,
    #[serde(default)]
    pub opted_out: Option<bool>,
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

fn contact_json(number: &PhoneNumber, contact: Option<&Contact>, sends: &SendCounts, now_ms: i64) -> Value {
    let last_inbound_ms = contact.and_then(|contact| contact.last_inbound_ms);
    let window_expires = last_inbound_ms.map(|at| at + facts::SERVICE_WINDOW_MS);
    let time_zone = contact
        .and_then(|contact| contact.attributes.time_zone.clone())
        .unwrap_or_else(|| facts::zone_for(number).to_owned());
    json!({
        "wa_id": number.digits(),
        "facts": {
            "first_seen": contact.map(|contact| format_time(contact.first_seen_ms)),
            "last_inbound": last_inbound_ms.map(format_time),
            "interactions": contact.map_or(0, |contact| contact.interactions),
            "service_window_open": window_expires.is_some_and(|expires| expires > now_ms),
            "service_window_expires_at": window_expires.filter(|expires| *expires > now_ms).map(format_time),
            "country_code": number.country_code(),
            "time_zone": time_zone,
            "utc_offset_minutes": facts::utc_offset_minutes(&time_zone, now_ms),
            "sent_24h": sends.last_24h,
            "sent_7d": sends.last_7d,
        },
        "opted_out": contact.is_some_and(|contact| contact.opted_out),
        "attributes": contact.map(|contact| contact.attributes.clone()).unwrap_or_default(),
        "updated_at": contact.map(|contact| format_time(contact.updated_at_ms)),
    })
}

/// A contact's facts: 404 only when wasp has neither heard from nor sent to the number.
pub async fn get(State(state): State<ApiState>, Path(wa_id): Path<String>) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(contact_json(
        &number,
        contact.as_ref(),
        &sends.unwrap_or_default(),
        now,
    )))
}

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
