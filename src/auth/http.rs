//! `/v1/api-keys`: create, list, get, patch, revoke. All require `admin`. The plaintext key is
//! returned by create only; neither it nor its hash appears in any other response.

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::{self, ApiKeyRow, KeyPatch, NewApiKey};
use super::{Auth, KeyType, SCOPES, generate_key};
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(get_api_key, update_api_key, delete_api_key))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub uuid: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub key_type: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `null` when unrestricted (an empty list is reported as `null` too).
    pub allowed_sources: Option<Vec<String>>,
}

impl From<ApiKeyRow> for ApiKeyResponse {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyResponse {
            uuid: row.uuid,
            name: row.name,
            key_prefix: row.key_prefix,
            scopes: row.scopes.0,
            key_type: row.key_type,
            is_active: row.is_active,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            allowed_sources: row.allowed_sources.map(|s| s.0).filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The full key. Shown once, never again.
    #[serde(rename = "key")]
    pub plaintext: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub allowed_sources: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Omitted: unchanged. `null`: restriction removed. A list: replaces the restriction.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_sources: Option<Option<Vec<String>>>,
}

/// Scope, name and source-list rules shared by create, patch and the CLI.
pub fn validate_scopes(scopes: &[String]) -> std::result::Result<(), FieldError> {
    if scopes.is_empty() {
        return Err(FieldError::body("scopes", "too_short", "List should have at least 1 item"));
    }
    if scopes.len() > SCOPES.len() * 2 {
        return Err(FieldError::body("scopes", "too_long", format!("List should have at most {} items", SCOPES.len() * 2)));
    }
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(FieldError::body("scopes", "value_error", format!("Unknown scope '{unknown}'. Valid scopes: {}", SCOPES.join(", "))));
    }
    Ok(())
}

pub fn validate_name(name: &str) -> std::result::Result<(), FieldError> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(FieldError::body("name", "string_length", "name must be 1 to 255 characters"));
    }
    Ok(())
}

fn validate_sources(sources: Option<&[String]>) -> std::result::Result<(), FieldError> {
    if let Some(list) = sources
        && (list.iter().any(|s| s.trim().is_empty() || s.len() > 100) || list.len() > 100) {
            return Err(FieldError::body("allowed_sources", "value_error", "source names must be 1 to 100 characters, at most 100 of them"));
        }
    Ok(())
}

fn collect(checks: Vec<std::result::Result<(), FieldError>>) -> Result<()> {
    let errors: Vec<FieldError> = checks.into_iter().filter_map(|c| c.err()).collect();
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

/// Creates a key and returns the row with the plaintext. Shared by REST, CLI and bootstrap.
pub async fn create_key(
    db: &crate::db::Db,
    name: &str,
    scopes: &[String],
    key_type: KeyType,
    expires_at: Option<DateTime<Utc>>,
    allowed_sources: Option<&[String]>,
    only_if_table_empty: bool,
) -> Result<Option<(ApiKeyRow, String)>> {
    let generated = tokio::task::spawn_blocking(generate_key).await.map_err(|e| Error::Internal(e.into()))?;
    let row = keys::insert(
        db,
        &NewApiKey {
            name: name.trim(),
            key_prefix: &generated.display_prefix,
            lookup_hash: &generated.lookup_hash,
            key_hash: &generated.argon2_hash,
            scopes,
            key_type: key_type.as_str(),
            expires_at,
            allowed_sources,
        },
        only_if_table_empty,
    )
    .await?;
    Ok(row.map(|row| (row, generated.plaintext)))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Active keys, newest first")), security(("bearer" = [])))]
pub async fn list_api_keys(auth: Auth, State(state): State<AppState>, ValidQuery(pagination): ValidQuery<Pagination>) -> Result<Response> {
    auth.require(&["admin"])?;
    let pagination = pagination.validate()?;
    let (rows, total) = keys::list_active(&state.db, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(ApiKeyResponse::from).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyCreate,
    responses((status = 201, description = "Created; the only response that carries the key", body = ApiKeyCreated)), security(("bearer" = [])))]
pub async fn create_api_key(auth: Auth, State(state): State<AppState>, JsonBody(body): JsonBody<ApiKeyCreate>) -> Result<Response> {
    auth.require(&["admin"])?;
    let key_type = match body.key_type.as_deref() {
        None => Ok(KeyType::Human),
        Some(t) => KeyType::parse(t).ok_or_else(|| FieldError::body("key_type", "enum", "key_type must be 'human' or 'agent'")),
    };
    let expiry = match body.expires_at {
        Some(at) if at <= Utc::now() => Err(FieldError::body("expires_at", "value_error", "expires_at must be in the future")),
        _ => Ok(()),
    };
    collect(vec![
        validate_name(&body.name),
        validate_scopes(&body.scopes),
        key_type.as_ref().map(|_| ()).map_err(Clone::clone),
        expiry,
        validate_sources(body.allowed_sources.as_deref()),
    ])?;
    let key_type = key_type.expect("validated above");
    let (row, plaintext) = create_key(&state.db, &body.name, &body.scopes, key_type, body.expires_at, body.allowed_sources.as_deref(), false)
        .await?
        .expect("unconditional insert returns the row");
    tracing::info!(target: "calseta::audit", event = "api_key_created", key_prefix = %row.key_prefix, key_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "api key created");
    let created = ApiKeyCreated { key: row.into(), plaintext };
    Ok((StatusCode::CREATED, Data::new(created)).into_response())
}

#[utoipa::path(get, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)),
    responses((status = 200, body = ApiKeyResponse), (status = 404, description = "API key not found.")), security(("bearer" = [])))]
pub async fn get_api_key(auth: Auth, State(state): State<AppState>, ValidPath(key_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["admin"])?;
    let row = keys::find_by_uuid(&state.db, key_uuid).await?.ok_or_else(|| Error::not_found("API key"))?;
    Ok(Data::new(ApiKeyResponse::from(row)).into_response())
}

#[utoipa::path(patch, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)), request_body = ApiKeyUpdate,
    responses((status = 200, body = ApiKeyResponse), (status = 404, description = "API key not found.")), security(("bearer" = [])))]
pub async fn update_api_key(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(key_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ApiKeyUpdate>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    collect(vec![
        body.scopes.as_deref().map(validate_scopes).unwrap_or(Ok(())),
        validate_sources(body.allowed_sources.as_ref().and_then(|s| s.as_deref())),
    ])?;
    let patch = KeyPatch {
        scopes: body.scopes.as_deref(),
        is_active: body.is_active,
        allowed_sources: body.allowed_sources.as_ref().map(|s| s.as_deref()),
    };
    let row = keys::update(&state.db, key_uuid, &patch).await?.ok_or_else(|| Error::not_found("API key"))?;
    state.auth.invalidate(key_uuid);
    tracing::info!(target: "calseta::audit", event = "api_key_updated", key_prefix = %row.key_prefix, key_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "api key updated");
    Ok(Data::new(ApiKeyResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "API key not found.")), security(("bearer" = [])))]
pub async fn delete_api_key(auth: Auth, State(state): State<AppState>, ValidPath(key_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["admin"])?;
    let row = keys::deactivate(&state.db, key_uuid).await?.ok_or_else(|| Error::not_found("API key"))?;
    state.auth.invalidate(key_uuid);
    tracing::info!(target: "calseta::audit", event = "api_key_revoked", key_prefix = %row.key_prefix, key_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "api key revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}
