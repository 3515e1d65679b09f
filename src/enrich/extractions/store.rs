//! SQL for `enrichment_field_extractions`: the only place that reads or writes the table (the
//! seed of the system rows aside, `enrich::store`).

use uuid::Uuid;

use super::model::Extraction;
use crate::db::{Db, Filter, Tx, fetch_page, now};
use crate::{with_db, with_tx};

const EXTRACTION_COLUMNS: &str = "uuid, provider_name, indicator_type, source_path, target_key, value_type, \
    is_system, is_active, description, created_at, updated_at";

/// Which extractions a list shows (`None`: any).
#[derive(Debug, Default, Clone)]
pub struct ExtractionFilter {
    pub provider_name: Option<String>,
    pub indicator_type: Option<String>,
    pub is_system: Option<bool>,
    pub is_active: Option<bool>,
}

/// One page in creation order, plus the total of matching rows.
pub async fn list_extractions(db: &Db, filter: ExtractionFilter, limit: i64, offset: i64) -> sqlx::Result<(Vec<Extraction>, i64)> {
    let mut conditions = Filter::new(db);
    conditions
        .eq_opt("provider_name", filter.provider_name)
        .eq_opt("indicator_type", filter.indicator_type)
        .eq_opt("is_system", filter.is_system)
        .eq_opt("is_active", filter.is_active);
    let select = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions");
    fetch_page(db, &select, &conditions, "created_at ASC, id ASC", limit, offset).await
}

/// Every active extraction (the registry's input), in creation order.
pub async fn active_extractions(db: &Db) -> sqlx::Result<Vec<Extraction>> {
    let sql = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions WHERE is_active = TRUE ORDER BY created_at, id");
    with_db!(db, p => sqlx::query_as::<_, Extraction>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
}

pub async fn find_extraction(db: &Db, uuid: Uuid) -> sqlx::Result<Option<Extraction>> {
    let sql = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, Extraction>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// The extraction, read inside a write transaction (locked on PostgreSQL until it ends).
pub async fn find_extraction_for_update(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<Extraction>> {
    let lock = if matches!(tx, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions WHERE uuid = $1{lock}");
    with_tx!(tx, c => sqlx::query_as::<_, Extraction>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

pub struct NewExtraction<'a> {
    pub provider_name: &'a str,
    pub indicator_type: &'a str,
    pub source_path: &'a str,
    pub target_key: &'a str,
    pub value_type: &'a str,
    pub description: Option<&'a str>,
    pub is_system: bool,
}

pub async fn insert_extraction(tx: &mut Tx, row: &NewExtraction<'_>) -> sqlx::Result<Extraction> {
    let sql = format!(
        "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type, \
         is_system, is_active, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $9) \
         RETURNING {EXTRACTION_COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, Extraction>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4()).bind(row.provider_name).bind(row.indicator_type).bind(row.source_path).bind(row.target_key)
        .bind(row.value_type).bind(row.is_system).bind(row.description).bind(now())
        .fetch_one(c).await)
}

#[derive(Default)]
pub struct ExtractionPatch<'a> {
    pub source_path: Option<&'a str>,
    pub target_key: Option<&'a str>,
    pub value_type: Option<&'a str>,
    pub is_active: Option<bool>,
    pub description: Option<&'a str>,
}

pub async fn update_extraction(tx: &mut Tx, uuid: Uuid, patch: ExtractionPatch<'_>) -> sqlx::Result<Option<Extraction>> {
    let sql = format!(
        "UPDATE enrichment_field_extractions SET source_path = COALESCE($2, source_path), target_key = COALESCE($3, target_key), \
         value_type = COALESCE($4, value_type), is_active = COALESCE($5, is_active), description = COALESCE($6, description), \
         updated_at = $7 WHERE uuid = $1 RETURNING {EXTRACTION_COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, Extraction>(sqlx::AssertSqlSafe(sql))
        .bind(uuid).bind(patch.source_path).bind(patch.target_key).bind(patch.value_type).bind(patch.is_active)
        .bind(patch.description).bind(now()).fetch_optional(c).await)
}

pub async fn delete_extraction(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<bool> {
    let removed = with_tx!(tx, c => sqlx::query("DELETE FROM enrichment_field_extractions WHERE uuid = $1")
        .bind(uuid).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(removed > 0)
}
