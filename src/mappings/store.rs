//! SQL for `indicator_field_mappings`: the only place that reads or writes the table.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Tx, fetch_page, now};
use crate::ingest::{FieldMapping, SYSTEM_MAPPINGS, Target};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct MappingRow {
    pub id: i64,
    pub uuid: Uuid,
    pub source_name: Option<String>,
    pub field_path: String,
    pub indicator_type: String,
    pub extraction_target: String,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, source_name, field_path, indicator_type, extraction_target, is_system, \
                       is_active, description, created_at, updated_at";

/// List filters; `None` = not filtered. All are exact matches.
#[derive(Debug, Default, Clone)]
pub struct MappingFilter {
    pub source_name: Option<String>,
    pub is_system: Option<bool>,
    pub is_active: Option<bool>,
    pub extraction_target: Option<String>,
}

/// One page in creation order (oldest first), plus the total count of matching rows.
pub async fn list(db: &Db, filter: &MappingFilter, limit: i64, offset: i64) -> sqlx::Result<(Vec<MappingRow>, i64)> {
    let mut conditions = Filter::new(db);
    conditions
        .eq_opt("source_name", filter.source_name.clone())
        .eq_opt("is_system", filter.is_system)
        .eq_opt("is_active", filter.is_active)
        .eq_opt("extraction_target", filter.extraction_target.clone());
    fetch_page(db, &format!("SELECT {COLUMNS} FROM indicator_field_mappings"), &conditions, "created_at ASC, id ASC", limit, offset).await
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<MappingRow>> {
    let sql = format!("SELECT {COLUMNS} FROM indicator_field_mappings WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, MappingRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub struct NewMapping<'a> {
    pub source_name: Option<&'a str>,
    pub field_path: &'a str,
    pub indicator_type: &'a str,
    pub extraction_target: &'a str,
    pub is_active: bool,
    pub description: Option<&'a str>,
}

/// Inserts an operator mapping (`is_system = false`: only the seed writes system rows).
pub async fn insert(tx: &mut Tx, mapping: &NewMapping<'_>) -> sqlx::Result<MappingRow> {
    let sql = format!(
        "INSERT INTO indicator_field_mappings (uuid, source_name, field_path, indicator_type, extraction_target, \
         is_system, is_active, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7, $8, $8) RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, MappingRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(mapping.source_name)
        .bind(mapping.field_path)
        .bind(mapping.indicator_type)
        .bind(mapping.extraction_target)
        .bind(mapping.is_active)
        .bind(mapping.description)
        .bind(now())
        .fetch_one(p)
        .await)
}

/// Fields a PATCH may change; `None` leaves the column as it is.
#[derive(Debug, Default)]
pub struct MappingPatch<'a> {
    pub field_path: Option<&'a str>,
    pub indicator_type: Option<&'a str>,
    pub is_active: Option<bool>,
    pub description: Option<&'a str>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, patch: &MappingPatch<'_>) -> sqlx::Result<Option<MappingRow>> {
    let sql = format!(
        "UPDATE indicator_field_mappings SET \
           field_path = COALESCE($2, field_path), \
           indicator_type = COALESCE($3, indicator_type), \
           is_active = COALESCE($4, is_active), \
           description = COALESCE($5, description), \
           updated_at = $6 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, MappingRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(patch.field_path)
        .bind(patch.indicator_type)
        .bind(patch.is_active)
        .bind(patch.description)
        .bind(now())
        .fetch_optional(p)
        .await)
}

/// Outcome of a delete request.
#[derive(Debug)]
pub enum Deleted {
    Row(MappingRow),
    NotFound,
    /// System mappings are never deleted (deactivate them instead).
    SystemRow,
}

/// Deletes an operator mapping. The `is_system` guard is in the statement itself, so no
/// interleaving can delete a system row.
pub async fn delete(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Deleted> {
    let sql = format!("DELETE FROM indicator_field_mappings WHERE uuid = $1 AND is_system = FALSE RETURNING {COLUMNS}");
    let removed = with_tx!(tx, c => sqlx::query_as::<_, MappingRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)?;
    if let Some(row) = removed {
        return Ok(Deleted::Row(row));
    }
    let system: Option<bool> =
        with_tx!(tx, c => sqlx::query_scalar("SELECT is_system FROM indicator_field_mappings WHERE uuid = $1").bind(uuid).fetch_optional(c).await)?;
    Ok(if system == Some(true) { Deleted::SystemRow } else { Deleted::NotFound })
}

#[derive(FromRow)]
struct ActiveRow {
    source_name: Option<String>,
    field_path: String,
    indicator_type: String,
    extraction_target: String,
}

/// The active mappings that apply to alerts from `source_name` (rows with no source apply to
/// every source), both targets, in creation order. Rows whose `extraction_target` is neither
/// `normalized` nor `raw_payload` are never selected by a pass, so they are left out here.
/// Read from the database on every call: API changes apply to the next alert.
pub async fn active_mappings(db: &Db, source_name: &str) -> sqlx::Result<Vec<FieldMapping>> {
    let mut mappings = all_active_mappings(db).await?;
    mappings.retain(|mapping| mapping.applies_to(source_name));
    Ok(mappings)
}

/// The active mappings of every source, in creation order: one read serves a whole batch of
/// alerts from different sources (the extraction passes pick the rows that apply to each).
pub async fn all_active_mappings(db: &Db) -> sqlx::Result<Vec<FieldMapping>> {
    let rows = with_db!(db, p => sqlx::query_as::<_, ActiveRow>(
        "SELECT source_name, field_path, indicator_type, extraction_target FROM indicator_field_mappings \
         WHERE is_active = TRUE ORDER BY created_at ASC, id ASC")
        .fetch_all(p)
        .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let extraction_target = row.extraction_target.parse::<Target>().ok()?;
            Some(FieldMapping {
                source_name: row.source_name,
                field_path: row.field_path,
                indicator_type: row.indicator_type,
                extraction_target,
            })
        })
        .collect())
}

/// Any fixed number: it only has to be the same in every replica.
const SEED_LOCK_KEY: i64 = 0x6361_6c73_6574_6101;

/// Inserts each of the 14 system mappings (data-model.md, start-up seeding step 1) unless a row
/// with the same `field_path` and `extraction_target = 'normalized'` exists. Existing rows are
/// never touched, so operator edits (deactivation, a changed type or description) survive
/// restarts. One transaction; on PostgreSQL an advisory lock keeps replicas starting together
/// from both inserting (SQLite's write lock does that there).
pub async fn seed_system_mappings(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    if let Tx::Postgres(t) = &mut tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEED_LOCK_KEY).execute(&mut **t).await?;
    }
    let at = now();
    let mut inserted = 0u64;
    for system in &SYSTEM_MAPPINGS {
        let sql = "INSERT INTO indicator_field_mappings (uuid, source_name, field_path, indicator_type, \
                   extraction_target, is_system, is_active, description, created_at, updated_at) \
                   SELECT $1, NULL, $2, $3, 'normalized', TRUE, TRUE, $4, $5, $5 \
                   WHERE NOT EXISTS (SELECT 1 FROM indicator_field_mappings \
                                     WHERE field_path = $2 AND extraction_target = 'normalized')";
        inserted += with_tx!(&mut tx, c => sqlx::query(sql)
            .bind(Uuid::new_v4())
            .bind(system.field_path)
            .bind(system.indicator_type.as_str())
            .bind(system.description)
            .bind(at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    if inserted > 0 {
        tracing::info!(inserted, "seeded system indicator field mappings");
    }
    Ok(())
}
