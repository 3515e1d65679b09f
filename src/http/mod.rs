//! The HTTP surface: the router with its middleware stack, and the server loop with graceful
//! shutdown. Each resource has its own `http` module (routes + handlers) in its domain folder.

pub mod context;
pub mod docs;
pub mod extract;
pub mod health;
pub mod listener;
pub mod middleware;
pub mod network;
pub mod query;


use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Builds the application. Layers run outermost-first in the order listed in `middleware`:
/// axum applies the *last* `.layer` call outermost, so they are added innermost-first here.
pub fn router(state: AppState) -> Router {
    router_with_shutdown(state, &tokio_util::sync::CancellationToken::new())
}

/// The application whose long-lived MCP event streams end when `shutdown` fires.
pub fn router_with_shutdown(state: AppState, shutdown: &tokio_util::sync::CancellationToken) -> Router {
    let (app, spec) = api_router().split_for_parts();
    // MCP transports (not in the OpenAPI document): inside auth and rate limiting, like REST.
    let mut app = app.merge(crate::mcp::routes(&state, shutdown));
    if state.settings.docs_enabled() {
        app = app.merge(docs::routes(spec));
    }
    if state.settings.metrics_enabled && state.settings.metrics_bind.is_none() {
        app = app.merge(crate::observability::api_route());
    }
    let network = network::NetworkPolicy::from_settings(&state.settings).unwrap_or_default();
    let mut app = app
        .fallback(middleware::not_found)
        .layer(from_fn_with_state(state.clone(), middleware::authenticate_and_limit))
        .layer(from_fn_with_state(state.clone(), middleware::body_limit))
        .layer(from_fn(middleware::reject_unstorable_target))
        .layer(from_fn(middleware::method_not_allowed_envelope));
    if let Some(cors) = cors_layer(&state) {
        app = app.layer(cors);
    }
    // The panic catcher sits inside the security headers so a 500 from a panic carries them too.
    app.layer(CatchPanicLayer::custom(|_| {
        tracing::error!("handler panicked");
        crate::error::Error::Internal(anyhow::anyhow!("panic")).into_response_static()
    }))
    .layer(from_fn_with_state(std::sync::Arc::new(network), network::enforce))
    .layer(from_fn_with_state(state.clone(), middleware::security_headers))
    .layer(from_fn_with_state(state.clone(), middleware::request_context))
        .with_state(state)
}

/// CORS is off unless origins are configured. A wildcard never carries credentials.
fn cors_layer(state: &AppState) -> Option<CorsLayer> {
    let settings = &state.settings;
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-request-id")])
        .max_age(std::time::Duration::from_secs(600));
    if settings.cors_allow_all_origins {
        return Some(base.allow_origin(AllowOrigin::any()));
    }
    let origins: Vec<HeaderValue> =
        settings.cors_origins().iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(base.allow_origin(AllowOrigin::list(origins)).allow_credentials(true))
}

/// Every documented route of the application, with its OpenAPI operation. Routes are added only
/// through `OpenApiRouter::routes(routes!(…))`, so the served route table and `/openapi.json` are
/// the same list by construction (tested against the live server).
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(health::routes())
        .merge(crate::auth::http::routes())
        .merge(crate::ingest::http::routes())
        .merge(crate::rules::http::routes())
        .merge(crate::context::http::routes())
        .merge(crate::mappings::http::routes())
        .merge(crate::sources::http::routes())
        .merge(crate::alerts::http::routes())
        .merge(crate::indicators::http::routes())
        .merge(crate::enrich::routes())
        .merge(crate::workflows::http::routes())
        .merge(crate::metrics::http::routes())
        .merge(crate::agents::http::routes())
        .merge(crate::approvals::http::routes())
}

/// Serves until `shutdown` fires, then stops accepting, lets in-flight requests finish and returns.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let hsts = state.settings.https_enabled && state.settings.security_header_hsts_enabled;
    let listener = listener::EnvelopingListener::new(listener, hsts);
    let app = router_with_shutdown(state, &shutdown).into_make_service_with_connect_info::<listener::Peer>();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

/// The `MCP_BIND` listener: the same stack, MCP transports only.
pub async fn serve_mcp(state: AppState, listener: tokio::net::TcpListener, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let hsts = state.settings.https_enabled && state.settings.security_header_hsts_enabled;
    let listener = listener::EnvelopingListener::new(listener, hsts);
    let app = crate::mcp::only_mcp_layer(router_with_shutdown(state, &shutdown));
    let app = app.into_make_service_with_connect_info::<listener::Peer>();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now (before the process announces it is listening, so
/// an early signal cannot kill it uncleanly) and returns a future that resolves on either.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! { _ = terminate.recv() => {}, _ = interrupt.recv() => {} }
        tracing::info!("shutdown signal received; draining in-flight requests");
    })
}
