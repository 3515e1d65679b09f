//! The MCP server (agents-mcp-metrics.md §4) on the API's own listener: streamable HTTP at
//! `/mcp` (rmcp) and Calseta's legacy HTTP+SSE transport at `/sse` + `/messages/`, so existing
//! Calseta MCP clients work unchanged. Every HTTP request of either transport has already met
//! the API's authenticator and rate limiter (the global middleware); [`require_key`] turns a
//! missing or bad key into a 401 with a bearer challenge and leaves an MCP [`Principal`] in the
//! request, which rmcp hands to the tools and resources with each message.

mod legacy;
mod resources;
mod server;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Principal};
use crate::http::context::RequestContext;
use crate::state::AppState;
pub use server::CalsetaMcp;

/// How often an idle event stream carries a keep-alive (proxies cut silent connections).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The MCP routes, to be merged *inside* the auth/rate-limit middleware. `shutdown` ends the
/// long-lived event streams, so a graceful shutdown is not held open by connected agents.
pub fn routes(state: &AppState, shutdown: &CancellationToken) -> Router<AppState> {
    let allowed_hosts = state.settings.mcp_allowed_hosts();
    let mut config = StreamableHttpServerConfig::default();
    config.allowed_hosts = allowed_hosts.clone();
    config.sse_keep_alive = Some(KEEP_ALIVE);
    config.cancellation_token = shutdown.child_token();
    let factory_state = state.clone();
    let streamable = StreamableHttpService::new(
        move || Ok(CalsetaMcp::new(factory_state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let legacy = legacy::router(state.clone(), shutdown.clone(), Arc::new(allowed_hosts));
    Router::new()
        .nest_service("/mcp", streamable)
        .route_service("/sse", legacy.clone())
        .route_service("/messages/", legacy)
        .layer(from_fn(require_key))
}

/// Paths of the MCP transports (the only ones served on the `MCP_BIND` listener).
pub fn is_mcp_path(path: &str) -> bool {
    path == "/mcp"
        || path.starts_with("/mcp/")
        || path == "/sse"
        || path == "/messages/"
        || path == "/messages"
}

/// 401 (with `WWW-Authenticate: Bearer`, as MCP clients expect) unless the auth middleware
/// resolved a valid key; otherwise the caller becomes an MCP principal in the request.
async fn require_key(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let auth = match Auth::from_request_parts(&mut parts, &()).await {
        Ok(auth) => auth,
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"calseta\""),
            );
            return response;
        }
    };
    let context = parts.extensions.get::<RequestContext>().cloned();
    parts
        .extensions
        .insert(Principal::mcp(auth.key.clone(), context));
    next.run(Request::from_parts(parts, body)).await
}

/// For the `MCP_BIND` listener: everything but the MCP transports is not found there.
pub async fn only_mcp(request: Request, next: Next) -> Response {
    if is_mcp_path(request.uri().path()) {
        next.run(request).await
    } else {
        crate::error::envelope(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource was not found.",
            serde_json::json!({}),
        )
    }
}

/// The `MCP_BIND` listener's app: the full middleware stack, MCP paths only.
pub fn only_mcp_layer(app: Router) -> Router {
    app.layer(from_fn(only_mcp))
}
