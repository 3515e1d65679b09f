//! Process assembly: settings → logging → database (migrated) → shared state → roles.

use std::time::{Duration, Instant};

use crate::auth::{Authenticator, KeyType};
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::ratelimit::{FailurePolicies, FailurePolicy, Limits, RateLimiter};
use crate::state::{AppState, Inner};

/// Connects to the configured database and applies pending migrations.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
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
    let enricher = crate::enrich::Enricher::new(&settings, cipher.clone())
        .map_err(|e| anyhow::anyhow!("SSRF_ALLOWED_HOSTS / egress settings: {e}"))?;
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
    Ok(AppState::new(Inner { settings, db, auth, limiter, cipher, started_at: Instant::now(), wakeup: Default::default(), enricher, ingest: Default::default(), workflows }))
}

/// On the first start of a database with no API key at all, creates one admin key and prints it
/// once to stderr. Never again afterwards, even if every key is later revoked.
pub async fn bootstrap_admin_key(db: &Db) -> anyhow::Result<()> {
    let scopes = vec!["admin".to_owned()];
    let created = crate::auth::http::create_key(db, "bootstrap-admin", &scopes, KeyType::Human, None, None, true)
        .await
        .map_err(|e| anyhow::anyhow!("creating the bootstrap key: {e}"))?;
    if let Some((row, plaintext)) = created {
        tracing::info!(target: "calseta::audit", event = "api_key_created", key_prefix = %row.key_prefix, key_uuid = %row.uuid, "bootstrap admin key created");
        eprintln!(
            "\n=== Calseta: no API key existed, so one admin key was created. It is shown once. ===\n\
             CALSETA_BOOTSTRAP_ADMIN_KEY={plaintext}\n\
             Use it as: Authorization: Bearer <key>. Create narrower keys with it, then revoke it.\n"
        );
    }
    Ok(())
}
