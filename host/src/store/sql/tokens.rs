//! SQL of API tokens on SQLite: create and revoke (each with its audit row in the same
//! transaction), and the list the API's token cache is loaded from. Secrets never reach
//! here; only their sha256.

use sqlx::{Row, Transaction};

use super::{Db, DbPool, audit, database};
use crate::store::{ApiToken, AuditEntry, Error, Result, TokenOutcome, TokenWrite};

pub(super) async fn write(
    transaction: &mut Transaction<'_, Db>,
    write: &TokenWrite,
    entry: &AuditEntry,
) -> Result<TokenOutcome> {
    let outcome = match write {
        TokenWrite::Create(token) => {
            let scopes = serde_json::to_string(&token.scopes).map_err(|error| Error::Corrupt {
                operation: "create token",
                detail: error.to_string(),
            })?;
            sqlx::query(
                "INSERT INTO api_tokens (id, name, scopes, digest, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(&token.id)
            .bind(&token.name)
            .bind(scopes)
            .bind(&token.digest[..])
            .bind(token.created_at_ms)
            .execute(&mut **transaction)
            .await
            .map_err(database("create token"))?;
            TokenOutcome::Created
        }
        TokenWrite::Revoke { id, at_ms } => {
            let revoked_at: Option<Option<i64>> = sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **transaction)
                .await
                .map_err(database("revoke token"))?;
            match revoked_at {
                None => TokenOutcome::UnknownToken,
                Some(Some(_)) => TokenOutcome::AlreadyRevoked,
                Some(None) => {
                    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
                        .bind(at_ms)
                        .bind(id)
                        .execute(&mut **transaction)
                        .await
                        .map_err(database("revoke token"))?;
                    TokenOutcome::Revoked
                }
            }
        }
    };
    // Only a change is audited here; a refused or idempotent request is audited by the API
    // right after, with its outcome.
    if matches!(outcome, TokenOutcome::Created | TokenOutcome::Revoked) {
        audit::insert(transaction, std::slice::from_ref(entry)).await?;
    }
    Ok(outcome)
}

