//! `/v1/tokens` (scope `admin`): create a token with scopes (its secret answered once, only
//! its sha256 stored), list tokens (never a secret), revoke one. Each change is written with
//! its audit row in one transaction, then applied to the in-memory token set.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiState,
    auth::{AuditTarget, AuditWritten, BOOTSTRAP_TOKEN_ID, Caller, Scope, TokenCallbacks, entry},
    error::{ApiError, StrictJson},
    format_time, token_digest,
};
use crate::store::{ApiToken, TokenCallback, TokenOutcome, TokenWrite};

/// Characters a token's name may have.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;
/// Random bytes in a token's secret.
const SECRET_BYTES: usize = 32;
/// What every secret starts with, so a leaked one is easy to spot.
pub const SECRET_PREFIX: &str = "wasp_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Where messages sent with this token call back when they name no `callback_url`.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// What every callback signing secret starts with.
pub const CALLBACK_SECRET_PREFIX: &str = "whsec_";

/// A fresh secret: the prefix and 32 random bytes, base64url.
fn new_secret() -> String {
    random_secret(SECRET_PREFIX)
}

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn token_json(token: &ApiToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "scopes": token.scopes,
        "created_at": format_time(token.created_at_ms),
        "revoked_at": token.revoked_at_ms.map(format_time),
    })
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    StrictJson(request): StrictJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("1 to {MAX_TOKEN_NAME_CHARS} characters"),
        ));
    }
    if request.scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "name at least one scope"));
    }
    if let Some(url) = &request.callback_url {
        crate::callbacks::check_url(url).map_err(|error| ApiError::invalid("callback_url", error))?;
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in &request.scopes {
        if !scopes.iter().any(|known| known == scope.as_str()) {
            scopes.push(scope.as_str().to_owned());
        }
    }
    let secret = new_secret();
    let token = ApiToken {
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_owned(),
        scopes,
        digest: token_digest(&secret),
        created_at_ms: crate::store::now_ms(),
        revoked_at_ms: None,
    };
    let callback = TokenCallback {
        token_id: token.id.clone(),
        url: request.callback_url,
        secret: random_secret(CALLBACK_SECRET_PREFIX),
    };
    // The audit row and the callback defaults are written in the same transaction as the token.
    state
        .store
        .create_token_with_callback(
            token.clone(),
            callback.clone(),
            entry(&caller, "token.create", Some(token.id.clone()), "ok"),
        )
        .await
        .map_err(|error| ApiError::internal("creating a token", &error))?;
    state.tokens.insert(&token);
    state.tokens.set_callback(
        &token.id,
        TokenCallbacks {
            url: callback.url.as_deref().map(Into::into),
            signed: true,
        },
    );
    tracing::info!(token_id = %token.id, by = %caller.token_id, "token created");
    let mut body = token_json(&token);
    body["token"] = Value::String(secret);
    body["callback_url"] = callback.url.map_or(Value::Null, Value::String);
    body["callback_secret"] = Value::String(callback.secret);
    if let Some(object) = body.as_object_mut() {
        object.remove("revoked_at");
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.extensions_mut().insert(AuditWritten);
    response.extensions_mut().insert(AuditTarget(token.id));
    Ok(response)
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let tokens = state
        .store
        .tokens()
        .await
        .map_err(|error| ApiError::internal("listing tokens", &error))?;
    let urls: std::collections::HashMap<String, Option<String>> = state
        .store
        .token_callbacks()
        .await
        .map_err(|error| ApiError::internal("listing tokens", &error))?
        .into_iter()
        .map(|callback| (callback.token_id, callback.url))
        .collect();
    let listed: Vec<Value> = tokens
        .iter()
        .map(|token| {
            let mut body = token_json(token);
            body["callback_url"] = urls
                .get(&token.id)
                .cloned()
                .flatten()
                .map_or(Value::Null, Value::String);
            body
        })
        .collect();
    Ok(Json(json!({"tokens": listed})))
}

/// Revokes a token: `204`, also when it was revoked already; `404` for an unknown id.
pub async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id == BOOTSTRAP_TOKEN_ID {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_revoke",
            "the bootstrap token comes from server.admin_token / WASP_ADMIN_TOKEN; change it there",
        ));
    }
    // The audit row is written in the same transaction as the revocation.
    let outcome = state
        .store
        .token_write(
            TokenWrite::Revoke {
                id: id.clone(),
                at_ms: crate::store::now_ms(),
            },
            entry(&caller, "token.revoke", Some(id.clone()), "ok"),
        )
        .await
        .map_err(|error| ApiError::internal("revoking a token", &error))?;
    match outcome {
        TokenOutcome::UnknownToken => Err(ApiError::not_found(format!("no token {id}"))),
        TokenOutcome::Revoked => {
            state.tokens.remove(&id);
            tracing::info!(token_id = %id, by = %caller.token_id, "token revoked");
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.extensions_mut().insert(AuditWritten);
            Ok(response)
        }
        // Nothing changed: the middleware audits the request itself.
        TokenOutcome::AlreadyRevoked | TokenOutcome::Created => {
            state.tokens.remove(&id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}
