//! SQL for the `alerts` table.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::model::AlertSummary;
use crate::db::{Db, Filter, Json, Tx, fetch_page_deferred, now, placeholders};
use crate::domain::{AlertStatus, EnrichmentStatus, Severity};
use crate::{with_db, with_tx};

/// The most recent alert of a fingerprint inside the dedup window.
#[derive(Debug, sqlx::FromRow)]
pub struct LatestByFingerprint {
    pub id: i64,
    pub uuid: Uuid,
    pub fingerprint: String,
}

/// For each of `fingerprints`, the most recent alert with it created at or after `since` (the one
/// a duplicate is counted against); fingerprints with no such alert are absent. One statement for
/// a whole ingest batch.
pub async fn latest_by_fingerprints(tx: &mut Tx, fingerprints: &[&str], since: DateTime<Utc>) -> sqlx::Result<Vec<LatestByFingerprint>> {
    if fingerprints.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (0..fingerprints.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT id, uuid, fingerprint FROM (SELECT id, uuid, fingerprint, \
           ROW_NUMBER() OVER (PARTITION BY fingerprint ORDER BY created_at DESC, id DESC) AS recency \
           FROM alerts WHERE fingerprint IN ({}) AND created_at >= $1) ranked WHERE recency = 1",
        list.join(", ")
    );
    with_tx!(tx, c => {
        let mut query = sqlx::query_as::<_, LatestByFingerprint>(sqlx::AssertSqlSafe(sql)).bind(since);
        for fingerprint in fingerprints {
            query = query.bind(*fingerprint);
        }
        query.fetch_all(c).await
    })
}

/// Counts `duplicates` more duplicates against alert `id` (one UPDATE, atomic) and returns the new
/// `duplicate_count`; `None` when the alert no longer exists.
pub async fn absorb_duplicates(tx: &mut Tx, id: i64, duplicates: i32) -> sqlx::Result<Option<i32>> {
    let at = now();
    with_tx!(tx, c => sqlx::query_scalar::<_, i32>(
        "UPDATE alerts SET duplicate_count = duplicate_count + $1, last_seen_at = $2, updated_at = $2 WHERE id = $3 \
         RETURNING duplicate_count")
        .bind(duplicates).bind(at).bind(id).fetch_optional(c).await)
}

pub struct NewAlert<'a> {
    pub uuid: Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub severity: &'a str,
    pub source_name: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub raw_payload: &'a Map<String, Value>,
    pub tags: &'a [String],
    pub fingerprint: &'a str,
    pub detection_rule_id: Option<i64>,
    /// Duplicates already absorbed (those that arrived in the same ingest batch).
    pub duplicate_count: i32,
}

/// Inserts the alerts, one statement per `Tx::rows_per_statement` of them, and returns their
/// ids in input order.
pub async fn insert_many(tx: &mut Tx, alerts: &[NewAlert<'_>]) -> sqlx::Result<Vec<i64>> {
    let at = now();
    let mut ids = Vec::with_capacity(alerts.len());
    for chunk in alerts.chunks(tx.rows_per_statement()) {
        ids.extend(insert_chunk(tx, chunk, at).await?);
    }
    Ok(ids)
}

async fn insert_chunk(tx: &mut Tx, alerts: &[NewAlert<'_>], at: DateTime<Utc>) -> sqlx::Result<Vec<i64>> {
    // Placeholders and binds in the same (textual) order, row by row.
    let mut p = tx.sequential_placeholders();
    let rows: Vec<String> = alerts
        .iter()
        .map(|_| p.fill("(?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?, CASE WHEN ? > 0 THEN ? END, 'Open', 'Pending', ?, ?, FALSE, ?, ?, ?)"))
        .collect();
    let sql = format!(
        "INSERT INTO alerts (uuid, title, description, severity, source_name, occurred_at, ingested_at, is_enriched, \
         fingerprint, duplicate_count, last_seen_at, status, enrichment_status, raw_payload, tags, is_system, detection_rule_id, \
         created_at, updated_at) VALUES {} RETURNING id, uuid",
        rows.join(", ")
    );
    let returned: Vec<(i64, Uuid)> = with_tx!(tx, c => {
        let mut query = sqlx::query_as::<_, (i64, Uuid)>(sqlx::AssertSqlSafe(sql));
        for alert in alerts {
            query = query
                .bind(alert.uuid).bind(alert.title).bind(alert.description).bind(alert.severity).bind(alert.source_name)
                .bind(alert.occurred_at).bind(at).bind(alert.fingerprint).bind(alert.duplicate_count).bind(alert.duplicate_count)
                .bind(at).bind(Json(alert.raw_payload)).bind(Json(alert.tags)).bind(alert.detection_rule_id).bind(at).bind(at);
        }
        query.fetch_all(c).await
    })?;
    // RETURNING does not promise input order: match rows up by uuid.
    let ids: std::collections::HashMap<Uuid, i64> = returned.into_iter().map(|(id, uuid)| (uuid, id)).collect();
    alerts
        .iter()
        .map(|alert| ids.get(&alert.uuid).copied().ok_or_else(|| sqlx::Error::Protocol("inserted alert not returned".into())))
        .collect()
}

/// What the enrichment job needs of an alert.
#[derive(Debug, sqlx::FromRow)]
pub struct PipelineAlert {
    pub id: i64,
    pub uuid: Uuid,
    pub source_name: String,
    pub raw_payload: Json<Map<String, Value>>,
}

/// The alerts of a batch of enrichment jobs (those that still exist), in one query.
pub async fn load_for_pipeline(db: &Db, ids: &[i64]) -> sqlx::Result<Vec<PipelineAlert>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT id, uuid, source_name, raw_payload FROM alerts WHERE id IN ({})", placeholders(1, ids.len()));
    with_db!(db, p => {
        let mut query = sqlx::query_as::<_, PipelineAlert>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(p).await
    })
}

/// Those of `ids` that still exist, locked against deletion until the transaction ends
/// (PostgreSQL: `FOR KEY SHARE`, which waits for a concurrent delete and then skips its row;
/// SQLite: the transaction already holds the write lock). Writes that reference these alerts
/// then cannot hit a foreign-key error.
pub async fn lock_existing(tx: &mut Tx, ids: &[i64]) -> sqlx::Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let lock = match tx {
        Tx::Postgres(_) => " FOR KEY SHARE",
        Tx::Sqlite(_) => "",
    };
    let sql = format!("SELECT id FROM alerts WHERE id IN ({}){lock}", placeholders(1, ids.len()));
    with_tx!(tx, c => {
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(c).await
    })
}

