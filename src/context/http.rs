//! `/v1/context-documents`: list (summaries), create, get, patch, delete. Reads need
//! `alerts:read`, writes `alerts:write`.
//!
//! Deviations from Calseta: create accepts JSON only (the multipart upload with file-to-Markdown
//! conversion is not implemented; a multipart request gets 415); validation failures use the
//! standard `details.errors` list rather than the validator's text as the message; malformed
//! JSON is a 422, not a 500.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, ContextDocumentRow, ContextDocumentSummaryRow, DocumentFilter, DocumentPatch, DocumentSort, NewDocument};
use super::{DOCUMENT_TYPES, targeting};
use crate::auth::Auth;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::http::query::{SortOrder, comma_list, lenient_bool, parse_sort};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/context-documents", get(list_context_documents).post(create_context_document))
        .route(
            "/v1/context-documents/{doc_uuid}",
            get(get_context_document).patch(update_context_document).delete(delete_context_document),
        )
}

const NOT_FOUND: &str = "Context document";
const TITLE_MAX: usize = 500;
const DESCRIPTION_MAX: usize = 10_000;
const TAGS_MAX: usize = 100;
const TAG_MAX: usize = 100;

/// A listed document (no `content`, no `targeting_rules`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContextDocumentSummary {
    pub uuid: Uuid,
    pub title: String,
    pub document_type: String,
    pub is_global: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The full document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContextDocumentResponse {
    pub uuid: Uuid,
    pub title: String,
    pub document_type: String,
    pub is_global: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub content: String,
    #[schema(value_type = Option<Object>)]
    pub targeting_rules: Option<Value>,
}

impl From<ContextDocumentRow> for ContextDocumentResponse {
    fn from(row: ContextDocumentRow) -> Self {
        ContextDocumentResponse {
            uuid: row.uuid,
            title: row.title,
            document_type: row.document_type,
            is_global: row.is_global,
            description: row.description,
            tags: row.tags.0,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            content: row.content,
            targeting_rules: row.targeting_rules.map(|r| r.0),
        }
    }
}

impl From<ContextDocumentRow> for ContextDocumentSummary {
    fn from(row: ContextDocumentRow) -> Self {
        ContextDocumentSummary {
            uuid: row.uuid,
            title: row.title,
            document_type: row.document_type,
            is_global: row.is_global,
            description: row.description,
            tags: row.tags.0,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<ContextDocumentSummaryRow> for ContextDocumentSummary {
    fn from(row: ContextDocumentSummaryRow) -> Self {
        ContextDocumentSummary {
            uuid: row.uuid,
            title: row.title,
            document_type: row.document_type,
            is_global: row.is_global,
            description: row.description,
            tags: row.tags.0,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextDocumentCreate {
    /// 1 to 500 characters, not blank.
    pub title: String,
    /// runbook, ir_plan, sop, playbook, detection_guide or other.
    pub document_type: String,
    /// Attach to every alert (targeting rules are then ignored).
    #[serde(default)]
    pub is_global: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// Markdown; not blank.
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `{"match_any": [rule…], "match_all": [rule…]}`, at most 64 KB. A non-global document
    /// without rules attaches to no alert.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub targeting_rules: Option<Value>,
}

/// PATCH body. Null handling per field: `description` and `targeting_rules` are nullable, so
/// `null` clears them (a non-global document without rules then attaches to no alert); every
/// other field is NOT NULL in the table, so `null` leaves it unchanged (Calseta's "nulls
/// ignored"). Supplying `content` bumps `version` by one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextDocumentUpdate {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub document_type: Option<String>,
    #[serde(default)]
    pub is_global: Option<bool>,
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<Object>)]
    pub targeting_rules: Option<Option<Value>>,
}

/// The field checks create and patch share; `None` means "not supplied".
struct Fields<'a> {
    title: Option<&'a str>,
    document_type: Option<&'a str>,
    description: Option<&'a str>,
    content: Option<&'a str>,
    tags: Option<&'a [String]>,
    targeting_rules: Option<&'a Value>,
}

fn validate(fields: &Fields) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(title) = fields.title
        && (title.trim().is_empty() || title.chars().count() > TITLE_MAX)
    {
        errors.push(FieldError::body("title", "string_length", format!("title must be 1 to {TITLE_MAX} characters and not blank")));
    }
    if let Some(document_type) = fields.document_type
        && !DOCUMENT_TYPES.contains(&document_type)
    {
        let mut sorted = DOCUMENT_TYPES;
        sorted.sort_unstable();
        errors.push(FieldError::body("document_type", "enum", format!("document_type must be one of: {sorted:?}")));
    }
    if fields.description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        errors.push(FieldError::body("description", "string_too_long", format!("description must be at most {DESCRIPTION_MAX} characters")));
    }
    if fields.content.is_some_and(|c| c.trim().is_empty()) {
        errors.push(FieldError::body("content", "string_too_short", "content must not be blank"));
    }
    if fields.content.is_some_and(|c| c.len() > crate::http::extract::DOCUMENT_CONTENT_MAX_BYTES) {
        errors.push(FieldError::body("content", "string_too_long", "content must be at most 1 MB (1,048,576 bytes of UTF-8)"));
    }
    if let Some(tags) = fields.tags {
        if tags.len() > TAGS_MAX {
            errors.push(FieldError::body("tags", "too_long", format!("tags must have at most {TAGS_MAX} items")));
        } else if let Some(index) = tags.iter().position(|t| t.trim().is_empty() || t.chars().count() > TAG_MAX) {
            errors.push(FieldError::new(
                "string_length",
                vec![json!("body"), json!("tags"), json!(index)],
                format!("tags must be 1 to {TAG_MAX} characters and not blank"),
            ));
        }
    }
    if let Some(rules) = fields.targeting_rules
        && let Err(problems) = targeting::validate(rules, "targeting_rules")
    {
        errors.extend(problems);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[derive(Debug, Deserialize)]
pub struct DocumentListQuery {
    #[serde(default)]
    document_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    is_global: Option<bool>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
}

#[utoipa::path(get, path = "/v1/context-documents", tag = "context-documents",
    params(("document_type" = Option<String>, Query, description = "Comma-separated document types"),
           ("is_global" = Option<bool>, Query),
           ("sort_by" = Option<String>, Query, description = "title, document_type, updated_at or created_at (default)"),
           ("sort_order" = Option<String>, Query, description = "asc or desc (default)"),
           ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of document summaries (no content)"),
              (status = 400, description = "Invalid sort_by / sort_order")),
    security(("bearer" = [])))]
