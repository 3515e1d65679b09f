//! SQL for `enrichment_providers`: the only place that reads or writes the table (the seed of
//! the builtin rows aside, `enrich::store`). `auth_config` leaves this module only as
//! `ProviderRow::auth_config`, sealed, which the registry opens at the moment of use.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
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

/// Which providers a list shows (`None`: either way).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProviderFilter {
    pub is_active: Option<bool>,
    pub is_builtin: Option<bool>,
}

/// One page in creation order, plus the total of matching rows.
pub async fn list_providers(db: &Db, filter: ProviderFilter, limit: i64, offset: i64) -> sqlx::Result<(Vec<ProviderRow>, i64)> {
    let mut conditions = Filter::new(db);
    conditions.eq_opt("is_active", filter.is_active).eq_opt("is_builtin", filter.is_builtin);
    let select = format!("SELECT {PROVIDER_COLUMNS} FROM enrichment_providers");
    fetch_page(db, &select, &conditions, "created_at ASC, id ASC", limit, offset).await
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

/// The provider, read inside a write transaction (locked on PostgreSQL until it ends).
pub async fn find_provider_for_update(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<ProviderRow>> {
    let lock = if matches!(tx, Tx::Postgres(_)) { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM enrichment_providers WHERE uuid = $1{lock}");
    with_tx!(tx, c => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

pub async fn provider_exists(tx: &mut Tx, provider_name: &str) -> sqlx::Result<bool> {
    with_tx!(tx, c => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = $1")
        .bind(provider_name).fetch_one(c).await)
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

pub async fn insert_provider(tx: &mut Tx, provider: NewProvider<'_>) -> sqlx::Result<ProviderRow> {
    let sql = format!(
        "INSERT INTO enrichment_providers (uuid, provider_name, display_name, description, is_builtin, is_active, \
         supported_indicator_types, http_config, auth_type, auth_config, env_var_mapping, default_cache_ttl_seconds, \
         cache_ttl_by_type, malice_rules, mock_responses, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, FALSE, TRUE, $5, $6, $7, $8, NULL, $9, $10, $11, NULL, $12, $12) RETURNING {PROVIDER_COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4()).bind(provider.provider_name).bind(provider.display_name).bind(provider.description)
        .bind(Json(provider.supported_indicator_types)).bind(Json(provider.http_config)).bind(provider.auth_type)
        .bind(provider.sealed_auth_config.map(Json)).bind(provider.default_cache_ttl_seconds)
        .bind(provider.cache_ttl_by_type.map(Json)).bind(provider.malice_rules.map(Json)).bind(now())
        .fetch_one(c).await)
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

pub async fn update_provider(tx: &mut Tx, uuid: Uuid, patch: ProviderPatch<'_>) -> sqlx::Result<Option<ProviderRow>> {
    let sql = format!(
        "UPDATE enrichment_providers SET \
           display_name = COALESCE($2, display_name), description = COALESCE($3, description), \
           is_active = COALESCE($4, is_active), supported_indicator_types = COALESCE($5, supported_indicator_types), \
           http_config = COALESCE($6, http_config), auth_type = COALESCE($7, auth_type), \
           auth_config = COALESCE($8, auth_config), default_cache_ttl_seconds = COALESCE($9, default_cache_ttl_seconds), \
           cache_ttl_by_type = COALESCE($10, cache_ttl_by_type), malice_rules = COALESCE($11, malice_rules), updated_at = $12 \
         WHERE uuid = $1 RETURNING {PROVIDER_COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, ProviderRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid).bind(patch.display_name).bind(patch.description).bind(patch.is_active)
        .bind(patch.supported_indicator_types.map(Json)).bind(patch.http_config.map(Json)).bind(patch.auth_type)
        .bind(patch.sealed_auth_config.map(Json)).bind(patch.default_cache_ttl_seconds)
        .bind(patch.cache_ttl_by_type.map(Json)).bind(patch.malice_rules.map(Json)).bind(now())
        .fetch_optional(c).await)
}

/// Deletes a (non-builtin) provider and its non-system field extractions; `false` when absent.
pub async fn delete_provider(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<bool> {
    let name: Option<String> = with_tx!(tx, c => sqlx::query_scalar::<_, String>(
        "SELECT provider_name FROM enrichment_providers WHERE uuid = $1").bind(uuid).fetch_optional(c).await)?;
    let Some(name) = name else { return Ok(false) };
    with_tx!(tx, c => sqlx::query("DELETE FROM enrichment_field_extractions WHERE provider_name = $1 AND is_system = FALSE")
        .bind(&name).execute(c).await.map(|_| ()))?;
    with_tx!(tx, c => sqlx::query("DELETE FROM enrichment_providers WHERE uuid = $1").bind(uuid).execute(c).await.map(|_| ()))?;
    Ok(true)
}
