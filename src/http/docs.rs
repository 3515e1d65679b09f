//! `/openapi.json` generated from the handlers' annotations, and a docs UI at `/docs`. Both are
//! mounted only when docs are enabled (default: development only).

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::{Scalar, Servable};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Calseta API", description = "SOC data platform: alerts, indicators, enrichment, agents, workflows."),
    paths(
        crate::http::health::health,
        crate::http::health::live,
        crate::http::health::ready,
        crate::auth::http::list_api_keys,
        crate::auth::http::create_api_key,
        crate::auth::http::get_api_key,
        crate::auth::http::update_api_key,
        crate::auth::http::delete_api_key,
        crate::ingest::http::ingest_webhook,
        crate::ingest::http::ingest_programmatic,
        crate::rules::http::list_detection_rules,
        crate::rules::http::create_detection_rule,
        crate::rules::http::get_detection_rule,
        crate::rules::http::update_detection_rule,
        crate::rules::http::delete_detection_rule,
        crate::rules::http::get_detection_rule_metrics,
        crate::context::http::list_context_documents,
        crate::context::http::create_context_document,
        crate::context::http::get_context_document,
        crate::context::http::update_context_document,
        crate::context::http::delete_context_document,
        crate::mappings::http::list_indicator_mappings,
        crate::mappings::http::create_indicator_mapping,
        crate::mappings::http::list_source_plugin_fields,
        crate::mappings::http::test_extraction_endpoint,
        crate::mappings::http::get_indicator_mapping,
        crate::mappings::http::patch_indicator_mapping,
        crate::mappings::http::delete_indicator_mapping,
        crate::sources::http::list_sources,
        crate::sources::http::create_source,
        crate::sources::http::get_source,
        crate::sources::http::patch_source,
        crate::sources::http::delete_source,
        crate::alerts::http::list_alerts,
        crate::alerts::http::get_alert,
        crate::alerts::http::patch_alert,
        crate::alerts::http::delete_alert,
        crate::alerts::http::add_finding,
        crate::alerts::http::list_findings,
        crate::alerts::http::enrich_alert,
        crate::alerts::http::alert_context,
        crate::alerts::http::list_alert_indicators,
        crate::alerts::http::add_indicators,
        crate::alerts::http::list_alert_activity,
        crate::alerts::http::relationship_graph,
        crate::indicators::http::get_indicator,
        crate::indicators::http::patch_indicator,
        crate::enrich::http::enrich_on_demand,
        crate::enrich::http::list_registered_providers,
        crate::enrich::http::list_providers,
        crate::enrich::http::create_provider,
        crate::enrich::http::get_provider,
        crate::enrich::http::patch_provider,
        crate::enrich::http::delete_provider,
        crate::enrich::http::test_provider,
        crate::enrich::http::activate_provider,
        crate::enrich::http::deactivate_provider,
        crate::enrich::http::list_extractions,
        crate::enrich::http::create_extraction,
        crate::enrich::http::create_extractions_bulk,
        crate::enrich::http::get_extraction,
        crate::enrich::http::patch_extraction,
        crate::enrich::http::delete_extraction,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("cai_…").build()),
        );
    }
}

pub fn routes() -> Router<AppState> {
    let spec = ApiDoc::openapi();
    Router::new()
        .route("/openapi.json", get(move || async move { axum::Json(spec) }))
        .merge(Scalar::with_url("/docs", ApiDoc::openapi()))
}
