//! Who may call what: the token scopes, the one table of `/v1` routes with the scope each
//! needs and the audit action it is, the in-memory set of live tokens, and the middleware that
//! authenticates, authorizes and audits every `/v1` request.
//!
//! The router is built from [`ROUTES`], so a route cannot exist without its scope. Token
//! checks never touch the database: the live tokens are loaded at start and updated on
//! create and revoke, and read again when another node changed them ([`Tokens::reload`]).
//! Presented tokens are hashed (sha256) and compared in constant time.
//! May call the store (to append audit rows).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use axum::{
    RequestExt as _,
    extract::{RawPathParams, Request, State},
    http::{Method, header},
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};

use super::{ApiError, ApiState, error::ErrorCode, token_digest};
use crate::store::{ApiToken, AuditEntry, TokenCallback};

/// The token id of the admin token from config (`server.admin_token`, `WASP_ADMIN_TOKEN`).
pub const BOOTSTRAP_TOKEN_ID: &str = "bootstrap";

/// What a token may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    #[serde(rename = "messages:send")]
    MessagesSend,
    #[serde(rename = "messages:read")]
    MessagesRead,
    #[serde(rename = "plugins:write")]
    PluginsWrite,
    #[serde(rename = "plugins:read")]
    PluginsRead,
    #[serde(rename = "templates:write")]
    TemplatesWrite,
    #[serde(rename = "contacts:write")]
    ContactsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::MessagesSend,
        Scope::MessagesRead,
        Scope::PluginsWrite,
        Scope::PluginsRead,
        Scope::TemplatesWrite,
        Scope::ContactsWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MessagesSend => "messages:send",
            Scope::MessagesRead => "messages:read",
            Scope::PluginsWrite => "plugins:write",
            Scope::PluginsRead => "plugins:read",
            Scope::TemplatesWrite => "templates:write",
            Scope::ContactsWrite => "contacts:write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| format!("unknown scope {text:?}"))
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    /// Whether these scopes grant `scope` (`admin` grants all).
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }
}

/// An HTTP method of a `/v1` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

/// One `/v1` route: what it needs, and whether it is an audited admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub verb: Verb,
    /// As the router matches it, `{param}` for path parameters.
    pub path: &'static str,
    pub scope: Scope,
    /// The audit log's `action`; the target is the route's first path parameter.
    pub audit: Option<&'static str>,
}

const fn route(verb: Verb, path: &'static str, scope: Scope, audit: Option<&'static str>) -> Route {
    Route {
        verb,
        path,
        scope,
        audit,
    }
}

