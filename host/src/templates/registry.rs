//! What each (name, language) of a template stands at, in memory, for the checks on the
//! message path and for listing: loaded from the store at start and updated with every
//! template write this node makes (and every sync), and read again when another node changed
//! templates ([`Registry::reload`]). The versions themselves stay in the store.
//!
//! A (name, language) may be sent when its newest version that reached the Cloud API is
//! `APPROVED`: an edit goes back under Meta's review, and until it is approved again the
//! template is not sent.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use serde::Serialize;

use super::TemplateStatus;
use crate::{
    message::Category,
    store::{self, Store, TemplateVersion},
};

/// One (name, language) as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateSummary {
    pub name: String,
    pub language: String,
    pub category: Category,
    /// The status that decides sends: that of `live_version`, or of the newest version when
    /// none reached Meta yet.
    pub status: TemplateStatus,
    /// The newest version that reached the Cloud API.
    pub live_version: Option<u32>,
    pub newest_version: u32,
    /// The status of the newest version (differs from `status` while an edit is on its way).
    pub newest_status: TemplateStatus,
    pub reason: Option<String>,
    pub quality: Option<String>,
    pub meta_id: Option<String>,
    pub updated_at_ms: i64,
    /// The parameters the live version takes (of the newest while none is live).
    #[serde(skip)]
    pub parameters: Option<ParameterShape>,
}

/// How many parameters a template's header and body take, as a message must fill them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParameterShape {
    pub header: usize,
    pub body: usize,
}

impl ParameterShape {
    /// Read from a definition in the Cloud API's creation format (kept as JSON: templates
    /// imported from Meta may hold components wasp does not model). A media or location
    /// header takes one parameter; a text header and the body one per distinct placeholder.
    pub fn of(definition: &serde_json::Value) -> Option<Self> {
        let components = definition.get("components")?.as_array()?;
        let mut shape = Self::default();
        for component in components {
            let kind = component
                .get("type")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let text = component
                .get("text")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            if kind.eq_ignore_ascii_case("HEADER") {
                let format = component
                    .get("format")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("TEXT");
                shape.header = if format.eq_ignore_ascii_case("TEXT") {
                    placeholders(text)
                } else {
                    1
                };
            } else if kind.eq_ignore_ascii_case("BODY") {
                shape.body = placeholders(text);
            }
        }
        Some(shape)
    }
}

/// Distinct `{{…}}` placeholders in a text.
fn placeholders(text: &str) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let name = after[..end].trim();
        if !name.is_empty() && !seen.contains(&name) {
            seen.push(name);
        }
        rest = &after[end + 2..];
    }
    seen.len()
}

impl TemplateSummary {
    pub fn sendable(&self) -> bool {
        self.live_version.is_some() && self.status == TemplateStatus::Approved
    }
}

