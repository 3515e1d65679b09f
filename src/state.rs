//! The shared application state handed to every handler and middleware.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: Db,
    pub auth: Authenticator,
    pub limiter: RateLimiter,
    /// `None` when ENCRYPTION_KEY is unset (development only): secrets cannot be saved then.
    pub cipher: Option<Cipher>,
    pub started_at: Instant,
    /// Wakes this process's idle workers when a job is enqueued here.
    pub wakeup: crate::jobs::Wakeup,
    /// The one outbound HTTP gateway (SSRF policy, pinned resolution, caps): enrichment,
    /// dispatch, workflows and notifiers all send through this instance.
    pub egress: crate::egress::Egress,
    /// Providers, their cache and circuit breakers.
    pub enricher: crate::enrich::Enricher,
    /// The ingest writer tasks and mapping reader, started by the first ingest.
    pub ingest: std::sync::OnceLock<crate::ingest::service::IngestServices>,
    /// The health probes' own database connection and last observation.
    pub health: crate::http::health::Probe,
    /// The workflow sandbox, secrets granted to workflows, integration credentials.
    pub workflows: crate::workflows::Runtime,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}
