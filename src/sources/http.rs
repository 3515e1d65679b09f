//! `/v1/sources`: list, create, get, patch, delete source integrations (operations in
//! `service`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::service::{self, CreateSource, DeleteSource, GetSource, ListSources, PatchSource, SourceCreate, SourceResponse, SourceUpdate};
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, patch_source, delete_source))
}

#[utoipa::path(get, path = "/v1/sources", tag = "sources", params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Source integrations, newest first", body = [SourceResponse])), security(("bearer" = ["alerts:read"])))]
pub async fn list_sources(
    auth: Authorized<ListSources>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
) -> Result<Response> {
    let (data, total) = service::list(&state, &auth.principal, pagination).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = SourceCreate,
    responses((status = 201, body = SourceResponse), (status = 400, description = "INVALID_SOURCE or ENCRYPTION_NOT_CONFIGURED")),
    security(("bearer" = ["admin"])))]
pub async fn create_source(auth: Authorized<CreateSource>, State(state): State<AppState>, JsonBody(body): JsonBody<SourceCreate>) -> Result<Response> {
    let source = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(source)).into_response())
}

#[utoipa::path(get, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)),
    responses((status = 200, body = SourceResponse), (status = 404, description = "Source integration not found.")), security(("bearer" = ["alerts:read"])))]
pub async fn get_source(auth: Authorized<GetSource>, State(state): State<AppState>, ValidPath(source_uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, source_uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)), request_body = SourceUpdate,
    responses((status = 200, body = SourceResponse), (status = 400, description = "ENCRYPTION_NOT_CONFIGURED"),
              (status = 404, description = "Source integration not found.")),
    security(("bearer" = ["admin"])))]
pub async fn patch_source(
    auth: Authorized<PatchSource>,
    State(state): State<AppState>,
    ValidPath(source_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<SourceUpdate>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, source_uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/sources/{source_uuid}", tag = "sources", params(("source_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Source integration not found.")), security(("bearer" = ["admin"])))]
pub async fn delete_source(auth: Authorized<DeleteSource>, State(state): State<AppState>, ValidPath(source_uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, source_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