/// Sets the enrichment outcome (`Enriched` or `Failed`) of the alerts `ids`, with `at` as
/// `enriched_at` when enriched.
pub async fn set_enrichment_status(tx: &mut Tx, ids: &[i64], status: &str, at: DateTime<Utc>) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let enriched = status == "Enriched";
    let sql = format!(
        "UPDATE alerts SET enrichment_status = $1, is_enriched = $2, \
         enriched_at = CASE WHEN $2 THEN $3 ELSE enriched_at END, updated_at = $3 WHERE id IN ({})",
        placeholders(4, ids.len())
    );
    with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(status).bind(enriched).bind(at);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(c).await.map(|_| ())
    })
}

/// A whole `alerts` row, as the detail view needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub id: i64,
    pub uuid: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    #[sqlx(try_from = "String")]
    pub status: AlertStatus,
    pub enrichment_status: String,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub is_enriched: bool,
    pub fingerprint: Option<String>,
    pub duplicate_count: i32,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub close_classification: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub tags: Json<Vec<String>>,
    pub detection_rule_id: Option<i64>,
    pub raw_payload: Json<Value>,
    pub malice_override: Option<String>,
    pub malice_override_source: Option<String>,
    pub malice_override_at: Option<DateTime<Utc>>,
    pub agent_findings: Option<Json<Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ALERT_COLUMNS: &str = "id, uuid, title, description, severity, status, enrichment_status, source_name, occurred_at, \
    ingested_at, enriched_at, is_enriched, fingerprint, duplicate_count, last_seen_at, close_classification, acknowledged_at, \
    triaged_at, closed_at, tags, detection_rule_id, raw_payload, malice_override, malice_override_source, malice_override_at, \
    agent_findings, created_at, updated_at";

