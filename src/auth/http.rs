//! `/v1/api-keys`: create, list, get, patch, revoke (operations in `service`). All require `admin`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Authorized;
use super::service::{ApiKeyCreate, ApiKeyCreated, ApiKeyResponse, ApiKeyUpdate, CreateApiKey, GetApiKey, Keys, ListApiKeys, PatchApiKey, RevokeApiKey};
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(get_api_key, update_api_key, delete_api_key))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Active keys, newest first")), security(("bearer" = ["admin"])))]
pub async fn list_api_keys(
    auth: Authorized<ListApiKeys>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
) -> Result<Response> {
    let (data, total) = Keys::of(&state).list(&auth.principal, pagination).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = ApiKeyCreate,
    responses((status = 201, description = "Created; the only response that carries the key", body = ApiKeyCreated)),
    security(("bearer" = ["admin"])))]
pub async fn create_api_key(
    auth: Authorized<CreateApiKey>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ApiKeyCreate>,
) -> Result<Response> {
    let created = Keys::of(&state).create(&auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(created)).into_response())
}

#[utoipa::path(get, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)),
    responses((status = 200, body = ApiKeyResponse), (status = 404, description = "API key not found.")), security(("bearer" = ["admin"])))]
pub async fn get_api_key(auth: Authorized<GetApiKey>, State(state): State<AppState>, ValidPath(key_uuid): ValidPath<Uuid>) -> Result<Response> {
    let key = Keys::of(&state).get(&auth.principal, key_uuid).await?;
    Ok(Data::new(key).into_response())
}

#[utoipa::path(patch, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)), request_body = ApiKeyUpdate,
    responses((status = 200, body = ApiKeyResponse), (status = 404, description = "API key not found.")), security(("bearer" = ["admin"])))]
pub async fn update_api_key(
    auth: Authorized<PatchApiKey>,
    State(state): State<AppState>,
    ValidPath(key_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ApiKeyUpdate>,
) -> Result<Response> {
    let key = Keys::of(&state).patch(&auth.principal, key_uuid, body).await?;
    Ok(Data::new(key).into_response())
}

#[utoipa::path(delete, path = "/v1/api-keys/{key_uuid}", tag = "api-keys", params(("key_uuid" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, description = "API key not found.")), security(("bearer" = ["admin"])))]
pub async fn delete_api_key(auth: Authorized<RevokeApiKey>, State(state): State<AppState>, ValidPath(key_uuid): ValidPath<Uuid>) -> Result<Response> {
    Keys::of(&state).revoke(&auth.principal, key_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
