//! Message templates, as the WhatsApp Business Management API keeps them: the book of
//! templates per WABA, the delayed review that approves or rejects them, and the
//! `message_template_status_update` webhook sent on every status change.
//!
//! # Endpoints (Graph side, `graph::templates`)
//!
//! - `POST /{version}/{waba_id}/message_templates` with
//!   `{"name","language","category","parameter_format"?,"components":[…]}` answers
//!   `{"id":"<numeric>","status":"PENDING","category":"<category>"}`. Refusals use
//!   Meta's shapes: a missing `name`, `language`, `category` or `components` gets
//!   `(#100) The parameter X is required.`; a bad `category` or `parameter_format` or
//!   component `type` gets `(#100) Param … must be one of {…}`; a name not matching
//!   `^[a-z0-9_]{1,512}$` gets subcode 2388046 ("Name Format is Incorrect", with
//!   `error_data.blame_field_specs`); no `BODY` component (or a `BODY` without `text`
//!   outside `AUTHENTICATION`) gets subcode 2388043; the same name and language twice in
//!   one WABA gets subcode 2388024 ("Content in This Language Already Exists"). Those
//!   three carry `"message":"Invalid parameter"`, `is_transient`, `error_user_title`
//!   and `error_user_msg`, as Meta answers them.
//! - `GET /{version}/{waba_id}/message_templates?name=&language=&status=&category=&limit=&after=`
//!   answers `{"data":[{"name","parameter_format","components","language","status",
//!   "category","id","rejected_reason"?}],"paging":{"cursors":{"before","after"},"next"?}}`,
//!   oldest first. `name` matches part of a name, as Meta's filter does; `limit`
//!   defaults to [`DEFAULT_LIST_LIMIT`] (at most [`MAX_LIST_LIMIT`]); `next` is there
//!   only when more follow. No match: `{"data":[]}`.
//! - `GET /{version}/{template_id}` answers one template in the same shape.
//! - `DELETE /{version}/{waba_id}/message_templates?name=X[&hsm_id=ID]` deletes every
//!   language of `X`, or only the template `ID` (which must be named `X`), and answers
//!   `{"success":true}`.
//!
//! # Review
//!
//! A new template is `PENDING` for `template_review_ms` (config, default 1,500 ms), then
//! reviewed by these rules, the first that matches deciding (`rejected_reason` and the
//! webhook `reason`):
//!
//! 1. `INVALID_FORMAT`: the `BODY` text has two placeholders with nothing but spaces
//!    between them (`{{1}}{{2}}`, `{{1}} {{2}}`, `{{name}}{{code}}`). The webhook carries
//!    Meta's `rejection_info` (`reason`, `recommendation`).
//! 2. `SCAM`: any text of the template contains "free money".
//! 3. `ABUSIVE_CONTENT`: any text (buttons' URLs included) names a link shortener
//!    ([`LINK_SHORTENERS`]: bit.ly, tinyurl.com, …).
//! 4. `INCORRECT_CATEGORY`: a `UTILITY` or `AUTHENTICATION` template whose `BODY` is
//!    promotional: one of the words [`PROMOTIONAL_WORDS`] (sale, discount, offer, …,
//!    whole words, any case) or "% off".
//! 5. Otherwise `APPROVED`, reason `NONE`.
//!
//! A template whose status was changed meanwhile (`/_sim/templates/{id}/status`) or that
//! was deleted is not reviewed.
//!
//! # Webhooks
//!
//! Every status change (review, or a status forced through the control surface) posts
//! `{"object":"whatsapp_business_account","entry":[{"id":<waba_id>,"time":<seconds>,
//! "changes":[{"value":{"event","message_template_id":<number>,"message_template_name",
//! "message_template_language","reason","message_template_category",…},
//! "field":"message_template_status_update"}]}]}` to `webhook_url`, signed and retried like
//! every webhook (see `webhook`). `PAUSED` adds `other_info`, `DISABLED` adds
//! `disable_info`, an `INVALID_FORMAT` rejection adds `rejection_info`.
//!
//! # Sending
//!
//! With `enforce_templates` set, a template message must name an `APPROVED` template (name
//! and `language.code`, any WABA): otherwise 132001 (HTTP 404), 132015 when it is
//! `PAUSED`, 132016 when `DISABLED` (see `graph`).
//!
//! Owns `TemplateBook`, `Template` and the review rules (`review`). Calls `config`,
//! `state` and `webhook::post_template_status`; its lock is never held across an `.await`.

pub mod review;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::state::Shared;
use crate::webhook;
use review::{RejectionInfo, Verdict};

