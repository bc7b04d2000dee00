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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    ApiState,
    auth::{AuditTarget, AuditWritten, BOOTSTRAP_TOKEN_ID, Caller, Scope, TokenCallbacks, entry},
    error::{ApiError, ErrorBody, StrictJson},
    format_time, token_digest,
};
use crate::store::{ApiToken, TokenCallback, TokenOutcome, TokenWrite};

/// Characters a token's name may have.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;
/// Random bytes in a token's secret.
const SECRET_BYTES: usize = 32;
/// What every secret starts with, so a leaked one is easy to spot.
pub const SECRET_PREFIX: &str = "wasp_";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing service", "scopes": ["messages:send", "messages:read"]}))]
pub struct CreateRequest {
    /// 1 to 100 characters.
    pub name: String,
    /// At least one.
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

// The answers below list their fields in alphabetical order: the order they had on the wire
// when they were built with `json!` (serde_json sorts object keys), kept byte for byte.

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// Where messages sent with it call back when they name no `callback_url`.
    pub callback_url: Option<String>,
    pub created_at: String,
    pub id: String,
    pub name: String,
    pub revoked_at: Option<String>,
    pub scopes: Vec<String>,
}

/// The answer of `GET /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenBody>,
}

/// The answer of `POST /v1/tokens`: the secrets are shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Signs this token's callbacks (`whsec_...`).
    pub callback_secret: String,
    pub callback_url: Option<String>,
    pub created_at: String,
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The bearer secret (`wasp_...`); only its sha256 is stored.
    pub token: String,
}

#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Created; its secrets are shown this once", body = CreatedToken),
        (status = 400, description = "A field is invalid, or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
    let body = CreatedToken {
        callback_secret: callback.secret,
        callback_url: callback.url,
        created_at: format_time(token.created_at_ms),
        id: token.id.clone(),
        name: token.name,
        scopes: token.scopes,
        token: secret,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.extensions_mut().insert(AuditWritten);
    response.extensions_mut().insert(AuditTarget(token.id));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "Every token, revoked ones too; never a secret", body = TokenList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<TokenList>, ApiError> {
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
    let listed = tokens
        .into_iter()
        .map(|token| TokenBody {
            callback_url: urls.get(&token.id).cloned().flatten(),
            created_at: format_time(token.created_at_ms),
            revoked_at: token.revoked_at_ms.map(format_time),
            id: token.id,
            name: token.name,
            scopes: token.scopes,
        })
        .collect();
    Ok(Json(TokenList { tokens: listed }))
}

/// Revokes a token: `204`, also when it was revoked already; `404` for an unknown id.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id (`tok_...`)")),
    responses(
        (status = 204, description = "Revoked, or revoked already"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `admin`", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The bootstrap token comes from config and cannot be revoked here", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
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
