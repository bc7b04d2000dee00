//! The WhatsApp Business Management API's template endpoints: create, list and delete
//! under `/{version}/{waba_id}/message_templates`, and `GET /{version}/{template_id}`.
//! Shapes and rules are documented in `templates`. Checks run in Meta's order: token,
//! path, body or query. Owns the handlers and the body checks; calls `graph::error`,
//! `templates`, `wire` and `state`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::GraphError;
use super::{carries_token, is_version, json_response};
use crate::state::Shared;
use crate::templates::{
    self, Category, CreateRefusal, DEFAULT_LIST_LIMIT, Draft, ListFilter, MAX_LIST_LIMIT, NAME_MAX_CHARS,
    ParameterFormat, Template, TemplateStatus,
};
use crate::wire;

/// Component types a template is made of.
const COMPONENT_TYPES: &[&str] = &["HEADER", "BODY", "FOOTER", "BUTTONS"];
/// Subcode: the name breaks the naming rule.
pub const SUBCODE_NAME_FORMAT: u32 = 2_388_046;
/// Subcode: a required component field is missing.
pub const SUBCODE_MISSING_FIELDS: u32 = 2_388_043;
/// Subcode: the name already exists in this language.
pub const SUBCODE_LANGUAGE_EXISTS: u32 = 2_388_024;
/// Prefix of the paging cursors (inside their base64).
const CURSOR_PREFIX: &str = "sim-template:";

/// `POST /{version}/{waba_id}/message_templates`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match create_answer(&shared, &version, waba_id, &uri, &headers, &body) {
        Ok(template) => {
            templates::schedule_review(&shared, template.id.clone());
            let answer = Created {
                id: &template.id,
                status: template.status.as_str(),
                category: template.category.as_str(),
            };
            encoded(&answer)
        }
        Err(error) => error.into_response(),
    }
}

fn create_answer(
    shared: &Shared,
    version: &str,
    waba_id: String,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Template, GraphError> {
    check_path(shared, version, &waba_id, "post", uri, headers)?;
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|_| GraphError::plain_invalid("Request body is not valid JSON"))?
    };
    let Some(fields) = value.as_object() else {
        return Err(GraphError::plain_invalid("Request body must be a JSON object"));
    };
    let draft = draft(waba_id, fields)?;
    let language = draft.language.clone();
    shared.templates.create(draft).map_err(|refusal| match refusal {
        CreateRefusal::Duplicate => GraphError::management(
            Some(SUBCODE_LANGUAGE_EXISTS),
            "Content in This Language Already Exists",
            format!(
                "There is already {} content for this template. You can create a new template and try again.",
                language_name(&language)
            ),
        ),
    })
}

/// Checks a create body the way Meta does and makes the draft.
fn draft(waba_id: String, fields: &Map<String, Value>) -> Result<Draft, GraphError> {
    let name = required_str(fields, "name")?;
    let valid_name = (1..=NAME_MAX_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(GraphError::management(
            Some(SUBCODE_NAME_FORMAT),
            "Name Format is Incorrect",
            "The message template name can only have lowercase letters and underscores.",
        )
        .blaming("name"));
    }
    let language = required_str(fields, "language")?;
    let category_text = required_str(fields, "category")?;
    let category = Category::parse(category_text).ok_or_else(|| {
        GraphError::plain_invalid(format!(
            "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{category_text}\"."
        ))
    })?;
    let parameter_format = match fields.get("parameter_format") {
        None | Some(Value::Null) => ParameterFormat::Positional,
        Some(Value::String(text)) => ParameterFormat::parse(text).ok_or_else(|| {
            GraphError::plain_invalid(format!(
                "Param parameter_format must be one of {{POSITIONAL, NAMED}} - got \"{text}\"."
            ))
        })?,
        Some(other) => {
            return Err(GraphError::plain_invalid(format!(
                "Param parameter_format must be one of {{POSITIONAL, NAMED}} - got {other}."
            )));
        }
    };
    let components = match fields.get("components") {
        None | Some(Value::Null) => return Err(GraphError::parameter_required("components")),
        Some(Value::Array(components)) => components,
        Some(_) => return Err(GraphError::plain_invalid("Param components must be an array.")),
    };
    let mut normalised = Vec::with_capacity(components.len());
    let mut body_text = None;
    let mut has_body = false;
    for (index, component) in components.iter().enumerate() {
        let mut component = component
            .as_object()
            .cloned()
            .ok_or_else(|| GraphError::plain_invalid(format!("Param components[{index}] must be a JSON object.")))?;
        let kind = component.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some(kind) = COMPONENT_TYPES.iter().find(|known| known.eq_ignore_ascii_case(kind)) else {
            return Err(GraphError::plain_invalid(format!(
                "Param components[{index}][type] must be one of {{HEADER, BODY, FOOTER, BUTTONS}} - got \"{kind}\"."
            )));
        };
        if *kind == "BODY" {
            has_body = true;
            body_text = component
                .get("text")
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned);
        }
        component.insert("type".into(), Value::String((*kind).to_owned()));
        normalised.push(Value::Object(component));
    }
    if !has_body || (body_text.is_none() && category != Category::Authentication) {
        return Err(GraphError::management(
            Some(SUBCODE_MISSING_FIELDS),
            "Message template \"components\" param is missing expected field(s)",
            "The parameter \"components\" is missing the expected field \"BODY\" with its \"text\".",
        ));
    }
    Ok(Draft {
        waba_id,
        name: name.to_owned(),
        language: language.to_owned(),
        category,
        parameter_format,
        components: Value::Array(normalised),
    })
}