/// Templates one `GET …/message_templates` page holds when no `limit` is given.
pub const DEFAULT_LIST_LIMIT: usize = 25;
/// Most templates one page holds.
pub const MAX_LIST_LIMIT: usize = 1_000;
/// Longest template name.
pub const NAME_MAX_CHARS: usize = 512;
/// Words that make a `UTILITY` or `AUTHENTICATION` body promotional (whole words, any case).
pub const PROMOTIONAL_WORDS: &[&str] = &[
    "sale",
    "sales",
    "discount",
    "discounts",
    "offer",
    "offers",
    "promo",
    "promotion",
    "coupon",
    "coupons",
];
/// Link shortener domains that get a template rejected as `ABUSIVE_CONTENT`.
pub const LINK_SHORTENERS: &[&str] = &["bit.ly", "tinyurl.com", "goo.gl", "ow.ly", "is.gd", "t.ly", "cutt.ly"];

/// Where a template stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    /// Waiting for review.
    Pending,
    /// May be sent.
    Approved,
    /// Refused at review.
    Rejected,
    /// Paused for low quality; sends get 132015.
    Paused,
    /// Disabled for good; sends get 132016.
    Disabled,
}

impl TemplateStatus {
    /// Meta's name for it (`"APPROVED"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
        }
    }

    /// Parses Meta's name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Rejected,
            Self::Paused,
            Self::Disabled,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }
}

/// A template's category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// One-time passwords.
    Authentication,
    /// Promotions.
    Marketing,
    /// Transactional updates.
    Utility,
}

impl Category {
    /// Meta's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "AUTHENTICATION",
            Self::Marketing => "MARKETING",
            Self::Utility => "UTILITY",
        }
    }

    /// Parses Meta's name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Authentication, Self::Marketing, Self::Utility]
            .into_iter()
            .find(|category| category.as_str().eq_ignore_ascii_case(text))
    }
}

/// How the template's placeholders are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`.
    Positional,
    /// `{{first_name}}`.
    Named,
}

impl ParameterFormat {
    /// Parses Meta's name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("POSITIONAL") {
            Some(Self::Positional)
        } else if text.eq_ignore_ascii_case("NAMED") {
            Some(Self::Named)
        } else {
            None
        }
    }
}

/// One template (one name in one language) as the simulator holds it; also an entry
/// of `GET /_sim/templates`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Template {
    /// Meta's template id (`hsm_id`), a numeric string.
    pub id: String,
    /// The WABA it was created under (the path's id).
    pub waba_id: String,
    /// `name`.
    pub name: String,
    /// `language`, e.g. `en_US`.
    pub language: String,
    /// `category`.
    pub category: Category,
    /// `parameter_format` (`POSITIONAL` when not given).
    pub parameter_format: ParameterFormat,
    /// `components`, as created (component types upper-cased).
    pub components: Value,
    /// Where it stands.
    pub status: TemplateStatus,
    /// The reason of the last status change (`NONE`, or e.g. `INVALID_FORMAT`).
    pub reason: String,
}

/// A template to create, already checked by `graph::templates`.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub parameter_format: ParameterFormat,
    pub components: Value,
}

/// Why a template could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreateRefusal {
    /// The WABA already holds this name in this language.
    Duplicate,
}

/// Filters of a listing.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListFilter {
    /// Part of the name.
    pub name: Option<String>,
    pub language: Option<String>,
    pub status: Option<TemplateStatus>,
    pub category: Option<Category>,
    /// Only templates after this id (cursor order).
    pub after: Option<u64>,
}

/// Every template the simulator holds, in creation order (ids rise with it).
#[derive(Debug)]
pub(crate) struct TemplateBook {
    inner: Mutex<BookInner>,
}

#[derive(Debug)]
struct BookInner {
    templates: Vec<Template>,
    next_id: u64,
}

impl Default for TemplateBook {
    fn default() -> Self {
        // 16 digits, like Meta's ids, different per run.
        let next_id = 1_000_000_000_000_000 + rand::random_range(0..100_000_000_000_000);
        Self {
            inner: Mutex::new(BookInner {
                templates: Vec::new(),
                next_id,
            }),
        }
    }
}

