//! SQL of contact facts on SQLite: inbound messages counted once per wamid, first seen, last
//! inbound, opt-out (set over the API or by an opt-out or opt-in keyword) and attributes.

use sqlx::{QueryBuilder, Row, Transaction};

use super::{Db, DbPool, ROWS_PER_STATEMENT, database};
use crate::store::{Contact, ContactWrite, Error, Result};

pub(super) async fn write(transaction: &mut Transaction<'_, Db>, writes: &[ContactWrite]) -> Result<()> {
    for write in writes {
        match write {
            ContactWrite::Inbound {
                wamid,
                wa_id,
                kind,
                at_ms,
                opted_out,
            } => {
                let new = sqlx::query(
                    "INSERT INTO inbound_messages (wamid, wa_id, kind, at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (wamid) DO NOTHING",
                )
                .bind(wamid)
                .bind(wa_id)
                .bind(kind)
                .bind(at_ms)
                .execute(&mut **transaction)
                .await
                .map_err(database("record inbound message"))?
                .rows_affected()
                    > 0;
                if !new {
                    continue;
                }
                // An opt-out or opt-in keyword changes the opt-out in the same statement.
                let (least, greatest) = (super::dialect::LEAST, super::dialect::GREATEST);
                sqlx::query(&format!(
                    "INSERT INTO contacts (wa_id, first_seen, last_inbound, interactions, opted_out, updated_at)
                     VALUES ($1, $2, $2, 1, COALESCE($3, FALSE), $2)
                     ON CONFLICT (wa_id) DO UPDATE SET
                        first_seen = {least}(contacts.first_seen, excluded.first_seen),
                        last_inbound = {greatest}(COALESCE(contacts.last_inbound, 0), excluded.last_inbound),
                        interactions = contacts.interactions + 1,
                        opted_out = COALESCE($3, contacts.opted_out),
                        updated_at = {greatest}(contacts.updated_at, excluded.updated_at)",
                ))
                .bind(wa_id)
                .bind(at_ms)
                .bind(*opted_out)
                .execute(&mut **transaction)
                .await
                .map_err(database("count inbound interaction"))?;
            }
            ContactWrite::Put {
                wa_id,
                attributes,
                opted_out,
                at_ms,
            } => {
                let attributes = attributes
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|error| Error::Corrupt {
                        operation: "write contact",
                        detail: error.to_string(),
                    })?;
                sqlx::query(
                    "INSERT INTO contacts (wa_id, first_seen, opted_out, attributes, updated_at)
                     VALUES ($1, $2, COALESCE($3, FALSE), COALESCE($4, '{}'), $2)
                     ON CONFLICT (wa_id) DO UPDATE SET
                        opted_out = COALESCE($3, contacts.opted_out),
                        attributes = COALESCE($4, contacts.attributes),
                        updated_at = $2",
                )
                .bind(wa_id)
                .bind(at_ms)
                .bind(*opted_out)
                .bind(attributes)
                .execute(&mut **transaction)
                .await
                .map_err(database("write contact"))?;
            }
        }
    }
    Ok(())
}

pub(super) async fn read(readers: &DbPool, wa_ids: &[&str]) -> Result<Vec<Contact>> {
    const OPERATION: &str = "read contacts";
    let mut contacts = Vec::with_capacity(wa_ids.len());
    for chunk in wa_ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Db>::new("SELECT * FROM contacts WHERE wa_id IN (");
        let mut list = query.separated(", ");
        for wa_id in chunk {
            list.push_bind(*wa_id);
        }
        query.push(")");
        for row in query.build().fetch_all(readers).await.map_err(database(OPERATION))? {
            let attributes: String = row.try_get("attributes").map_err(database(OPERATION))?;
            let interactions: i64 = row.try_get("interactions").map_err(database(OPERATION))?;
            contacts.push(Contact {
                wa_id: row.try_get("wa_id").map_err(database(OPERATION))?,
                first_seen_ms: row.try_get("first_seen").map_err(database(OPERATION))?,
                last_inbound_ms: row.try_get("last_inbound").map_err(database(OPERATION))?,
                interactions: u32::try_from(interactions).unwrap_or(u32::MAX),
                opted_out: row.try_get("opted_out").map_err(database(OPERATION))?,
                attributes: serde_json::from_str(&attributes).map_err(|error| Error::Corrupt {
                    operation: OPERATION,
                    detail: error.to_string(),
                })?,
                updated_at_ms: row.try_get("updated_at").map_err(database(OPERATION))?,
            });
        }
    }
    Ok(contacts)
}
