//! `/v1/enrichment-field-extractions`: handlers extract, call the service, render.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{Extraction, ExtractionBulkCreate, ExtractionCreate, ExtractionListQuery, ExtractionUpdate};
use super::service::{self, CreateExtraction, CreateExtractions, DeleteExtraction, GetExtraction, ListExtractions, UpdateExtraction};
use crate::auth::scoped::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_extractions, create_extraction))
        .routes(routes!(create_extractions_bulk))
        .routes(routes!(get_extraction, patch_extraction, delete_extraction))
}

#[utoipa::path(get, path = "/v1/enrichment-field-extractions", tag = "enrichment-field-extractions",
    params(("provider_name" = Option<String>, Query), ("indicator_type" = Option<String>, Query), ("is_system" = Option<bool>, Query),
           ("is_active" = Option<bool>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Field extractions, oldest first", body = [Extraction])),
    security(("bearer" = ["enrichments:read"])))]
pub async fn list_extractions(
    auth: Authorized<ListExtractions>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ExtractionListQuery>,
) -> Result<Response> {
    Ok(service::list(&state, &auth.principal, pagination, query).await?.into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-field-extractions", tag = "enrichment-field-extractions", request_body = ExtractionCreate,
    responses((status = 201, body = Extraction), (status = 409, description = "DUPLICATE_EXTRACTION"),
              (status = 422, description = "PROVIDER_NOT_FOUND or invalid fields")), security(("bearer" = ["admin"])))]
pub async fn create_extraction(
    auth: Authorized<CreateExtraction>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ExtractionCreate>,
) -> Result<Response> {
    let extraction = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(extraction)).into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-field-extractions/bulk", tag = "enrichment-field-extractions", request_body = ExtractionBulkCreate,
    responses((status = 201, body = [Extraction]), (status = 409, description = "DUPLICATE_EXTRACTION; nothing created")),
    security(("bearer" = ["admin"])))]
pub async fn create_extractions_bulk(
    auth: Authorized<CreateExtractions>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ExtractionBulkCreate>,
) -> Result<Response> {
    let extractions = service::create_bulk(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(extractions)).into_response())
}

#[utoipa::path(get, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    responses((status = 200, body = Extraction), (status = 404, description = "Enrichment field extraction not found.")),
    security(("bearer" = ["enrichments:read"])))]
pub async fn get_extraction(auth: Authorized<GetExtraction>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    request_body = ExtractionUpdate,
    responses((status = 200, body = Extraction), (status = 403, description = "SYSTEM_EXTRACTION_RESTRICTED"),
              (status = 409, description = "DUPLICATE_EXTRACTION"), (status = 404, description = "Enrichment field extraction not found.")),
    security(("bearer" = ["admin"])))]
pub async fn patch_extraction(
    auth: Authorized<UpdateExtraction>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ExtractionUpdate>,
) -> Result<Response> {
    Ok(Data::new(service::update(&state, &auth.principal, uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "SYSTEM_EXTRACTION_RESTRICTED"),
              (status = 404, description = "Enrichment field extraction not found.")), security(("bearer" = ["admin"])))]
pub async fn delete_extraction(auth: Authorized<DeleteExtraction>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