/// Whether an alert of `source_name` with exactly this title exists (demo data is not ingested
/// twice: a second copy would only count as a duplicate of the first).
pub async fn exists_with_title(db: &Db, source_name: &str, title: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM (SELECT 1 FROM alerts WHERE source_name = $1 AND title = $2 LIMIT 1) AS found")
        .bind(source_name).bind(title).fetch_one(p).await).map(|n| n > 0)
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<AlertRow>> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// Locks the alert against concurrent read-modify-write requests until the transaction ends
/// (PostgreSQL advisory lock; SQLite's `BEGIN IMMEDIATE` already serializes writers), then
/// reads it.
pub async fn lock_and_read(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<AlertRow>> {
    crate::db::lock_key(tx, &format!("alert:{uuid}")).await?;
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE uuid = $1");
    with_tx!(tx, c => sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

const ID_BY_UUID: &str = "SELECT id FROM alerts WHERE uuid = $1";

/// The internal id of the alert with this uuid.
pub async fn id_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar(ID_BY_UUID).bind(uuid).fetch_optional(p).await)
}

/// [`id_by_uuid`] inside the caller's transaction.
pub async fn id_by_uuid_in(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<i64>> {
    with_tx!(tx, c => sqlx::query_scalar(ID_BY_UUID).bind(uuid).fetch_optional(c).await)
}

/// The mutable state of an alert after a PATCH, written whole (the caller holds the lock).
pub struct AlertChanges<'a> {
    pub status: AlertStatus,
    pub severity: &'a str,
    pub close_classification: Option<&'a str>,
    pub tags: &'a [String],
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub malice_override: Option<&'a str>,
    pub malice_override_source: Option<&'a str>,
    pub malice_override_at: Option<DateTime<Utc>>,
}

pub async fn apply_changes(tx: &mut Tx, id: i64, changes: &AlertChanges<'_>) -> sqlx::Result<()> {
    let at = now();
    // COALESCE keeps the lifecycle timestamps write-once even if a caller passed a new value.
    with_tx!(tx, c => sqlx::query(
        "UPDATE alerts SET status = $1, severity = $2, close_classification = $3, tags = $4, \
         acknowledged_at = COALESCE(acknowledged_at, $5), triaged_at = COALESCE(triaged_at, $6), closed_at = COALESCE(closed_at, $7), \
         malice_override = $8, malice_override_source = $9, malice_override_at = $10, updated_at = $11 WHERE id = $12")
        .bind(changes.status.as_str()).bind(changes.severity).bind(changes.close_classification).bind(Json(changes.tags))
        .bind(changes.acknowledged_at).bind(changes.triaged_at).bind(changes.closed_at)
        .bind(changes.malice_override).bind(changes.malice_override_source).bind(changes.malice_override_at)
        .bind(at).bind(id).execute(c).await.map(|_| ()))
}

/// Replaces the `agent_findings` array (the caller appended to what it read under the lock).
pub async fn set_findings(tx: &mut Tx, id: i64, findings: &Value) -> sqlx::Result<()> {
    let at = now();
    with_tx!(tx, c => sqlx::query("UPDATE alerts SET agent_findings = $1, updated_at = $2 WHERE id = $3")
        .bind(Json(findings)).bind(at).bind(id).execute(c).await.map(|_| ()))
}

/// Hard delete; links and agent runs cascade, activity events keep a null `alert_id`.
pub async fn delete(tx: &mut Tx, id: i64) -> sqlx::Result<()> {
    with_tx!(tx, c => sqlx::query("DELETE FROM alerts WHERE id = $1").bind(id).execute(c).await.map(|_| ()))
}

/// Filters of `GET /v1/alerts`; empty lists and `None` do not filter.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AlertFilter {
    /// `None`: no filter; `Some(empty)`: only values outside the enumeration were asked for.
    pub statuses: Option<Vec<AlertStatus>>,
    pub severities: Option<Vec<Severity>>,
    pub enrichment_statuses: Option<Vec<EnrichmentStatus>>,
    pub source_names: Vec<String>,
    pub is_enriched: Option<bool>,
    pub detection_rule_uuid: Option<Uuid>,
    pub from_time: Option<DateTime<Utc>>,
    pub to_time: Option<DateTime<Utc>>,
    /// The alert must carry every one of these.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Title,
    Status,
    Severity,
    SourceName,
    OccurredAt,
    CreatedAt,
}

