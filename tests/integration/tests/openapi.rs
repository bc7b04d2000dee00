//! The OpenAPI document against the running host, black-box: `/openapi.json` is served without
//! a token and is OpenAPI 3.1, and every documented operation answers only statuses the
//! document lists for it: without a token (`/v1`: 401), with a token lacking its scope (403),
//! and with the admin token and the documented example or a minimal request. Every error
//! answer has the one error shape, and every JSON answer keeps its keys sorted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot read what it expects fails loudly

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use wasp::api::auth::{ROUTES, Scope};
use wasp_integration::{HostOptions, TOKEN, TestHost};

/// A route's path with its parameters filled in, naming nothing that exists.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0190c2a8-0000-7000-8000-000000000000")
        .replace("{name}", "no-such-plugin")
        .replace("{wa_id}", "6591234567")
        .replace("{phone_number}", "6590000000")
        .replace("{language}", "en")
}

/// Follows a `$ref` to its component.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
    {
        Some(name) => resolve(document, &document["components"]["schemas"][name]),
        None => schema,
    }
}

/// The schema's example, else the least value it allows: required properties only.
fn minimal(document: &Value, schema: &Value) -> Value {
    let schema = resolve(document, schema);
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(example) = schema["examples"].as_array().and_then(|examples| examples.first()) {
        return example.clone();
    }
    if let Some(choice) = schema["oneOf"].as_array().and_then(|choices| choices.first()) {
        return minimal(document, choice);
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .find(|kind| *kind != "null")
            .cloned()
            .unwrap_or(Value::Null),
        kind => kind.clone(),
    };
    match kind.as_str() {
        Some("string") => json!("x"),
        Some("integer" | "number") => json!(schema["minimum"].as_f64().map_or(1, |minimum| minimum.max(1.0) as i64)),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => {
            let mut object = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                object.insert(name.to_owned(), minimal(document, &schema["properties"][name]));
            }
            Value::Object(object)
        }
    }
}

/// What an operation is called with: the body and its content type.
fn request_of(document: &Value, operation: &Value) -> Option<(&'static str, Vec<u8>)> {
    let content = operation["requestBody"]["content"].as_object()?;
    if let Some(json_body) = content.get("application/json") {
        let body = minimal(document, &json_body["schema"]);
        return Some(("application/json", serde_json::to_vec(&body).unwrap()));
    }
    // A component upload: bytes that are not a component.
    content
        .contains_key("application/wasm")
        .then(|| ("application/wasm", b"not a component".to_vec()))
}

struct Answer {
    status: u16,
    body: Value,
    text: String,
}

async fn call(
    host: &TestHost,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&(&'static str, Vec<u8>)>,
) -> anyhow::Result<Answer> {
    let mut request = host.client.request(method, format!("{}{path}", host.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", *content_type).body(bytes.clone());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    // An event stream does not end: its headers are the answer (tests/stream.rs reads it).
    let streams = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    let text = if streams { String::new() } else { response.text().await? };
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    })
}

/// The answer's status is one the operation documents, an error has the error shape, and a
/// JSON body has its object keys in sorted order at every level: the bytes the answers had when
/// they were built with `json!` (serde_json sorts keys), which typed answers must keep.
fn check(label: &str, path: &str, operation: &Value, answer: &Answer) {
    // The document itself was never built with `json!`: its keys keep utoipa's order.
    if !answer.body.is_null() && path != "/openapi.json" {
        assert_eq!(
            serde_json::to_string(&answer.body).unwrap(),
            answer.text,
            "{label}: the body's keys are not in sorted order"
        );
    }
    let documented: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
    assert!(
        documented.iter().any(|status| **status == answer.status.to_string()),
        "{label}: answered {} which is not documented ({documented:?}): {}",
        answer.status,
        answer.text
    );
    if answer.status >= 400 {
        let error = &answer.body["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{label}: {} is not the error shape: {}",
            answer.status,
            answer.text
        );
        assert!(
            error["field"].is_string() || error["field"].is_null(),
            "{label}: {}",
            answer.text
        );
        assert!(
            error.as_object().is_some_and(|object| object.contains_key("field")),
            "{label}: {}",
            answer.text
        );
    }
}

/// Creates a token with `scopes`; answers its secret.
async fn token_with(host: &TestHost, scopes: &[Scope]) -> anyhow::Result<String> {
    let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    let (status, body) = host
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": format!("lacks-{}", scopes.join("-")), "scopes": scopes})),
        )
        .await?;
    anyhow::ensure!(status == 201, "creating a token: {status} {body}");
    Ok(body["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_documented_operation_answers_only_what_the_document_lists() -> anyhow::Result<()> {
    let host = TestHost::start(HostOptions::default()).await?;

    let served = call(&host, None, Method::GET, "/openapi.json", None).await?;
    assert_eq!(served.status, 200, "{}", served.text);
    let document = served.body;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1")),
        "{}",
        document["openapi"]
    );

    // A token lacking a scope: one holding a different, non-admin scope.
    let mut lacking: BTreeMap<&str, String> = BTreeMap::new();
    for scope in Scope::ALL {
        let other = if scope == Scope::MessagesRead {
            Scope::PluginsRead
        } else {
            Scope::MessagesRead
        };
        lacking.insert(scope.as_str(), token_with(&host, &[other]).await?);
    }

    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse()?;
            let label = format!("{method} {path}");
            let concrete_path = concrete(path);
            let body = request_of(&document, operation);

            let anonymous = call(&host, None, method.clone(), &concrete_path, body.as_ref()).await?;
            check(&format!("{label} without a token"), path, operation, &anonymous);
            if path.starts_with("/v1/") {
                assert_eq!(anonymous.status, 401, "{label} without a token: {}", anonymous.text);
                let route = ROUTES
                    .iter()
                    .find(|route| route.path == path && route.verb.method() == method)
                    .unwrap_or_else(|| panic!("{label} is documented but not in auth::ROUTES"));
                let refused = call(
                    &host,
                    Some(&lacking[route.scope.as_str()]),
                    method.clone(),
                    &concrete_path,
                    body.as_ref(),
                )
                .await?;
                assert_eq!(
                    refused.status, 403,
                    "{label} without scope {}: {}",
                    route.scope, refused.text
                );
                check(&format!("{label} without its scope"), path, operation, &refused);
            }

            let admin = call(&host, Some(TOKEN), method.clone(), &concrete_path, body.as_ref()).await?;
            check(&format!("{label} as admin"), path, operation, &admin);
            checked += 1;
        }
    }
    assert!(checked >= ROUTES.len(), "only {checked} operations documented");
    Ok(())
}
