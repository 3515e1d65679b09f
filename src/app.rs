//! Process assembly: settings → logging → database (migrated) → shared state → roles.

use std::time::{Duration, Instant};

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::ingest::pipeline::EnrichAlert;
use crate::jobs::{PruneFinishedJobs, Registry, RetryPolicy, WorkerConfig};
use crate::ratelimit::{FailurePolicies, FailurePolicy, Limits, RateLimiter};
use crate::state::{AppState, Inner};

/// The configuration checks that need more than `Settings::validate` (which already ran at
/// load: CORS origins, the egress allow-list, the Redis URL, production rules): the keyring and
/// the egress client. Run before the database is opened, so a bad configuration never migrates
/// a database or prints a bootstrap key.
pub fn preflight(settings: &Settings) -> anyhow::Result<()> {
    Cipher::from_settings(settings)?;
    crate::egress::Egress::from_settings(settings)
        .map_err(|e| anyhow::anyhow!("SSRF_ALLOWED_HOSTS / egress settings: {e}"))?;
    Ok(())
}

/// Connects to the configured database and applies pending migrations, after [`preflight`].
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    preflight(settings)?;
    let url = settings.database_url();
    let db = Db::connect(&url, settings.database_max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

fn limits(settings: &Settings) -> Limits {
    Limits {
        default_per_minute: settings.rate_limit_default_per_minute,
        unauthenticated_per_minute: settings.rate_limit_unauthed_per_minute,
        ingest_per_minute: settings.rate_limit_ingest_per_minute,
        enrichment_per_minute: settings.rate_limit_enrichment_per_minute,
        workflow_execute_per_minute: settings.rate_limit_workflow_execute_per_minute,
    }
}

/// The documented store-failure policy (`RATE_LIMIT_STORE_FAILURE`): by default fail closed where
/// abuse is cheapest (unauthenticated traffic, ingest floods) and open where availability matters.
pub fn failure_policies(setting: &str) -> FailurePolicies {
    match setting {
        "open" => FailurePolicies::all(FailurePolicy::Open),
        "closed" => FailurePolicies::all(FailurePolicy::Closed),
        _ => FailurePolicies::default(),
    }
}

pub async fn build_limiter(settings: &Settings) -> anyhow::Result<RateLimiter> {
    match &settings.redis_url {
        None => Ok(RateLimiter::in_memory(limits(settings))),
        Some(url) => {
            let policies = failure_policies(&settings.rate_limit_store_failure.to_ascii_lowercase());
            Ok(RateLimiter::redis(url, limits(settings), policies, &settings.rate_limit_redis_namespace).await?)
        }
    }
}

pub async fn build_state(settings: Settings, db: Db) -> anyhow::Result<AppState> {
    let cipher = Cipher::from_settings(&settings)?;
    if cipher.is_none() {
        tracing::warn!("ENCRYPTION_KEY is not set: secrets (provider credentials, source secrets) cannot be stored");
    }
    // Start-up seeding (data-model.md): a failure is logged and the server still starts.
    if let Err(e) = crate::mappings::seed_system_mappings(&db).await {
        tracing::error!(error = %e, "seeding the system indicator field mappings failed");
    }
    if let Err(e) = crate::enrich::seed_builtins(&db).await {
        tracing::error!(error = %e, "seeding the builtin enrichment providers failed");
    }
    let egress = crate::egress::Egress::from_settings(&settings)
        .map_err(|e| anyhow::anyhow!("SSRF_ALLOWED_HOSTS / egress settings: {e}"))?;
    let enricher = crate::enrich::Enricher::new(&settings, cipher.clone(), egress.clone());
    let workflows = crate::workflows::Runtime::start(&settings).await?;
    if let Err(e) = crate::workflows::seed::seed_builtins(&db, &workflows.integrations).await {
        tracing::error!(error = %e, "seeding the builtin workflows failed");
    }
    let limiter = build_limiter(&settings).await?;
    let auth = Authenticator::new(
        db.clone(),
        Duration::from_secs(settings.auth_cache_refresh_seconds),
        Duration::from_secs(settings.auth_cache_ttl_seconds),
    );
    Ok(AppState::new(Inner { settings, db, auth, limiter, cipher, started_at: Instant::now(), wakeup: Default::default(), egress, enricher, ingest: Default::default(), health: Default::default(), workflows }))
}

/// Every background job type this binary runs: a new job is one line here (see `crate::jobs`).
pub fn job_registry(settings: &Settings) -> Registry<AppState> {
    // enrich_alert keeps Calseta's settings-driven policy: QUEUE_MAX_RETRIES attempts, a fixed
    // QUEUE_RETRY_BACKOFF_SECONDS apart.
    let enrich_retry = RetryPolicy::fixed(
        settings.queue_max_retries,
        Duration::from_secs(settings.queue_retry_backoff_seconds.max(0) as u64),
    );
    // Approval notifications retry vendor outages with exponential backoff (APPROVAL_NOTIFY_*).
    let notify_retry = crate::approvals::notify::retry_policy(settings);
    let registry = Registry::new()
        .register_with::<EnrichAlert>(enrich_retry)
        .register::<crate::workflows::runs::ExecuteWorkflowRun>()
        .register::<crate::agents::dispatch::MatchJob>()
        .register::<crate::agents::dispatch::SingleJob>()
        .register::<crate::agents::dispatch::DeliveryJob>()
        .register::<crate::approvals::ExecuteApprovedWorkflow>()
        .register_with::<crate::approvals::notify::SendApprovalNotification>(notify_retry)
        .register_with::<crate::approvals::notify::UpdateApprovalNotification>(notify_retry)
        .register_with::<crate::approvals::notify::SendApprovalResult>(notify_retry)
        .register_periodic::<crate::approvals::ExpireApprovalRequests>(Duration::from_secs(settings.approval_sweep_interval_seconds.max(1)))
        .register_periodic::<PruneFinishedJobs>(Duration::from_secs(settings.queue_prune_interval_seconds.max(1)))
        .register_periodic::<crate::retention::PurgeExpiredRows>(Duration::from_secs(settings.retention_interval_seconds.max(1)))
        .register_periodic::<crate::metrics::RollupAlertMetrics>(Duration::from_secs(settings.metrics_rollup_interval_seconds.max(1)));
    if settings.sandbox_mode {
        registry.register_periodic::<crate::seed::SandboxReset>(settings.sandbox_reset_interval())
    } else {
        registry
    }
}

/// How this process's workers run (QUEUE_* settings).
pub fn worker_config(settings: &Settings) -> WorkerConfig {
    WorkerConfig {
        concurrency: settings.queue_concurrency.max(1),
        lease: Duration::from_secs(settings.queue_lease_seconds.max(10)),
        poll: Duration::from_millis(settings.queue_poll_interval_ms.max(10)),
        reap_every: Duration::from_secs(15),
        hold: crate::jobs::MAX_HOLD,
    }
}

/// Starts the workers (role `worker`) until `shutdown`.
pub async fn run_workers(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let registry = job_registry(&state.settings);
    let config = worker_config(&state.settings);
    crate::jobs::run_workers(registry, state.clone(), state.db.clone(), config, state.wakeup.clone(), shutdown).await
}

/// Jobs that need only the database (`Context = Db`, e.g. `PruneFinishedJobs`) run with the
/// application context too.
impl From<AppState> for Db {
    fn from(state: AppState) -> Db {
        state.db.clone()
    }
}

/// On the first start of a database with no API key at all, creates one admin key and prints it
/// once to stderr. Never again afterwards, even if every key is later revoked.
pub async fn bootstrap_admin_key(db: &Db) -> anyhow::Result<()> {
    let created = crate::auth::service::create_bootstrap_key(db).await.map_err(|e| anyhow::anyhow!("creating the bootstrap key: {e}"))?;
    if let Some(created) = created {
        tracing::info!(key_prefix = %created.key.key_prefix, key_uuid = %created.key.uuid, "bootstrap admin key created");
        eprintln!(
            "\n=== Calseta: no API key existed, so one admin key was created. It is shown once. ===\n\
             CALSETA_BOOTSTRAP_ADMIN_KEY={}\n\
             Use it as: Authorization: Bearer <key>. Create narrower keys with it, then revoke it.\n",
            created.plaintext
        );
    }
    Ok(())
}
