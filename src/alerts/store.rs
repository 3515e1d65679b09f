//! SQL for the `alerts` table.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::db::{Db, Json, Tx, now};
use crate::{with_db, with_tx};

/// A duplicate absorbed by an existing alert.
#[derive(Debug, sqlx::FromRow)]
pub struct Absorbed {
    pub id: i64,
    pub uuid: Uuid,
    pub duplicate_count: i32,
}

/// Counts a duplicate against the most recent alert with this fingerprint created at or after
/// `since`, atomically (one UPDATE), and returns it; `None` when there is no such alert.
pub async fn absorb_duplicate(tx: &mut Tx, fingerprint: &str, since: DateTime<Utc>) -> sqlx::Result<Option<Absorbed>> {
    let at = now();
    with_tx!(tx, c => sqlx::query_as::<_, Absorbed>(
        "UPDATE alerts SET duplicate_count = duplicate_count + 1, last_seen_at = $1, updated_at = $1 \
         WHERE id = (SELECT id FROM alerts WHERE fingerprint = $2 AND created_at >= $3 ORDER BY created_at DESC, id DESC LIMIT 1) \
         RETURNING id, uuid, duplicate_count")
        .bind(at).bind(fingerprint).bind(since).fetch_optional(c).await)
}

pub struct NewAlert<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub severity: &'a str,
    pub source_name: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub raw_payload: &'a Map<String, Value>,
    pub tags: &'a [String],
    pub fingerprint: &'a str,
    pub detection_rule_id: Option<i64>,
}

pub async fn insert(tx: &mut Tx, alert: &NewAlert<'_>) -> sqlx::Result<(i64, Uuid)> {
    let uuid = Uuid::new_v4();
    let at = now();
    let id = with_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "INSERT INTO alerts (uuid, title, description, severity, source_name, occurred_at, ingested_at, is_enriched, \
         fingerprint, duplicate_count, status, enrichment_status, raw_payload, tags, is_system, detection_rule_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, 0, 'Open', 'Pending', $9, $10, FALSE, $11, $7, $7) RETURNING id")
        .bind(uuid).bind(alert.title).bind(alert.description).bind(alert.severity).bind(alert.source_name)
        .bind(alert.occurred_at).bind(at).bind(alert.fingerprint).bind(Json(alert.raw_payload)).bind(Json(alert.tags))
        .bind(alert.detection_rule_id)
        .fetch_one(c).await)?;
    Ok((id, uuid))
}

/// What the enrichment job needs of an alert.
#[derive(Debug, sqlx::FromRow)]
pub struct PipelineAlert {
    pub id: i64,
    pub uuid: Uuid,
    pub source_name: String,
    pub raw_payload: Json<Map<String, Value>>,
}

pub async fn load_for_pipeline(db: &Db, id: i64) -> sqlx::Result<Option<PipelineAlert>> {
    with_db!(db, p => sqlx::query_as::<_, PipelineAlert>("SELECT id, uuid, source_name, raw_payload FROM alerts WHERE id = $1")
        .bind(id).fetch_optional(p).await)
}

/// Sets the enrichment outcome (`Enriched` or `Failed`).
pub async fn set_enrichment_status(tx: &mut Tx, id: i64, status: &str) -> sqlx::Result<()> {
    let at = now();
    let enriched = status == "Enriched";
    with_tx!(tx, c => sqlx::query(
        "UPDATE alerts SET enrichment_status = $1, is_enriched = $2, enriched_at = CASE WHEN $2 THEN $3 ELSE enriched_at END, updated_at = $3 WHERE id = $4")
        .bind(status).bind(enriched).bind(at).bind(id).execute(c).await.map(|_| ()))
}
