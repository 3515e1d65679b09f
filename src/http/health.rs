//! Probes. `/health` keeps Calseta's shape (not enveloped); `/health/live` says only that the
//! process runs; `/health/ready` answers 503 when the database is unreachable. None of them is
//! authenticated or rate limited, and none reveals more than the configured app version.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;
use crate::with_db;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(live)).routes(routes!(ready))
}

/// Jobs waiting to run; `None` when the count could not be read in time.
async fn queue_depth(state: &AppState) -> Option<i64> {
    let count = async {
        with_db!(&state.db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE status = 'todo'").fetch_one(p).await)
    };
    tokio::time::timeout(PROBE_TIMEOUT, count).await.ok().and_then(Result::ok)
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Healthy"), (status = 503, description = "Database down")))]
pub async fn health(State(state): State<AppState>) -> Response {
    let database_ok = state.db.ping(PROBE_TIMEOUT).await;
    let depth = if database_ok { queue_depth(&state).await } else { None };
    // Active providers of this process's registry and whether each can run (Calseta's shape).
    let mut providers = serde_json::Map::new();
    if database_ok {
        for provider in &state.enricher.snapshot(&state.db).await.providers {
            let state_text = if provider.configured { "configured" } else { "unconfigured" };
            providers.insert(provider.name().to_owned(), json!(state_text));
        }
    }
    let body = json!({
        "status": if database_ok { "ok" } else { "down" },
        "version": state.settings.app_version,
        "database": if database_ok { "ok" } else { "error" },
        "queue": if depth.is_some() { "ok" } else { "error" },
        "queue_depth": depth.unwrap_or(0),
        "enrichment_providers": providers,
        "workflow_sandbox": state.workflows.health(),
    });
    let status = if database_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "The process is running")))]
pub async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.db.ping(PROBE_TIMEOUT).await {
        Json(json!({"status": "ready", "database": "ok"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "database": "error"}))).into_response()
    }
}
