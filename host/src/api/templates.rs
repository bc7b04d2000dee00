//! `/v1/templates`: define template versions (one language of one name per request, in the
//! Cloud API's own creation format), lint them with the plugins' `on-template` checks, list
//! them and their versions, and, where review is manual, approve or reject them. Submission
//! to the Cloud API and the status sync are the submitter's (`templates::sync`).
//! May call the store, the template registry and the policy runtime.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, ApiState,
    auth::{AuditTarget, AuditWritten, Caller, entry},
    error::{ErrorBody, ErrorCode, ErrorDetail, StrictJson, StrictQuery},
    format_time,
};
use crate::{
    store::{TemplateVersion, TemplateWrite},
    templates::{
        DefinitionComponent, LintFinding, Review, Severity, TemplateDefinition, TemplateStatus,
        registry::TemplateSummary,
    },
};

/// Meta's limit on template names.
const MAX_NAME_CHARS: usize = 512;
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 500;

/// A template version as the API shows it. Fields in alphabetical order, as every answer's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// `AUTHENTICATION`, `MARKETING` or `UTILITY`.
    pub category: String,
    pub created_at: String,
    /// The token that created it; `meta` for a template imported from the Cloud API.
    pub created_by: String,
    /// The Cloud API creation body, as given.
    pub definition: Value,
    /// Lint warnings kept with the version.
    pub findings: Vec<LintFinding>,
    pub language: String,
    /// Meta's template id, once created there.
    pub meta_id: Option<String>,
    pub name: String,
    /// Meta's quality rating (`GREEN`, `YELLOW`, `RED`), once known.
    pub quality: Option<String>,
    /// Meta's or the reviewer's reason for a rejection, pause or disabling.
    pub reason: Option<String>,
    pub status: TemplateStatus,
    pub updated_at: String,
    pub version: u32,
}

impl From<TemplateVersion> for VersionView {
    fn from(version: TemplateVersion) -> Self {
        Self {
            category: version.category.as_str().to_ascii_uppercase(),
            created_at: format_time(version.created_at_ms),
            created_by: version.created_by,
            definition: version.definition,
            findings: version.findings,
            language: version.language,
            meta_id: version.meta_id,
            name: version.name,
            quality: version.quality,
            reason: version.reason,
            status: version.status,
            updated_at: format_time(version.updated_at_ms),
            version: version.version,
        }
    }
}

/// One (name, language) in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub category: String,
    pub language: String,
    /// The newest version that reached the Cloud API.
    pub live_version: Option<u32>,
    pub meta_id: Option<String>,
    pub name: String,
    pub newest_status: TemplateStatus,
    pub newest_version: u32,
    pub quality: Option<String>,
    pub reason: Option<String>,
    /// Set while a health rule finds its read rate well below its own average; null otherwise.
    pub review_flag: Option<ReviewFlagView>,
    /// Whether messages may name it in this language now.
    pub sendable: bool,
    /// The status that decides whether messages may name it.
    pub status: TemplateStatus,
    pub updated_at: String,
}

impl From<TemplateSummary> for SummaryView {
    fn from(summary: TemplateSummary) -> Self {
        Self {
            sendable: summary.sendable(),
            category: summary.category.as_str().to_ascii_uppercase(),
            language: summary.language,
            live_version: summary.live_version,
            meta_id: summary.meta_id,
            name: summary.name,
            newest_status: summary.newest_status,
            newest_version: summary.newest_version,
            quality: summary.quality,
            reason: summary.reason,
            review_flag: None,
            status: summary.status,
            updated_at: format_time(summary.updated_at_ms),
        }
    }
}

/// Why a health rule flagged a template for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewFlagView {
    /// Its own read rate over the rule's baseline (7 days by default).
    pub baseline: f64,
    /// Its read rate over the rule's window (the last hour by default).
    pub read_rate: f64,
    pub reason: String,
    /// When the rule fired for it (RFC 3339).
    pub since: String,
}

