//! SQL of message templates: new versions, status changes (by version, or by Meta's
//! template id for what the Cloud API reports), each with its audit row in the same
//! transaction, and the reads the template registry and the submitter work from.

use std::str::FromStr;

use sqlx::{Row, Transaction};

use super::{Db, DbPool, DbRow, audit, database, parse_json};
use crate::{
    message::Category,
    store::{AuditEntry, Error, Result, TemplateVersion, TemplateWrite},
    templates::TemplateStatus,
};

const COLUMNS: &str = "name, language, version, category, definition, status, reason, meta_id, quality, findings, \
                       created_by, created_at, updated_at";

pub(super) async fn write(
    transaction: &mut Transaction<'_, Db>,
    write: &TemplateWrite,
    entry: Option<&AuditEntry>,
) -> Result<Option<TemplateVersion>> {
    let key = match write {
        TemplateWrite::Create(version) => Some(create(transaction, version).await?),
        TemplateWrite::Status {
            name,
            language,
            version,
            from,
            status,
            reason,
            meta_id,
            at_ms,
        } => {
            let current: Option<String> =
                sqlx::query_scalar("SELECT status FROM templates WHERE name = $1 AND language = $2 AND version = $3")
                    .bind(name)
                    .bind(language)
                    .bind(i64::from(*version))
                    .fetch_optional(&mut **transaction)
                    .await
                    .map_err(database("template status"))?;
            let allowed = current
                .as_deref()
                .is_some_and(|current| from.is_empty() || from.iter().any(|status| status.as_str() == current));
            if allowed {
                sqlx::query(
                    "UPDATE templates SET status = $1, reason = $2, meta_id = COALESCE($3, meta_id), updated_at = $4
                     WHERE name = $5 AND language = $6 AND version = $7",
                )
                .bind(status.as_str())
                .bind(reason)
                .bind(meta_id)
                .bind(at_ms)
                .bind(name)
                .bind(language)
                .bind(i64::from(*version))
                .execute(&mut **transaction)
                .await
                .map_err(database("template status"))?;
                Some((name.clone(), language.clone(), i64::from(*version)))
            } else {
                None
            }
        }
        TemplateWrite::Meta {
            meta_id,
            status,
            reason,
            quality,
            category,
            at_ms,
        } => {
            let target = sqlx::query(
                "SELECT name, language, version FROM templates WHERE meta_id = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(meta_id)
            .fetch_optional(&mut **transaction)
            .await
            .map_err(database("template meta update"))?;
            match target {
                None => None,
                Some(row) => {
                    let name: String = row.try_get("name").map_err(database("template meta update"))?;
                    let language: String = row.try_get("language").map_err(database("template meta update"))?;
                    let version: i64 = row.try_get("version").map_err(database("template meta update"))?;
                    // A status change replaces the reason (an approval clears a rejection's).
                    sqlx::query(
                        "UPDATE templates SET
                            status = COALESCE($1, status),
                            reason = CASE WHEN $1 IS NULL THEN reason ELSE $2 END,
                            quality = COALESCE($3, quality),
                            category = COALESCE($4, category),
                            updated_at = $5
                         WHERE name = $6 AND language = $7 AND version = $8",
                    )
                    .bind(status.map(TemplateStatus::as_str))
                    .bind(reason)
                    .bind(quality)
                    .bind(category.map(Category::as_str))
                    .bind(at_ms)
                    .bind(&name)
                    .bind(&language)
                    .bind(version)
                    .execute(&mut **transaction)
                    .await
                    .map_err(database("template meta update"))?;
                    Some((name, language, version))
                }
            }
        }
    };
    let Some((name, language, version)) = key else {
        return Ok(None);
    };
    if let Some(entry) = entry {
        audit::insert(transaction, std::slice::from_ref(entry)).await?;
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM templates WHERE name = $1 AND language = $2 AND version = $3"
    ))
    .bind(&name)
    .bind(&language)
    .bind(version)
    .fetch_one(&mut **transaction)
    .await
    .map_err(database("template read back"))?;
    from_row(&row, "template read back").map(Some)
}

