//! SQL for `enrichment_providers` and `enrichment_field_extractions`: the only place that reads or
//! writes them. Provider reads never return `auth_config` to callers outside this module except
//! through `ProviderRow::sealed_auth_config`, which the registry opens only at the moment of use.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Json, Tx, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: i64,
    pub uuid: Uuid,
    pub provider_name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub is_builtin: bool,
    pub is_active: bool,
    pub supported_indicator_types: Json<Vec<String>>,
    pub http_config: Json<Value>,
    pub auth_type: String,
    /// `{"_encrypted": "<envelope>"}` (or, for rows written by other tools, a plain object).
    pub auth_config: Option<Json<Value>>,
    pub env_var_mapping: Option<Json<Value>>,
    pub default_cache_ttl_seconds: i32,
    pub cache_ttl_by_type: Option<Json<Value>>,
    pub malice_rules: Option<Json<Value>>,
    pub mock_responses: Option<Json<Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PROVIDER_COLUMNS: &str = "id, uuid, provider_name, display_name, description, is_builtin, is_active, \
    supported_indicator_types, http_config, auth_type, auth_config, env_var_mapping, default_cache_ttl_seconds, \
    cache_ttl_by_type, malice_rules, mock_responses, created_at, updated_at";

#[derive(FromRow)]
struct CountedProvider {
    #[sqlx(flatten)]
    row: ProviderRow,
    total_count: i64,
}

const PROVIDER_FILTER: &str = "($1 IS NULL OR is_active = $1) AND ($2 IS NULL OR is_builtin = $2)";

/// One page in creation order, plus the total of matching rows.
pub async fn list_providers(
    db: &Db,
    is_active: Option<bool>,
    is_builtin: Option<bool>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<ProviderRow>, i64)> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS}, COUNT(*) OVER () AS total_count FROM enrichment_providers WHERE {PROVIDER_FILTER} \
         ORDER BY created_at ASC, id ASC LIMIT $3 OFFSET $4"
    );
    let rows = with_db!(db, p => sqlx::query_as::<_, CountedProvider>(sqlx::AssertSqlSafe(sql))
        .bind(is_active).bind(is_builtin).bind(limit).bind(offset).fetch_all(p).await)?;
    let total = match rows.first() {
        Some(first) => first.total_count,
        None => {
            let sql = format!("SELECT COUNT(*) FROM enrichment_providers WHERE {PROVIDER_FILTER}");
            with_db!(db, p => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(is_active).bind(is_builtin).fetch_one(p).await)?
        }
    };
    Ok((rows.into_iter().map(|r| r.row).collect(), total))
}

/// Every active provider (the registry's input).
pub async fn active_providers(db: &Db) -> sqlx::Result<Vec<ProviderRow>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM enrichment_providers WHERE is_active = TRUE ORDER BY created_at, id");
    with_db!(db, p => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
}

pub async fn find_provider(db: &Db, uuid: Uuid) -> sqlx::Result<Option<ProviderRow>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM enrichment_providers WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub async fn provider_exists(db: &Db, provider_name: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = $1")
        .bind(provider_name).fetch_one(p).await)
    .map(|n| n > 0)
}

/// A provider as the API creates it (never builtin; no env mapping, no mock responses).
pub struct NewProvider<'a> {
    pub provider_name: &'a str,
    pub display_name: &'a str,
    pub description: Option<&'a str>,
    pub supported_indicator_types: &'a [String],
    pub http_config: &'a Value,
    pub auth_type: &'a str,
    pub sealed_auth_config: Option<Value>,
    pub default_cache_ttl_seconds: i32,
    pub cache_ttl_by_type: Option<&'a Value>,
    pub malice_rules: Option<&'a Value>,
}

