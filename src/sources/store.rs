//! SQL for `source_integrations`: the only place that reads or writes the table. Reads never
//! select `auth_config`, so the sealed secret cannot reach a response by accident.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct SourceRow {
    pub id: i64,
    pub uuid: Uuid,
    pub source_name: String,
    pub display_name: String,
    pub is_active: bool,
    pub auth_type: Option<String>,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, source_name, display_name, is_active, auth_type, documentation, created_at, updated_at";

/// One page, newest first, plus the total count.
pub async fn list(db: &Db, limit: i64, offset: i64) -> sqlx::Result<(Vec<SourceRow>, i64)> {
    let select = format!("SELECT {COLUMNS} FROM source_integrations");
    fetch_page(db, &select, &Filter::new(db), "created_at DESC, id DESC", limit, offset).await
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<SourceRow>> {
    let sql = format!("SELECT {COLUMNS} FROM source_integrations WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, SourceRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub struct NewSource<'a> {
    pub source_name: &'a str,
    pub display_name: &'a str,
    pub is_active: bool,
    pub auth_type: Option<&'a str>,
    /// Already sealed (`{"_encrypted": …}`); never plaintext.
    pub sealed_auth_config: Option<Value>,
    pub documentation: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, source: NewSource<'_>) -> sqlx::Result<SourceRow> {
    let sql = format!(
        "INSERT INTO source_integrations (uuid, source_name, display_name, is_active, auth_type, auth_config, \
         documentation, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, SourceRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(source.source_name)
        .bind(source.display_name)
        .bind(source.is_active)
        .bind(source.auth_type)
        .bind(source.sealed_auth_config.map(Json))
        .bind(source.documentation)
        .bind(now())
        .fetch_one(p)
        .await)
}

/// Fields a PATCH may change; `None` leaves the column as it is (`source_name` is immutable).
#[derive(Default)]
pub struct SourcePatch<'a> {
    pub display_name: Option<&'a str>,
    pub is_active: Option<bool>,
    pub auth_type: Option<&'a str>,
    /// Already sealed.
    pub sealed_auth_config: Option<Value>,
    pub documentation: Option<&'a str>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, patch: SourcePatch<'_>) -> sqlx::Result<Option<SourceRow>> {
    let sql = format!(
        "UPDATE source_integrations SET \
           display_name = COALESCE($2, display_name), \
           is_active = COALESCE($3, is_active), \
           auth_type = COALESCE($4, auth_type), \
           auth_config = COALESCE($5, auth_config), \
           documentation = COALESCE($6, documentation), \
           updated_at = $7 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, SourceRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(patch.display_name)
        .bind(patch.is_active)
        .bind(patch.auth_type)
        .bind(patch.sealed_auth_config.map(Json))
        .bind(patch.documentation)
        .bind(now())
        .fetch_optional(p)
        .await)
}

/// Hard delete; the deleted row's `source_name`, `None` when no row had that uuid.
pub async fn delete(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<String>> {
    with_tx!(tx, c => sqlx::query_scalar("DELETE FROM source_integrations WHERE uuid = $1 RETURNING source_name").bind(uuid).fetch_optional(c).await)
}