impl SortColumn {
    pub const NAMES: [&str; 6] = ["title", "status", "severity", "source_name", "occurred_at", "created_at"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "title" => SortColumn::Title,
            "status" => SortColumn::Status,
            "severity" => SortColumn::Severity,
            "source_name" => SortColumn::SourceName,
            "occurred_at" => SortColumn::OccurredAt,
            "created_at" => SortColumn::CreatedAt,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            SortColumn::Title => "alerts.title",
            SortColumn::Status => "alerts.status",
            // data-model.md: severity orders by rank, not alphabetically. The expression is the one
            // of the index ix_alerts_severity_rank_id (migration 0010), so the sort reads it.
            SortColumn::Severity => "CASE severity WHEN 'Critical' THEN 5 WHEN 'High' THEN 4 WHEN 'Medium' THEN 3 \
                                     WHEN 'Low' THEN 2 WHEN 'Informational' THEN 1 ELSE 0 END",
            SortColumn::SourceName => "alerts.source_name",
            SortColumn::OccurredAt => "alerts.occurred_at",
            SortColumn::CreatedAt => "alerts.created_at",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSort {
    pub column: SortColumn,
    pub descending: bool,
}

/// The `WHERE` conditions of the list (column names are constants; only values are bound).
fn list_filter(db_filter: &mut Filter, filter: &AlertFilter) {
    any_of_known(db_filter, "alerts.status", filter.statuses.as_deref(), |s| s.as_str());
    any_of_known(db_filter, "alerts.severity", filter.severities.as_deref(), |s| s.as_str());
    any_of_known(db_filter, "alerts.enrichment_status", filter.enrichment_statuses.as_deref(), |s| s.as_str());
    db_filter.any_of("alerts.source_name", &filter.source_names);
    if let Some(enriched) = filter.is_enriched {
        db_filter.eq("alerts.is_enriched", enriched);
        // The same rows (is_enriched is true exactly when the status is Enriched: migration 0014),
        // but this condition reads the enrichment-status index: few alerts are not enriched, and
        // the flag alone made finding them a scan of the table.
        db_filter.push(if enriched { "alerts.enrichment_status = 'Enriched'" } else { "alerts.enrichment_status IN ('Pending', 'Failed')" });
    }
    if let Some(rule) = filter.detection_rule_uuid {
        let p = db_filter.bind(rule);
        db_filter.push(format!("alerts.detection_rule_id IN (SELECT id FROM detection_rules WHERE uuid = {p})"));
    }
    if let Some(from) = filter.from_time {
        let p = db_filter.bind(from);
        db_filter.push(format!("alerts.occurred_at >= {p}"));
    }
    if let Some(to) = filter.to_time {
        let p = db_filter.bind(to);
        db_filter.push(format!("alerts.occurred_at <= {p}"));
    }
    for tag in &filter.tags {
        db_filter.json_array_contains("alerts.tags", tag);
    }
}

/// `column IN (values)` for an enumerated column. `None` does not filter; `Some` with no value
/// matches nothing (the query named only values outside the enumeration, which no row holds).
fn any_of_known<T: Copy>(db_filter: &mut Filter, column: &str, values: Option<&[T]>, text: fn(T) -> &'static str) {
    match values {
        None => {}
        Some([]) => {
            db_filter.push("1 = 0");
        }
        Some(values) => {
            let texts: Vec<&str> = values.iter().map(|v| text(*v)).collect();
            db_filter.any_of(column, &texts);
        }
    }
}

const SUMMARY_SELECT: &str = "SELECT alerts.uuid, alerts.title, alerts.description, alerts.severity, alerts.status, \
    alerts.enrichment_status, alerts.source_name, alerts.occurred_at, alerts.ingested_at, alerts.is_enriched, \
    alerts.duplicate_count, alerts.tags, alerts.close_classification, alerts.closed_at, alerts.created_at, alerts.updated_at \
    FROM alerts";

/// One page of the alert list and the total count under the same filter.
pub async fn list(db: &Db, filter: &AlertFilter, sort: AlertSort, limit: i64, offset: i64) -> sqlx::Result<(Vec<AlertSummary>, i64)> {
    let mut db_filter = Filter::new(db);
    list_filter(&mut db_filter, filter);
    let direction = if sort.descending { "DESC" } else { "ASC" };
    let order_by = format!("{} {direction}, alerts.id {direction}", sort.column.sql());
    fetch_page_deferred(db, SUMMARY_SELECT, "alerts.id", &db_filter, &order_by, limit, offset).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filter_numbers_placeholders_in_order() {
        let filter = AlertFilter {
            statuses: Some(vec![AlertStatus::Open, AlertStatus::Closed]),
            is_enriched: Some(true),
            tags: vec!["a".into(), "b".into()],
            ..AlertFilter::default()
        };
        let mut db_filter = Filter::for_backend("sqlite");
        list_filter(&mut db_filter, &filter);
        assert_eq!(
            db_filter.where_clause(),
            " WHERE alerts.status IN ($1, $2) AND alerts.is_enriched = $3 AND alerts.enrichment_status = 'Enriched' \
             AND EXISTS (SELECT 1 FROM json_each(alerts.tags) WHERE json_each.value = $4) \
             AND EXISTS (SELECT 1 FROM json_each(alerts.tags) WHERE json_each.value = $5)"
        );
        assert_eq!(db_filter.binds().len(), 5);
        let mut empty = Filter::for_backend("postgres");
        list_filter(&mut empty, &AlertFilter::default());
        assert_eq!(empty.where_clause(), "");
        // Only unknown statuses were asked for: nothing matches.
        let mut nothing = Filter::for_backend("postgres");
        list_filter(&mut nothing, &AlertFilter { statuses: Some(vec![]), ..AlertFilter::default() });
        assert_eq!(nothing.where_clause(), " WHERE 1 = 0");
    }
}