pub async fn insert_provider(db: &Db, provider: NewProvider<'_>) -> sqlx::Result<ProviderRow> {
    let sql = format!(
        "INSERT INTO enrichment_providers (uuid, provider_name, display_name, description, is_builtin, is_active, \
         supported_indicator_types, http_config, auth_type, auth_config, env_var_mapping, default_cache_ttl_seconds, \
         cache_ttl_by_type, malice_rules, mock_responses, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, FALSE, TRUE, $5, $6, $7, $8, NULL, $9, $10, $11, NULL, $12, $12) RETURNING {PROVIDER_COLUMNS}"
    );
    let mut tx = db.begin().await?;
    let row = with_tx!(&mut tx, c => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(provider.provider_name)
        .bind(provider.display_name)
        .bind(provider.description)
        .bind(Json(provider.supported_indicator_types))
        .bind(Json(provider.http_config))
        .bind(provider.auth_type)
        .bind(provider.sealed_auth_config.map(Json))
        .bind(provider.default_cache_ttl_seconds)
        .bind(provider.cache_ttl_by_type.map(Json))
        .bind(provider.malice_rules.map(Json))
        .bind(now())
        .fetch_one(c)
        .await)?;
    tx.commit().await?;
    Ok(row)
}

/// Fields a PATCH may change; `None` leaves the column as it is.
#[derive(Default)]
pub struct ProviderPatch<'a> {
    pub display_name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub is_active: Option<bool>,
    pub supported_indicator_types: Option<&'a [String]>,
    pub http_config: Option<&'a Value>,
    pub auth_type: Option<&'a str>,
    pub sealed_auth_config: Option<Value>,
    pub default_cache_ttl_seconds: Option<i32>,
    pub cache_ttl_by_type: Option<&'a Value>,
    pub malice_rules: Option<&'a Value>,
}

