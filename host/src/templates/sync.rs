//! The template submitter: takes lint-clean versions (`SUBMITTING`) to the Cloud API's
//! template endpoints and brings Meta's verdicts back. Webhooks
//! (`message_template_status_update`) usually tell first; the submitter also asks for every
//! `PENDING` version on each round and lists the whole business account now and then, so a
//! lost webhook, a restart or a template made in Meta's own tools still ends up right here.
//! May call the store, the registry and the Cloud API.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Registry, TemplateStatus};
use crate::{
    message::Category,
    store::{self, Store, TemplateVersion, TemplateWrite},
};

/// Who the Cloud API is, for templates.
#[derive(Debug, Clone)]
pub struct TemplateEndpoint {
    /// Such as `https://graph.facebook.com/v23.0`.
    pub base: String,
    pub business_account_id: String,
    pub access_token: Option<String>,
    pub request_timeout: Duration,
}

pub struct Submitter {
    store: Store,
    registry: Arc<Registry>,
    endpoint: TemplateEndpoint,
    http: reqwest::Client,
    interval: Duration,
    full_sync_every: u32,
}

/// What the Cloud API answered, as far as a round needs it.
#[derive(Debug)]
enum CallError {
    /// Meta refused the request: it is final for this version.
    Refused {
        code: i64,
        subcode: Option<i64>,
        message: String,
    },
    /// Could not reach Meta, or it failed on its side: try again next round.
    Transient(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused { code, message, .. } => write!(formatter, "Meta refused it ({code}): {message}"),
            CallError::Transient(detail) => write!(formatter, "{detail}"),
        }
    }
}

/// A template as Meta lists it.
#[derive(Debug, Deserialize)]
struct MetaTemplate {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    rejected_reason: Option<String>,
    #[serde(default)]
    quality_score: Option<Value>,
    #[serde(default)]
    components: Option<Value>,
    #[serde(default)]
    parameter_format: Option<String>,
}

impl MetaTemplate {
    fn quality(&self) -> Option<String> {
        self.quality_score
            .as_ref()
            .and_then(|score| score.get("score"))
            .and_then(Value::as_str)
            .filter(|score| !score.eq_ignore_ascii_case("UNKNOWN"))
            .map(str::to_owned)
    }

    fn reason(&self) -> Option<String> {
        self.rejected_reason.clone().filter(|reason| reason != "NONE")
    }
}

/// Meta's category name in lower case, as wasp keeps it.
pub fn category_from_meta(text: &str) -> Option<Category> {
    match text.to_ascii_uppercase().as_str() {
        "AUTHENTICATION" => Some(Category::Authentication),
        "MARKETING" => Some(Category::Marketing),
        "UTILITY" => Some(Category::Utility),
        _ => None,
    }
}

