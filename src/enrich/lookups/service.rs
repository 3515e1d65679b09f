//! On-demand operations (enrichment.md §5.1): enrich one indicator now, and list the registry's
//! active providers. Both need `enrichments:read`; neither writes anything (results of on-demand
//! lookups are cached, not stored).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::enrich::validate::{self, field};
use crate::error::{FieldErrors, Result};
use crate::operation;
use crate::service::Principal;
use crate::state::AppState;

operation!(EnrichIndicator = "enrichments.enrich", scopes ["enrichments:read"]);
operation!(ListRegisteredProviders = "enrichments.list_providers", scopes ["enrichments:read"]);

/// `{"type", "value"}`, or Calseta's longer `{"indicator_type", "indicator_value"}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OnDemandRequest {
    #[serde(rename = "type")]
    pub indicator_type_short: Option<String>,
    pub value: Option<String>,
    /// Accepted when `type` is absent.
    pub indicator_type: Option<String>,
    /// Accepted when `value` is absent.
    pub indicator_value: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnDemandResult {
    pub status: String,
    pub success: bool,
    #[schema(value_type = Option<Object>)]
    pub extracted: Option<Map<String, Value>>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub cache_hit: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnDemandResponse {
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub results: BTreeMap<String, OnDemandResult>,
    pub enriched_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderInfo {
    pub provider_name: String,
    pub display_name: String,
    pub supported_types: Vec<String>,
    pub is_configured: bool,
    pub cache_ttl_seconds: i32,
}

/// Enriches one indicator with every configured provider for its type.
pub async fn enrich(state: &AppState, who: &Principal, body: OnDemandRequest) -> Result<OnDemandResponse> {
    who.authorize::<EnrichIndicator>()?;
    let indicator_type = body.indicator_type_short.or(body.indicator_type);
    let value = body.value.or(body.indicator_value);
    let mut errors = FieldErrors::default();
    match &indicator_type {
        None => {
            errors.push(field("type", "missing", "Field required"));
        }
        Some(t) => validate::indicator_type(&mut errors, "type", t),
    }
    match &value {
        None => {
            errors.push(field("value", "missing", "Field required"));
        }
        Some(v) => validate::indicator_value(&mut errors, "value", v),
    }
    errors.finish()?;
    let (indicator_type, value) = (indicator_type.unwrap_or_default(), value.unwrap_or_default());
    let lookups = state.enricher.enrich_indicator(&state.db, &indicator_type, &value).await;
    let results = lookups
        .into_iter()
        .map(|(name, lookup)| {
            let r = lookup.result;
            let result = OnDemandResult {
                status: r.status,
                success: r.success,
                extracted: r.extracted,
                enriched_at: r.enriched_at,
                error_message: r.error_message,
                cache_hit: lookup.cache_hit,
            };
            (name, result)
        })
        .collect();
    Ok(OnDemandResponse { indicator_type, value, results, enriched_at: crate::db::now() })
}

/// The registry's active providers and whether each can run.
pub async fn registered_providers(state: &AppState, who: &Principal) -> Result<Vec<ProviderInfo>> {
    who.authorize::<ListRegisteredProviders>()?;
    let snapshot = state.enricher.snapshot(&state.db).await;
    Ok(snapshot
        .providers
        .iter()
        .map(|p| ProviderInfo {
            provider_name: p.row.provider_name.clone(),
            display_name: p.row.display_name.clone(),
            supported_types: p.supported_types.clone(),
            is_configured: p.configured,
            cache_ttl_seconds: p.row.default_cache_ttl_seconds,
        })
        .collect())
}