pub async fn update_provider(db: &Db, uuid: Uuid, patch: ProviderPatch<'_>) -> sqlx::Result<Option<ProviderRow>> {
    let sql = format!(
        "UPDATE enrichment_providers SET \
           display_name = COALESCE($2, display_name), description = COALESCE($3, description), \
           is_active = COALESCE($4, is_active), supported_indicator_types = COALESCE($5, supported_indicator_types), \
           http_config = COALESCE($6, http_config), auth_type = COALESCE($7, auth_type), \
           auth_config = COALESCE($8, auth_config), default_cache_ttl_seconds = COALESCE($9, default_cache_ttl_seconds), \
           cache_ttl_by_type = COALESCE($10, cache_ttl_by_type), malice_rules = COALESCE($11, malice_rules), updated_at = $12 \
         WHERE uuid = $1 RETURNING {PROVIDER_COLUMNS}"
    );
    let mut tx = db.begin().await?;
    let row = with_tx!(&mut tx, c => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(patch.display_name)
        .bind(patch.description)
        .bind(patch.is_active)
        .bind(patch.supported_indicator_types.map(Json))
        .bind(patch.http_config.map(Json))
        .bind(patch.auth_type)
        .bind(patch.sealed_auth_config.map(Json))
        .bind(patch.default_cache_ttl_seconds)
        .bind(patch.cache_ttl_by_type.map(Json))
        .bind(patch.malice_rules.map(Json))
        .bind(now())
        .fetch_optional(c)
        .await)?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes a (non-builtin) provider and its non-system field extractions in one transaction.
pub async fn delete_provider(db: &Db, uuid: Uuid) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let name: Option<String> = with_tx!(&mut tx, c => sqlx::query_scalar::<_, String>(
        "SELECT provider_name FROM enrichment_providers WHERE uuid = $1").bind(uuid).fetch_optional(c).await)?;
    let Some(name) = name else { return Ok(false) };
    with_tx!(&mut tx, c => sqlx::query("DELETE FROM enrichment_field_extractions WHERE provider_name = $1 AND is_system = FALSE")
        .bind(&name).execute(c).await.map(|_| ()))?;
    with_tx!(&mut tx, c => sqlx::query("DELETE FROM enrichment_providers WHERE uuid = $1").bind(uuid).execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(true)
}

/// A fingerprint of both tables: every row's id and `updated_at` (every write sets it), hashed.
/// It changes whenever a row is inserted, updated or deleted, whatever the writers' clocks, so a
/// process can tell whether its registry is stale without reloading and re-parsing everything.
/// The tables hold tens to a few hundred rows; the text forms keep one statement for both backends.
pub async fn change_stamp(db: &Db) -> sqlx::Result<String> {
    use sha2::{Digest, Sha256};
    const SQL: &str = "SELECT 'p' || CAST(id AS TEXT) || '@' || CAST(updated_at AS TEXT) FROM enrichment_providers \
                       UNION ALL SELECT 'e' || CAST(id AS TEXT) || '@' || CAST(updated_at AS TEXT) FROM enrichment_field_extractions";
    let mut rows: Vec<String> = with_db!(db, p => sqlx::query_scalar::<_, String>(SQL).fetch_all(p).await)?;
    rows.sort_unstable();
    let mut hasher = Sha256::new();
    for row in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

// ---------------------------------------------------------------------------------------------
// Field extractions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ExtractionRow {
    pub id: i64,
    pub uuid: Uuid,
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    pub value_type: String,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const EXTRACTION_COLUMNS: &str = "id, uuid, provider_name, indicator_type, source_path, target_key, value_type, \
    is_system, is_active, description, created_at, updated_at";

#[derive(Debug, Default, Clone)]
pub struct ExtractionFilter {
    pub provider_name: Option<String>,
    pub indicator_type: Option<String>,
    pub is_system: Option<bool>,
    pub is_active: Option<bool>,
}

const EXTRACTION_FILTER: &str = "($1 IS NULL OR provider_name = $1) AND ($2 IS NULL OR indicator_type = $2) \
    AND ($3 IS NULL OR is_system = $3) AND ($4 IS NULL OR is_active = $4)";

#[derive(FromRow)]
struct CountedExtraction {
    #[sqlx(flatten)]
    row: ExtractionRow,
    total_count: i64,
}

pub async fn list_extractions(db: &Db, filter: &ExtractionFilter, limit: i64, offset: i64) -> sqlx::Result<(Vec<ExtractionRow>, i64)> {
    let sql = format!(
        "SELECT {EXTRACTION_COLUMNS}, COUNT(*) OVER () AS total_count FROM enrichment_field_extractions WHERE {EXTRACTION_FILTER} \
         ORDER BY created_at ASC, id ASC LIMIT $5 OFFSET $6"
    );
    let rows = with_db!(db, p => sqlx::query_as::<_, CountedExtraction>(sqlx::AssertSqlSafe(sql))
        .bind(filter.provider_name.as_deref()).bind(filter.indicator_type.as_deref()).bind(filter.is_system).bind(filter.is_active)
        .bind(limit).bind(offset).fetch_all(p).await)?;
    let total = match rows.first() {
        Some(first) => first.total_count,
        None => {
            let sql = format!("SELECT COUNT(*) FROM enrichment_field_extractions WHERE {EXTRACTION_FILTER}");
            with_db!(db, p => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(filter.provider_name.as_deref()).bind(filter.indicator_type.as_deref()).bind(filter.is_system).bind(filter.is_active)
                .fetch_one(p).await)?
        }
    };
    Ok((rows.into_iter().map(|r| r.row).collect(), total))
}

/// Every active extraction (the registry's input), in creation order.
pub async fn active_extractions(db: &Db) -> sqlx::Result<Vec<ExtractionRow>> {
    let sql = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions WHERE is_active = TRUE ORDER BY created_at, id");
    with_db!(db, p => sqlx::query_as::<_, ExtractionRow>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
}

pub async fn find_extraction(db: &Db, uuid: Uuid) -> sqlx::Result<Option<ExtractionRow>> {
    let sql = format!("SELECT {EXTRACTION_COLUMNS} FROM enrichment_field_extractions WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, ExtractionRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
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

/// Inserts all rows in one transaction: a duplicate anywhere (unique violation → 409) leaves
/// nothing behind.
pub async fn insert_extractions(db: &Db, rows: &[NewExtraction<'_>]) -> sqlx::Result<Vec<ExtractionRow>> {
    let mut tx = db.begin().await?;
    let mut created = Vec::with_capacity(rows.len());
    for row in rows {
        created.push(insert_extraction_tx(&mut tx, row).await?);
    }
    tx.commit().await?;
    Ok(created)
}

async fn insert_extraction_tx(tx: &mut Tx, row: &NewExtraction<'_>) -> sqlx::Result<ExtractionRow> {
    let sql = format!(
        "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type, \
         is_system, is_active, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $9) \
         RETURNING {EXTRACTION_COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, ExtractionRow>(sqlx::AssertSqlSafe(sql))
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

pub async fn update_extraction(db: &Db, uuid: Uuid, patch: ExtractionPatch<'_>) -> sqlx::Result<Option<ExtractionRow>> {
    let sql = format!(
        "UPDATE enrichment_field_extractions SET source_path = COALESCE($2, source_path), target_key = COALESCE($3, target_key), \
         value_type = COALESCE($4, value_type), is_active = COALESCE($5, is_active), description = COALESCE($6, description), \
         updated_at = $7 WHERE uuid = $1 RETURNING {EXTRACTION_COLUMNS}"
    );
    let mut tx = db.begin().await?;
    let row = with_tx!(&mut tx, c => sqlx::query_as::<_, ExtractionRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid).bind(patch.source_path).bind(patch.target_key).bind(patch.value_type).bind(patch.is_active)
        .bind(patch.description).bind(now()).fetch_optional(c).await)?;
    tx.commit().await?;
    Ok(row)
}

pub async fn delete_extraction(db: &Db, uuid: Uuid) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let removed = with_tx!(&mut tx, c => sqlx::query("DELETE FROM enrichment_field_extractions WHERE uuid = $1")
        .bind(uuid).execute(c).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(removed > 0)
}

// ---------------------------------------------------------------------------------------------
// Builtin seeding
// ---------------------------------------------------------------------------------------------

/// Seeds the builtin providers and their system field extractions, in one transaction and
/// idempotently. A missing builtin is inserted; an existing one gets the shipped `http_config`,
/// `mock_responses`, `env_var_mapping` and `supported_indicator_types` (the parts operators cannot
/// edit) only when they differ, so `updated_at` — and every registry — is untouched on a plain
/// restart. Operator-editable fields (is_active, auth_config, malice rules, TTLs, description)
/// are never overwritten. System extractions are inserted when their (provider, type, path) is
/// absent; existing rows (maybe deactivated by an operator) are left alone.
/// The parts of a builtin row the seed owns: http_config, mock_responses, env_var_mapping, types.
type SeededParts = (Json<Value>, Option<Json<Value>>, Option<Json<Value>>, Json<Vec<String>>);

pub async fn seed_builtins(db: &Db) -> sqlx::Result<(usize, usize)> {
    let mut tx = db.begin().await?;
    let at = now();
    let mut providers_written = 0;
    for builtin in super::builtins::providers() {
        let existing: Option<SeededParts> = with_tx!(&mut tx, c =>
            sqlx::query_as("SELECT http_config, mock_responses, env_var_mapping, supported_indicator_types FROM enrichment_providers WHERE provider_name = $1")
                .bind(builtin.provider_name).fetch_optional(c).await)?;
        let types: Vec<String> = builtin.supported_indicator_types.iter().map(|t| (*t).to_owned()).collect();
        match existing {
            None => {
                with_tx!(&mut tx, c => sqlx::query(
                    "INSERT INTO enrichment_providers (uuid, provider_name, display_name, description, is_builtin, is_active, \
                     supported_indicator_types, http_config, auth_type, auth_config, env_var_mapping, default_cache_ttl_seconds, \
                     cache_ttl_by_type, malice_rules, mock_responses, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, TRUE, TRUE, $5, $6, $7, NULL, $8, $9, $10, $11, $12, $13, $13)")
                    .bind(Uuid::new_v4()).bind(builtin.provider_name).bind(builtin.display_name).bind(builtin.description)
                    .bind(Json(&types)).bind(Json(&builtin.http_config)).bind(builtin.auth_type).bind(Json(&builtin.env_var_mapping))
                    .bind(builtin.default_cache_ttl_seconds).bind(Json(&builtin.cache_ttl_by_type)).bind(Json(&builtin.malice_rules))
                    .bind(Json(&builtin.mock_responses)).bind(at)
                    .execute(c).await.map(|_| ()))?;
                providers_written += 1;
            }
            Some((http_config, mock, env, stored_types)) => {
                let same = http_config.0 == builtin.http_config
                    && mock.map(|m| m.0) == Some(builtin.mock_responses.clone())
                    && env.map(|e| e.0) == Some(builtin.env_var_mapping.clone())
                    && stored_types.0 == types;
                if !same {
                    with_tx!(&mut tx, c => sqlx::query(
                        "UPDATE enrichment_providers SET http_config = $2, mock_responses = $3, env_var_mapping = $4, \
                         supported_indicator_types = $5, is_builtin = TRUE, updated_at = $6 WHERE provider_name = $1")
                        .bind(builtin.provider_name).bind(Json(&builtin.http_config)).bind(Json(&builtin.mock_responses))
                        .bind(Json(&builtin.env_var_mapping)).bind(Json(&types)).bind(at)
                        .execute(c).await.map(|_| ()))?;
                    providers_written += 1;
                }
            }
        }
    }
    let mut extractions_written = 0;
    for extraction in super::builtins::extractions() {
        let inserted = with_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type, \
             is_system, is_active, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, TRUE, $7, $8, $8) \
             ON CONFLICT (provider_name, indicator_type, source_path) DO NOTHING")
            .bind(Uuid::new_v4()).bind(extraction.provider_name).bind(extraction.indicator_type).bind(extraction.source_path)
            .bind(extraction.target_key).bind(extraction.value_type).bind(extraction.description).bind(at)
            .execute(c).await.map(|r| r.rows_affected()))?;
        extractions_written += inserted as usize;
    }
    tx.commit().await?;
    Ok((providers_written, extractions_written))
}

// ---------------------------------------------------------------------------------------------
// Indicator results (written by the pipeline)
// ---------------------------------------------------------------------------------------------

/// Merges each indicator's new results over its stored ones (shallow, by provider key), sets
/// `is_enriched`, and sets `malice` unless an analyst owns the verdict. Rows are read and written
/// in the caller's transaction (locked on PostgreSQL), so concurrent jobs enriching the same
/// indicator cannot lose each other's provider results.
pub async fn record_indicator_results(tx: &mut Tx, outcomes: &[super::IndicatorOutcome]) -> sqlx::Result<()> {
    let at = now();
    for outcome in outcomes {
        let lock = if matches!(tx, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT enrichment_results FROM indicators WHERE id = $1{lock}");
        let stored: Option<Option<Json<Value>>> =
            with_tx!(tx, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(outcome.indicator_id).fetch_optional(c).await)?;
        let Some(stored) = stored else { continue };
        let mut merged = match stored {
            Some(Json(Value::Object(map))) => map,
            _ => serde_json::Map::new(),
        };
        for (provider, result) in &outcome.results {
            merged.insert(provider.clone(), result.clone());
        }
        with_tx!(tx, c => sqlx::query(
            "UPDATE indicators SET enrichment_results = $2, is_enriched = TRUE, \
             malice = CASE WHEN malice_source = 'analyst' THEN malice ELSE $3 END, updated_at = $4 WHERE id = $1")
            .bind(outcome.indicator_id).bind(Json(Value::Object(merged))).bind(&outcome.malice).bind(at)
            .execute(c).await.map(|_| ()))?;
    }
    Ok(())
}