impl Submitter {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        endpoint: TemplateEndpoint,
        interval: Duration,
        full_sync_interval: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(endpoint.request_timeout)
            .build()
            .map_err(|error| anyhow::anyhow!("building the template HTTP client: {error}"))?;
        let interval = interval.max(Duration::from_millis(10));
        let full_sync_every =
            u32::try_from((full_sync_interval.as_millis() / interval.as_millis()).max(1)).unwrap_or(u32::MAX);
        Ok(Self {
            store,
            registry,
            endpoint,
            http,
            interval,
            full_sync_every,
        })
    }

    /// Runs rounds for as long as the process lives; the first round lists the whole
    /// account. Every write is durable when made, so stopping between rounds loses nothing.
    /// Rounds run while `leader` holds shard 0: once in the cluster.
    pub async fn run(self, leader: Arc<crate::cluster::Cluster>) {
        let mut round: u32 = 0;
        loop {
            if !leader.is_leader() {
                tokio::time::sleep(self.interval).await;
                continue;
            }
            if let Err(error) = self.round(round.is_multiple_of(self.full_sync_every)).await {
                tracing::warn!(%error, "template sync round failed; next round retries");
            }
            round = round.wrapping_add(1);
            self.registry.submit_ready(self.interval).await;
        }
    }

    /// One round: submit what waits, ask about what is pending, and (when `full`) reconcile
    /// with everything the account lists.
    pub async fn round(&self, full: bool) -> anyhow::Result<()> {
        for version in self.store.templates_in(TemplateStatus::Submitting, 50).await? {
            self.submit(&version).await?;
        }
        for version in self.store.templates_in(TemplateStatus::Pending, 200).await? {
            let Some(meta_id) = version.meta_id.clone() else {
                continue;
            };
            match self.fetch(&meta_id).await {
                Ok(template) => self.apply(&meta_id, &template).await?,
                Err(CallError::Refused { code: 100, .. }) => {
                    // Meta no longer knows the id (deleted in Meta's tools).
                    self.meta_update(
                        &meta_id,
                        Some(TemplateStatus::Disabled),
                        Some("deleted at Meta".into()),
                        None,
                        None,
                    )
                    .await?;
                }
                Err(error) => tracing::warn!(%error, meta_id, "asking Meta for a pending template"),
            }
        }
        if full {
            self.reconcile().await?;
        }
        Ok(())
    }

    /// Creates the version at Meta (or, when an earlier version of the same name and language
    /// is there, edits that template), recording the answer.
    async fn submit(&self, version: &TemplateVersion) -> anyhow::Result<()> {
        let existing = self
            .store
            .template_versions_named(&version.name)
            .await?
            .into_iter()
            .filter(|other| other.language == version.language && other.version < version.version)
            .filter_map(|other| other.meta_id)
            .next_back();
        let outcome = match &existing {
            Some(meta_id) => self
                .edit(meta_id, version)
                .await
                .map(|()| (meta_id.clone(), TemplateStatus::Pending)),
            None => self.create(version).await,
        };
        let (status, reason, meta_id) = match outcome {
            Ok((meta_id, status)) => (status, None, Some(meta_id)),
            // Already there: an earlier attempt got through but its answer was lost, or the
            // template was made in Meta's tools. Adopt it.
            Err(CallError::Refused {
                subcode: Some(2_388_024),
                ..
            }) => match self.find(&version.name, &version.language).await {
                Ok(Some(template)) => {
                    let status = template
                        .status
                        .as_deref()
                        .and_then(TemplateStatus::from_meta)
                        .unwrap_or(TemplateStatus::Pending);
                    (status, template.reason(), Some(template.id))
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        name = version.name,
                        language = version.language,
                        "Meta says the template exists but does not list it; retrying"
                    );
                    return Ok(());
                }
            },
            Err(CallError::Refused { message, .. }) => (TemplateStatus::Rejected, Some(message), None),
            Err(CallError::Transient(detail)) => {
                tracing::warn!(
                    name = version.name,
                    language = version.language,
                    detail,
                    "submitting a template; next round retries"
                );
                return Ok(());
            }
        };
        let written = self
            .registry
            .record(
                &self.store,
                TemplateWrite::Status {
                    name: version.name.clone(),
                    language: version.language.clone(),
                    version: version.version,
                    from: vec![TemplateStatus::Submitting],
                    status,
                    reason,
                    meta_id,
                    at_ms: store::now_ms(),
                },
                None,
            )
            .await?;
        if let Some(written) = written {
            tracing::info!(name = written.name, language = written.language, version = written.version, status = %written.status, "template submitted");
        }
        Ok(())
    }

    async fn create(&self, version: &TemplateVersion) -> Result<(String, TemplateStatus), CallError> {
        let url = format!(
            "{}/{}/message_templates",
            self.endpoint.base, self.endpoint.business_account_id
        );
        let answer = self.call(self.http.post(url).json(&version.definition)).await?;
        let id = answer
            .get("id")
            .and_then(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .or_else(|| id.as_u64().map(|id| id.to_string()))
            })
            .ok_or_else(|| CallError::Transient(format!("no template id in Meta's answer: {answer}")))?;
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .and_then(TemplateStatus::from_meta)
            .unwrap_or(TemplateStatus::Pending);
        Ok((id, status))
    }

    async fn edit(&self, meta_id: &str, version: &TemplateVersion) -> Result<(), CallError> {
        let url = format!("{}/{meta_id}", self.endpoint.base);
        let mut body = json!({"components": version.definition.get("components").cloned().unwrap_or(Value::Null)});
        if let Some(category) = version.definition.get("category") {
            body["category"] = category.clone();
        }
        self.call(self.http.post(url).json(&body)).await.map(drop)
    }

    async fn fetch(&self, meta_id: &str) -> Result<MetaTemplate, CallError> {
        let url = format!(
            "{}/{meta_id}?fields=id,name,language,status,category,rejected_reason,quality_score",
            self.endpoint.base
        );
        let answer = self.call(self.http.get(url)).await?;
        serde_json::from_value(answer).map_err(|error| CallError::Transient(format!("Meta's template answer: {error}")))
    }

    /// The template Meta lists under this name and language.
    async fn find(&self, name: &str, language: &str) -> Result<Option<MetaTemplate>, CallError> {
        let url = format!(
            "{}/{}/message_templates",
            self.endpoint.base, self.endpoint.business_account_id
        );
        let answer = self
            .call(self.http.get(url).query(&[("name", name), ("language", language)]))
            .await?;
        let templates: Vec<MetaTemplate> = answer
            .get("data")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| CallError::Transient(format!("Meta's template list: {error}")))?
            .unwrap_or_default();
        Ok(templates
            .into_iter()
            .find(|template| template.name.as_deref() == Some(name) && template.language.as_deref() == Some(language)))
    }

    /// Lists every template of the account, page by page, and brings each one here: a status
    /// or quality that changed, or a template wasp never saw (imported as a new version).
    async fn reconcile(&self) -> anyhow::Result<()> {
        let versions = self.store.template_versions().await?;
        let known_pairs: std::collections::HashSet<(String, String)> = versions
            .iter()
            .map(|version| (version.name.clone(), version.language.clone()))
            .collect();
        // By Meta's id, the newest version holding it.
        let known: HashMap<String, TemplateVersion> = versions
            .into_iter()
            .filter_map(|version| version.meta_id.clone().map(|id| (id, version)))
            .collect();
        let mut url = format!(
            "{}/{}/message_templates?limit=100",
            self.endpoint.base, self.endpoint.business_account_id
        );
        // Bounded, so a misbehaving `next` link cannot keep a round going forever.
        for _ in 0..1_000 {
            let page = match self.call(self.http.get(&url)).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "listing the account's templates");
                    return Ok(());
                }
            };
            let templates: Vec<MetaTemplate> = page
                .get("data")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| anyhow::anyhow!("Meta's template list: {error}"))?
                .unwrap_or_default();
            for template in &templates {
                match known.get(&template.id) {
                    Some(version) => {
                        let status = template.status.as_deref().and_then(TemplateStatus::from_meta);
                        let changed = status.is_some_and(|status| status != version.status)
                            || template
                                .quality()
                                .is_some_and(|quality| Some(&quality) != version.quality.as_ref());
                        if changed {
                            self.apply(&template.id, template).await?;
                        }
                    }
                    None => self.import(template, &known_pairs).await?,
                }
            }
            match page.pointer("/paging/next").and_then(Value::as_str) {
                Some(next) if !templates.is_empty() => url = next.to_owned(),
                _ => break,
            }
        }
        Ok(())
    }

    /// A template Meta lists and wasp has no version of (made in Meta's tools).
    async fn import(
        &self,
        template: &MetaTemplate,
        known_pairs: &std::collections::HashSet<(String, String)>,
    ) -> anyhow::Result<()> {
        let (Some(name), Some(language)) = (template.name.clone(), template.language.clone()) else {
            return Ok(());
        };
        let Some(status) = template.status.as_deref().and_then(TemplateStatus::from_meta) else {
            return Ok(());
        };
        let Some(category) = template.category.as_deref().and_then(category_from_meta) else {
            return Ok(());
        };
        if known_pairs.contains(&(name.clone(), language.clone())) {
            // Ours, but Meta gave it another id (deleted and made again in Meta's tools): a
            // new version takes the new id.
            tracing::info!(name, language, id = template.id, "template has a new id at Meta");
        }
        let now = store::now_ms();
        let mut definition = json!({
            "name": name,
            "language": language,
            "category": category.as_str().to_ascii_uppercase(),
            "components": template.components.clone().unwrap_or(Value::Array(Vec::new())),
        });
        if let Some(format) = &template.parameter_format {
            definition["parameter_format"] = Value::String(format.to_ascii_uppercase());
        }
        self.registry
            .record(
                &self.store,
                TemplateWrite::Create(Box::new(TemplateVersion {
                    name,
                    language,
                    version: 0,
                    category,
                    definition,
                    status,
                    reason: template.reason(),
                    meta_id: Some(template.id.clone()),
                    quality: template.quality(),
                    findings: Vec::new(),
                    created_by: "meta".to_owned(),
                    created_at_ms: now,
                    updated_at_ms: now,
                })),
                None,
            )
            .await?;
        Ok(())
    }

    /// What Meta lists for a template, applied to the version holding its id.
    async fn apply(&self, meta_id: &str, template: &MetaTemplate) -> anyhow::Result<()> {
        self.meta_update(
            meta_id,
            template.status.as_deref().and_then(TemplateStatus::from_meta),
            template.reason(),
            template.quality(),
            template.category.as_deref().and_then(category_from_meta),
        )
        .await
    }

    async fn meta_update(
        &self,
        meta_id: &str,
        status: Option<TemplateStatus>,
        reason: Option<String>,
        quality: Option<String>,
        category: Option<Category>,
    ) -> anyhow::Result<()> {
        let write = TemplateWrite::Meta {
            meta_id: meta_id.to_owned(),
            status,
            reason,
            quality,
            category,
            at_ms: store::now_ms(),
        };
        self.registry.record(&self.store, write, None).await?;
        Ok(())
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let request = match &self.endpoint.access_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|error| CallError::Transient(format!("calling the Cloud API: {error}")))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|error| CallError::Transient(format!("reading the Cloud API's answer ({status}): {error}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let error = body.get("error");
        let code = error.and_then(|error| error.get("code")).and_then(Value::as_i64);
        match code {
            // Throttled, or Meta's own trouble: not a verdict on the template.
            Some(code) if status.is_client_error() && !matches!(code, 4 | 80_007 | 130_429 | 1 | 2) => {
                let message = error
                    .and_then(|error| error.get("error_user_msg").or_else(|| error.get("message")))
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned();
                Err(CallError::Refused {
                    code,
                    subcode: error
                        .and_then(|error| error.get("error_subcode"))
                        .and_then(Value::as_i64),
                    message,
                })
            }
            _ => Err(CallError::Transient(format!("the Cloud API answered {status}: {body}"))),
        }
    }
}

