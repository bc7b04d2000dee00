//! SQL of the plugin platform on SQLite: component versions (immutable), chain bindings,
//! shadow verdicts and plugin timers. Writes run inside the group-commit transaction.

use sqlx::{QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::{Db, DbPool, DbRow, database};
use crate::{
    message::MessageId,
    store::{Error, PluginBinding, PluginVersionRow, PluginWrite, Result, ShadowRecord, ShadowReport, Timer},
};

pub(super) async fn write(transaction: &mut Transaction<'_, Db>, writes: &[PluginWrite]) -> Result<()> {
    for write in writes {
        match write {
            PluginWrite::PutVersion {
                name,
                version,
                component,
                at_ms,
            } => {
                // Versions are immutable: the same bytes again change nothing.
                sqlx::query(
                    "INSERT INTO plugin_versions (name, version, component, size_bytes, uploaded_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING",
                )
                .bind(name)
                .bind(version)
                .bind(component.as_slice())
                .bind(i64::try_from(component.len()).unwrap_or(i64::MAX))
                .bind(at_ms)
                .execute(&mut **transaction)
                .await
                .map_err(database("store plugin version"))?;
            }
            PluginWrite::PutBinding(binding) => {
                sqlx::query(
                    "INSERT INTO plugins (name, live_version, previous_versions, shadow_version, shadow_config,
                                          position, hooks, failure, limits, config, quarantined, enabled, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (name) DO UPDATE SET
                        live_version = excluded.live_version, previous_versions = excluded.previous_versions,
                        shadow_version = excluded.shadow_version, shadow_config = excluded.shadow_config,
                        position = excluded.position,
                        hooks = excluded.hooks, failure = excluded.failure, limits = excluded.limits,
                        config = excluded.config, quarantined = excluded.quarantined,
                        enabled = excluded.enabled, updated_at = excluded.updated_at",
                )
                .bind(&binding.name)
                .bind(binding.live_version.as_deref())
                .bind(serde_json::to_string(&binding.previous_versions).unwrap_or_else(|_| "[]".into()))
                .bind(binding.shadow_version.as_deref())
                .bind(binding.shadow_config.as_ref().map(ToString::to_string))
                .bind(binding.position)
                .bind(serde_json::to_string(&binding.hooks).unwrap_or_else(|_| "[]".into()))
                .bind(&binding.failure)
                .bind(binding.limits.to_string())
                .bind(binding.config.to_string())
                .bind(binding.quarantined)
                .bind(binding.enabled)
                .bind(binding.updated_at_ms)
                .execute(&mut **transaction)
                .await
                .map_err(database("store plugin binding"))?;
            }
            PluginWrite::Delete { name } => {
                for statement in [
                    "DELETE FROM plugins WHERE name = $1",
                    "DELETE FROM plugin_versions WHERE name = $1",
                    "DELETE FROM plugin_timers WHERE plugin = $1",
                    "DELETE FROM plugin_state WHERE plugin = $1",
                ] {
                    sqlx::query(statement)
                        .bind(name)
                        .execute(&mut **transaction)
                        .await
                        .map_err(database("delete plugin"))?;
                }
            }
            PluginWrite::ShadowVerdicts(records) => {
                for chunk in records.chunks(200) {
                    let mut query = QueryBuilder::<Db>::new(
                        "INSERT INTO shadow_verdicts (plugin, shadow_version, live_version, message_id, hook,
                         live_verdict, shadow_verdict, agreed, at) ",
                    );
                    query.push_values(chunk, |mut row, record| {
                        row.push_bind(&record.plugin)
                            .push_bind(&record.shadow_version)
                            .push_bind(&record.live_version)
                            .push_bind(record.message_id.0)
                            .push_bind(&record.hook)
                            .push_bind(&record.live_verdict)
                            .push_bind(&record.shadow_verdict)
                            .push_bind(record.agreed)
                            .push_bind(record.at_ms);
                    });
                    query
                        .build()
                        .execute(&mut **transaction)
                        .await
                        .map_err(database("record shadow verdicts"))?;
                }
            }
            PluginWrite::SetTimer(timer) => {
                sqlx::query(
                    "INSERT INTO plugin_timers (plugin, key, payload, due_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (plugin, key) DO UPDATE SET payload = excluded.payload, due_at = excluded.due_at",
                )
                .bind(&timer.plugin)
                .bind(&timer.key)
                .bind(&timer.payload)
                .bind(timer.due_at_ms)
                .execute(&mut **transaction)
                .await
                .map_err(database("set plugin timer"))?;
            }
            PluginWrite::CancelTimer { plugin, key } => {
                sqlx::query("DELETE FROM plugin_timers WHERE plugin = $1 AND key = $2")
                    .bind(plugin)
                    .bind(key)
                    .execute(&mut **transaction)
                    .await
                    .map_err(database("cancel plugin timer"))?;
            }
            PluginWrite::FiredTimers(timers) => {
                for timer in timers {
                    sqlx::query("DELETE FROM plugin_timers WHERE plugin = $1 AND key = $2 AND due_at = $3")
                        .bind(&timer.plugin)
                        .bind(&timer.key)
                        .bind(timer.due_at_ms)
                        .execute(&mut **transaction)
                        .await
                        .map_err(database("remove fired timer"))?;
                }
            }
        }
    }
    Ok(())
}

fn corrupt(operation: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |error| Error::Corrupt {
        operation,
        detail: error.to_string(),
    }
}

