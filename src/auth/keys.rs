//! SQL for the `api_keys` table: the only place that reads or writes it.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub scopes: Json<Vec<String>>,
    pub key_type: String,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub allowed_sources: Option<Json<Vec<String>>>,
    /// Normalized CIDRs the key may be used from; `None` = any address.
    pub allowed_cidrs: Option<Json<Vec<String>>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, name, key_prefix, key_hash, scopes, key_type, is_active, expires_at, \
                       last_used_at, allowed_sources, allowed_cidrs, created_at";

pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub key_prefix: &'a str,
    pub lookup_hash: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [String],
    pub key_type: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_sources: Option<&'a [String]>,
    pub allowed_cidrs: Option<&'a [String]>,
}

/// How [`insert_with`] guards its insert.
#[derive(Clone, Copy)]
enum InsertMode {
    Always,
    /// Nothing is inserted when any key, active or not, exists (the bootstrap key).
    OnlyIfTableEmpty,
    /// An `is_system` key, unless a key with the same lookup hash exists (revoked or not).
    SystemIfAbsent,
}

fn insert_sql(mode: InsertMode) -> String {
    let (is_system, guard) = match mode {
        InsertMode::Always => ("FALSE", ""),
        InsertMode::OnlyIfTableEmpty => ("FALSE", " WHERE NOT EXISTS (SELECT 1 FROM api_keys)"),
        // `WHERE TRUE`: SQLite needs a WHERE before an upsert clause on INSERT … SELECT.
        InsertMode::SystemIfAbsent => ("TRUE", " WHERE TRUE ON CONFLICT (lookup_hash) DO NOTHING"),
    };
    format!(
        "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash, scopes, key_type, \
         is_active, expires_at, allowed_sources, allowed_cidrs, is_system, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9, $11, {is_system}, $10, $10{guard} RETURNING {COLUMNS}"
    )
}

/// Inserts a key. With `only_if_table_empty`, inserts nothing (returns `None`) when any key,
/// active or not, already exists: the bootstrap key is printed once in a database's life.
pub async fn insert(tx: &mut Tx, key: &NewApiKey<'_>, only_if_table_empty: bool) -> sqlx::Result<Option<ApiKeyRow>> {
    insert_with(tx, key, if only_if_table_empty { InsertMode::OnlyIfTableEmpty } else { InsertMode::Always }).await
}

/// Inserts a system key (the sandbox's well-known demo keys) unless a key with the same lookup
/// hash exists, revoked or not; returns the row when it was inserted.
pub async fn insert_system_if_absent(tx: &mut Tx, key: &NewApiKey<'_>) -> sqlx::Result<Option<ApiKeyRow>> {
    insert_with(tx, key, InsertMode::SystemIfAbsent).await
}

async fn insert_with(tx: &mut Tx, key: &NewApiKey<'_>, mode: InsertMode) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = insert_sql(mode);
    let allowed = key.allowed_sources.map(|s| Json(s.to_vec()));
    with_tx!(tx, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(key.name)
        .bind(key.key_prefix)
        .bind(key.lookup_hash)
        .bind(key.key_hash)
        .bind(Json(key.scopes.to_vec()))
        .bind(key.key_type)
        .bind(key.expires_at)
        .bind(allowed)
        .bind(now())
        .bind(key.allowed_cidrs.map(|c| Json(c.to_vec())))
        .fetch_optional(p)
        .await)
}

pub async fn find_by_lookup_hash(db: &Db, lookup_hash: &str) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE lookup_hash = $1");
    with_db!(db, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql)).bind(lookup_hash).fetch_optional(p).await)
}

pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    with_db!(db, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// Active keys whose display prefix is `prefix` (the CLI revokes by prefix when unambiguous).
pub async fn find_active_by_prefix(db: &Db, prefix: &str) -> sqlx::Result<Vec<ApiKeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_prefix = $1 AND is_active = TRUE");
    with_db!(db, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql)).bind(prefix).fetch_all(p).await)
}

/// Active keys, newest first, one page; plus the total count of active keys.
pub async fn list_active(db: &Db, limit: i64, offset: i64) -> sqlx::Result<(Vec<ApiKeyRow>, i64)> {
    let mut filter = Filter::new(db);
    filter.eq("is_active", true);
    fetch_page(db, &format!("SELECT {COLUMNS} FROM api_keys"), &filter, "created_at DESC, id DESC", limit, offset).await
}

pub struct KeyPatch<'a> {
    pub scopes: Option<&'a [String]>,
    pub is_active: Option<bool>,
    /// `Some(None)` clears the restriction; `None` leaves it.
    pub allowed_sources: Option<Option<&'a [String]>>,
    /// `Some(None)` clears the restriction; `None` leaves it.
    pub allowed_cidrs: Option<Option<&'a [String]>>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, patch: &KeyPatch<'_>) -> sqlx::Result<Option<ApiKeyRow>> {
    let sql = format!(
        "UPDATE api_keys SET \
           scopes = CASE WHEN $2 THEN $3 ELSE scopes END, \
           is_active = COALESCE($4, is_active), \
           revoked_at = CASE WHEN $4 = FALSE AND is_active = TRUE THEN $7 WHEN $4 = TRUE THEN NULL ELSE revoked_at END, \
           allowed_sources = CASE WHEN $5 THEN $6 ELSE allowed_sources END, \
           allowed_cidrs = CASE WHEN $8 THEN $9 ELSE allowed_cidrs END, \
           updated_at = $7 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    let scopes = patch.scopes.map(|s| Json(s.to_vec()));
    let allowed = patch.allowed_sources.flatten().map(|s| Json(s.to_vec()));
    with_tx!(tx, p => sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(scopes.is_some())
        .bind(scopes.unwrap_or(Json(vec![])))
        .bind(patch.is_active)
        .bind(patch.allowed_sources.is_some())
        .bind(allowed)
        .bind(now())
        .bind(patch.allowed_cidrs.is_some())
        .bind(patch.allowed_cidrs.flatten().map(|c| Json(c.to_vec())))
        .fetch_optional(p)
        .await)
}

/// Soft delete: the row stays for audit, the key stops working.
pub async fn deactivate(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<ApiKeyRow>> {
    update(tx, uuid, &KeyPatch { scopes: None, is_active: Some(false), allowed_sources: None, allowed_cidrs: None }).await
}

pub async fn touch_last_used(db: &Db, id: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
    // In a transaction so that on SQLite it waits on the write gate, not in the busy handler.
    let mut tx = db.begin().await?;
    crate::with_tx!(&mut tx, c => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2").bind(at).bind(id).execute(c).await.map(|_| ()))?;
    tx.commit().await
}