impl From<crate::health::ReviewFlag> for ReviewFlagView {
    fn from(flag: crate::health::ReviewFlag) -> Self {
        Self {
            baseline: flag.baseline,
            read_rate: flag.read_rate,
            reason: format!(
                "read rate {:.1}% is below the rule {} of its own average {:.1}%",
                flag.read_rate * 100.0,
                flag.rule,
                flag.baseline * 100.0
            ),
            since: format_time(flag.since_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatePage {
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
    pub templates: Vec<SummaryView>,
}

/// One language of a template: where it stands, and every version.
#[derive(Debug, Serialize, ToSchema)]
pub struct LanguageView {
    pub summary: SummaryView,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub languages: Vec<LanguageView>,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LintReport {
    /// No finding is an error: the definition may be created.
    pub clean: bool,
    pub findings: Vec<LintFinding>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this name.
    pub name: Option<String>,
    /// Only this language code.
    pub language: Option<String>,
    /// Only this status (`APPROVED`, `PENDING`, ...).
    pub status: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: Decision,
    /// Required to reject; kept as the version's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// The version to review; the newest when absent.
    #[serde(default)]
    pub version: Option<u32>,
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "templates_not_configured",
        "templates are managed only where channel.cloud_api.business_account_id is set",
    )
}

/// Checks what the Cloud API would refuse outright, naming the field; the plugins' checks
/// (lint) come after.
fn validate(definition: &TemplateDefinition) -> Result<(), ApiError> {
    let name = &definition.name;
    if name.is_empty()
        || name.len() > MAX_NAME_CHARS
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    {
        return Err(ApiError::invalid(
            "name",
            format!("1 to {MAX_NAME_CHARS} of a-z, 0-9 and _ (the Cloud API's rule)"),
        ));
    }
    if !valid_language(&definition.language) {
        return Err(ApiError::invalid(
            "language",
            "a Cloud API language code such as en, en_US or zh_Hant_HK",
        ));
    }
    let mut bodies = 0;
    for (index, component) in definition.components.iter().enumerate() {
        let kind = match component {
            DefinitionComponent::Header { format, text, .. } => {
                if !matches!(
                    format.to_ascii_uppercase().as_str(),
                    "TEXT" | "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION"
                ) {
                    return Err(ApiError::invalid(
                        format!("components[{index}].format"),
                        "one of TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION",
                    ));
                }
                if format.eq_ignore_ascii_case("TEXT") && text.as_deref().is_none_or(str::is_empty) {
                    return Err(ApiError::invalid(
                        format!("components[{index}].text"),
                        "a TEXT header needs its text",
                    ));
                }
                "HEADER"
            }
            DefinitionComponent::Body { text, .. } => {
                bodies += 1;
                if text.trim().is_empty() {
                    return Err(ApiError::invalid(
                        format!("components[{index}].text"),
                        "the body is empty",
                    ));
                }
                "BODY"
            }
            DefinitionComponent::Footer { .. } => "FOOTER",
            DefinitionComponent::Buttons { buttons } => {
                if buttons.is_empty() {
                    return Err(ApiError::invalid(
                        format!("components[{index}].buttons"),
                        "a BUTTONS component needs at least one button",
                    ));
                }
                "BUTTONS"
            }
        };
        let repeated = definition.components[..index]
            .iter()
            .any(|earlier| std::mem::discriminant(earlier) == std::mem::discriminant(component));
        if repeated {
            return Err(ApiError::invalid(
                format!("components[{index}].type"),
                format!("a template has at most one {kind} component"),
            ));
        }
    }
    if bodies == 0 {
        return Err(ApiError::invalid("components", "a template needs a BODY component"));
    }
    Ok(())
}

/// `en`, `fil`, `en_US`, `zh_Hant_HK`, ...
fn valid_language(code: &str) -> bool {
    let mut parts = code.split('_');
    let base_ok = parts
        .next()
        .is_some_and(|base| (2..=3).contains(&base.len()) && base.bytes().all(|byte| byte.is_ascii_lowercase()));
    let mut count = 0;
    let rest_ok = parts.all(|part| {
        count += 1;
        (2..=4).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_alphanumeric())
    });
    base_ok && rest_ok && count <= 2 && code.len() <= 16
}

async fn lint(state: &ApiState, definition: &TemplateDefinition) -> Result<Vec<LintFinding>, ApiError> {
    // Plugin calls run on the blocking pool: a slow check must not hold an async worker.
    let policies = state.policies.clone();
    let definition = definition.clone();
    tokio::task::spawn_blocking(move || policies.lint_template(&definition))
        .await
        .map_err(|error| ApiError::internal("running the template checks", &error))?
        .map_err(|error| ApiError::internal("running the template checks", &error))
}

/// 422 naming the first error finding's field, with every finding.
fn lint_failed(findings: &[LintFinding]) -> Response {
    let errors: Vec<&LintFinding> = findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .collect();
    let message = errors
        .iter()
        .map(|finding| format!("{} ({}): {}", finding.field, finding.check, finding.message))
        .collect::<Vec<_>>()
        .join("; ");
    let body = ErrorBody {
        error: ErrorDetail {
            code: "lint_failed".to_owned(),
            field: errors.first().map(|finding| finding.field.clone()),
            findings: Some(findings.to_vec()),
            message: format!("the template checks found {} error(s): {message}", errors.len()),
        },
    };
    let mut response = (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    response.extensions_mut().insert(ErrorCode("lint_failed"));
    response
}

#[utoipa::path(
    post,
    path = "/v1/templates/lint",
    tag = "templates",
    request_body = TemplateDefinition,
    responses(
        (status = 200, description = "What the plugins' template checks found; nothing is stored", body = LintReport),
        (status = 400, description = "A field is invalid (named), or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `templates:write`", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 503, description = "The checks could not run; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn lint_only(
    State(state): State<ApiState>,
    StrictJson(definition): StrictJson<TemplateDefinition>,
) -> Result<Json<LintReport>, ApiError> {
    validate(&definition)?;
    let findings = lint(&state, &definition).await?;
    Ok(Json(LintReport {
        clean: !findings.iter().any(|finding| finding.severity == Severity::Error),
        findings,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/templates",
    tag = "templates",
    request_body = TemplateDefinition,
    responses(
        (status = 200, description = "The same definition again: the version it made", body = VersionView),
        (status = 201, description = "The next version of this name and language", body = VersionView),
        (status = 400, description = "A field is invalid (named), or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `templates:write`", body = ErrorBody),
        (status = 409, description = "No business account is configured, so templates are not managed", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "A template check found an error: `lint_failed` with every finding", body = ErrorBody),
        (status = 503, description = "The store or the checks did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    StrictJson(definition): StrictJson<TemplateDefinition>,
) -> Result<Response, ApiError> {
    let review = state.template_review.ok_or_else(not_configured)?;
    validate(&definition)?;
    let target = format!("{}/{}", definition.name, definition.language);
    let findings = lint(&state, &definition).await?;
    if findings.iter().any(|finding| finding.severity == Severity::Error) {
        let mut response = lint_failed(&findings);
        response.extensions_mut().insert(AuditTarget(target));
        return Ok(response);
    }
    let stored_definition =
        serde_json::to_value(&definition).map_err(|error| ApiError::internal("encoding a template", &error))?;
    // The same definition again (a retried request) answers the version it made.
    let versions = state
        .store
        .template_versions_named(&definition.name)
        .await
        .map_err(|error| ApiError::internal("reading template versions", &error))?;
    if let Some(newest) = versions
        .into_iter()
        .filter(|version| version.language == definition.language)
        .max_by_key(|version| version.version)
        .filter(|newest| newest.definition == stored_definition && newest.status != TemplateStatus::Rejected)
    {
        let mut response = (StatusCode::OK, Json(VersionView::from(newest))).into_response();
        response.extensions_mut().insert(AuditTarget(target));
        return Ok(response);
    }
    let now = crate::store::now_ms();
    let status = match review {
        Review::Manual => TemplateStatus::AwaitingReview,
        Review::Meta => TemplateStatus::Submitting,
    };
    let version = TemplateVersion {
        name: definition.name.clone(),
        language: definition.language.clone(),
        version: 0,
        category: definition.category,
        definition: stored_definition,
        status,
        reason: None,
        meta_id: None,
        quality: None,
        findings,
        created_by: caller.token_id.to_string(),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let written = state
        .templates
        .record(
            &state.store,
            TemplateWrite::Create(Box::new(version)),
            Some(entry(&caller, "template.create", Some(target.clone()), "ok")),
        )
        .await
        .map_err(|error| ApiError::internal("creating a template version", &error))?
        .ok_or_else(|| ApiError::internal("creating a template version", &"the write matched nothing"))?;
    tracing::info!(name = written.name, language = written.language, version = written.version, status = %written.status, by = %caller.token_id, "template version created");
    let mut response = (StatusCode::CREATED, Json(VersionView::from(written))).into_response();
    response.extensions_mut().insert(AuditWritten);
    response.extensions_mut().insert(AuditTarget(target));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    params(ListQuery),
    responses(
        (status = 200, description = "One row per name and language, in that order", body = TemplatePage),
        (status = 400, description = "A parameter is invalid or unknown", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    StrictQuery(query): StrictQuery<ListQuery>,
) -> Result<Json<TemplatePage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid("limit", format!("1 to {MAX_PAGE}")));
    }
    let status = query
        .status
        .as_deref()
        .map(str::parse::<TemplateStatus>)
        .transpose()
        .map_err(|error| ApiError::invalid("status", error))?;
    let after = match query.after.as_deref() {
        Some(cursor) => Some(
            cursor
                .split_once(':')
                .map(|(name, language)| (name.to_owned(), language.to_owned()))
                .ok_or_else(|| ApiError::invalid("after", "the `next` of a previous page"))?,
        ),
        None => None,
    };
    let mut templates = state.templates.list(after.as_ref(), limit + 1, |summary| {
        query.name.as_deref().is_none_or(|name| summary.name == name)
            && query
                .language
                .as_deref()
                .is_none_or(|language| summary.language == language)
            && status.is_none_or(|status| summary.status == status)
    });
    let next = (templates.len() > limit).then(|| {
        templates.truncate(limit);
        templates
            .last()
            .map(|last| format!("{}:{}", last.name, last.language))
            .unwrap_or_default()
    });
    Ok(Json(TemplatePage {
        templates: templates
            .into_iter()
            .map(|summary| {
                let flag = state.health.review_flag(&summary.name);
                SummaryView {
                    review_flag: flag.map(ReviewFlagView::from),
                    ..SummaryView::from(summary)
                }
            })
            .collect(),
        next,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/templates/{name}",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name")),
    responses(
        (status = 200, description = "Every language with every version", body = TemplateView),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `messages:read`", body = ErrorBody),
        (status = 404, description = "No template has this name", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Json<TemplateView>, ApiError> {
    let versions = state
        .store
        .template_versions_named(&name)
        .await
        .map_err(|error| ApiError::internal("reading template versions", &error))?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no template is named {name:?}")));
    }
    let mut languages: Vec<LanguageView> = Vec::new();
    for version in versions {
        match languages.last_mut() {
            Some(language) if language.summary.language == version.language => language.versions.push(version.into()),
            _ => {
                let Some(summary) = state.templates.summary(&name, &version.language) else {
                    continue;
                };
                languages.push(LanguageView {
                    summary: summary.into(),
                    versions: vec![version.into()],
                });
            }
        }
    }
    Ok(Json(TemplateView { languages, name }))
}

#[utoipa::path(
    post,
    path = "/v1/templates/{name}/{language}/review",
    tag = "templates",
    params(
        ("name" = String, Path, description = "The template's name"),
        ("language" = String, Path, description = "The language code"),
    ),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "Reviewed: `SUBMITTING` (approved) or `REJECTED`", body = VersionView),
        (status = 400, description = "A field is invalid (named), or the body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks scope `templates:write`", body = ErrorBody),
        (status = 404, description = "No such version of this name in this language", body = ErrorBody),
        (status = 409, description = "Review is not manual, templates are not managed, or the version is past review", body = ErrorBody),
        (status = 413, description = "The body is larger than this server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 503, description = "The store did not answer; safe to retry", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn review(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((name, language)): Path<(String, String)>,
    StrictJson(request): StrictJson<ReviewRequest>,
) -> Result<Response, ApiError> {
    let review = state.template_review.ok_or_else(not_configured)?;
    if review != Review::Manual {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "review_not_manual",
            "templates.review is \"meta\": versions go to the Cloud API without a person's review",
        ));
    }
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|reason| !reason.is_empty());
    if request.decision == Decision::Reject && reason.is_none() {
        return Err(ApiError::invalid("reason", "say why the template is rejected"));
    }
    if reason.is_some_and(|reason| reason.chars().count() > 1_000) {
        return Err(ApiError::invalid("reason", "at most 1,000 characters"));
    }
    let versions = state
        .store
        .template_versions_named(&name)
        .await
        .map_err(|error| ApiError::internal("reading template versions", &error))?;
    let Some(version) = versions
        .into_iter()
        .filter(|version| version.language == language)
        .filter(|version| request.version.is_none_or(|wanted| version.version == wanted))
        .max_by_key(|version| version.version)
    else {
        return Err(ApiError::not_found(format!(
            "template {name:?} has no version {}in {language:?}",
            request.version.map(|version| format!("{version} ")).unwrap_or_default()
        )));
    };
    let (status, stored_reason) = match request.decision {
        Decision::Approve => (TemplateStatus::Submitting, None),
        Decision::Reject => (
            TemplateStatus::Rejected,
            reason.map(|reason| format!("rejected in review: {reason}")),
        ),
    };
    let target = format!("{name}/{language}");
    let action = match request.decision {
        Decision::Approve => "template.approve",
        Decision::Reject => "template.reject",
    };
    let written = state
        .templates
        .record(
            &state.store,
            TemplateWrite::Status {
                name: name.clone(),
                language: language.clone(),
                version: version.version,
                from: vec![TemplateStatus::AwaitingReview],
                status,
                reason: stored_reason,
                meta_id: None,
                at_ms: crate::store::now_ms(),
            },
            Some(entry(&caller, action, Some(target.clone()), "ok")),
        )
        .await
        .map_err(|error| ApiError::internal("reviewing a template version", &error))?;
    let Some(written) = written else {
        return Err(ApiError::at(
            StatusCode::CONFLICT,
            "not_awaiting_review",
            format!(
                "version {} of {name:?} in {language:?} is {}, not AWAITING_REVIEW",
                version.version, version.status
            ),
            "version",
        ));
    };
    tracing::info!(name, language, version = written.version, decision = action, by = %caller.token_id, "template reviewed");
    let mut response = Json(VersionView::from(written)).into_response();
    response.extensions_mut().insert(AuditWritten);
    response.extensions_mut().insert(AuditTarget(target));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition(value: Value) -> TemplateDefinition {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn language_codes_follow_the_cloud_api() {
        for good in ["en", "en_US", "zh_Hant_HK", "fil", "pt_BR"] {
            assert!(valid_language(good), "{good}");
        }
        for bad in ["", "E", "english", "en-US", "en_", "en_US_X_Y", "EN"] {
            assert!(!valid_language(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let ok = json!({"name": "order_shipped", "language": "en", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Order {{1}} shipped."}]});
        assert!(validate(&definition(ok.clone())).is_ok());
        let cases = [
            (json!({"name": "Order Shipped"}), "name"),
            (json!({"language": "english"}), "language"),
            (json!({"components": [{"type": "FOOTER", "text": "x"}]}), "components"),
            (
                json!({"components": [{"type": "BODY", "text": "a"}, {"type": "BODY", "text": "b"}]}),
                "components[1].type",
            ),
            (
                json!({"components": [{"type": "HEADER", "format": "TEXT"}, {"type": "BODY", "text": "b"}]}),
                "components[0].text",
            ),
            (
                json!({"components": [{"type": "BODY", "text": "b"}, {"type": "BUTTONS", "buttons": []}]}),
                "components[1].buttons",
            ),
        ];
        for (change, field) in cases {
            let mut value = ok.clone();
            for (key, replacement) in change.as_object().unwrap() {
                value[key] = replacement.clone();
            }
            let error = validate(&definition(value)).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field));
        }
    }

    #[test]
    fn a_service_category_is_no_template_category() {
        let error = serde_json::from_value::<TemplateDefinition>(json!({"name": "x", "language": "en",
            "category": "SERVICE", "components": [{"type": "BODY", "text": "hi"}]}))
        .unwrap_err();
        assert!(
            error.to_string().contains("AUTHENTICATION, MARKETING, UTILITY"),
            "{error}"
        );
    }
}
