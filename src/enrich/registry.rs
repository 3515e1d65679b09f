//! The per-process provider registry: active provider rows, parsed once, with their active field
//! extractions. Every process (API, worker) checks a cheap change stamp at most once per
//! `ENRICHMENT_REGISTRY_REFRESH_MS` and reloads when another process changed a provider or an
//! extraction, so edits take effect everywhere without a restart (Calseta's worker kept a stale
//! registry until restarted). Writes in this process invalidate at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::config::{HttpConfig, MaliceRules};
use super::extract::ExtractionRule;
use super::extractions::store::active_extractions;
use super::providers::store::{ProviderRow, active_providers};
use super::store;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;

/// Global default TTLs per indicator type (enrichment.md §4), used when a provider sets none for
/// the type. A provider's `default_cache_ttl_seconds` applies before these (Calseta ignored it).
pub fn global_ttl(indicator_type: &str) -> u64 {
    match indicator_type {
        "ip" => 3600,
        "domain" => 21600,
        "hash_md5" | "hash_sha1" | "hash_sha256" => 86400,
        "url" => 1800,
        "email" => 3600,
        "account" => 900,
        _ => 3600,
    }
}

/// One active provider, ready to run.
#[derive(Debug)]
pub struct Provider {
    pub row: ProviderRow,
    /// `Err` holds why a stored recipe cannot run (rows written before validation existed, or by
    /// other tools); such a provider yields a failed result naming the problem.
    pub http_config: Result<HttpConfig, String>,
    pub malice_rules: MaliceRules,
    pub extractions: Vec<ExtractionRule>,
    pub supported_types: Vec<String>,
    pub has_credentials: bool,
    pub configured: bool,
    /// Cache-key component: results cached under an older version of the row are never served.
    pub version: i64,
}

impl Provider {
    pub fn name(&self) -> &str {
        &self.row.provider_name
    }

    pub fn supports(&self, indicator_type: &str) -> bool {
        self.supported_types.iter().any(|t| t == indicator_type)
    }

    /// TTL for a result of `indicator_type`: the provider's per-type TTL, else its default TTL.
    pub fn ttl(&self, indicator_type: &str) -> Duration {
        let by_type = self
            .row
            .cache_ttl_by_type
            .as_ref()
            .and_then(|m| m.0.get(indicator_type))
            .and_then(Value::as_u64);
        let seconds = by_type.unwrap_or_else(|| {
            u64::try_from(self.row.default_cache_ttl_seconds).ok().filter(|s| *s > 0).unwrap_or_else(|| global_ttl(indicator_type))
        });
        Duration::from_secs(seconds)
    }

    pub fn mock_entry(&self, indicator_type: &str) -> Option<&Value> {
        let mocks = self.row.mock_responses.as_ref()?.0.as_object()?;
        mocks.get(indicator_type).or_else(|| mocks.get("default"))
    }

}

/// Resolves a provider's credentials at the moment of use: the sealed `auth_config` opened with
/// the keyring, else (builtins) the settings named by `env_var_mapping`. `no_auth` needs none.
pub fn credentials(row: &ProviderRow, cipher: Option<&Cipher>, settings: &Settings) -> Map<String, Value> {
    if row.auth_type == "no_auth" {
        return Map::new();
    }
    if let Some(stored) = &row.auth_config {
        let opened = match &stored.0 {
            Value::Object(map) if map.contains_key(crate::crypto::ENCRYPTED_KEY) => match cipher {
                Some(cipher) => crate::crypto::open_json(cipher, &stored.0).ok(),
                None => None,
            },
            Value::Object(map) => Some(map.clone()),
            _ => None,
        };
        if let Some(map) = opened.filter(|m| !m.is_empty()) {
            return map;
        }
    }
    let mut from_settings = Map::new();
    if let Some(Value::Object(mapping)) = row.env_var_mapping.as_ref().map(|m| &m.0) {
        for (field, setting) in mapping {
            if let Some(value) = setting.as_str().and_then(|name| settings.provider_credential(name))
                && !value.is_empty() {
                    from_settings.insert(field.clone(), Value::String(value.to_owned()));
                }
        }
    }
    from_settings
}

/// Whether a provider row has credentials, and whether it can run (`is_configured`): active, and
/// either credentials or (mock mode) canned responses. Credentials are opened only to learn
/// whether they exist; the values are dropped at once.
pub fn readiness(row: &ProviderRow, cipher: Option<&Cipher>, settings: &Settings) -> (bool, bool) {
    let has_credentials = row.auth_type == "no_auth" || !credentials(row, cipher, settings).is_empty();
    let has_mocks = row.mock_responses.as_ref().and_then(|m| m.0.as_object()).is_some_and(|m| !m.is_empty());
    let configured = row.is_active && ((settings.enrichment_mock_mode && has_mocks) || has_credentials);
    (has_credentials, configured)
}

pub struct Snapshot {
    pub providers: Vec<Arc<Provider>>,
}

