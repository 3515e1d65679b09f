//! Enrichment: providers configured as data, run by one generic engine through the egress
//! gateway, with a per-process result cache and circuit breakers.
//!
//! The pipeline's contract with this module (used by `ingest::pipeline`):
//! 1. `Enricher::wants(db, types)` — does any configured provider support one of these indicator
//!    types? When false the alert is complete as extracted (nothing to run).
//! 2. `Enricher::enrich_alert(indicators)` — runs every provider for every `(type, value)` (before
//!    any transaction: it waits on the network) and returns an `AlertOutcome`.
//! 3. `record_verdicts(tx, verdicts)` — writes the indicators' results and verdicts in the
//!    pipeline's final transaction; `AlertOutcome::activity_references` is the
//!    `alert_enrichment_completed` event's references.
//!
//! Layout. Three resources, each an `http` and a `service` module (plus `model` and `store` where
//! they own a table): [`lookups`] (`/v1/enrichments`, on-demand), [`providers`]
//! (`/v1/enrichment-providers`) and [`extractions`] (`/v1/enrichment-field-extractions`); their
//! services are what REST, MCP and jobs call. Running a provider: `enricher` (registry, cache,
//! breakers; it holds `AppState::egress`), `registry` (active rows, parsed), `engine` (one recipe,
//! one indicator), `template`, `extract`, `malice`, `routability`, `redact`. Recipes: `config`
//! (parsing and validation of `http_config` and `malice_rules`) and `builtins` (the seven shipped
//! providers, one JSON file each).

mod breaker;
mod builtins;
mod cache;
mod config;
mod dotpath;
mod engine;
mod enricher;
pub mod extractions;
mod extract;
pub use extract::truthy;
pub mod lookups;
mod malice;
pub mod providers;
pub mod redact;
mod registry;
mod routability;
mod store;
mod template;
mod validate;

use utoipa_axum::router::OpenApiRouter;

use crate::db::{Db, Tx};
use crate::state::AppState;

pub use enricher::{AlertOutcome, Enricher, IndicatorOutcome, IndicatorRef, Lookup, ProviderResults, TestRun};

/// The three enrichment resources: on-demand lookups, providers, field extractions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(lookups::routes()).merge(providers::routes()).merge(extractions::routes())
}

/// Writes the indicators' merged results, `is_enriched` and malice (unless an analyst set it):
/// `verdicts` pairs each indicator's id with what enrichment produced for it.
pub async fn record_verdicts(tx: &mut Tx, verdicts: &[(i64, &IndicatorOutcome)]) -> sqlx::Result<()> {
    store::record_indicator_results(tx, verdicts).await
}

/// Seeds the builtin providers (idempotent; see `store::seed_builtins`).
pub async fn seed_builtins(db: &Db) -> sqlx::Result<()> {
    let (providers, extractions) = store::seed_builtins(db).await?;
    if providers + extractions > 0 {
        tracing::info!(providers, extractions, "builtin enrichment providers seeded");
    }
    Ok(())
}

