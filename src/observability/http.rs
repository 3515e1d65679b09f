//! The two ways `/metrics` is served: on the API listener behind an admin key, or alone on
//! `METRICS_BIND` (no authentication; that listener serves nothing else).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::auth::Authorized;
use crate::state::AppState;

crate::operation!(
    /// Scraping the metrics of the API listener: an admin key only.
    ReadMetrics = "metrics.read", scopes ["admin"]
);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn exposition(state: &AppState) -> Response {
    match super::render(state).await {
        Some(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        None => crate::error::Error::Unavailable("Metrics are not enabled.".into()).into_response(),
    }
}

async fn authorized_metrics(_auth: Authorized<ReadMetrics>, State(state): State<AppState>) -> Response {
    exposition(&state).await
}

async fn open_metrics(State(state): State<AppState>) -> Response {
    exposition(&state).await
}

/// `/metrics` on the API router (added only when enabled and no separate listener is set; it is
/// not part of the documented API contract, so it is not in `/openapi.json`).
pub fn api_route() -> Router<AppState> {
    Router::new().route("/metrics", get(authorized_metrics))
}

/// Serves `/metrics` alone on `bind` until `shutdown`; anything else is 404.
pub async fn serve_listener(state: AppState, bind: String, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on METRICS_BIND {bind}: {e}"))?;
    let address = listener.local_addr()?;
    tracing::info!(address = %address, "metrics listening");
    eprintln!("calseta metrics listening on http://{address}");
    let app = Router::new()
        .route("/metrics", get(open_metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}