fn binding_from_row(row: &DbRow) -> Result<PluginBinding> {
    const OPERATION: &str = "read plugin bindings";
    let text = |column: &str| -> Result<String> { row.try_get(column).map_err(database(OPERATION)) };
    Ok(PluginBinding {
        name: text("name")?,
        live_version: row.try_get("live_version").map_err(database(OPERATION))?,
        previous_versions: serde_json::from_str(&text("previous_versions")?).map_err(corrupt(OPERATION))?,
        shadow_version: row.try_get("shadow_version").map_err(database(OPERATION))?,
        shadow_config: row
            .try_get::<Option<String>, _>("shadow_config")
            .map_err(database(OPERATION))?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(corrupt(OPERATION))?,
        position: row.try_get("position").map_err(database(OPERATION))?,
        hooks: serde_json::from_str(&text("hooks")?).map_err(corrupt(OPERATION))?,
        failure: text("failure")?,
        limits: serde_json::from_str(&text("limits")?).map_err(corrupt(OPERATION))?,
        config: serde_json::from_str(&text("config")?).map_err(corrupt(OPERATION))?,
        quarantined: row.try_get("quarantined").map_err(database(OPERATION))?,
        enabled: row.try_get("enabled").map_err(database(OPERATION))?,
        updated_at_ms: row.try_get("updated_at").map_err(database(OPERATION))?,
    })
}

pub(super) async fn bindings(readers: &DbPool) -> Result<Vec<PluginBinding>> {
    sqlx::query("SELECT * FROM plugins ORDER BY position, name")
        .fetch_all(readers)
        .await
        .map_err(database("read plugin bindings"))?
        .iter()
        .map(binding_from_row)
        .collect()
}

pub(super) async fn versions(readers: &DbPool, name: &str) -> Result<Vec<PluginVersionRow>> {
    const OPERATION: &str = "read plugin versions";
    sqlx::query(
        "SELECT name, version, size_bytes, uploaded_at FROM plugin_versions WHERE name = $1 ORDER BY uploaded_at, version",
    )
    .bind(name)
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?
    .iter()
    .map(|row| {
        Ok(PluginVersionRow {
            name: row.try_get("name").map_err(database(OPERATION))?,
            version: row.try_get("version").map_err(database(OPERATION))?,
            size_bytes: row.try_get("size_bytes").map_err(database(OPERATION))?,
            uploaded_at_ms: row.try_get("uploaded_at").map_err(database(OPERATION))?,
        })
    })
    .collect()
}

pub(super) async fn component(readers: &DbPool, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT component FROM plugin_versions WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(readers)
        .await
        .map_err(database("read plugin component"))
}

pub(super) async fn shadow_report(
    readers: &DbPool,
    plugin: &str,
    shadow_version: &str,
    samples: usize,
) -> Result<ShadowReport> {
    const OPERATION: &str = "read shadow report";
    let totals = sqlx::query(
        "SELECT COUNT(*) AS compared, COALESCE(SUM(CASE WHEN agreed THEN 1 ELSE 0 END), 0) AS agreed FROM shadow_verdicts
         WHERE plugin = $1 AND shadow_version = $2",
    )
    .bind(plugin)
    .bind(shadow_version)
    .fetch_one(readers)
    .await
    .map_err(database(OPERATION))?;
    let compared: i64 = totals.try_get("compared").map_err(database(OPERATION))?;
    let agreed: i64 = totals.try_get("agreed").map_err(database(OPERATION))?;
    let rows = sqlx::query(
        "SELECT * FROM shadow_verdicts WHERE plugin = $1 AND shadow_version = $2 AND agreed = FALSE
         ORDER BY seq DESC LIMIT $3",
    )
    .bind(plugin)
    .bind(shadow_version)
    .bind(i64::try_from(samples).unwrap_or(i64::MAX))
    .fetch_all(readers)
    .await
    .map_err(database(OPERATION))?;
    let mut disagreements = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("message_id").map_err(database(OPERATION))?;
        disagreements.push(ShadowRecord {
            plugin: row.try_get("plugin").map_err(database(OPERATION))?,
            shadow_version: row.try_get("shadow_version").map_err(database(OPERATION))?,
            live_version: row.try_get("live_version").map_err(database(OPERATION))?,
            message_id: MessageId(id),
            hook: row.try_get("hook").map_err(database(OPERATION))?,
            live_verdict: row.try_get("live_verdict").map_err(database(OPERATION))?,
            shadow_verdict: row.try_get("shadow_verdict").map_err(database(OPERATION))?,
            agreed: row.try_get("agreed").map_err(database(OPERATION))?,
            at_ms: row.try_get("at").map_err(database(OPERATION))?,
        });
    }
    Ok(ShadowReport {
        compared: u64::try_from(compared).unwrap_or_default(),
        agreed: u64::try_from(agreed).unwrap_or_default(),
        disagreements,
    })
}

pub(super) async fn due_timers(readers: &DbPool, now_ms: i64, limit: usize) -> Result<Vec<Timer>> {
    const OPERATION: &str = "read due timers";
    sqlx::query("SELECT plugin, key, payload, due_at FROM plugin_timers WHERE due_at <= $1 ORDER BY due_at LIMIT $2")
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(readers)
        .await
        .map_err(database(OPERATION))?
        .iter()
        .map(|row| {
            Ok(Timer {
                plugin: row.try_get("plugin").map_err(database(OPERATION))?,
                key: row.try_get("key").map_err(database(OPERATION))?,
                payload: row.try_get("payload").map_err(database(OPERATION))?,
                due_at_ms: row.try_get("due_at").map_err(database(OPERATION))?,
            })
        })
        .collect()
}
