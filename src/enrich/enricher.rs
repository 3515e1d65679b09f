//! The per-process enrichment service held in `AppState` (registry, result cache, circuit
//! breakers) and the pipeline's view of it: enrich every indicator of an alert, summarize the
//! outcome for the activity event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::engine::{self, EnrichmentResult, StepDebug};
use super::registry::{self, Provider, Registry, Snapshot};
use super::{breaker, cache, malice, routability};
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::egress::Egress;

/// One indicator of an alert, as the pipeline hands it to enrichment: enrichment runs before the
/// pipeline's transaction upserts the indicators, so it is known by `(type, value)`, not by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndicatorRef {
    pub itype: String,
    pub value: String,
}

/// What enrichment produced for one indicator.
#[derive(Debug, Clone)]
pub struct IndicatorOutcome {
    pub indicator: IndicatorRef,
    /// `{provider_name: EnrichmentResult}` — merged over the stored results. Held serialized: a
    /// worker's claimed batches hold thousands of these at once, and a `Value` tree takes several
    /// times the bytes of its text.
    pub results: ProviderResults,
    /// Worst verdict of the successful results (`Pending` when none).
    pub malice: String,
}

/// Each provider's result as JSON text, by provider name.
pub type ProviderResults = BTreeMap<String, Box<serde_json::value::RawValue>>;

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

/// At most this many provider calls run at once in one process (an alert with many indicators
/// must not open hundreds of connections).
const MAX_CONCURRENT_CALLS: usize = 64;

/// The per-process enrichment service held in `AppState`: registry, cache, breakers, and a
/// handle on the process's one egress gateway (`AppState::egress`).
#[derive(Clone)]
pub struct Enricher(Arc<Inner>);

struct Inner {
    settings: Settings,
    cipher: Option<Cipher>,
    egress: Egress,
    registry: Registry,
    cache: cache::ResultCache,
    breakers: breaker::Breakers,
    calls: Semaphore,
}

/// One provider's answer for an on-demand lookup.
pub struct Lookup {
    pub result: EnrichmentResult,
    pub cache_hit: bool,
}

/// The provider test endpoint's outcome (enrichment.md §10).
pub struct TestRun {
    pub result: EnrichmentResult,
    pub steps: Option<Vec<StepDebug>>,
    pub duration: Duration,
    /// The credential values the run used: the rendered output is passed through
    /// [`super::redact::scrub`] with them, so nothing a vendor echoes back reveals one.
    pub secrets: Vec<String>,
}

impl Enricher {
    pub fn new(settings: &Settings, cipher: Option<Cipher>, egress: Egress) -> Self {
        Enricher(Arc::new(Inner {
            egress,
            registry: Registry::new(settings),
            cache: cache::ResultCache::new(settings.enrichment_cache_max_mb.saturating_mul(1024 * 1024)),
            breakers: breaker::Breakers::new(
                settings.enrichment_breaker_failures,
                Duration::from_secs(settings.enrichment_breaker_cooldown_seconds),
            ),
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
            settings: settings.clone(),
            cipher,
        }))
    }

    /// The registry as of now (re-checked against the database at most once per refresh period).
    pub async fn snapshot(&self, db: &Db) -> Arc<Snapshot> {
        self.0.registry.current(db, self.0.cipher.as_ref(), &self.0.settings).await
    }

