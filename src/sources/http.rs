//! `/v1/sources`: list, create, get, patch, delete source integrations. Reads need `alerts:read`,
//! writes `admin`. `auth_config` is accepted on create/patch, sealed before storage and never
//! returned; without `ENCRYPTION_KEY` a request carrying it is refused (400).

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, NewSource, SourcePatch, SourceRow};
use super::{MEDIUM_JSON_BYTES, check_json_size, seal_auth_config};
use crate::auth::Auth;
use crate::crypto::require_cipher;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::ingest::sources;
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

const NOT_FOUND: &str = "Source integration";
const MAX_DISPLAY_NAME: usize = 255;
const MAX_AUTH_TYPE: usize = 100;
const MAX_DOCUMENTATION: usize = 100_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, patch_source, delete_source))
}

/// `auth_config` is deliberately absent: it is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceResponse {
    pub uuid: Uuid,
    pub source_name: String,
    pub display_name: String,
    pub is_active: bool,
    pub auth_type: Option<String>,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SourceRow> for SourceResponse {
    fn from(row: SourceRow) -> Self {
        SourceResponse {
            uuid: row.uuid,
            source_name: row.source_name,
            display_name: row.display_name,
            is_active: row.is_active,
            auth_type: row.auth_type,
            documentation: row.documentation,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreate {
    /// A registered source plugin (`sentinel`, `elastic`, `splunk`, `generic`).
    pub source_name: String,
    pub display_name: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub auth_type: Option<String>,
    /// Secret; sealed before storage, never returned. At most 256 KB serialized.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub documentation: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `null` for any field means "leave unchanged" (api.md: nulls ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceUpdate {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub documentation: Option<String>,
}

fn check_display_name(value: &str) -> std::result::Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::body("display_name", "string_too_short", "display_name must be 1 to 255 characters"));
    }
    if value.chars().count() > MAX_DISPLAY_NAME {
        return Err(FieldError::body("display_name", "string_too_long", "display_name must be 1 to 255 characters"));
    }
    Ok(())
}

fn check_max(field: &str, value: Option<&str>, max: usize) -> std::result::Result<(), FieldError> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(FieldError::body(field, "string_too_long", format!("{field} must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn check_auth_config(config: Option<&Map<String, Value>>) -> std::result::Result<(), FieldError> {
    match config {
        Some(map) => check_json_size("auth_config", map, MEDIUM_JSON_BYTES),
        None => Ok(()),
    }
}

fn collect(checks: Vec<std::result::Result<(), FieldError>>) -> Result<()> {
    let errors: Vec<FieldError> = checks.into_iter().filter_map(|c| c.err()).collect();
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}


fn invalid_source(name: &str) -> Error {
    let registered: Vec<String> = sources::all().iter().map(|s| crate::ingest::sources::py_string_repr(s.name())).collect();
    Error::bad_request(
        "INVALID_SOURCE",
        format!("Unknown source plugin: {}. Registered sources: [{}]", crate::ingest::sources::py_string_repr(name), registered.join(", ")),
    )
}

#[utoipa::path(get, path = "/v1/sources", tag = "sources", params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Source integrations, newest first", body = [SourceResponse])), security(("bearer" = [])))]
pub async fn list_sources(auth: Auth, State(state): State<AppState>, ValidQuery(pagination): ValidQuery<Pagination>) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let pagination = pagination.validate()?;
    let (rows, total) = store::list(&state.db, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(SourceResponse::from).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = SourceCreate,
    responses((status = 201, body = SourceResponse), (status = 400, description = "INVALID_SOURCE or ENCRYPTION_NOT_CONFIGURED")),
    security(("bearer" = [])))]
pub async fn create_source(auth: Auth, State(state): State<AppState>, JsonBody(body): JsonBody<SourceCreate>) -> Result<Response> {
    auth.require(&["admin"])?;
    collect(vec![
        check_display_name(&body.display_name),
        check_max("auth_type", body.auth_type.as_deref(), MAX_AUTH_TYPE),
        check_auth_config(body.auth_config.as_ref()),
        check_max("documentation", body.documentation.as_deref(), MAX_DOCUMENTATION),
    ])?;
    if sources::get(&body.source_name).is_none() {
        return Err(invalid_source(&body.source_name));
    }
    let sealed_auth_config = match &body.auth_config {
        Some(config) => Some(seal_auth_config(require_cipher(state.cipher.as_ref())?, config)),
        None => None,
    };
    let row = store::insert(
        &state.db,
        NewSource {
            source_name: &body.source_name,
            display_name: &body.display_name,
            is_active: body.is_active,
            auth_type: body.auth_type.as_deref(),
            sealed_auth_config,
            documentation: body.documentation.as_deref(),
        },
    )
    .await?;
    tracing::info!(target: "calseta::audit", event = "source_integration_created", source_uuid = %row.uuid, source_name = %row.source_name, actor_key_prefix = %auth.key_prefix, "source integration created");
    Ok((StatusCode::CREATED, Data::new(SourceResponse::from(row))).into_response())
}

#[utoipa::path(get, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)),
    responses((status = 200, body = SourceResponse), (status = 404, description = "Source integration not found.")), security(("bearer" = [])))]
