//! SQL for `context_documents`: the only place that reads or writes the table.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::http::query::SortOrder;
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ContextDocumentRow {
    pub id: i64,
    pub uuid: Uuid,
    pub title: String,
    pub document_type: String,
    pub is_global: bool,
    pub targeting_rules: Option<Json<Value>>,
    pub description: Option<String>,
    pub content: String,
    pub tags: Json<Vec<String>>,
    pub version: i32,
    pub is_system: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A listed document: everything but `content` and `targeting_rules` (a page of runbooks would
/// otherwise read megabytes it does not return).
#[derive(Debug, Clone, FromRow)]
pub struct ContextDocumentSummaryRow {
    pub id: i64,
    pub uuid: Uuid,
    pub title: String,
    pub document_type: String,
    pub is_global: bool,
    pub description: Option<String>,
    pub tags: Json<Vec<String>>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, title, document_type, is_global, targeting_rules, description, content, tags, \
                       version, is_system, created_at, updated_at";
const SUMMARY_COLUMNS: &str = "id, uuid, title, document_type, is_global, description, tags, version, created_at, updated_at";

pub struct NewDocument<'a> {
    pub title: &'a str,
    pub document_type: &'a str,
    pub is_global: bool,
    pub targeting_rules: Option<&'a Value>,
    pub description: Option<&'a str>,
    pub content: &'a str,
    pub tags: &'a [String],
}

pub async fn insert(tx: &mut Tx, doc: &NewDocument<'_>) -> sqlx::Result<ContextDocumentRow> {
    let sql = format!(
        "INSERT INTO context_documents (uuid, title, document_type, is_global, targeting_rules, description, \
         content, tags, version, is_system, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, FALSE, $9, $9) RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, ContextDocumentRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(doc.title)
        .bind(doc.document_type)
        .bind(doc.is_global)
        .bind(doc.targeting_rules.map(|r| Json(r.clone())))
        .bind(doc.description)
        .bind(doc.content)
        .bind(Json(doc.tags.to_vec()))
        .bind(now())
        .fetch_one(p)
        .await)
}

/// Whether a document with this exact title exists (demo data skips those).
pub async fn exists_with_title(db: &Db, title: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM context_documents WHERE title = $1")
        .bind(title).fetch_one(p).await).map(|n| n > 0)
}

/// Marks a document as system data (the sandbox's documents survive its reset).
pub async fn mark_system(db: &Db, uuid: Uuid) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, c => sqlx::query("UPDATE context_documents SET is_system = TRUE WHERE uuid = $1").bind(uuid).execute(c).await.map(|_| ()))?;
    tx.commit().await
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<ContextDocumentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM context_documents WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, ContextDocumentRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// Every document that can attach to an alert: global ones, then targeted ones (non-null
/// rules), each group by `document_type`, then age. The caller evaluates the rules.
pub async fn attachable(db: &Db) -> sqlx::Result<Vec<ContextDocumentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM context_documents WHERE is_global = TRUE OR targeting_rules IS NOT NULL \
         ORDER BY is_global DESC, document_type ASC, created_at ASC, id ASC"
    );
    with_db!(db, p => sqlx::query_as::<_, ContextDocumentRow>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
}

#[derive(Debug, Default)]
pub struct DocumentFilter {
    pub document_types: Option<Vec<String>>,
    pub is_global: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentSort {
    Title,
    DocumentType,
    UpdatedAt,
    CreatedAt,
}

impl DocumentSort {
    pub const KEYS: [&'static str; 4] = ["title", "document_type", "updated_at", "created_at"];

    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "title" => Some(DocumentSort::Title),
            "document_type" => Some(DocumentSort::DocumentType),
            "updated_at" => Some(DocumentSort::UpdatedAt),
            "created_at" => Some(DocumentSort::CreatedAt),
            _ => None,
        }
    }

    /// ORDER BY text (constants only). Titles sort case-insensitively in byte order on both
    /// backends; `id` makes the order total so pages never overlap.
    fn order_by(self, order: SortOrder, postgres: bool) -> String {
        let dir = order.sql();
        let collate = if postgres { " COLLATE \"C\"" } else { "" };
        match self {
            DocumentSort::Title => format!("LOWER(title){collate} {dir}, title{collate} {dir}, id {dir}"),
            DocumentSort::DocumentType => format!("document_type {dir}, id {dir}"),
            DocumentSort::UpdatedAt => format!("updated_at {dir}, id {dir}"),
            DocumentSort::CreatedAt => format!("created_at {dir}, id {dir}"),
        }
    }
}

/// One page of summaries matching `filter`, and the total number of matches.
pub async fn list(
    db: &Db,
    filter: &DocumentFilter,
    sort: DocumentSort,
    order: SortOrder,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<ContextDocumentSummaryRow>, i64)> {
    let order_by = sort.order_by(order, matches!(db, Db::Postgres(_)));
    let mut conditions = Filter::new(db);
    conditions.any_of("document_type", filter.document_types.as_deref().unwrap_or_default()).eq_opt("is_global", filter.is_global);
    fetch_page(db, &format!("SELECT {SUMMARY_COLUMNS} FROM context_documents"), &conditions, &order_by, limit, offset).await
}

/// A PATCH: `None` leaves a column unchanged; `Some(None)` clears a nullable one. Supplying
/// `content` bumps `version`.
#[derive(Debug, Default)]
pub struct DocumentPatch<'a> {
    pub title: Option<&'a str>,
    pub document_type: Option<&'a str>,
    pub is_global: Option<bool>,
    pub description: Option<Option<&'a str>>,
    pub content: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub targeting_rules: Option<Option<&'a Value>>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, patch: &DocumentPatch<'_>) -> sqlx::Result<Option<ContextDocumentRow>> {
    let sql = format!(
        "UPDATE context_documents SET \
           title = COALESCE($2, title), \
           document_type = COALESCE($3, document_type), \
           is_global = COALESCE($4, is_global), \
           description = CASE WHEN $5 THEN $6 ELSE description END, \
           content = COALESCE($7, content), \
           version = CASE WHEN $8 THEN version + 1 ELSE version END, \
           tags = COALESCE($9, tags), \
           targeting_rules = CASE WHEN $10 THEN $11 ELSE targeting_rules END, \
           updated_at = $12 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    let rules = patch.targeting_rules.flatten().map(|r| Json(r.clone()));
    with_tx!(tx, p => sqlx::query_as::<_, ContextDocumentRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(patch.title)
        .bind(patch.document_type)
        .bind(patch.is_global)
        .bind(patch.description.is_some())
        .bind(patch.description.flatten())
        .bind(patch.content)
        .bind(patch.content.is_some())
        .bind(patch.tags.map(|t| Json(t.to_vec())))
        .bind(patch.targeting_rules.is_some())
        .bind(rules)
        .bind(now())
        .fetch_optional(p)
        .await)
}

/// Hard delete; nothing references the table. Returns the deleted document's title.
pub async fn delete(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<String>> {
    with_tx!(tx, c => sqlx::query_scalar("DELETE FROM context_documents WHERE uuid = $1 RETURNING title").bind(uuid).fetch_optional(c).await)
}