/// Every `/v1` route. The router is built from this table (see `api::router_with_limits`):
/// a route missing here is not served.
///
/// Audit rows: token, contact and sender changes are written in the same transaction as the
/// change (their handlers set [`AuditWritten`]); plugin changes are written by the policy
/// runtime's own store writes, so their rows are appended right after, by [`authorize`], as
/// are the rows of refused requests (outcome: the error code).
pub const ROUTES: &[Route] = &[
    route(Verb::Post, "/v1/messages", Scope::MessagesSend, None),
    route(Verb::Post, "/v1/messages/batch", Scope::MessagesSend, None),
    route(Verb::Get, "/v1/messages", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/messages/{id}", Scope::MessagesRead, None),
    route(Verb::Post, "/v1/messages/{id}/cancel", Scope::MessagesSend, None),
    route(Verb::Get, "/v1/plugins", Scope::PluginsRead, None),
    route(Verb::Get, "/v1/plugins/{name}", Scope::PluginsRead, None),
    route(
        Verb::Put,
        "/v1/plugins/{name}",
        Scope::PluginsWrite,
        Some("plugin.settings"),
    ),
    route(
        Verb::Delete,
        "/v1/plugins/{name}",
        Scope::PluginsWrite,
        Some("plugin.delete"),
    ),
    route(
        Verb::Post,
        "/v1/plugins/{name}/versions",
        Scope::PluginsWrite,
        Some("plugin.upload"),
    ),
    route(
        Verb::Post,
        "/v1/plugins/{name}/activate",
        Scope::PluginsWrite,
        Some("plugin.activate"),
    ),
    route(
        Verb::Post,
        "/v1/plugins/{name}/rollback",
        Scope::PluginsWrite,
        Some("plugin.rollback"),
    ),
    route(Verb::Get, "/v1/plugins/{name}/shadow", Scope::PluginsRead, None),
    route(
        Verb::Post,
        "/v1/plugins/{name}/shadow",
        Scope::PluginsWrite,
        Some("plugin.shadow.start"),
    ),
    route(
        Verb::Delete,
        "/v1/plugins/{name}/shadow",
        Scope::PluginsWrite,
        Some("plugin.shadow.stop"),
    ),
    route(Verb::Get, "/v1/contacts/{wa_id}", Scope::MessagesRead, None),
    route(
        Verb::Put,
        "/v1/contacts/{wa_id}",
        Scope::ContactsWrite,
        Some("contact.put"),
    ),
    route(Verb::Get, "/v1/templates", Scope::MessagesRead, None),
    route(
        Verb::Post,
        "/v1/templates",
        Scope::TemplatesWrite,
        Some("template.create"),
    ),
    route(Verb::Post, "/v1/templates/lint", Scope::TemplatesWrite, None),
    route(Verb::Get, "/v1/templates/{name}", Scope::MessagesRead, None),
    route(
        Verb::Post,
        "/v1/templates/{name}/{language}/review",
        Scope::TemplatesWrite,
        Some("template.review"),
    ),
    route(Verb::Get, "/v1/regions", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/shards", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/cluster", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/stats", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/health/rules", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/events/stream", Scope::MessagesRead, None),
    route(Verb::Get, "/v1/senders", Scope::MessagesRead, None),
    route(
        Verb::Put,
        "/v1/senders/{phone_number}",
        Scope::ContactsWrite,
        Some("sender.put"),
    ),
    route(Verb::Get, "/v1/tokens", Scope::Admin, None),
    route(Verb::Post, "/v1/tokens", Scope::Admin, Some("token.create")),
    route(Verb::Delete, "/v1/tokens/{id}", Scope::Admin, Some("token.revoke")),
    route(Verb::Get, "/v1/audit", Scope::Admin, None),
    route(Verb::Get, "/v1/callbacks/dead", Scope::Admin, None),
    route(
        Verb::Post,
        "/v1/callbacks/dead/replay",
        Scope::Admin,
        Some("callback.replay"),
    ),
];

/// The routes outside `/v1`, served without a token.
pub const PUBLIC_ROUTES: &[(Verb, &str)] = &[
    (Verb::Get, "/webhooks/whatsapp"),
    (Verb::Post, "/webhooks/whatsapp"),
    (Verb::Get, "/healthz"),
    (Verb::Get, "/readyz"),
    (Verb::Get, "/openapi.json"),
    // Behind `server.metrics_token` when set (a scraper's bearer token, not an API token).
    (Verb::Get, "/metrics"),
    // The dashboard's page and assets; every call the page makes to `/v1` carries a token.
    (Verb::Get, "/dashboard"),
    (Verb::Get, "/dashboard/dashboard.js"),
    (Verb::Get, "/dashboard/dashboard.css"),
];

/// The table entry for a matched route.
pub fn route_for(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|route| route.path == path && route.verb.method() == *method)
}

/// Who is calling: set on the request by the middleware for handlers to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: Arc<str>,
    pub scopes: Scopes,
    /// The token's callback defaults, for messages that name no `callback_url`.
    pub callback: TokenCallbacks,
}

/// What the API knows of a token's callbacks without reading the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCallbacks {
    /// The default callback URL.
    pub url: Option<Arc<str>>,
    /// Whether the token has a signing secret (callbacks need one).
    pub signed: bool,
}

impl From<&TokenCallback> for TokenCallbacks {
    /// A stored token's defaults: every stored token has a signing secret.
    fn from(callback: &TokenCallback) -> Self {
        Self {
            url: callback.url.as_deref().map(Into::into),
            signed: true,
        }
    }
}

/// Set on a response by a handler that wrote its audit row in the same transaction as the
/// change: the middleware then writes none.
#[derive(Debug, Clone, Copy)]
pub struct AuditWritten;

/// Set on a response by a handler whose target is not in the path (a new token's id).
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

#[derive(Debug, Clone)]
struct LiveToken {
    id: Arc<str>,
    digest: [u8; 32],
    scopes: Scopes,
    callback: TokenCallbacks,
}