pub async fn get_source(auth: Auth, State(state): State<AppState>, ValidPath(source_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let row = store::find_by_uuid(&state.db, source_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(SourceResponse::from(row)).into_response())
}

#[utoipa::path(patch, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)), request_body = SourceUpdate,
    responses((status = 200, body = SourceResponse), (status = 400, description = "ENCRYPTION_NOT_CONFIGURED"),
              (status = 404, description = "Source integration not found.")),
    security(("bearer" = [])))]
pub async fn patch_source(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(source_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<SourceUpdate>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    collect(vec![
        body.display_name.as_deref().map_or(Ok(()), check_display_name),
        check_max("auth_type", body.auth_type.as_deref(), MAX_AUTH_TYPE),
        check_auth_config(body.auth_config.as_ref()),
        check_max("documentation", body.documentation.as_deref(), MAX_DOCUMENTATION),
    ])?;
    // A missing source answers 404 before a missing key answers 400, as Calseta orders them.
    store::find_by_uuid(&state.db, source_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let sealed_auth_config = match &body.auth_config {
        Some(config) => Some(seal_auth_config(require_cipher(state.cipher.as_ref())?, config)),
        None => None,
    };
    let patch = SourcePatch {
        display_name: body.display_name.as_deref(),
        is_active: body.is_active,
        auth_type: body.auth_type.as_deref(),
        sealed_auth_config,
        documentation: body.documentation.as_deref(),
    };
    let row = store::update(&state.db, source_uuid, patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    tracing::info!(target: "calseta::audit", event = "source_integration_updated", source_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "source integration updated");
    Ok(Data::new(SourceResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Source integration not found.")), security(("bearer" = [])))]
pub async fn delete_source(auth: Auth, State(state): State<AppState>, ValidPath(source_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["admin"])?;
    if !store::delete(&state.db, source_uuid).await? {
        return Err(Error::not_found(NOT_FOUND));
    }
    tracing::info!(target: "calseta::audit", event = "source_integration_deleted", source_uuid = %source_uuid, actor_key_prefix = %auth.key_prefix, "source integration deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_source_message_matches_calseta() {
        let Error::Client { message, code, status, .. } = invalid_source("okta") else { panic!() };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(code, "INVALID_SOURCE");
        assert_eq!(message, "Unknown source plugin: 'okta'. Registered sources: ['sentinel', 'elastic', 'splunk', 'generic']");
        assert_eq!(crate::ingest::sources::py_string_repr("it's"), "\"it's\"");
        assert_eq!(crate::ingest::sources::py_string_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(crate::ingest::sources::py_string_repr("x\ny"), "'x\\ny'");
    }

    #[test]
    fn field_checks() {
        assert!(check_display_name("Splunk prod").is_ok());
        assert!(check_display_name(" ").is_err());
        assert!(check_display_name(&"x".repeat(256)).is_err());
        assert!(check_display_name(&"x".repeat(255)).is_ok());
        assert!(check_max("auth_type", Some(&"x".repeat(101)), MAX_AUTH_TYPE).is_err());
        assert!(check_max("auth_type", None, MAX_AUTH_TYPE).is_ok());
    }
}
