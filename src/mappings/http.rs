//! `/v1/indicator-mappings`: list, create, get, patch, delete, the source-plugin (Pass 1) fields
//! and the extraction dry-run (operations in `service`). Every route requires `admin`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::service::{
    self, CreateIndicatorMapping, DeleteIndicatorMapping, GetIndicatorMapping, IndicatorMappingCreate, IndicatorMappingPatch,
    IndicatorMappingResponse, ListIndicatorMappings, ListSourcePluginFields, MappingListQuery, PatchIndicatorMapping,
    TestExtraction, TestExtractionRequest,
};
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_indicator_mappings, create_indicator_mapping))
        .routes(routes!(list_source_plugin_fields))
        .routes(routes!(test_extraction_endpoint))
        .routes(routes!(get_indicator_mapping, patch_indicator_mapping, delete_indicator_mapping))
}

#[utoipa::path(get, path = "/v1/indicator-mappings", tag = "indicator-mappings",
    params(("source_name" = Option<String>, Query), ("is_system" = Option<bool>, Query), ("is_active" = Option<bool>, Query),
           ("extraction_target" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Mappings, oldest first", body = [IndicatorMappingResponse])), security(("bearer" = ["admin"])))]
pub async fn list_indicator_mappings(
    auth: Authorized<ListIndicatorMappings>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<MappingListQuery>,
) -> Result<Response> {
    let (data, total) = service::list(&state, &auth.principal, pagination, query).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/indicator-mappings", tag = "indicator-mappings", request_body = IndicatorMappingCreate,
    responses((status = 201, description = "Created (never a system mapping)", body = IndicatorMappingResponse)), security(("bearer" = ["admin"])))]
pub async fn create_indicator_mapping(
    auth: Authorized<CreateIndicatorMapping>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<IndicatorMappingCreate>,
) -> Result<Response> {
    let mapping = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(mapping)).into_response())
}

#[utoipa::path(get, path = "/v1/indicator-mappings/source-plugin-fields", tag = "indicator-mappings",
    responses((status = 200, description = "Pass-1 fields of every registered source plugin (not paginated)", body = [IndicatorMappingResponse])),
    security(("bearer" = ["admin"])))]
pub async fn list_source_plugin_fields(auth: Authorized<ListSourcePluginFields>) -> Result<Response> {
    Ok(Data::new(service::list_source_plugin_fields(&auth.principal)?).into_response())
}

#[utoipa::path(post, path = "/v1/indicator-mappings/test-extraction", tag = "indicator-mappings", request_body = TestExtractionRequest,
    responses((status = 200, description = "The three passes, the deduplicated result and the normalization preview"),
              (status = 422, description = "UNKNOWN_SOURCE, INVALID_PAYLOAD or VALIDATION_ERROR")),
    security(("bearer" = ["admin"])))]
pub async fn test_extraction_endpoint(
    auth: Authorized<TestExtraction>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TestExtractionRequest>,
) -> Result<Response> {
    Ok(Data::new(service::test(&state, &auth.principal, body).await?).into_response())
}

#[utoipa::path(get, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    responses((status = 200, body = IndicatorMappingResponse), (status = 404, description = "Indicator field mapping not found.")),
    security(("bearer" = ["admin"])))]
pub async fn get_indicator_mapping(
    auth: Authorized<GetIndicatorMapping>,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, mapping_uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    request_body = IndicatorMappingPatch,
    responses((status = 200, body = IndicatorMappingResponse), (status = 404, description = "Indicator field mapping not found."),
              (status = 422, description = "SYSTEM_MAPPING_READONLY when field_path of a system mapping is sent")),
    security(("bearer" = ["admin"])))]
pub async fn patch_indicator_mapping(
    auth: Authorized<PatchIndicatorMapping>,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<IndicatorMappingPatch>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, mapping_uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Indicator field mapping not found."),
              (status = 422, description = "SYSTEM_MAPPING_READONLY: system mappings cannot be deleted")),
    security(("bearer" = ["admin"])))]
pub async fn delete_indicator_mapping(
    auth: Authorized<DeleteIndicatorMapping>,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    service::delete(&state, &auth.principal, mapping_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
