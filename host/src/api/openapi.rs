//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and answer types, served at `GET /openapi.json` without a token.
//! Its tests hold it to [`auth::ROUTES`] and [`auth::PUBLIC_ROUTES`]: every route served is
//! documented, nothing else is, and every error answer has the one error shape.
//! Calls nothing at run time but the serializer.

use std::sync::OnceLock;

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[cfg(test)]
use super::auth;
use super::{
    ApiError, audit, callbacks, cluster, contacts, dashboard, health, messages, plugins, regions, senders, shards,
    stats, stream, templates, tokens, webhook,
};

/// The security scheme every `/v1` operation names.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasp",
        description = "Dispatch platform for the WhatsApp Business Cloud API. `/v1` takes a bearer \
                       token with the scope each operation names; errors answer \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        messages::send,
        messages::send_batch,
        messages::list,
        messages::get,
        messages::cancel,
        plugins::list,
        plugins::get,
        plugins::update,
        plugins::delete,
        plugins::upload,
        plugins::activate,
        plugins::rollback,
        plugins::shadow_report,
        plugins::start_shadow,
        plugins::stop_shadow,
        contacts::get,
        contacts::put,
        templates::list,
        templates::create,
        templates::lint_only,
        templates::get,
        templates::review,
        regions::list,
        shards::list,
        cluster::get,
        stats::get,
        health::rules,
        stream::stream,
        senders::list,
        senders::put,
        tokens::list,
        tokens::create,
        tokens::revoke,
        audit::list,
        callbacks::dead,
        callbacks::replay,
        webhook::handshake,
        webhook::receive,
        super::healthz,
        super::readyz,
        super::metrics::serve,
        dashboard::page,
        dashboard::script,
        dashboard::style,
        serve,
    ),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// Adds the `bearer` HTTP security scheme the `/v1` operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        let scheme = SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token: the configured admin token, or one created with POST /v1/tokens",
                ))
                .build(),
        );
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, scheme);
    }
}

/// The document, version stamped with this build's.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

/// The document as served: built once, on first request.
fn document_json() -> Result<&'static str, &'static serde_json::Error> {
    static JSON: OnceLock<Result<String, serde_json::Error>> = OnceLock::new();
    JSON.get_or_init(|| document().to_json()).as_ref().map(String::as_str)
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    match document_json() {
        Ok(json) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json,
        )
            .into_response(),
        Err(error) => ApiError::internal("serializing the OpenAPI document", error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const ERROR_SCHEMA: &str = "#/components/schemas/ErrorBody";

    fn document_value() -> Value {
        serde_json::to_value(document()).expect("the document serializes")
    }

    fn operations() -> Vec<(String, String, Value)> {
        let document = document_value();
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                operations.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        operations
    }

    fn served() -> Vec<(String, String)> {
        auth::ROUTES
            .iter()
            .map(|route| (route.verb.as_str().to_owned(), route.path.to_owned()))
            .chain(
                auth::PUBLIC_ROUTES
                    .iter()
                    .map(|(verb, path)| (verb.as_str().to_owned(), (*path).to_owned())),
            )
            .collect()
    }

    /// Whether `schema` is the error shape, or a `oneOf` holding it (such as a batch's `400`:
    /// every item refused, or the batch itself refused), following a `$ref` to a component.
    fn is_error_schema(document: &Value, schema: &Value) -> bool {
        if schema["$ref"] == ERROR_SCHEMA {
            return true;
        }
        if let Some(name) = schema["$ref"]
            .as_str()
            .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        {
            return is_error_schema(document, &document["components"]["schemas"][name]);
        }
        schema["oneOf"]
            .as_array()
            .is_some_and(|choices| choices.iter().any(|choice| is_error_schema(document, choice)))
    }

    #[test]
    fn is_openapi_3_1_with_this_version_and_the_bearer_scheme() {
        let document = serde_json::to_value(document()).expect("the document serializes");
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|version| version.starts_with("3.1"))
        );
        assert_eq!(document["info"]["title"], "wasp");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(document["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert!(document.get("servers").is_none());
        assert!(document_json().is_ok());
    }

    #[test]
    fn documents_every_route_served_and_no_other() {
        let documented: Vec<(String, String)> = operations()
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let undocumented: Vec<String> = served()
            .into_iter()
            .filter(|route| !documented.contains(route))
            .map(|(method, path)| format!("{method} {path}"))
            .collect();
        assert!(undocumented.is_empty(), "served but not documented: {undocumented:?}");
        let phantom: Vec<String> = documented
            .into_iter()
            .filter(|operation| !served().contains(operation))
            .map(|(method, path)| format!("{method} {path}"))
            .collect();
        assert!(phantom.is_empty(), "documented but not served: {phantom:?}");
    }

    #[test]
    fn every_v1_operation_needs_the_bearer_token_and_says_so() {
        for (method, path, operation) in operations().into_iter().filter(|(_, path, _)| path.starts_with("/v1/")) {
            let responses = &operation["responses"];
            for status in ["401", "403"] {
                assert!(
                    responses.get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
            assert_eq!(
                operation["security"],
                serde_json::json!([{BEARER: []}]),
                "{method} {path} does not name the bearer scheme"
            );
        }
        for (method, path, operation) in operations()
            .into_iter()
            .filter(|(_, path, _)| !path.starts_with("/v1/"))
        {
            assert!(operation.get("security").is_none(), "{method} {path} is public");
        }
    }

    #[test]
    fn every_error_answer_has_the_error_shape() {
        let document = document_value();
        for (method, path, operation) in operations() {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} documents no success"
            );
            for (status, response) in responses {
                // `/readyz` answers its probe shape, `{"status": "store unavailable"}`.
                if !status.starts_with(['4', '5']) || (path == "/readyz" && status == "503") {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                assert!(
                    is_error_schema(&document, schema),
                    "{method} {path} {status} does not answer the error shape: {schema}"
                );
            }
        }
    }
}
