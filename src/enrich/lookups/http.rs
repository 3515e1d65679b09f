//! `/v1/enrichments`: handlers extract, call the service, render.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::service::{self, EnrichIndicator, ListRegisteredProviders, OnDemandRequest, OnDemandResponse, ProviderInfo};
use crate::auth::scoped::Authorized;
use crate::error::Result;
use crate::http::extract::JsonBody;
use crate::pagination::Data;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enrich_on_demand)).routes(routes!(list_registered_providers))
}

#[utoipa::path(post, path = "/v1/enrichments", tag = "enrichments", request_body = OnDemandRequest,
    responses((status = 200, body = OnDemandResponse), (status = 422, description = "Invalid type or value")),
    security(("bearer" = ["enrichments:read"])))]
pub async fn enrich_on_demand(
    auth: Authorized<EnrichIndicator>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<OnDemandRequest>,
) -> Result<Response> {
    Ok(Data::new(service::enrich(&state, &auth.principal, body).await?).into_response())
}

#[utoipa::path(get, path = "/v1/enrichments/providers", tag = "enrichments",
    responses((status = 200, description = "Active providers of the registry", body = [ProviderInfo])),
    security(("bearer" = ["enrichments:read"])))]
pub async fn list_registered_providers(auth: Authorized<ListRegisteredProviders>, State(state): State<AppState>) -> Result<Response> {
    Ok(Data::new(service::registered_providers(&state, &auth.principal).await?).into_response())
}
