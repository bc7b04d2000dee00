//! SQL of the audit log on SQLite: rows are only ever inserted (alone, or inside the
//! transaction of the change they record), and read back newest first with filters and a
//! `seq` cursor.

use sqlx::{QueryBuilder, Row, Transaction};

use super::{Db, DbPool, ROWS_PER_STATEMENT, database};
use crate::store::{AuditEntry, AuditFilter, AuditRecord, Result};

pub(super) async fn insert(transaction: &mut Transaction<'_, Db>, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("INSERT INTO audit_log (at, token_id, action, target, outcome) ");
        query.push_values(chunk, |mut row, entry| {
            row.push_bind(entry.at_ms)
                .push_bind(entry.token_id.as_str())
                .push_bind(entry.action.as_str())
                .push_bind(entry.target.as_deref())
                .push_bind(entry.outcome.as_str());
        });
        query
            .build()
            .execute(&mut **transaction)
            .await
            .map_err(database("append audit log"))?;
    }
    Ok(())
}

pub(super) async fn read(readers: &DbPool, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
    const OPERATION: &str = "read audit log";
    let mut query =
        QueryBuilder::<Db>::new("SELECT seq, at, token_id, action, target, outcome FROM audit_log WHERE 1 = 1");
    if let Some(action) = &filter.action {
        query.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(token_id) = &filter.token_id {
        query.push(" AND token_id = ").push_bind(token_id.as_str());
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target.as_str());
    }
    if let Some(since) = filter.since_ms {
        query.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = filter.until_ms {
        query.push(" AND at < ").push_bind(until);
    }
    if let Some(before) = filter.before_seq {
        query.push(" AND seq < ").push_bind(before);
    }
    query
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::try_from(filter.limit).unwrap_or(i64::MAX));
    query
        .build()
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| {
            Ok(AuditRecord {
                seq: row.try_get("seq").map_err(database(OPERATION))?,
                entry: AuditEntry {
                    at_ms: row.try_get("at").map_err(database(OPERATION))?,
                    token_id: row.try_get("token_id").map_err(database(OPERATION))?,
                    action: row.try_get("action").map_err(database(OPERATION))?,
                    target: row.try_get("target").map_err(database(OPERATION))?,
                    outcome: row.try_get("outcome").map_err(database(OPERATION))?,
                },
            })
        })
        .collect()
}