pub async fn list_context_documents(
    auth: Auth,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<DocumentListQuery>,
) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let pagination = pagination.validate()?;
    let (sort_key, order) =
        parse_sort(query.sort_by.as_deref(), query.sort_order.as_deref(), &DocumentSort::KEYS, "created_at", SortOrder::Desc)?;
    let sort = DocumentSort::from_key(sort_key).expect("parse_sort returns one of DocumentSort::KEYS");
    let document_types = comma_list(query.document_type.as_deref());
    if let Some(unknown) = document_types.iter().flatten().find(|t| !DOCUMENT_TYPES.contains(&t.as_str())) {
        return Err(Error::Validation(vec![FieldError::new(
            "enum",
            vec![json!("query"), json!("document_type")],
            format!("Unknown document_type '{unknown}'. Valid types: {}", DOCUMENT_TYPES.join(", ")),
        )]));
    }
    let filter = DocumentFilter { document_types, is_global: query.is_global };
    let (rows, total) = store::list(&state.db, &filter, sort, order, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(ContextDocumentSummary::from).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/context-documents", tag = "context-documents", request_body = ContextDocumentCreate,
    responses((status = 201, body = ContextDocumentResponse)), security(("bearer" = [])))]
pub async fn create_context_document(
    auth: Auth,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ContextDocumentCreate>,
) -> Result<Response> {
    auth.require(&["alerts:write"])?;
    validate(&Fields {
        title: Some(&body.title),
        document_type: Some(&body.document_type),
        description: body.description.as_deref(),
        content: Some(&body.content),
        tags: Some(&body.tags),
        targeting_rules: body.targeting_rules.as_ref(),
    })?;
    let row = store::insert(
        &state.db,
        &NewDocument {
            title: &body.title,
            document_type: &body.document_type,
            is_global: body.is_global,
            targeting_rules: body.targeting_rules.as_ref(),
            description: body.description.as_deref(),
            content: &body.content,
            tags: &body.tags,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Data::new(ContextDocumentResponse::from(row))).into_response())
}

#[utoipa::path(get, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    responses((status = 200, body = ContextDocumentResponse), (status = 404, description = "Context document not found.")),
    security(("bearer" = [])))]
pub async fn get_context_document(auth: Auth, State(state): State<AppState>, ValidPath(doc_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let row = store::find_by_uuid(&state.db, doc_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(ContextDocumentResponse::from(row)).into_response())
}

#[utoipa::path(patch, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    request_body = ContextDocumentUpdate,
    responses((status = 200, body = ContextDocumentResponse), (status = 404, description = "Context document not found.")),
    security(("bearer" = [])))]
pub async fn update_context_document(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(doc_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ContextDocumentUpdate>,
) -> Result<Response> {
    auth.require(&["alerts:write"])?;
    validate(&Fields {
        title: body.title.as_deref(),
        document_type: body.document_type.as_deref(),
        description: body.description.as_ref().and_then(|d| d.as_deref()),
        content: body.content.as_deref(),
        tags: body.tags.as_deref(),
        targeting_rules: body.targeting_rules.as_ref().and_then(|r| r.as_ref()),
    })?;
    let patch = DocumentPatch {
        title: body.title.as_deref(),
        document_type: body.document_type.as_deref(),
        is_global: body.is_global,
        description: body.description.as_ref().map(|d| d.as_deref()),
        content: body.content.as_deref(),
        tags: body.tags.as_deref(),
        // JSON null arrives as `Some(None)` (clear); a JSON value that is itself `null` cannot
        // occur here because `Option<Value>` decodes null as `None`.
        targeting_rules: body.targeting_rules.as_ref().map(|r| r.as_ref()),
    };
    let row = store::update(&state.db, doc_uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(ContextDocumentResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Context document not found.")),
    security(("bearer" = [])))]
pub async fn delete_context_document(auth: Auth, State(state): State<AppState>, ValidPath(doc_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["alerts:write"])?;
    if !store::delete(&state.db, doc_uuid).await? {
        return Err(Error::not_found(NOT_FOUND));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