/// Inserts `version` numbered after the newest of its (name, language); answers the key.
async fn create(transaction: &mut Transaction<'_, Db>, version: &TemplateVersion) -> Result<(String, String, i64)> {
    const OPERATION: &str = "create template version";
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM templates WHERE name = $1 AND language = $2")
            .bind(&version.name)
            .bind(&version.language)
            .fetch_one(&mut **transaction)
            .await
            .map_err(database(OPERATION))?;
    let number = newest.unwrap_or(0) + 1;
    let findings = serde_json::to_string(&version.findings).map_err(|error| Error::Corrupt {
        operation: OPERATION,
        detail: error.to_string(),
    })?;
    sqlx::query(&format!(
        "INSERT INTO templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&version.name)
    .bind(&version.language)
    .bind(number)
    .bind(version.category.as_str())
    .bind(version.definition.to_string())
    .bind(version.status.as_str())
    .bind(&version.reason)
    .bind(&version.meta_id)
    .bind(&version.quality)
    .bind(findings)
    .bind(&version.created_by)
    .bind(version.created_at_ms)
    .bind(version.updated_at_ms)
    .execute(&mut **transaction)
    .await
    .map_err(database(OPERATION))?;
    Ok((version.name.clone(), version.language.clone(), number))
}

pub(super) async fn versions(readers: &DbPool, name: Option<&str>) -> Result<Vec<TemplateVersion>> {
    const OPERATION: &str = "list templates";
    let rows = match name {
        Some(name) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM templates WHERE name = $1 ORDER BY language, version"
            ))
            .bind(name)
            .fetch_all(readers)
            .await
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM templates ORDER BY name, language, version"
            ))
            .fetch_all(readers)
            .await
        }
    }
    .map_err(database(OPERATION))?;
    rows.iter().map(|row| from_row(row, OPERATION)).collect()
}

pub(super) async fn in_status(readers: &DbPool, status: TemplateStatus, limit: usize) -> Result<Vec<TemplateVersion>> {
    const OPERATION: &str = "templates by status";
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM templates WHERE status = $1 ORDER BY updated_at LIMIT $2"
    ))
    .bind(status.as_str())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?;
    rows.iter().map(|row| from_row(row, OPERATION)).collect()
}

