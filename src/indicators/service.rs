//! Indicator operations: the full view (provider raw responses included) and the analyst verdict
//! override. REST, MCP and jobs call these; each checks its scope first.

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store as indicators;
use super::{IndicatorResponse, malice_from_results};
use crate::activity::{self, NewEvent, types};
use crate::alerts::model::parse_enum;
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::db::{lock_key, now};
use crate::domain::Malice;
use crate::error::{Error, Result};
use crate::service::Operation;
use crate::state::AppState;

crate::operation!(GetIndicator = "indicators.get", scopes ["enrichments:read"]);
crate::operation!(PatchIndicator = "indicators.patch", scopes ["alerts:write"]);

fn indicator_not_found() -> Error {
    Error::not_found("Indicator")
}

/// The indicator with its enrichment results as stored.
pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<IndicatorResponse> {
    who.authorize::<GetIndicator>()?;
    let row = indicators::find_by_uuid(&state.db, uuid).await?.ok_or_else(indicator_not_found)?;
    Ok(IndicatorResponse::detail(row))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorPatch {
    /// A verdict pins the indicator's malice; `null` (or omitting it) returns it to enrichment.
    #[serde(default)]
    pub malice: Option<String>,
}

/// Pins the indicator's verdict (`analyst`) or returns it to what enrichment says.
pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: IndicatorPatch) -> Result<IndicatorResponse> {
    who.authorize::<PatchIndicator>()?;
    let pinned: Option<Malice> = match input.malice.as_deref() {
        Some(text) => Some(parse_enum("malice", text, &Malice::NAMES).map_err(|e| Error::Validation(vec![e]))?),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    // Serializes concurrent overrides of one indicator (PostgreSQL; SQLite has one writer).
    lock_key(&mut tx, &format!("indicator:{uuid}")).await?;
    let row = indicators::find_by_uuid_in(&mut tx, uuid).await?.ok_or_else(indicator_not_found)?;
    let (malice, malice_source, overridden_at) = match pinned {
        Some(verdict) => (verdict, "analyst", Some(now())),
        None => (malice_from_results(row.enrichment_results.as_ref().map(|r| &r.0)), "enrichment", None),
    };
    indicators::set_malice(&mut tx, row.id, malice.as_str(), malice_source, overridden_at).await?;
    let alert_id = indicators::first_linked_alert(&mut tx, row.id).await?;
    let change = json!({"from_malice": row.malice, "to_malice": malice, "malice_source": malice_source});
    let mut references = change.clone();
    references["indicator_type"] = json!(row.indicator_type);
    references["indicator_value"] = json!(row.value);
    let actor = who.actor();
    let event = NewEvent {
        event_type: types::INDICATOR_MALICE_UPDATED,
        actor: &actor,
        alert_id,
        workflow_id: None,
        detection_rule_id: None,
        references,
    };
    activity::record(&mut tx, event).await?;
    audit::record(&mut tx, who, Record::success(PatchIndicator::NAME, "indicator", uuid).with_details(change)).await?;
    tx.commit().await?;
    let updated = indicators::find_by_uuid(&state.db, uuid).await?.ok_or_else(indicator_not_found)?;
    Ok(IndicatorResponse::detail(updated))
}