impl TemplateBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a `PENDING` template, unless the WABA holds the name in this language.
    pub(crate) fn create(&self, draft: Draft) -> Result<Template, CreateRefusal> {
        let mut inner = self.lock();
        let duplicate = inner.templates.iter().any(|template| {
            template.waba_id == draft.waba_id && template.name == draft.name && template.language == draft.language
        });
        if duplicate {
            return Err(CreateRefusal::Duplicate);
        }
        let id = inner.next_id;
        inner.next_id += rand::random_range(1..=997);
        let template = Template {
            id: id.to_string(),
            waba_id: draft.waba_id,
            name: draft.name,
            language: draft.language,
            category: draft.category,
            parameter_format: draft.parameter_format,
            components: draft.components,
            status: TemplateStatus::Pending,
            reason: review::REASON_NONE.to_owned(),
        };
        inner.templates.push(template.clone());
        Ok(template)
    }

    /// Every template, oldest first.
    pub(crate) fn all(&self) -> Vec<Template> {
        self.lock().templates.clone()
    }

    /// One template by id.
    pub(crate) fn get(&self, id: &str) -> Option<Template> {
        self.lock().templates.iter().find(|template| template.id == id).cloned()
    }

    /// The WABA's templates matching `filter`, oldest first: at most `limit`, and
    /// whether more follow.
    pub(crate) fn list(&self, waba_id: &str, filter: &ListFilter, limit: usize) -> (Vec<Template>, bool) {
        let inner = self.lock();
        let mut matching = inner.templates.iter().filter(|template| {
            template.waba_id == waba_id
                && filter.name.as_deref().is_none_or(|name| template.name.contains(name))
                && filter
                    .language
                    .as_deref()
                    .is_none_or(|language| template.language == language)
                && filter.status.is_none_or(|status| template.status == status)
                && filter.category.is_none_or(|category| template.category == category)
                && filter.after.is_none_or(|after| numeric_id(template) > after)
        });
        let page: Vec<Template> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// Deletes the WABA's templates named `name` (only the one with `id` when given);
    /// how many went.
    pub(crate) fn delete(&self, waba_id: &str, name: &str, id: Option<&str>) -> usize {
        let mut inner = self.lock();
        let before = inner.templates.len();
        inner.templates.retain(|template| {
            !(template.waba_id == waba_id && template.name == name && id.is_none_or(|id| template.id == id))
        });
        before - inner.templates.len()
    }

    /// An edit: new components (and category, when given) put the template back under
    /// review as `PENDING`; `None` when there is no such template.
    pub(crate) fn edit(&self, id: &str, components: Option<Value>, category: Option<Category>) -> Option<Template> {
        let mut inner = self.lock();
        let template = inner.templates.iter_mut().find(|template| template.id == id)?;
        if let Some(components) = components {
            template.components = components;
        }
        if let Some(category) = category {
            template.category = category;
        }
        template.status = TemplateStatus::Pending;
        review::REASON_NONE.clone_into(&mut template.reason);
        Some(template.clone())
    }

    /// Sets a status (and reason) whatever the template's status was.
    pub(crate) fn force(&self, id: &str, status: TemplateStatus, reason: &str) -> Option<Template> {
        let mut inner = self.lock();
        let template = inner.templates.iter_mut().find(|template| template.id == id)?;
        template.status = status;
        reason.clone_into(&mut template.reason);
        Some(template.clone())
    }

    /// Reviews a template that is still `PENDING`; `None` when it is gone or was
    /// changed meanwhile.
    pub(crate) fn review(&self, id: &str) -> Option<Template> {
        let mut inner = self.lock();
        let template = inner
            .templates
            .iter_mut()
            .find(|template| template.id == id && template.status == TemplateStatus::Pending)?;
        let verdict = review::review(template);
        template.status = match verdict {
            Verdict::Approved => TemplateStatus::Approved,
            Verdict::Rejected(_) => TemplateStatus::Rejected,
        };
        verdict.reason().clone_into(&mut template.reason);
        Some(template.clone())
    }

    /// The status a send of `name` in `language` finds: an `APPROVED` template wins over
    /// others of the same name and language (in other WABAs); `None` when there is none.
    pub(crate) fn status_for_send(&self, name: &str, language: &str) -> Option<TemplateStatus> {
        let inner = self.lock();
        let mut found = None;
        for template in inner
            .templates
            .iter()
            .filter(|template| template.name == name && template.language == language)
        {
            if template.status == TemplateStatus::Approved {
                return Some(TemplateStatus::Approved);
            }
            found = Some(template.status);
        }
        found
    }
}

/// The numeric value of a template id (ids are made here, so always numeric).
pub(crate) fn numeric_id(template: &Template) -> u64 {
    template.id.parse().unwrap_or(0)
}

/// Waits `template_review_ms`, reviews the template and posts the status webhook.
/// Stops early when the simulator shuts down.
pub(crate) fn schedule_review(shared: &Arc<Shared>, id: String) {
    let delay = Duration::from_millis(shared.config.snapshot().template_review_ms);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut shutdown = shared.shutdown.clone();
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(delay) => {}
        }
        let Some(template) = shared.templates.review(&id) else {
            return;
        };
        tracing::debug!(template_id = %template.id, status = template.status.as_str(), "template reviewed");
        announce(&shared, &template).await;
    });
}