fn from_row(row: &DbRow, operation: &'static str) -> Result<TemplateVersion> {
    let corrupt = |detail: String| Error::Corrupt { operation, detail };
    let category: String = row.try_get("category").map_err(database(operation))?;
    let status: String = row.try_get("status").map_err(database(operation))?;
    let definition: String = row.try_get("definition").map_err(database(operation))?;
    let findings: String = row.try_get("findings").map_err(database(operation))?;
    Ok(TemplateVersion {
        name: row.try_get("name").map_err(database(operation))?,
        language: row.try_get("language").map_err(database(operation))?,
        version: u32::try_from(row.try_get::<i64, _>("version").map_err(database(operation))?).unwrap_or_default(),
        category: Category::from_str(&category).map_err(corrupt)?,
        definition: parse_json(&definition, operation)?,
        status: TemplateStatus::from_str(&status).map_err(corrupt)?,
        reason: row.try_get("reason").map_err(database(operation))?,
        meta_id: row.try_get("meta_id").map_err(database(operation))?,
        quality: row.try_get("quality").map_err(database(operation))?,
        findings: parse_json(&findings, operation)?,
        created_by: row.try_get("created_by").map_err(database(operation))?,
        created_at_ms: row.try_get("created_at").map_err(database(operation))?,
        updated_at_ms: row.try_get("updated_at").map_err(database(operation))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{
        message::Category,
        store::{AuditEntry, AuditFilter, TemplateVersion, TemplateWrite},
        templates::TemplateStatus,
    };

    use super::super::fresh;

    fn draft(name: &str, language: &str, status: TemplateStatus) -> TemplateWrite {
        TemplateWrite::Create(Box::new(TemplateVersion {
            name: name.to_owned(),
            language: language.to_owned(),
            version: 0,
            category: Category::Utility,
            definition: json!({"name": name, "language": language, "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Order {{1}} shipped."}]}),
            status,
            reason: None,
            meta_id: None,
            quality: None,
            findings: Vec::new(),
            created_by: "ops".to_owned(),
            created_at_ms: 1_000,
            updated_at_ms: 1_000,
        }))
    }

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 1_000,
            token_id: "ops".to_owned(),
            action: action.to_owned(),
            target: Some("order_shipped".to_owned()),
            outcome: "ok".to_owned(),
        }
    }

    #[tokio::test]
    async fn versions_are_numbered_per_name_and_language_and_audited_with_the_write() {
        let (store, _directory) = fresh().await;
        let first = store
            .template_write(
                draft("order_shipped", "en", TemplateStatus::Submitting),
                Some(entry("template.create")),
            )
            .await
            .unwrap()
            .unwrap();
        let second = store
            .template_write(draft("order_shipped", "en", TemplateStatus::Submitting), None)
            .await
            .unwrap()
            .unwrap();
        let german = store
            .template_write(draft("order_shipped", "de", TemplateStatus::Submitting), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.version, second.version, german.version), (1, 2, 1));
        assert_eq!(store.template_versions_named("order_shipped").await.unwrap().len(), 3);
        assert_eq!(store.template_versions_named("other").await.unwrap().len(), 0);
        let audit = store
            .audit_log(&AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].entry.action, "template.create");
    }

    #[tokio::test]
    async fn a_status_change_applies_only_from_the_expected_status() {
        let (store, _directory) = fresh().await;
        store
            .template_write(draft("otp", "en", TemplateStatus::AwaitingReview), None)
            .await
            .unwrap();
        let approve = |from: Vec<TemplateStatus>| TemplateWrite::Status {
            name: "otp".to_owned(),
            language: "en".to_owned(),
            version: 1,
            from,
            status: TemplateStatus::Submitting,
            reason: None,
            meta_id: None,
            at_ms: 2_000,
        };
        let moved = store
            .template_write(approve(vec![TemplateStatus::AwaitingReview]), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.status, TemplateStatus::Submitting);
        assert_eq!(moved.updated_at_ms, 2_000);
        // A second review of the same version finds it no longer awaiting review.
        assert!(
            store
                .template_write(approve(vec![TemplateStatus::AwaitingReview]), None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store.templates_in(TemplateStatus::Submitting, 10).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn meta_updates_reach_the_newest_version_with_that_id() {
        let (store, _directory) = fresh().await;
        for _ in 0..2 {
            store
                .template_write(draft("promo", "en", TemplateStatus::Submitting), None)
                .await
                .unwrap();
        }
        for version in 1..=2 {
            store
                .template_write(
                    TemplateWrite::Status {
                        name: "promo".to_owned(),
                        language: "en".to_owned(),
                        version,
                        from: vec![TemplateStatus::Submitting],
                        status: TemplateStatus::Pending,
                        reason: None,
                        meta_id: Some("1689556908129832".to_owned()),
                        at_ms: 3_000,
                    },
                    None,
                )
                .await
                .unwrap();
        }
        let rejected = store
            .template_write(
                TemplateWrite::Meta {
                    meta_id: "1689556908129832".to_owned(),
                    status: Some(TemplateStatus::Rejected),
                    reason: Some("INVALID_FORMAT".to_owned()),
                    quality: None,
                    category: None,
                    at_ms: 4_000,
                },
                None,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rejected.version, rejected.status), (2, TemplateStatus::Rejected));
        let rated = store
            .template_write(
                TemplateWrite::Meta {
                    meta_id: "1689556908129832".to_owned(),
                    status: None,
                    reason: None,
                    quality: Some("YELLOW".to_owned()),
                    category: Some(Category::Marketing),
                    at_ms: 5_000,
                },
                None,
            )
            .await
            .unwrap()
            .unwrap();
        // A quality update keeps the status and its reason.
        assert_eq!(rated.status, TemplateStatus::Rejected);
        assert_eq!(rated.reason.as_deref(), Some("INVALID_FORMAT"));
        assert_eq!(rated.quality.as_deref(), Some("YELLOW"));
        assert_eq!(rated.category, Category::Marketing);
        let unknown = TemplateWrite::Meta {
            meta_id: "0".to_owned(),
            status: Some(TemplateStatus::Approved),
            reason: None,
            quality: None,
            category: None,
            at_ms: 6_000,
        };
        assert!(store.template_write(unknown, None).await.unwrap().is_none());
    }
}