/// `GET /{version}/{waba_id}/message_templates`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match list_answer(&shared, &version, &waba_id, &uri, &headers) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn list_answer(
    shared: &Shared,
    version: &str,
    waba_id: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, GraphError> {
    check_path(shared, version, waba_id, "get", uri, headers)?;
    let query = query_pairs(uri)?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIST_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| GraphError::plain_invalid(format!("Param limit must be an integer - got \"{text}\".")))?
            .clamp(1, MAX_LIST_LIMIT),
    };
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(TemplateStatus::parse(text).ok_or_else(|| {
            GraphError::plain_invalid(format!(
                "Param status must be one of {{APPROVED, DISABLED, PAUSED, PENDING, REJECTED}} - got \"{text}\"."
            ))
        })?),
    };
    let category = match query.get("category") {
        None => None,
        Some(text) => Some(Category::parse(text).ok_or_else(|| {
            GraphError::plain_invalid(format!(
                "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{text}\"."
            ))
        })?),
    };
    let after = match query.get("after") {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            GraphError::plain_invalid(format!("Param after is not a valid cursor - got \"{cursor}\"."))
        })?),
    };
    let filter = ListFilter {
        name: query.get("name").cloned(),
        language: query.get("language").cloned(),
        status,
        category,
        after,
    };
    let (page, more) = shared.templates.list(waba_id, &filter, limit);
    let data: Vec<TemplateJson<'_>> = page.iter().map(TemplateJson::from).collect();
    let paging = match (page.first(), page.last()) {
        (Some(first), Some(last)) => {
            let after = cursor(last);
            let next = more.then(|| next_url(headers, uri, &after));
            Some(Paging {
                cursors: Cursors {
                    before: cursor(first),
                    after,
                },
                next,
            })
        }
        _ => None,
    };
    Ok(encoded(&Listing { data, paging }))
}

/// `GET /{version}/{template_id}`.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = check_path(&shared, &version, &id, "get", &uri, &headers) {
        return error.into_response();
    }
    match shared.templates.get(&id) {
        Some(template) => encoded(&TemplateJson::from(&template)),
        None => GraphError::unknown_object(&id, "get").into_response(),
    }
}