/// Posts the `message_template_status_update` webhook for the template's status now,
/// when a `webhook_url` is set; a failure is logged and counted, never returned.
pub(crate) async fn announce(shared: &Shared, template: &Template) {
    if shared.config.snapshot().webhook_url.is_none() {
        return;
    }
    let mut shutdown = shared.shutdown.clone();
    if let Err(error) = webhook::post_template_status(shared, template, &mut shutdown).await {
        tracing::warn!(template_id = %template.id, %error, "template status webhook dropped");
    }
}

/// The `rejection_info` Meta adds to a rejection with this reason (only
/// `INVALID_FORMAT` has one).
pub fn rejection_info(reason: &str) -> Option<&'static RejectionInfo> {
    (reason == review::REASON_INVALID_FORMAT).then_some(&review::INVALID_FORMAT_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(name: &str, language: &str, body: &str) -> Draft {
        Draft {
            waba_id: "1".into(),
            name: name.into(),
            language: language.into(),
            category: Category::Utility,
            parameter_format: ParameterFormat::Positional,
            components: json!([{"type": "BODY", "text": body}]),
        }
    }

    #[test]
    fn duplicates_are_per_waba_name_and_language() {
        let book = TemplateBook::default();
        let first = book
            .create(draft("order_update", "en_US", "Order {{1}} shipped."))
            .expect("new");
        assert_eq!(first.status, TemplateStatus::Pending);
        assert!(first.id.len() == 16 && first.id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            book.create(draft("order_update", "en_US", "again")),
            Err(CreateRefusal::Duplicate)
        );
        book.create(draft("order_update", "pt_BR", "Pedido {{1}} enviado."))
            .expect("another language");
        let mut other = draft("order_update", "en_US", "x");
        other.waba_id = "2".into();
        book.create(other).expect("another WABA");
    }

    #[test]
    fn ids_rise_and_listing_pages_by_them() {
        let book = TemplateBook::default();
        let ids: Vec<u64> = (0..5)
            .map(|index| {
                numeric_id(
                    &book
                        .create(draft(&format!("t_{index}"), "en", "Hi {{1}}."))
                        .expect("new"),
                )
            })
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let (page, more) = book.list("1", &ListFilter::default(), 2);
        assert_eq!(page.len(), 2);
        assert!(more);
        let after = ListFilter {
            after: Some(numeric_id(&page[1])),
            ..ListFilter::default()
        };
        let (rest, more) = book.list("1", &after, 10);
        assert_eq!(rest.len(), 3);
        assert!(!more);
        let named = ListFilter {
            name: Some("_3".into()),
            ..ListFilter::default()
        };
        assert_eq!(book.list("1", &named, 10).0.len(), 1);
        assert!(book.list("2", &ListFilter::default(), 10).0.is_empty());
    }

    #[test]
    fn review_happens_once_and_not_after_a_forced_status() {
        let book = TemplateBook::default();
        let reviewed = book.create(draft("a", "en", "Your code is ready.")).expect("new");
        let forced = book.create(draft("b", "en", "Your code is ready.")).expect("new");
        assert_eq!(
            book.review(&reviewed.id).map(|t| t.status),
            Some(TemplateStatus::Approved)
        );
        assert_eq!(book.review(&reviewed.id), None, "reviewed once");
        book.force(&forced.id, TemplateStatus::Paused, "NONE");
        assert_eq!(book.review(&forced.id), None);
        assert_eq!(book.status_for_send("b", "en"), Some(TemplateStatus::Paused));
        assert_eq!(book.status_for_send("a", "en"), Some(TemplateStatus::Approved));
        assert_eq!(book.status_for_send("a", "pt_BR"), None);
    }

    #[test]
    fn delete_takes_every_language_or_one_id() {
        let book = TemplateBook::default();
        let english = book.create(draft("promo", "en", "Hi {{1}}.")).expect("new");
        book.create(draft("promo", "es", "Hola {{1}}.")).expect("new");
        book.create(draft("promo", "fr", "Salut {{1}}.")).expect("new");
        assert_eq!(book.delete("1", "promo", Some(&english.id)), 1);
        assert_eq!(book.delete("1", "promo", Some(&english.id)), 0);
        assert_eq!(book.delete("1", "promo", None), 2);
        assert!(book.all().is_empty());
    }

    #[test]
    fn statuses_and_categories_parse_in_any_case() {
        assert_eq!(TemplateStatus::parse("paused"), Some(TemplateStatus::Paused));
        assert_eq!(TemplateStatus::parse("nope"), None);
        assert_eq!(Category::parse("Marketing"), Some(Category::Marketing));
        assert_eq!(ParameterFormat::parse("named"), Some(ParameterFormat::Named));
        assert!(rejection_info("INVALID_FORMAT").is_some());
        assert!(rejection_info("SCAM").is_none());
    }
}