/// The tokens that may call the API, in memory: the bootstrap token and every stored token
/// not revoked. Read on every request, written on create, revoke and reload.
#[derive(Debug, Default)]
pub struct Tokens {
    live: RwLock<Arc<Vec<LiveToken>>>,
    /// Tokens revoked through this node. Revoking is final, so a reload from a read of the
    /// store older than the revocation must not bring one back.
    revoked_here: RwLock<HashSet<Arc<str>>>,
}

impl Tokens {
    /// The bootstrap token (scope `admin`) and the stored tokens not revoked; scopes this
    /// build does not know are dropped with a warning.
    pub fn new(bootstrap: Option<&str>, stored: &[ApiToken]) -> Self {
        let mut live: Vec<LiveToken> = bootstrap
            .map(|secret| LiveToken {
                id: Arc::from(BOOTSTRAP_TOKEN_ID),
                digest: token_digest(secret),
                scopes: Scopes::of(&[Scope::Admin]),
                callback: TokenCallbacks::default(),
            })
            .into_iter()
            .collect();
        live.extend(stored_live(stored, &[]));
        Self {
            live: RwLock::new(Arc::new(live)),
            revoked_here: RwLock::default(),
        }
    }

    /// Replaces the stored tokens and their callback defaults with what the store holds now,
    /// after another node changed them; the bootstrap token and its defaults (from config)
    /// stay. The read may be older than a change this node made meanwhile, and that change
    /// stands: a token created here that the read lacks stays, one revoked here stays out,
    /// and a token whose callback row the read lacks keeps the defaults it has. (Tokens are
    /// never deleted and their defaults never change once created, so nothing else can
    /// explain either gap.)
    pub fn reload(&self, stored: &[ApiToken], callbacks: &[TokenCallback]) {
        let revoked_here = self
            .revoked_here
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let in_store: HashSet<&str> = stored.iter().map(|token| token.id.as_str()).collect();
        let with_callback: HashSet<&str> = callbacks.iter().map(|callback| callback.token_id.as_str()).collect();
        self.change(|live| {
            let previous: HashMap<Arc<str>, TokenCallbacks> = live
                .iter()
                .map(|token| (token.id.clone(), token.callback.clone()))
                .collect();
            live.retain(|token| &*token.id == BOOTSTRAP_TOKEN_ID || !in_store.contains(&*token.id));
            for mut token in stored_live(stored, callbacks) {
                if revoked_here.contains(&token.id) {
                    continue;
                }
                if !with_callback.contains(&*token.id)
                    && let Some(callback) = previous.get(&token.id)
                {
                    token.callback = callback.clone();
                }
                live.push(token);
            }
        });
    }

    fn snapshot(&self) -> Arc<Vec<LiveToken>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<LiveToken>)) {
        let mut guard = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Vec::clone(&guard);
        edit(&mut next);
        *guard = Arc::new(next);
    }

    /// The caller a presented secret stands for. Every live token is compared, each in
    /// constant time, so the answer's timing does not depend on which (if any) matched.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let digest = token_digest(presented);
        let mut found: Option<&LiveToken> = None;
        let live = self.snapshot();
        for token in live.iter() {
            let equal: Choice = digest.ct_eq(&token.digest);
            if bool::from(equal) && found.is_none() {
                found = Some(token);
            }
        }
        found.map(|token| Caller {
            token_id: token.id.clone(),
            scopes: token.scopes,
            callback: token.callback.clone(),
        })
    }

    pub fn insert(&self, token: &ApiToken) {
        let token = live_token(token);
        self.change(|live| live.push(token));
    }

    /// Sets the callback defaults of the live token `id` (the bootstrap token's come from config).
    pub fn set_callback(&self, id: &str, callback: TokenCallbacks) {
        self.change(|live| {
            for token in live.iter_mut().filter(|token| &*token.id == id) {
                token.callback = callback.clone();
            }
        });
    }

    pub fn remove(&self, id: &str) {
        self.revoked_here
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(Arc::from(id));
        self.change(|live| live.retain(|token| &*token.id != id));
    }
}

/// The live entries of the stored tokens not revoked, each with its callback defaults from
/// `callbacks` (none when it has no row there).
fn stored_live<'a>(stored: &'a [ApiToken], callbacks: &'a [TokenCallback]) -> impl Iterator<Item = LiveToken> + 'a {
    let callbacks: HashMap<&str, &TokenCallback> = callbacks
        .iter()
        .map(|callback| (callback.token_id.as_str(), callback))
        .collect();
    stored
        .iter()
        .filter(|token| token.revoked_at_ms.is_none())
        .map(move |token| {
            let mut live = live_token(token);
            if let Some(callback) = callbacks.get(token.id.as_str()) {
                live.callback = TokenCallbacks::from(*callback);
            }
            live
        })
}

