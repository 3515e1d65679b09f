//! `/v1/enrichment-providers`: provider CRUD, activate / deactivate and the live test. Handlers
//! extract, call the service, render.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{ProviderCreate, ProviderListQuery, ProviderResponse, ProviderTestRequest, ProviderTestResponse, ProviderUpdate};
use super::service::{
    self, ActivateProvider, CreateProvider, DeactivateProvider, DeleteProvider, GetProvider, ListProviders, TestProvider,
    UpdateProvider,
};
use crate::auth::scoped::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers, create_provider))
        .routes(routes!(get_provider, patch_provider, delete_provider))
        .routes(routes!(test_provider))
        .routes(routes!(activate_provider))
        .routes(routes!(deactivate_provider))
}

#[utoipa::path(get, path = "/v1/enrichment-providers", tag = "enrichment-providers",
    params(("is_active" = Option<bool>, Query), ("is_builtin" = Option<bool>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Providers, oldest first", body = [ProviderResponse])), security(("bearer" = ["enrichments:read"])))]
pub async fn list_providers(
    auth: Authorized<ListProviders>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ProviderListQuery>,
) -> Result<Response> {
    Ok(service::list(&state, &auth.principal, pagination, query).await?.into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-providers", tag = "enrichment-providers", request_body = ProviderCreate,
    responses((status = 201, body = ProviderResponse), (status = 409, description = "DUPLICATE_PROVIDER"),
              (status = 422, description = "Invalid recipe, type, auth type, TTL or unsafe URL")), security(("bearer" = ["admin"])))]
pub async fn create_provider(
    auth: Authorized<CreateProvider>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ProviderCreate>,
) -> Result<Response> {
    let provider = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(provider)).into_response())
}

#[utoipa::path(get, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")),
    security(("bearer" = ["enrichments:read"])))]
pub async fn get_provider(auth: Authorized<GetProvider>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    request_body = ProviderUpdate,
    responses((status = 200, body = ProviderResponse), (status = 400, description = "BUILTIN_RESTRICTED or ENCRYPTION_NOT_CONFIGURED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = ["admin"])))]
pub async fn patch_provider(
    auth: Authorized<UpdateProvider>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ProviderUpdate>,
) -> Result<Response> {
    Ok(Data::new(service::update(&state, &auth.principal, uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, description = "BUILTIN_RESTRICTED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = ["admin"])))]
pub async fn delete_provider(auth: Authorized<DeleteProvider>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/activate", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")),
    security(("bearer" = ["admin"])))]
pub async fn activate_provider(auth: Authorized<ActivateProvider>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::activate(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/deactivate", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")),
    security(("bearer" = ["admin"])))]
pub async fn deactivate_provider(
    auth: Authorized<DeactivateProvider>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
) -> Result<Response> {
    Ok(Data::new(service::deactivate(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/test", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    request_body = ProviderTestRequest,
    responses((status = 200, body = ProviderTestResponse), (status = 400, description = "PROVIDER_NOT_LOADED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = ["admin"])))]
pub async fn test_provider(
    auth: Authorized<TestProvider>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ProviderTestRequest>,
) -> Result<Response> {
    Ok(Data::new(service::test(&state, &auth.principal, uuid, body).await?).into_response())
}
