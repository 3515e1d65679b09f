//! The purge statements of retention, one batch per call, each in the caller's transaction. They
//! live together (not in each entity's store) because they share one shape: pick the oldest
//! `batch` rows created before the cutoff, by the `created_at` index, and delete them by id.

use chrono::{DateTime, Utc};

use crate::db::{Tx, placeholders};
use crate::with_tx;

/// Tables purged by creation time alone (nothing else to clean up with them).
#[derive(Debug, Clone, Copy)]
pub enum Table {
    WorkflowRuns,
    AgentRuns,
    ActivityEvents,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::WorkflowRuns => "workflow_runs",
            Table::AgentRuns => "agent_runs",
            Table::ActivityEvents => "activity_events",
        }
    }
}

/// Deletes up to `batch` rows of `table` created before `before`; returns how many.
pub async fn purge_batch(tx: &mut Tx, table: Table, before: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    let name = table.name();
    let sql = format!("DELETE FROM {name} WHERE id IN (SELECT id FROM {name} WHERE created_at < $1 ORDER BY created_at LIMIT $2)");
    with_tx!(tx, c => sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before).bind(batch).execute(c).await.map(|r| r.rows_affected()))
}

/// Deletes up to `batch` alerts created before `before` (their indicator links and agent runs
/// cascade; activity events keep a null `alert_id`), then those of their indicators that no
/// alert links any more. Returns (alerts, indicators) deleted.
pub async fn purge_alert_batch(tx: &mut Tx, before: DateTime<Utc>, batch: i64) -> sqlx::Result<(u64, u64)> {
    let ids: Vec<i64> = with_tx!(tx, c => sqlx::query_scalar("SELECT id FROM alerts WHERE created_at < $1 ORDER BY created_at LIMIT $2")
        .bind(before).bind(batch).fetch_all(c).await)?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let list = placeholders(1, ids.len());
    let linked_sql = format!("SELECT DISTINCT indicator_id FROM alert_indicators WHERE alert_id IN ({list})");
    let delete_sql = format!("DELETE FROM alerts WHERE id IN ({list})");
    let (linked, alerts): (Vec<i64>, u64) = with_tx!(tx, c => {
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(linked_sql));
        for id in &ids {
            query = query.bind(*id);
        }
        let linked = query.fetch_all(&mut *c).await?;
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(delete_sql));
        for id in &ids {
            delete = delete.bind(*id);
        }
        (linked, delete.execute(&mut *c).await?.rows_affected())
    });
    if linked.is_empty() {
        return Ok((alerts, 0));
    }
    // Only the indicators these alerts linked can have become orphans: no scan of the table.
    let orphans_sql = format!(
        "DELETE FROM indicators WHERE id IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM alert_indicators WHERE alert_indicators.indicator_id = indicators.id)",
        placeholders(1, linked.len())
    );
    let indicators = with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(orphans_sql));
        for id in &linked {
            query = query.bind(*id);
        }
        query.execute(c).await?.rows_affected()
    });
    Ok((alerts, indicators))
}