/// `POST /{version}/{template_id}`: an edit with new `components` and/or `category`; the
/// template goes back to `PENDING` and is reviewed again after the delay.
pub(crate) async fn edit(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        check_path(&shared, &version, &id, "post", &uri, &headers)?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|_| GraphError::plain_invalid("Request body is not valid JSON"))?;
        let Some(fields) = value.as_object() else {
            return Err(GraphError::plain_invalid("Request body must be a JSON object"));
        };
        let components = match fields.get("components") {
            None | Some(Value::Null) => None,
            Some(Value::Array(components)) => Some(Value::Array(components.clone())),
            Some(_) => return Err(GraphError::plain_invalid("Param components must be an array.")),
        };
        let category = match fields.get("category").and_then(Value::as_str) {
            None => None,
            Some(text) => Some(Category::parse(text).ok_or_else(|| {
                GraphError::plain_invalid(format!(
                    "Param category must be one of {{AUTHENTICATION, MARKETING, UTILITY}} - got \"{text}\"."
                ))
            })?),
        };
        if components.is_none() && category.is_none() {
            return Err(GraphError::parameter_required("components"));
        }
        let template = shared
            .templates
            .edit(&id, components, category)
            .ok_or_else(|| GraphError::unknown_object(&id, "post"))?;
        Ok(template)
    })();
    match answer {
        Ok(template) => {
            templates::schedule_review(&shared, template.id.clone());
            json_response(br#"{"success":true}"#.to_vec())
        }
        Err(error) => error.into_response(),
    }
}

/// `DELETE /{version}/{waba_id}/message_templates?name=X[&hsm_id=ID]`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let answer = (|| {
        check_path(&shared, &version, &waba_id, "delete", &uri, &headers)?;
        let query = query_pairs(&uri)?;
        let name = query
            .get("name")
            .filter(|name| !name.is_empty())
            .ok_or_else(|| GraphError::parameter_required("name"))?;
        let id = query.get("hsm_id").map(String::as_str);
        if shared.templates.delete(&waba_id, name, id) == 0 {
            return Err(GraphError::management(
                None,
                "Message Template Not Found",
                format!("The message template {name} could not be found, so it could not be deleted."),
            ));
        }
        Ok(json_response(br#"{"success":true}"#.to_vec()))
    })();
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// Token, then a version and a numeric object id, as for the messages endpoint.
fn check_path(
    shared: &Shared,
    version: &str,
    object_id: &str,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), GraphError> {
    let config = shared.config.snapshot();
    if let Some(token) = config.access_token.as_deref()
        && !carries_token(token, headers, uri.query())
    {
        return Err(GraphError::invalid_token());
    }
    if !is_version(version) {
        return Err(GraphError::unknown_path(uri.path()));
    }
    if object_id.is_empty() || !object_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GraphError::unknown_object(object_id, method));
    }
    Ok(())
}

fn query_pairs(uri: &Uri) -> Result<HashMap<String, String>, GraphError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|_| GraphError::plain_invalid("The query string is malformed."))
}

fn required_str<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, GraphError> {
    match fields.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        None | Some(Value::Null) => Err(GraphError::parameter_required(key)),
        Some(Value::String(_)) => Err(GraphError::parameter_required(key)),
        Some(other) => Err(GraphError::plain_invalid(format!(
            "Param {key} must be a string - got {other}."
        ))),
    }
}

/// The language's English name as Meta writes it in "There is already … content".
fn language_name(code: &str) -> String {
    let name = match code {
        "en" => "English",
        "en_US" => "English (US)",
        "en_GB" => "English (UK)",
        "es" => "Spanish",
        "es_ES" => "Spanish (SPA)",
        "es_MX" => "Spanish (MEX)",
        "pt_BR" => "Portuguese (BR)",
        "pt_PT" => "Portuguese (POR)",
        "fr" => "French",
        "de" => "German",
        "it" => "Italian",
        "id" => "Indonesian",
        "hi" => "Hindi",
        "ar" => "Arabic",
        other => return other.to_owned(),
    };
    name.to_owned()
}

fn cursor(template: &Template) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", template.id))
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix(CURSOR_PREFIX)?.parse().ok()
}

/// The URL of the next page: this request's URL with `after` set (other parameters kept).
fn next_url(headers: &HeaderMap, uri: &Uri, after: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("after=") && !pair.starts_with("before="))
        .collect();
    let after_pair = format!("after={after}");
    query.push(&after_pair);
    format!("http://{host}{}?{}", uri.path(), query.join("&"))
}

fn encoded<T: Serialize>(value: &T) -> Response {
    match wire::to_meta_json(value) {
        Ok(body) => json_response(body),
        Err(_) => GraphError::something_went_wrong().into_response(),
    }
}

#[derive(Serialize)]
struct Created<'a> {
    id: &'a str,
    status: &'static str,
    category: &'static str,
}

