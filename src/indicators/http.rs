//! `/v1/indicators/{uuid}`: the full indicator (including provider raw responses, scope
//! `enrichments:read`) and the analyst verdict override (`alerts:write`). Extract, call, render.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::IndicatorResponse;
use super::service::{self, GetIndicator, IndicatorPatch, PatchIndicator};
use crate::auth::scoped::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath};
use crate::pagination::Data;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_indicator, patch_indicator))
}

#[utoipa::path(get, path = "/v1/indicators/{indicator_uuid}", tag = "indicators", params(("indicator_uuid" = Uuid, Path)),
    responses((status = 200, description = "The indicator with unfiltered enrichment results", body = IndicatorResponse),
        (status = 404, description = "Indicator not found.")),
    security(("bearer" = ["enrichments:read"])))]
pub async fn get_indicator(
    auth: Authorized<GetIndicator>,
    State(state): State<AppState>,
    ValidPath(indicator_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    let indicator = service::get(&state, &auth.principal, indicator_uuid).await?;
    Ok(Data::new(indicator).into_response())
}

#[utoipa::path(patch, path = "/v1/indicators/{indicator_uuid}", tag = "indicators", params(("indicator_uuid" = Uuid, Path)),
    request_body = IndicatorPatch,
    responses((status = 200, body = IndicatorResponse), (status = 404, description = "Indicator not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn patch_indicator(
    auth: Authorized<PatchIndicator>,
    State(state): State<AppState>,
    ValidPath(indicator_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<IndicatorPatch>,
) -> Result<Response> {
    let indicator = service::patch(&state, &auth.principal, indicator_uuid, body).await?;
    Ok(Data::new(indicator).into_response())
}