    /// The registry as last loaded, never waiting on the database (`None` before the first load).
    pub fn latest_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.0.registry.latest()
    }

    /// Makes this process see its own provider/extraction writes on the next call.
    pub async fn invalidate(&self) {
        self.0.registry.invalidate().await
    }

    /// Whether any configured provider supports one of `types`.
    pub async fn wants(&self, db: &Db, types: &[&str]) -> bool {
        let snapshot = self.snapshot(db).await;
        types.iter().any(|t| !snapshot.for_type(t).is_empty())
    }

    /// Enriches one indicator with every configured provider for its type (§5.1): nothing when
    /// none is configured; a `_validation` skip when the value must not leave the network; cache
    /// hits as stored; misses concurrently, each under its breaker and timeout.
    pub async fn enrich_indicator(&self, db: &Db, indicator_type: &str, value: &str) -> BTreeMap<String, Lookup> {
        let snapshot = self.snapshot(db).await;
        let providers = snapshot.for_type(indicator_type);
        let mut out = BTreeMap::new();
        if providers.is_empty() {
            return out;
        }
        if let Err(reason) = routability::check(indicator_type, value) {
            let result = EnrichmentResult::skipped("_validation", format!("Enrichment skipped: {reason}"));
            out.insert("_validation".to_owned(), Lookup { result, cache_hit: false });
            return out;
        }
        let calls = providers.iter().map(|provider| self.lookup(provider.clone(), indicator_type, value));
        for (provider, lookup) in providers.iter().zip(join_all(calls).await) {
            out.insert(provider.name().to_owned(), lookup);
        }
        out
    }

    async fn lookup(&self, provider: Arc<Provider>, indicator_type: &str, value: &str) -> Lookup {
        let key = cache::Key {
            provider: provider.name().to_owned(),
            version: provider.version,
            indicator_type: indicator_type.to_owned(),
            value: value.to_owned(),
        };
        if let Some(result) = self.0.cache.get(&key) {
            return Lookup { result, cache_hit: true };
        }
        let result = self.call(&provider, indicator_type, value).await;
        self.0.cache.put(key, &result, provider.ttl(indicator_type));
        Lookup { result, cache_hit: false }
    }

    /// One provider call for the pipeline or an on-demand lookup: mock, or live under the
    /// provider's breaker, the process-wide call limit and an overall deadline.
    async fn call(&self, provider: &Provider, indicator_type: &str, value: &str) -> EnrichmentResult {
        let name = provider.name();
        if self.0.settings.enrichment_mock_mode && provider.mock_entry(indicator_type).is_some() {
            return engine::mock_result(provider, indicator_type);
        }
        if let Err(refusal) = self.0.breakers.admit(name) {
            return EnrichmentResult::failed(name, refusal.message());
        }
        let Ok(_permit) = self.0.calls.acquire().await else {
            return EnrichmentResult::failed(name, "enrichment is shutting down");
        };
        let credentials = registry::credentials(&provider.row, self.0.cipher.as_ref(), &self.0.settings);
        let deadline = self.deadline(provider);
        let started = Instant::now();
        let run = tokio::time::timeout(deadline, engine::run(&self.0.egress, provider, &credentials, indicator_type, value, false)).await;
        let (outcome, open, result) = match run {
            Ok(run) => {
                let open = self.0.breakers.record(name, run.trouble.as_ref());
                (if run.result.success { "success" } else { "failed" }, open, run.result)
            }
            Err(_) => {
                let open = self.0.breakers.record(name, Some(&engine::Trouble::Unhealthy));
                ("timeout", open, EnrichmentResult::failed(name, format!("provider timed out after {}s", deadline.as_secs())))
            }
        };
        crate::observability::enrichment_call(name, outcome, started.elapsed());
        crate::observability::breaker_state(name, open);
        result
    }

    /// A whole provider run may take its steps' timeouts in sum, never more than the egress cap
    /// per step.
    fn deadline(&self, provider: &Provider) -> Duration {
        let cap = Duration::from_secs(self.0.settings.egress_max_timeout_seconds.max(1));
        match &provider.http_config {
            Ok(config) => config.steps.iter().map(|s| s.timeout.min(cap)).sum::<Duration>() + Duration::from_secs(1),
            Err(_) => Duration::from_secs(1),
        }
    }

    /// Runs every provider for every indicator of an alert, concurrently (§5.2).
    pub async fn enrich_alert(&self, db: &Db, indicators: &[IndicatorRef]) -> AlertOutcome {
        let lookups = join_all(indicators.iter().map(|i| self.enrich_indicator(db, &i.itype, &i.value))).await;
        let mut outcome = AlertOutcome::default();
        for (indicator, results) in indicators.iter().zip(lookups) {
            let verdicts: Vec<&str> = results.values().filter(|l| l.result.success).filter_map(|l| l.result.malice()).collect();
            let malice = malice::worst(verdicts.into_iter());
            let mut stored = ProviderResults::new();
            for (provider, lookup) in &results {
                match lookup.result.status.as_str() {
                    "success" => {
                        outcome.providers_succeeded.insert(provider.clone());
                    }
                    "failed" => {
                        outcome.providers_failed.insert(provider.clone());
                    }
                    _ => {}
                }
                if let Ok(text) = serde_json::value::to_raw_value(&lookup.result) {
                    stored.insert(provider.clone(), text);
                }
            }
            outcome.indicators.push(IndicatorOutcome { indicator: indicator.clone(), results: stored, malice });
        }
        outcome
    }

    /// The provider test endpoint: the provider as registered, live, with masked debug steps;
    /// no routability check, no cache, no breaker (an operator is diagnosing it).
    pub async fn test_provider(&self, provider: &Provider, indicator_type: &str, value: &str) -> TestRun {
        let started = Instant::now();
        if self.0.settings.enrichment_mock_mode && provider.mock_entry(indicator_type).is_some() {
            let result = engine::mock_result(provider, indicator_type);
            return TestRun { result, steps: None, duration: started.elapsed(), secrets: Vec::new() };
        }
        let credentials = registry::credentials(&provider.row, self.0.cipher.as_ref(), &self.0.settings);
        let secrets = credential_values(&credentials);
        let deadline = self.deadline(provider);
        match tokio::time::timeout(deadline, engine::run(&self.0.egress, provider, &credentials, indicator_type, value, true)).await {
            Ok(run) => TestRun { result: run.result, steps: Some(run.steps), duration: started.elapsed(), secrets },
            Err(_) => TestRun {
                result: EnrichmentResult::failed(provider.name(), format!("provider timed out after {}s", deadline.as_secs())),
                steps: Some(Vec::new()),
                duration: started.elapsed(),
                secrets,
            },
        }
    }
}

/// Every string held anywhere in a provider's credentials (nested values included).
fn credential_values(credentials: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    fn collect(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if !s.is_empty() => into.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
            serde_json::Value::Object(map) => map.values().for_each(|v| collect(v, into)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    credentials.values().for_each(|v| collect(v, &mut values));
    values
}