/// One template as the Graph API shows it, in Meta's key order.
#[derive(Serialize)]
struct TemplateJson<'a> {
    name: &'a str,
    parameter_format: ParameterFormat,
    components: &'a Value,
    language: &'a str,
    status: &'static str,
    category: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_reason: Option<&'a str>,
}

impl<'a> From<&'a Template> for TemplateJson<'a> {
    fn from(template: &'a Template) -> Self {
        Self {
            name: &template.name,
            parameter_format: template.parameter_format,
            components: &template.components,
            language: &template.language,
            status: template.status.as_str(),
            category: template.category.as_str(),
            id: &template.id,
            rejected_reason: (template.status == TemplateStatus::Rejected).then_some(template.reason.as_str()),
        }
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    data: Vec<TemplateJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Paging>,
}

#[derive(Serialize)]
struct Paging {
    cursors: Cursors,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Serialize)]
struct Cursors {
    before: String,
    after: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn refused(value: Value) -> Value {
        let error = draft("1".into(), &fields(value)).expect_err("refused");
        serde_json::from_slice(&error.body()).expect("json")
    }

    #[test]
    fn a_valid_body_makes_a_draft_with_upper_case_types() {
        let draft = draft(
            "1".into(),
            &fields(
                json!({"name": "order_update_2", "language": "en_US", "category": "utility",
                "components": [{"type": "header", "format": "TEXT", "text": "Order"},
                               {"type": "BODY", "text": "Order {{1}} shipped."}]}),
            ),
        )
        .expect("valid");
        assert_eq!(draft.category, Category::Utility);
        assert_eq!(draft.parameter_format, ParameterFormat::Positional);
        assert_eq!(draft.components[0]["type"], "HEADER");
    }

    #[test]
    fn names_break_metas_rule_with_its_answer() {
        for name in ["Order", "order-update", "order update", ""] {
            let body = refused(json!({"name": name, "language": "en", "category": "UTILITY",
                "components": [{"type": "BODY", "text": "x"}]}));
            if name.is_empty() {
                assert_eq!(body["error"]["message"], "(#100) The parameter name is required.");
                continue;
            }
            assert_eq!(body["error"]["error_subcode"], SUBCODE_NAME_FORMAT, "{name}");
            assert_eq!(body["error"]["message"], "Invalid parameter");
            assert_eq!(body["error"]["error_data"], json!({"blame_field_specs": [["name"]]}));
            assert_eq!(body["error"]["error_user_title"], "Name Format is Incorrect");
            assert_eq!(body["error"]["is_transient"], false);
        }
        let long = "a".repeat(NAME_MAX_CHARS + 1);
        let body = refused(json!({"name": long, "language": "en", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "x"}]}));
        assert_eq!(body["error"]["error_subcode"], SUBCODE_NAME_FORMAT);
    }

    #[test]
    fn missing_fields_are_named() {
        let body = refused(json!({"name": "a", "category": "UTILITY", "components": []}));
        assert_eq!(body["error"]["message"], "(#100) The parameter language is required.");
        let body = refused(json!({"name": "a", "language": "en", "category": "PROMO", "components": []}));
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Param category"))
        );
        let body = refused(json!({"name": "a", "language": "en", "category": "UTILITY",
            "components": [{"type": "FOOTER", "text": "bye"}]}));
        assert_eq!(body["error"]["error_subcode"], SUBCODE_MISSING_FIELDS);
        let body = refused(json!({"name": "a", "language": "en", "category": "UTILITY",
            "components": [{"type": "BANNER"}]}));
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("components[0][type]"))
        );
    }

    #[test]
    fn authentication_bodies_need_no_text() {
        draft(
            "1".into(),
            &fields(json!({"name": "otp", "language": "en", "category": "AUTHENTICATION",
                "components": [{"type": "BODY", "add_security_recommendation": true}]})),
        )
        .expect("valid");
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let template = Template {
            id: "1234567890123456".into(),
            waba_id: "1".into(),
            name: "a".into(),
            language: "en".into(),
            category: Category::Utility,
            parameter_format: ParameterFormat::Positional,
            components: json!([]),
            status: TemplateStatus::Pending,
            reason: "NONE".into(),
        };
        assert_eq!(decode_cursor(&cursor(&template)), Some(1_234_567_890_123_456));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(language_name("en_US"), "English (US)");
        assert_eq!(language_name("xx_YY"), "xx_YY");
    }
}