fn live_token(token: &ApiToken) -> LiveToken {
    let scopes: Vec<Scope> = token
        .scopes
        .iter()
        .filter_map(|name| match name.parse() {
            Ok(scope) => Some(scope),
            Err(error) => {
                tracing::warn!(token_id = %token.id, %error, "stored token has a scope this build does not know; ignored");
                None
            }
        })
        .collect();
    LiveToken {
        id: Arc::from(token.id.as_str()),
        digest: token.digest,
        scopes: Scopes::of(&scopes),
        callback: TokenCallbacks::default(),
    }
}

/// What the middleware of one route knows: the state, and the route's entry in [`ROUTES`].
#[derive(Clone)]
pub struct Guard {
    pub state: ApiState,
    pub route: &'static Route,
}

/// The `/v1` middleware, one per route: 401 without a valid token, 403 without the route's scope; sets the
/// [`Caller`]; and for audited routes appends the audit row right after the handler, unless
/// the handler wrote it in the same transaction as its change ([`AuditWritten`]).
pub async fn authorize(
    State(Guard { state, route }): State<Guard>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
    let caller = state
        .tokens
        .authenticate(presented)
        .ok_or_else(|| ApiError::unauthorized("the token is not valid"))?;
    let target = match route.audit {
        Some(_) => request
            .extract_parts::<RawPathParams>()
            .await
            .ok()
            .and_then(|params| params.iter().next().map(|(_, value)| value.to_owned())),
        None => None,
    };
    if !caller.scopes.allows(route.scope) {
        let error = ApiError::forbidden(format!(
            "this token lacks scope `{}`, which {} {} needs",
            route.scope,
            route.verb.as_str(),
            route.path
        ));
        if let Some(action) = route.audit {
            record(&state, &caller, action, target, error.code).await;
        }
        return Err(error);
    }
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    if let Some(action) = route.audit
        && response.extensions().get::<AuditWritten>().is_none()
    {
        let outcome = if response.status().is_success() {
            "ok"
        } else {
            response.extensions().get::<ErrorCode>().map_or("error", |code| code.0)
        };
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map(|target| target.0.clone())
            .or(target);
        record(&state, &caller, action, target, outcome).await;
    }
    Ok(response)
}

/// The audit entry of an action by `caller`, now.
pub fn entry(caller: &Caller, action: &str, target: Option<String>, outcome: &str) -> AuditEntry {
    AuditEntry {
        at_ms: crate::store::now_ms(),
        token_id: caller.token_id.to_string(),
        action: action.to_owned(),
        target,
        outcome: outcome.to_owned(),
    }
}

/// Appends one audit row on its own. The change it records is already made, so a failure
/// here is logged, not answered.
async fn record(state: &ApiState, caller: &Caller, action: &str, target: Option<String>, outcome: &str) {
    let entry = entry(caller, action, target, outcome);
    if let Err(error) = state.store.audit(vec![entry]).await {
        tracing::error!(%error, action, token_id = %caller.token_id, "appending to the audit log failed");
    }
}