/// Why a message naming a template is refused at submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCheck {
    /// The request field at fault: `content.template.name`, `content.template.language.code`
    /// or `content.template.components`.
    pub field: &'static str,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Registry {
    /// Whether messages naming a template are checked against the registry (a business
    /// account is configured and `templates.check_at_submit` is on).
    enforce: bool,
    pairs: RwLock<Arc<BTreeMap<(String, String), TemplateSummary>>>,
    /// Rung when a version is ready for the Cloud API, so it does not wait a whole round.
    submit_ready: tokio::sync::Notify,
    /// Held by [`Registry::record`] across its write and by [`Registry::reload`] across its
    /// read: a reload's read of the store then never undoes a write this node made meanwhile.
    writes: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn new(enforce: bool) -> Self {
        Self {
            enforce,
            pairs: RwLock::default(),
            submit_ready: tokio::sync::Notify::new(),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Builds the registry from every stored version.
    pub async fn load(enforce: bool, store: &Store) -> store::Result<Self> {
        let registry = Self::new(enforce);
        *registry.pairs_mut() = Arc::new(summaries(&store.template_versions().await?));
        Ok(registry)
    }

    /// Replaces what the registry holds with every stored version, after another node changed
    /// templates. A version now waiting for the Cloud API that was not waiting here before
    /// wakes the submitter, as [`Registry::record`] does for this node's own writes.
    pub async fn reload(&self, store: &Store) -> store::Result<()> {
        let _writes = self.writes.lock().await;
        let fresh = Arc::new(summaries(&store.template_versions().await?));
        let previous = std::mem::replace(&mut *self.pairs_mut(), Arc::clone(&fresh));
        let newly_submitting = fresh.iter().any(|(key, summary)| {
            summary.newest_status == TemplateStatus::Submitting
                && previous.get(key).is_none_or(|before| {
                    before.newest_version != summary.newest_version || before.newest_status != summary.newest_status
                })
        });
        if newly_submitting {
            self.wake_submitter();
        }
        Ok(())
    }

    fn wake_submitter(&self) {
        self.submit_ready.notify_one();
    }

    /// Waits for [`Registry::wake_submitter`] or `timeout`, whichever comes first.
    pub async fn submit_ready(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.submit_ready.notified()).await;
    }

    fn pairs_mut(&self) -> std::sync::RwLockWriteGuard<'_, Arc<BTreeMap<(String, String), TemplateSummary>>> {
        self.pairs.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot(&self) -> Arc<BTreeMap<(String, String), TemplateSummary>> {
        Arc::clone(&self.pairs.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Applies a template write (with its audit row, if any) and takes in the version it
    /// answers; a version now waiting for the Cloud API wakes the submitter. Every template
    /// change goes through here, so the registry never lags the store on this node.
    pub async fn record(
        &self,
        store: &Store,
        write: store::TemplateWrite,
        audit: Option<store::AuditEntry>,
    ) -> store::Result<Option<TemplateVersion>> {
        let _writes = self.writes.lock().await;
        let written = store.template_write(write, audit).await?;
        if let Some(version) = &written {
            self.observe(version);
            if version.status == TemplateStatus::Submitting {
                self.wake_submitter();
            }
        }
        Ok(written)
    }

    /// Takes in a version as a store write answered it.
    pub fn observe(&self, version: &TemplateVersion) {
        let mut pairs = self.pairs_mut();
        fold(Arc::make_mut(&mut pairs), version);
    }

    pub fn summary(&self, name: &str, language: &str) -> Option<TemplateSummary> {
        self.snapshot().get(&(name.to_owned(), language.to_owned())).cloned()
    }

    /// Summaries in (name, language) order, after `after` when given, at most `limit`,
    /// keeping those `keep` accepts.
    pub fn list(
        &self,
        after: Option<&(String, String)>,
        limit: usize,
        keep: impl Fn(&TemplateSummary) -> bool,
    ) -> Vec<TemplateSummary> {
        let pairs = self.snapshot();
        let range = match after {
            Some(after) => {
                pairs.range::<(String, String), _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            }
            None => pairs.range::<(String, String), _>(..),
        };
        range
            .map(|(_, summary)| summary)
            .filter(|summary| keep(summary))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Whether a message may name this template in this language; always when the registry
    /// is not enforced.
    /// `given`: the parameters the message fills; checked against what the approved version
    /// takes (Meta would answer 132000 after a trip through the queue).
    pub fn check(&self, name: &str, language: &str, given: ParameterShape) -> Result<(), SendCheck> {
        if !self.enforce {
            return Ok(());
        }
        let pairs = self.snapshot();
        if let Some(summary) = pairs.get(&(name.to_owned(), language.to_owned())) {
            if summary.sendable() {
                return match summary.parameters {
                    Some(wanted) if wanted != given => Err(SendCheck {
                        field: "content.template.components",
                        reason: format!(
                            "template {name:?} in {language:?} takes {} header and {} body parameter(s); the message gives {} and {}",
                            wanted.header, wanted.body, given.header, given.body
                        ),
                    }),
                    _ => Ok(()),
                };
            }
            let reason = match (summary.live_version, summary.status) {
                (None, status) => format!(
                    "template {name:?} in {language:?} is not approved yet: it is {status} and has not reached the Cloud API"
                ),
                (Some(_), TemplateStatus::Pending) => {
                    format!("template {name:?} in {language:?} is not approved: Meta is reviewing it (PENDING)")
                }
                (Some(_), status) => match &summary.reason {
                    Some(reason) => {
                        format!("template {name:?} in {language:?} is not approved: it is {status} ({reason})")
                    }
                    None => format!("template {name:?} in {language:?} is not approved: it is {status}"),
                },
            };
            return Err(SendCheck {
                field: "content.template.language.code",
                reason,
            });
        }
        let languages: Vec<&str> = pairs
            .keys()
            .filter(|(pair_name, _)| pair_name == name)
            .map(|(_, language)| language.as_str())
            .collect();
        Err(if languages.is_empty() {
            SendCheck {
                field: "content.template.name",
                reason: format!("no template is named {name:?}"),
            }
        } else {
            SendCheck {
                field: "content.template.language.code",
                reason: format!(
                    "template {name:?} has no version in {language:?}; it has: {}",
                    languages.join(", ")
                ),
            }
        })
    }
}

/// The summary of every (name, language) the versions hold.
fn summaries(versions: &[TemplateVersion]) -> BTreeMap<(String, String), TemplateSummary> {
    let mut pairs = BTreeMap::new();
    for version in versions {
        fold(&mut pairs, version);
    }
    pairs
}

/// Folds one version into the summary of its (name, language).
fn fold(pairs: &mut BTreeMap<(String, String), TemplateSummary>, version: &TemplateVersion) {
    let key = (version.name.clone(), version.language.clone());
    let summary = pairs.entry(key).or_insert_with(|| TemplateSummary {
        name: version.name.clone(),
        language: version.language.clone(),
        category: version.category,
        status: version.status,
        live_version: None,
        newest_version: version.version,
        newest_status: version.status,
        reason: version.reason.clone(),
        quality: version.quality.clone(),
        meta_id: version.meta_id.clone(),
        updated_at_ms: version.updated_at_ms,
        parameters: ParameterShape::of(&version.definition),
    });
    if version.version >= summary.newest_version {
        summary.newest_version = version.version;
        summary.newest_status = version.status;
        summary.updated_at_ms = summary.updated_at_ms.max(version.updated_at_ms);
        if summary.live_version.is_none() {
            summary.status = version.status;
            summary.reason = version.reason.clone();
            summary.category = version.category;
            summary.parameters = ParameterShape::of(&version.definition);
        }
    }
    if version.meta_id.is_some() && summary.live_version.is_none_or(|live| version.version >= live) {
        summary.live_version = Some(version.version);
        summary.status = version.status;
        summary.reason = version.reason.clone();
        summary.quality = version.quality.clone();
        summary.meta_id = version.meta_id.clone();
        summary.category = version.category;
        summary.parameters = ParameterShape::of(&version.definition);
        summary.updated_at_ms = summary.updated_at_ms.max(version.updated_at_ms);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn version(number: u32, status: TemplateStatus, meta_id: Option<&str>) -> TemplateVersion {
        TemplateVersion {
            name: "order_shipped".to_owned(),
            language: "en".to_owned(),
            version: number,
            category: Category::Utility,
            definition: json!({}),
            status,
            reason: (status == TemplateStatus::Rejected).then(|| "INVALID_FORMAT".to_owned()),
            meta_id: meta_id.map(str::to_owned),
            quality: None,
            findings: Vec::new(),
            created_by: "ops".to_owned(),
            created_at_ms: i64::from(number),
            updated_at_ms: i64::from(number),
        }
    }

    /// Whether the submitter was woken (and takes the wake-up); never waits.
    async fn woken(registry: &Registry) -> bool {
        tokio::time::timeout(
            std::time::Duration::ZERO,
            registry.submit_ready(std::time::Duration::from_secs(3_600)),
        )
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn reload_takes_in_versions_another_node_wrote() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("wasp.db").display());
        let store = Store::open(&url, 1_000).await.unwrap();
        let registry = Registry::load(true, &store).await.unwrap();
        let write =
            |version: TemplateVersion| store.template_write(store::TemplateWrite::Create(Box::new(version)), None);

        write(version(1, TemplateStatus::Approved, Some("77"))).await.unwrap();
        assert_eq!(
            registry
                .check("order_shipped", "en", ParameterShape::default())
                .unwrap_err()
                .field,
            "content.template.name",
            "not seen before the reload"
        );
        registry.reload(&store).await.unwrap();
        assert_eq!(registry.check("order_shipped", "en", ParameterShape::default()), Ok(()));
        assert_eq!(registry.summary("order_shipped", "en").unwrap().live_version, Some(1));
        assert!(!woken(&registry).await, "nothing waits for the Cloud API");

        // An edit made on another node waits for the Cloud API: the submitter here is woken
        // once, and the approved version still decides sends.
        write(version(2, TemplateStatus::Submitting, None)).await.unwrap();
        registry.reload(&store).await.unwrap();
        let summary = registry.summary("order_shipped", "en").unwrap();
        assert_eq!((summary.live_version, summary.newest_version), (Some(1), 2));
        assert_eq!(summary.newest_status, TemplateStatus::Submitting);
        assert!(woken(&registry).await);
        registry.reload(&store).await.unwrap();
        assert!(
            !woken(&registry).await,
            "a version already waiting does not wake it again"
        );
    }

    #[test]
    fn an_unenforced_registry_lets_every_template_through() {
        assert_eq!(
            Registry::new(false).check("anything", "en", ParameterShape::default()),
            Ok(())
        );
    }

    #[test]
    fn the_newest_version_at_meta_decides_and_the_refusal_names_the_field() {
        let registry = Registry::new(true);
        let unknown = registry
            .check("order_shipped", "en", ParameterShape::default())
            .unwrap_err();
        assert_eq!(unknown.field, "content.template.name");

        registry.observe(&version(1, TemplateStatus::Submitting, None));
        let submitting = registry
            .check("order_shipped", "en", ParameterShape::default())
            .unwrap_err();
        assert_eq!(submitting.field, "content.template.language.code");
        assert!(submitting.reason.contains("SUBMITTING"), "{}", submitting.reason);

        registry.observe(&version(1, TemplateStatus::Approved, Some("77")));
        assert_eq!(registry.check("order_shipped", "en", ParameterShape::default()), Ok(()));
        let other_language = registry
            .check("order_shipped", "de", ParameterShape::default())
            .unwrap_err();
        assert!(
            other_language.reason.contains("it has: en"),
            "{}",
            other_language.reason
        );

        // A new version waiting for review does not stop the approved one.
        registry.observe(&version(2, TemplateStatus::AwaitingReview, None));
        assert_eq!(registry.check("order_shipped", "en", ParameterShape::default()), Ok(()));
        let summary = registry.summary("order_shipped", "en").unwrap();
        assert_eq!((summary.live_version, summary.newest_version), (Some(1), 2));
        assert_eq!(summary.newest_status, TemplateStatus::AwaitingReview);

        // Once the edit reaches Meta it is under review, and so is the template.
        registry.observe(&version(2, TemplateStatus::Pending, Some("77")));
        assert!(
            registry
                .check("order_shipped", "en", ParameterShape::default())
                .unwrap_err()
                .reason
                .contains("PENDING")
        );
        registry.observe(&version(2, TemplateStatus::Rejected, Some("77")));
        let rejected = registry
            .check("order_shipped", "en", ParameterShape::default())
            .unwrap_err();
        assert!(
            rejected.reason.contains("REJECTED (INVALID_FORMAT)"),
            "{}",
            rejected.reason
        );
    }

    #[test]
    fn placeholders_count_once_per_name_and_media_headers_take_one() {
        let definition = json!({"components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{1}}, order {{2}} ({{1}}) ships {{ 3 }}."},
            {"type": "FOOTER", "text": "{{9}} is not counted"}]});
        assert_eq!(
            ParameterShape::of(&definition),
            Some(ParameterShape { header: 1, body: 3 })
        );
        let named = json!({"components": [{"type": "header", "format": "TEXT", "text": "For {{first_name}}"},
            {"type": "body", "text": "{{first_name}}, your code is {{code}}"}]});
        assert_eq!(ParameterShape::of(&named), Some(ParameterShape { header: 1, body: 2 }));
        assert_eq!(ParameterShape::of(&json!({})), None);
    }

    #[test]
    fn a_message_must_fill_what_the_approved_version_takes() {
        let registry = Registry::new(true);
        let mut approved = version(1, TemplateStatus::Approved, Some("77"));
        approved.definition = json!({"components": [{"type": "BODY", "text": "Order {{1}} ships {{2}}."}]});
        registry.observe(&approved);
        let two = ParameterShape { header: 0, body: 2 };
        assert_eq!(registry.check("order_shipped", "en", two), Ok(()));
        let refused = registry
            .check("order_shipped", "en", ParameterShape { header: 0, body: 1 })
            .unwrap_err();
        assert_eq!(refused.field, "content.template.components");
        assert!(
            refused.reason.contains("takes 0 header and 2 body"),
            "{}",
            refused.reason
        );
        // A new version waiting for review does not change what the live one takes.
        let mut draft = version(2, TemplateStatus::AwaitingReview, None);
        draft.definition = json!({"components": [{"type": "BODY", "text": "Order {{1}}."}]});
        registry.observe(&draft);
        assert_eq!(registry.check("order_shipped", "en", two), Ok(()));
    }

    #[test]
    fn listing_pages_in_name_and_language_order() {
        let registry = Registry::new(true);
        for (name, language) in [("b", "en"), ("a", "de"), ("a", "en"), ("c", "fr")] {
            let mut version = version(1, TemplateStatus::Approved, Some("1"));
            version.name = name.to_owned();
            version.language = language.to_owned();
            registry.observe(&version);
        }
        let first: Vec<_> = registry
            .list(None, 2, |_| true)
            .into_iter()
            .map(|summary| (summary.name, summary.language))
            .collect();
        assert_eq!(first, [("a".into(), "de".into()), ("a".into(), "en".into())]);
        let rest = registry.list(Some(&("a".to_owned(), "en".to_owned())), 10, |_| true);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].name, "b");
    }
}
