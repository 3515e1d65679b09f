//! Context-document operations: list (summaries), get, create (from JSON or from an uploaded
//! file converted to text), patch, delete. Reads need `alerts:read`, writes `alerts:write`.
//! Writes are audited.
//!
//! Deviations from Calseta: validation failures use the standard `details.errors` list rather
//! than the validator's text as the message; malformed JSON is a 422, not a 500.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, ContextDocumentRow, ContextDocumentSummaryRow, DocumentFilter, DocumentPatch, DocumentSort, NewDocument};
use super::{DOCUMENT_TYPES, convert, targeting};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::http::query::{SortOrder, comma_list, lenient_bool, parse_sort};
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;
use crate::state::AppState;

operation!(ListContextDocuments = "context_documents.list", scopes ["alerts:read"]);
operation!(GetContextDocument = "context_documents.get", scopes ["alerts:read"]);
operation!(CreateContextDocument = "context_documents.create", scopes ["alerts:write"]);
operation!(PatchContextDocument = "context_documents.patch", scopes ["alerts:write"]);
operation!(DeleteContextDocument = "context_documents.delete", scopes ["alerts:write"]);

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
    let mut errors = FieldErrors::default();
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
    errors.finish()
}

#[derive(Debug, Deserialize)]
#[derive(Default)]
pub struct DocumentListQuery {
    /// Comma-separated document types.
    #[serde(default)]
    pub document_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_global: Option<bool>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
}


/// An uploaded file, as the multipart form carried it.
#[derive(Debug)]
pub struct UploadedFile {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: bytes::Bytes,
}

/// The multipart create: every field of the JSON create but `content`, which is the text of
/// `file` (`fields.content` is ignored).
#[derive(Debug)]
pub struct DocumentUpload {
    pub fields: ContextDocumentCreate,
    pub file: UploadedFile,
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    pagination: Pagination,
    query: DocumentListQuery,
) -> Result<(Vec<ContextDocumentSummary>, i64)> {
    who.authorize::<ListContextDocuments>()?;
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
    Ok((rows.into_iter().map(ContextDocumentSummary::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<ContextDocumentResponse> {
    who.authorize::<GetContextDocument>()?;
    let row = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(row.into())
}

pub async fn create(state: &AppState, who: &Principal, input: ContextDocumentCreate) -> Result<ContextDocumentResponse> {
    who.authorize::<CreateContextDocument>()?;
    insert(state, who, input, None).await
}

/// Creates a document whose content is the text of an uploaded file (api.md §8, multipart
/// form). The original file is not stored.
pub async fn create_from_upload(state: &AppState, who: &Principal, upload: DocumentUpload) -> Result<ContextDocumentResponse> {
    who.authorize::<CreateContextDocument>()?;
    // The converted text is held to the limit a JSON body carrying it would meet, so an archive
    // that inflates (DOCX, PPTX) or a PDF full of text cannot store more than JSON could.
    let limit = usize::try_from(state.settings.max_request_body_size_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let file = upload.file;
    let converted = tokio::task::spawn_blocking(move || convert::to_text(file.name.as_deref(), file.content_type.as_deref(), &file.bytes, limit))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| match e {
            convert::ConvertError::TooLarge => Error::PayloadTooLarge { limit_mb: state.settings.max_request_body_size_mb, ingest: false },
            other => Error::client(http::StatusCode::UNPROCESSABLE_ENTITY, "UNSUPPORTED_FORMAT", other.to_string()),
        })?;
    let format = converted.format;
    let input = ContextDocumentCreate { content: converted.text, ..upload.fields };
    insert(state, who, input, Some(format)).await
}

async fn insert(state: &AppState, who: &Principal, input: ContextDocumentCreate, converted_from: Option<&str>) -> Result<ContextDocumentResponse> {
    validate(&Fields {
        title: Some(&input.title),
        document_type: Some(&input.document_type),
        description: input.description.as_deref(),
        content: Some(&input.content),
        tags: Some(&input.tags),
        targeting_rules: input.targeting_rules.as_ref(),
    })?;
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        &NewDocument {
            title: &input.title,
            document_type: &input.document_type,
            is_global: input.is_global,
            targeting_rules: input.targeting_rules.as_ref(),
            description: input.description.as_deref(),
            content: &input.content,
            tags: &input.tags,
        },
    )
    .await?;
    let details = json!({
        "title": row.title,
        "document_type": row.document_type,
        "is_global": row.is_global,
        "converted_from": converted_from,
    });
    audit::record(&mut tx, who, Record::success(CreateContextDocument::NAME, "context_document", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: ContextDocumentUpdate) -> Result<ContextDocumentResponse> {
    who.authorize::<PatchContextDocument>()?;
    validate(&Fields {
        title: input.title.as_deref(),
        document_type: input.document_type.as_deref(),
        description: input.description.as_ref().and_then(|d| d.as_deref()),
        content: input.content.as_deref(),
        tags: input.tags.as_deref(),
        targeting_rules: input.targeting_rules.as_ref().and_then(|r| r.as_ref()),
    })?;
    let patch = DocumentPatch {
        title: input.title.as_deref(),
        document_type: input.document_type.as_deref(),
        is_global: input.is_global,
        description: input.description.as_ref().map(|d| d.as_deref()),
        content: input.content.as_deref(),
        tags: input.tags.as_deref(),
        // JSON null arrives as `Some(None)` (clear); a JSON value that is itself `null` cannot
        // occur here because `Option<Value>` decodes null as `None`.
        targeting_rules: input.targeting_rules.as_ref().map(|r| r.as_ref()),
    };
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let fields: Vec<&str> = [
        ("title", input.title.is_some()),
        ("document_type", input.document_type.is_some()),
        ("is_global", input.is_global.is_some()),
        ("description", input.description.is_some()),
        ("content", input.content.is_some()),
        ("tags", input.tags.is_some()),
        ("targeting_rules", input.targeting_rules.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, sent)| sent.then_some(field))
    .collect();
    let details = json!({ "title": row.title, "version": row.version, "fields": fields });
    audit::record(&mut tx, who, Record::success(PatchContextDocument::NAME, "context_document", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteContextDocument>()?;
    let mut tx = state.db.begin().await?;
    let title = store::delete(&mut tx, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    audit::record(&mut tx, who, Record::success(DeleteContextDocument::NAME, "context_document", uuid).with_details(json!({ "title": title }))).await?;
    tx.commit().await?;
    Ok(())
}