impl Snapshot {
    /// Registered providers that are configured and support `indicator_type`.
    pub fn for_type(&self, indicator_type: &str) -> Vec<Arc<Provider>> {
        self.providers.iter().filter(|p| p.configured && p.supports(indicator_type)).cloned().collect()
    }

    pub fn by_uuid(&self, uuid: uuid::Uuid) -> Option<Arc<Provider>> {
        self.providers.iter().find(|p| p.row.uuid == uuid).cloned()
    }
}

struct State {
    snapshot: Arc<Snapshot>,
    stamp: Option<String>,
    checked_at: Option<Instant>,
}

pub struct Registry {
    /// Read on every lookup: a plain mutex held only to clone an `Arc` (no await inside).
    state: std::sync::Mutex<State>,
    /// Single-flight for the database check: one caller refreshes, the others wait for it.
    refreshing: Mutex<()>,
    refresh: Duration,
}

impl Registry {
    pub fn new(settings: &Settings) -> Self {
        Registry {
            state: std::sync::Mutex::new(State {
                snapshot: Arc::new(Snapshot { providers: Vec::new() }),
                stamp: None,
                checked_at: None,
            }),
            refreshing: Mutex::new(()),
            refresh: Duration::from_millis(settings.enrichment_registry_refresh_ms),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The snapshot when it was checked within the refresh interval.
    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let state = self.lock();
        state.checked_at.is_some_and(|at| at.elapsed() < self.refresh).then(|| state.snapshot.clone())
    }

    /// The snapshot as last loaded, without checking the database (for `/health` under load);
    /// `None` before the first load.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        let state = self.lock();
        state.stamp.is_some().then(|| state.snapshot.clone())
    }

    /// Forces the next `current` to re-check the database (after a write in this process).
    pub async fn invalidate(&self) {
        // Taking the refresh lock first makes a refresh already in flight (which may have read
        // the old rows) finish before the mark is cleared, so it cannot overwrite it.
        let _refreshing = self.refreshing.lock().await;
        self.lock().checked_at = None;
    }

    /// The current snapshot, re-checked against the database when the refresh interval passed.
    /// On a database error the previous snapshot is kept (and the error logged).
    pub async fn current(&self, db: &Db, cipher: Option<&Cipher>, settings: &Settings) -> Arc<Snapshot> {
        if let Some(snapshot) = self.fresh() {
            return snapshot;
        }
        let _refreshing = self.refreshing.lock().await;
        if let Some(snapshot) = self.fresh() {
            return snapshot;
        }
        let known = self.lock().stamp.clone();
        match store::change_stamp(db).await {
            Ok(stamp) if known.as_deref() == Some(stamp.as_str()) => {}
            Ok(stamp) => match self.load(db, cipher, settings).await {
                Ok(snapshot) => {
                    let mut state = self.lock();
                    state.snapshot = Arc::new(snapshot);
                    state.stamp = Some(stamp);
                }
                Err(e) => tracing::warn!(error = %e, "enrichment registry reload failed; keeping the previous one"),
            },
            Err(e) => tracing::warn!(error = %e, "enrichment registry check failed; keeping the previous one"),
        }
        let mut state = self.lock();
        state.checked_at = Some(Instant::now());
        state.snapshot.clone()
    }

    async fn load(&self, db: &Db, cipher: Option<&Cipher>, settings: &Settings) -> sqlx::Result<Snapshot> {
        let rows = active_providers(db).await?;
        let mut extractions: BTreeMap<String, Vec<ExtractionRule>> = BTreeMap::new();
        for row in active_extractions(db).await? {
            extractions.entry(row.provider_name.clone()).or_default().push(ExtractionRule {
                indicator_type: row.indicator_type,
                source_path: row.source_path,
                target_key: row.target_key,
                value_type: row.value_type,
            });
        }
        let providers = rows
            .into_iter()
            .map(|row| {
                let http_config = HttpConfig::parse(&row.http_config.0).map_err(|issues| {
                    let first = issues.first().map(|i| format!("{}: {}", i.path, i.message)).unwrap_or_default();
                    format!("Invalid http_config: {first}")
                });
                let malice_rules = match &row.malice_rules {
                    Some(rules) if !rules.0.is_null() => MaliceRules::parse(&rules.0).unwrap_or_else(|_| MaliceRules::pending()),
                    _ => MaliceRules::pending(),
                };
                let supported_types = row
                    .supported_indicator_types
                    .0
                    .iter()
                    .filter(|t| t.parse::<crate::domain::IndicatorType>().is_ok())
                    .cloned()
                    .collect();
                let (has_credentials, configured) = readiness(&row, cipher, settings);
                let provider = Provider {
                    extractions: extractions.remove(&row.provider_name).unwrap_or_default(),
                    version: row.updated_at.timestamp_micros(),
                    http_config,
                    malice_rules,
                    supported_types,
                    has_credentials,
                    configured,
                    row,
                };
                Arc::new(provider)
            })
            .collect();
        Ok(Snapshot { providers })
    }
}