pub(super) async fn all(readers: &DbPool) -> Result<Vec<ApiToken>> {
    const OPERATION: &str = "list tokens";
    let rows =
        sqlx::query("SELECT id, name, scopes, digest, created_at, revoked_at FROM api_tokens ORDER BY created_at, id")
            .fetch_all(readers)
            .await
            .map_err(database(OPERATION))?;
    rows.iter()
        .map(|row| {
            let scopes: String = row.try_get("scopes").map_err(database(OPERATION))?;
            let digest: Vec<u8> = row.try_get("digest").map_err(database(OPERATION))?;
            Ok(ApiToken {
                id: row.try_get("id").map_err(database(OPERATION))?,
                name: row.try_get("name").map_err(database(OPERATION))?,
                scopes: super::parse_json(&scopes, OPERATION)?,
                digest: digest.try_into().map_err(|digest: Vec<u8>| Error::Corrupt {
                    operation: OPERATION,
                    detail: format!("a token digest of {} bytes", digest.len()),
                })?,
                created_at_ms: row.try_get("created_at").map_err(database(OPERATION))?,
                revoked_at_ms: row.try_get("revoked_at").map_err(database(OPERATION))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::store::{ApiToken, AuditEntry, AuditFilter, ContactWrite, TokenOutcome, TokenWrite};

    use super::super::fresh;

    fn token(id: &str, at_ms: i64) -> ApiToken {
        ApiToken {
            id: id.to_owned(),
            name: format!("{id} name"),
            scopes: vec!["messages:send".into(), "plugins:read".into()],
            digest: crate::api::token_digest(id),
            created_at_ms: at_ms,
            revoked_at_ms: None,
        }
    }

    fn entry(action: &str, token_id: &str, target: &str, at_ms: i64) -> AuditEntry {
        AuditEntry {
            at_ms,
            token_id: token_id.to_owned(),
            action: action.to_owned(),
            target: Some(target.to_owned()),
            outcome: "ok".to_owned(),
        }
    }

    fn all(limit: usize) -> AuditFilter {
        AuditFilter {
            limit,
            ..AuditFilter::default()
        }
    }

    #[tokio::test]
    async fn tokens_are_created_listed_and_revoked_with_their_audit_rows() {
        let (store, _directory) = fresh().await;
        let created = store
            .token_write(
                TokenWrite::Create(token("tok_a", 1_000)),
                entry("token.create", "bootstrap", "tok_a", 1_000),
            )
            .await
            .unwrap();
        assert_eq!(created, TokenOutcome::Created);
        assert_eq!(store.tokens().await.unwrap(), vec![token("tok_a", 1_000)]);

        let revoke = |at_ms| TokenWrite::Revoke {
            id: "tok_a".into(),
            at_ms,
        };
        let revoked = store
            .token_write(revoke(2_000), entry("token.revoke", "bootstrap", "tok_a", 2_000))
            .await
            .unwrap();
        assert_eq!(revoked, TokenOutcome::Revoked);
        let again = store
            .token_write(revoke(3_000), entry("token.revoke", "bootstrap", "tok_a", 3_000))
            .await
            .unwrap();
        assert_eq!(again, TokenOutcome::AlreadyRevoked);
        let unknown = store
            .token_write(
                TokenWrite::Revoke {
                    id: "tok_nope".into(),
                    at_ms: 4_000,
                },
                entry("token.revoke", "bootstrap", "tok_nope", 4_000),
            )
            .await
            .unwrap();
        assert_eq!(unknown, TokenOutcome::UnknownToken);

        let tokens = store.tokens().await.unwrap();
        assert_eq!(tokens[0].revoked_at_ms, Some(2_000), "the first revocation stands");

        // Only the changes were audited with them, newest first.
        let log = store.audit_log(&all(10)).await.unwrap();
        let actions: Vec<(&str, i64)> = log
            .iter()
            .map(|record| (record.entry.action.as_str(), record.entry.at_ms))
            .collect();
        assert_eq!(actions, vec![("token.revoke", 2_000), ("token.create", 1_000)]);
    }

    #[tokio::test]
    async fn the_audit_log_filters_and_pages_newest_first() {
        let (store, _directory) = fresh().await;
        let mut entries = Vec::new();
        for index in 0..7 {
            let token_id = if index % 2 == 0 { "tok_even" } else { "tok_odd" };
            entries.push(entry("plugin.activate", token_id, &format!("p{index}"), 1_000 * index));
        }
        entries.push(AuditEntry {
            outcome: "not_found".into(),
            ..entry("plugin.rollback", "tok_odd", "p9", 9_000)
        });
        store.audit(entries).await.unwrap();
        store
            .contact_writes_audited(
                vec![ContactWrite::Put {
                    wa_id: "6591234567".into(),
                    attributes: None,
                    opted_out: Some(true),
                    at_ms: 10_000,
                }],
                entry("contact.put", "tok_even", "6591234567", 10_000),
            )
            .await
            .unwrap();
        assert!(store.contacts(&["6591234567"]).await.unwrap()[0].opted_out);

        let newest = store.audit_log(&all(1)).await.unwrap();
        assert_eq!(newest[0].entry.action, "contact.put");

        let mut seen = Vec::new();
        let mut before_seq = None;
        loop {
            let page = store
                .audit_log(&AuditFilter {
                    action: Some("plugin.activate".into()),
                    before_seq,
                    limit: 3,
                    ..AuditFilter::default()
                })
                .await
                .unwrap();
            seen.extend(page.iter().map(|record| record.entry.target.clone().unwrap()));
            if page.len() < 3 {
                break;
            }
            before_seq = page.last().map(|record| record.seq);
        }
        assert_eq!(seen, ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]);

        let odd = store
            .audit_log(&AuditFilter {
                token_id: Some("tok_odd".into()),
                ..all(50)
            })
            .await
            .unwrap();
        assert_eq!(odd.len(), 4);
        assert_eq!(odd[0].entry.outcome, "not_found");

        let window = store
            .audit_log(&AuditFilter {
                since_ms: Some(2_000),
                until_ms: Some(5_000),
                ..all(50)
            })
            .await
            .unwrap();
        let targets: Vec<_> = window.iter().filter_map(|record| record.entry.target.clone()).collect();
        assert_eq!(targets, ["p4", "p3", "p2"]);

        let one = store
            .audit_log(&AuditFilter {
                target: Some("p9".into()),
                ..all(50)
            })
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].entry.action, "plugin.rollback");
    }
}