/// A `message_template_status_update` or `template_category_update` webhook change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateChange {
    pub meta_id: String,
    /// `APPROVED`, `REJECTED`, `PAUSED`, ...; none for a quality or category update.
    pub event: Option<String>,
    /// Meta's reason code (`INVALID_FORMAT`, `NONE`, ...).
    pub reason: Option<String>,
    /// `rejection_info.reason`: Meta's explanation of a rejection.
    pub detail: Option<String>,
    pub new_quality_score: Option<String>,
    pub new_category: Option<String>,
}

/// Applies a template webhook change; answers the version it changed, if wasp knows the
/// template (Meta's id).
pub async fn apply_webhook(
    store: &Store,
    registry: &Registry,
    change: TemplateChange,
) -> store::Result<Option<TemplateVersion>> {
    let status = change.event.as_deref().and_then(TemplateStatus::from_meta);
    let reason = change
        .reason
        .filter(|reason| reason != "NONE")
        .map(|reason| match &change.detail {
            Some(detail) => format!("{reason}: {detail}"),
            None => reason,
        });
    let category = change.new_category.as_deref().and_then(category_from_meta);
    if status.is_none() && change.new_quality_score.is_none() && category.is_none() {
        return Ok(None);
    }
    let write = TemplateWrite::Meta {
        meta_id: change.meta_id,
        status,
        reason: if status.is_some() { reason } else { None },
        quality: change.new_quality_score,
        category,
        at_ms: store::now_ms(),
    };
    registry.record(store, write, None).await
}