/// The scope each route needs, as `METHOD path → scope`, for documentation and tests.
pub fn scope_table() -> HashMap<(&'static str, &'static str), Scope> {
    ROUTES
        .iter()
        .map(|route| ((route.verb.as_str(), route.path), route.scope))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, secret: &str, scopes: &[&str], revoked: bool) -> ApiToken {
        ApiToken {
            id: id.to_owned(),
            name: id.to_owned(),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            digest: token_digest(secret),
            created_at_ms: 1,
            revoked_at_ms: revoked.then_some(2),
        }
    }

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        let admin = Scopes::of(&[Scope::Admin]);
        let sender = Scopes::of(&[Scope::MessagesSend]);
        for scope in Scope::ALL {
            assert!(admin.allows(scope), "admin allows {scope}");
            assert_eq!(sender.allows(scope), scope == Scope::MessagesSend, "{scope}");
        }
        assert!(!Scopes::default().allows(Scope::MessagesRead));
    }

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            assert_eq!(serde_json::to_value(scope).unwrap(), scope.as_str());
        }
        assert!("messages:delete".parse::<Scope>().is_err());
    }

    #[test]
    fn the_route_table_has_one_entry_per_route_and_the_documented_scopes() {
        assert_eq!(scope_table().len(), ROUTES.len(), "a route is listed twice");
        for route in ROUTES {
            assert!(route.path.starts_with("/v1/"), "{}", route.path);
            let expected = match (route.verb, route.path) {
                (Verb::Post, "/v1/messages" | "/v1/messages/batch" | "/v1/messages/{id}/cancel") => Scope::MessagesSend,
                (Verb::Get, path) if path.starts_with("/v1/messages") => Scope::MessagesRead,
                (Verb::Get, path) if path.starts_with("/v1/plugins") => Scope::PluginsRead,
                (_, path) if path.starts_with("/v1/plugins") => Scope::PluginsWrite,
                (Verb::Put, path) if path.starts_with("/v1/contacts") || path.starts_with("/v1/senders") => {
                    Scope::ContactsWrite
                }
                (Verb::Get, path)
                    if path.starts_with("/v1/contacts")
                        || path.starts_with("/v1/regions")
                        || path.starts_with("/v1/shards")
                        || path.starts_with("/v1/cluster")
                        || path.starts_with("/v1/stats")
                        || path.starts_with("/v1/health")
                        || path.starts_with("/v1/events")
                        || path.starts_with("/v1/senders") =>
                {
                    Scope::MessagesRead
                }
                (_, path)
                    if path.starts_with("/v1/tokens")
                        || path.starts_with("/v1/audit")
                        || path.starts_with("/v1/callbacks") =>
                {
                    Scope::Admin
                }
                (Verb::Get, path) if path.starts_with("/v1/templates") => Scope::MessagesRead,
                (_, path) if path.starts_with("/v1/templates") => Scope::TemplatesWrite,
                (verb, path) => panic!("no expectation for {verb:?} {path}: add one"),
            };
            assert_eq!(route.scope, expected, "{:?} {}", route.verb, route.path);
            // Every change other than sending is an audited admin action.
            // (A lint changes nothing: it only runs the checks.)
            let is_change =
                route.verb != Verb::Get && route.scope != Scope::MessagesSend && route.path != "/v1/templates/lint";
            assert_eq!(route.audit.is_some(), is_change, "{:?} {}", route.verb, route.path);
        }
    }

    #[test]
    fn live_tokens_authenticate_and_revoked_or_unknown_ones_do_not() {
        let tokens = Tokens::new(
            Some("bootstrap-secret"),
            &[
                token("tok_a", "secret-a", &["messages:send", "from-the-future"], false),
                token("tok_b", "secret-b", &["admin"], true),
            ],
        );
        let bootstrap = tokens.authenticate("bootstrap-secret").unwrap();
        assert_eq!(&*bootstrap.token_id, BOOTSTRAP_TOKEN_ID);
        assert!(bootstrap.scopes.allows(Scope::Admin));
        let sender = tokens.authenticate("secret-a").unwrap();
        assert_eq!(&*sender.token_id, "tok_a");
        assert!(sender.scopes.allows(Scope::MessagesSend));
        assert!(!sender.scopes.allows(Scope::PluginsRead));
        assert_eq!(tokens.authenticate("secret-b"), None, "revoked");
        assert_eq!(tokens.authenticate("nope"), None);
        assert_eq!(tokens.authenticate(""), None);

        tokens.insert(&token("tok_c", "secret-c", &["plugins:read"], false));
        assert_eq!(&*tokens.authenticate("secret-c").unwrap().token_id, "tok_c");
        tokens.remove("tok_a");
        assert_eq!(tokens.authenticate("secret-a"), None);
        assert!(tokens.authenticate("bootstrap-secret").is_some());
    }

    fn audit(action: &str, target: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 1,
            token_id: BOOTSTRAP_TOKEN_ID.to_owned(),
            action: action.to_owned(),
            target: Some(target.to_owned()),
            outcome: "ok".to_owned(),
        }
    }

    fn callback(token_id: &str, url: &str) -> TokenCallback {
        TokenCallback {
            token_id: token_id.to_owned(),
            url: Some(url.to_owned()),
            secret: "whsec_test".to_owned(),
        }
    }

    #[tokio::test]
    async fn reload_takes_in_tokens_another_node_created_or_revoked() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("wasp.db").display());
        let store = crate::store::Store::open(&url, 1_000).await.unwrap();
        let tokens = Tokens::new(Some("bootstrap-secret"), &[]);
        let bootstrap_callback = TokenCallbacks {
            url: Some("https://ops.example/callbacks".into()),
            signed: true,
        };
        tokens.set_callback(BOOTSTRAP_TOKEN_ID, bootstrap_callback.clone());
        let reload = async || {
            tokens.reload(&store.tokens().await.unwrap(), &store.token_callbacks().await.unwrap());
        };

        store
            .create_token_with_callback(
                token("tok_a", "secret-a", &["messages:send"], false),
                callback("tok_a", "https://a.example/hook"),
                audit("token.create", "tok_a"),
            )
            .await
            .unwrap();
        assert_eq!(tokens.authenticate("secret-a"), None, "not seen before the reload");
        reload().await;
        let caller = tokens.authenticate("secret-a").unwrap();
        assert_eq!(&*caller.token_id, "tok_a");
        assert!(caller.scopes.allows(Scope::MessagesSend));
        assert_eq!(caller.callback.url.as_deref(), Some("https://a.example/hook"));
        assert!(caller.callback.signed);

        store
            .token_write(
                crate::store::TokenWrite::Revoke {
                    id: "tok_a".to_owned(),
                    at_ms: 2,
                },
                audit("token.revoke", "tok_a"),
            )
            .await
            .unwrap();
        reload().await;
        assert_eq!(tokens.authenticate("secret-a"), None, "revoked on another node");
        let bootstrap = tokens.authenticate("bootstrap-secret").unwrap();
        assert_eq!(&*bootstrap.token_id, BOOTSTRAP_TOKEN_ID);
        assert_eq!(bootstrap.callback, bootstrap_callback, "config's defaults stay");
    }

    #[test]
    fn a_reload_from_an_older_read_does_not_undo_this_nodes_changes() {
        let stale = [
            token("tok_a", "secret-a", &["messages:send"], false),
            token("tok_b", "secret-b", &["messages:send"], false),
        ];
        let tokens = Tokens::new(None, &stale);
        // Made here after the read: tok_c created (its callback row unread), tok_a revoked,
        // and tok_b's callback row unread as well.
        tokens.insert(&token("tok_c", "secret-c", &["messages:read"], false));
        let c_callback = TokenCallbacks {
            url: Some("https://c.example/hook".into()),
            signed: true,
        };
        tokens.set_callback("tok_c", c_callback.clone());
        tokens.set_callback(
            "tok_b",
            TokenCallbacks::from(&callback("tok_b", "https://b.example/hook")),
        );
        tokens.remove("tok_a");

        tokens.reload(&stale, &[]);
        assert_eq!(tokens.authenticate("secret-a"), None, "revoked here stays revoked");
        assert_eq!(tokens.authenticate("secret-c").unwrap().callback, c_callback);
        assert_eq!(
            tokens.authenticate("secret-b").unwrap().callback.url.as_deref(),
            Some("https://b.example/hook")
        );

        // The newer read has everything: it decides.
        let mut fresh = stale.to_vec();
        fresh[0].revoked_at_ms = Some(3);
        fresh.push(token("tok_c", "secret-c", &["messages:read"], false));
        tokens.reload(
            &fresh,
            &[
                callback("tok_b", "https://b.example/new"),
                callback("tok_c", "https://c.example/hook"),
            ],
        );
        assert_eq!(tokens.authenticate("secret-a"), None);
        assert_eq!(
            tokens.authenticate("secret-b").unwrap().callback.url.as_deref(),
            Some("https://b.example/new")
        );
        assert_eq!(tokens.authenticate("secret-c").unwrap().callback, c_callback);
    }

    #[test]
    fn without_a_bootstrap_token_only_stored_tokens_work() {
        let tokens = Tokens::new(None, &[]);
        assert_eq!(tokens.authenticate(""), None);
        assert_eq!(tokens.authenticate("anything"), None);
    }

    #[test]
    fn route_lookup_needs_the_method_and_the_matched_path() {
        let route = route_for(&Method::POST, "/v1/plugins/{name}/activate").unwrap();
        assert_eq!(route.scope, Scope::PluginsWrite);
        assert_eq!(route.audit, Some("plugin.activate"));
        assert!(route_for(&Method::PATCH, "/v1/plugins/{name}/activate").is_none());
        assert!(route_for(&Method::GET, "/v1/plugins/x/activate").is_none());
    }
}
