//! `/v1/indicators/{uuid}`: the full indicator (including provider raw responses, scope
//! `enrichments:read`) and the analyst verdict override (`alerts:write`).

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store as indicators;
use super::{IndicatorResponse, MALICE_LEVELS, malice_from_results};
use crate::activity::{self, Actor, NewEvent, types};
use crate::auth::scoped::{AlertsWrite, EnrichmentsRead, Scoped};
use crate::db::{lock_key, now};
use crate::error::{Error, Result};
use crate::http::extract::{JsonBody, ValidPath};
use crate::pagination::Data;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_indicator, patch_indicator))
}

fn indicator_not_found() -> Error {
    Error::not_found("Indicator")
}

#[utoipa::path(get, path = "/v1/indicators/{indicator_uuid}", tag = "indicators", params(("indicator_uuid" = Uuid, Path)),
    responses((status = 200, description = "The indicator with unfiltered enrichment results", body = IndicatorResponse),
        (status = 404, description = "Indicator not found.")),
    security(("bearer" = [])))]
pub async fn get_indicator(
    _auth: Scoped<EnrichmentsRead>,
    State(state): State<AppState>,
    ValidPath(indicator_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    let row = indicators::find_by_uuid(&state.db, indicator_uuid).await?.ok_or_else(indicator_not_found)?;
    Ok(Data::new(IndicatorResponse::detail(row)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorPatch {
    /// A verdict pins the indicator's malice; `null` (or omitting it) returns it to enrichment.
    #[serde(default)]
    pub malice: Option<String>,
}

#[utoipa::path(patch, path = "/v1/indicators/{indicator_uuid}", tag = "indicators", params(("indicator_uuid" = Uuid, Path)),
    request_body = IndicatorPatch,
    responses((status = 200, body = IndicatorResponse), (status = 404, description = "Indicator not found.")),
    security(("bearer" = [])))]
pub async fn patch_indicator(
    auth: Scoped<AlertsWrite>,
    State(state): State<AppState>,
    ValidPath(indicator_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<IndicatorPatch>,
) -> Result<Response> {
    if let Some(verdict) = body.malice.as_deref() {
        crate::alerts::model::check_enum("malice", verdict, &MALICE_LEVELS).map_err(|e| Error::Validation(vec![e]))?;
    }
    let mut tx = state.db.begin().await?;
    // Serializes concurrent overrides of one indicator (PostgreSQL; SQLite has one writer).
    lock_key(&mut tx, &format!("indicator:{indicator_uuid}")).await?;
    let row = indicators::find_by_uuid_in(&mut tx, indicator_uuid).await?.ok_or_else(indicator_not_found)?;
    let (malice, malice_source, overridden_at) = match body.malice.as_deref() {
        Some(verdict) => (verdict, "analyst", Some(now())),
        None => (malice_from_results(row.enrichment_results.as_ref().map(|r| &r.0)), "enrichment", None),
    };
    indicators::set_malice(&mut tx, row.id, malice, malice_source, overridden_at).await?;
    let alert_id = indicators::first_linked_alert(&mut tx, row.id).await?;
    let references = json!({
        "from_malice": row.malice, "to_malice": malice, "malice_source": malice_source,
        "indicator_type": row.indicator_type, "indicator_value": row.value,
    });
    let actor = Actor::api(&auth.key_prefix);
    let event = NewEvent {
        event_type: types::INDICATOR_MALICE_UPDATED,
        actor: &actor,
        alert_id,
        workflow_id: None,
        detection_rule_id: None,
        references,
    };
    activity::record(&mut tx, event).await?;
    tx.commit().await?;
    let updated = indicators::find_by_uuid(&state.db, indicator_uuid).await?.ok_or_else(indicator_not_found)?;
    Ok(Data::new(IndicatorResponse::detail(updated)).into_response())
}
