//! The request pipeline, in the order a request meets it (assembled in `http::router`):
//! request context (id, client IP) → tracing → security headers → CORS → body limit →
//! authentication + rate limit. Each step is one function here.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::context::{RequestContext, client_ip, request_id_from};
use crate::auth::{AuthFailureReason, AuthOutcome, audit};
use crate::error::{Error, envelope};
use crate::ratelimit::{Decision, Family, Outcome};
use crate::state::AppState;

/// Establishes the request context, records one `request` log event, and echoes `X-Request-Id`.
pub async fn request_context(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::listener::Peer>>()
        .map(|c| c.0.0)
        .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let context = RequestContext {
        request_id: request_id_from(request.headers()),
        client_ip: client_ip(request.headers(), peer, state.settings.trusted_proxy_count),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    };
    request.extensions_mut().insert(context.clone());
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let span = tracing::info_span!("request", request_id = %context.request_id, method = %context.method, path = %context.path);
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let duration_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    span.in_scope(|| {
        tracing::info!(event = "request", status_code = response.status().as_u16(), duration_ms, client_ip = %context.client_ip, "request")
    });
    crate::observability::http_request(&route, &context.method, response.status().as_u16(), started.elapsed());
    if let Ok(value) = HeaderValue::from_str(&context.request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Headers every response carries, whatever its route (CSP, caching and HSTS vary, see below).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-xss-protection", "1; mode=block"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
];
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=63072000; includeSubDomains";
/// The docs page is self-contained: its script is served by this binary (air-gapped SOCs), so
/// nothing is allowed from another origin. Scalar injects inline styles at run time.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// Security headers on every response, error responses included (Calseta skipped them on 413 and
/// 500; we do not). API responses are never cached.
pub async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let is_docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // The approval decide page (HTML, no API key) sets its own strict page CSP; keep it.
    let is_decide_page = headers.get(header::CONTENT_SECURITY_POLICY).is_some_and(|v| v == crate::approvals::DECIDE_PAGE_CSP);
    if !is_decide_page {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if is_docs { DOCS_CSP } else { API_CSP }));
    }
    if !is_docs {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.settings.https_enabled && state.settings.security_header_hsts_enabled {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    }
    response
}

/// Refuses a request whose path or query string percent-decodes to a NUL character, before any
/// route sees it: PostgreSQL cannot store NUL in text, so a `%00` reaching a filter or an insert
/// would surface as a driver error (500). Routes reading the raw query are covered too; the
/// `ValidPath` / `ValidQuery` extractors repeat the check for code paths outside this stack.
/// A literal NUL byte cannot reach here: hyper refuses it in the request line.
pub async fn reject_unstorable_target(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) {
        return Error::bad_request("INVALID_PATH", "The request path contains a NUL character (%00).").into_response();
    }
    if uri.query().is_some_and(has_encoded_nul) {
        return Error::bad_request("INVALID_QUERY", "The query string contains a NUL character (%00).").into_response();
    }
    next.run(request).await
}

/// `%00` is the only spelling of an encoded NUL; `%2500` decodes to the text `%00`, which is harmless.
fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w == b"%00")
}

/// The body limit that applies to a request, kept in its extensions so the body reader can name
/// it in a 413.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub megabytes: u64,
    pub ingest: bool,
}

pub fn is_ingest_route(method: &Method, path: &str) -> bool {
    method == Method::POST && (path.starts_with("/v1/ingest/") || path == "/v1/alerts")
}

/// Rejects a declared `Content-Length` over the limit before reading anything, and wraps the body
/// so an undeclared (chunked) body is cut off at the same limit.
pub async fn body_limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ingest = is_ingest_route(request.method(), request.uri().path());
    let megabytes =
        if ingest { state.settings.max_ingest_payload_size_mb } else { state.settings.max_request_body_size_mb };
    let limit_bytes = usize::try_from(megabytes.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit_bytes as u64) {
        let mut response = Error::PayloadTooLarge { limit_mb: megabytes, ingest }.into_response();
        // The unread body is not worth draining: tell the client we are done with it.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let limit = BodyLimit { megabytes, ingest };
    request.extensions_mut().insert(limit);
    let request = request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit_bytes)));
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let mut response = response;
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    response
}

/// Routes that are neither authenticated nor rate limited: probes and documentation.
fn is_public(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/") || path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/")
}

/// Which limit family a route belongs to (for authenticated callers).
pub fn family_for(method: &Method, path: &str) -> Family {
    if is_ingest_route(method, path) {
        return Family::Ingest;
    }
    if *method == Method::POST {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match segments.as_slice() {
            ["", "v1", "enrichments"]
            | ["", "v1", "alerts", _, "enrich"]
            | ["", "v1", "enrichment-providers", _, "test"] => return Family::Enrichment,
            ["", "v1", "workflows", _, "execute"] => return Family::WorkflowExecute,
            _ => {}
        }
    }
    Family::Default
}

/// Resolves the caller, then charges the matching rate-limit bucket: per key for a valid key,
/// per client IP for everything else (failed authentications included, so key guessing meets
/// 429s). The outcome is left in the request for the `Auth` extractor, which answers 401 when a
/// protected handler needs a principal it does not have.
pub async fn authenticate_and_limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let header_value = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let outcome = match state.auth.authenticate(header_value.as_deref()).await {
        Ok(outcome) => outcome,
        Err(e) => return e.into_response(),
    };
    let context = request.extensions().get::<RequestContext>().cloned().unwrap_or_default();
    // A valid key used from outside its `allowed_cidrs` is refused (403) after the per-address
    // limit of unauthenticated callers is charged, so refusals cannot flood the audit trail.
    let (outcome, refused_key) = match outcome {
        AuthOutcome::Authenticated(key) if !key.may_connect_from(&context.client_ip) => {
            let key_prefix = Some(key.key_prefix.clone());
            (AuthOutcome::Failed { reason: AuthFailureReason::IpNotAllowed, key_prefix }, Some(key))
        }
        outcome => (outcome, None),
    };
    let (family, bucket, key_prefix) = match &outcome {
        AuthOutcome::Authenticated(p) => {
            (family_for(request.method(), &path), format!("key:{}", p.key_uuid), Some(p.key_prefix.clone()))
        }
        AuthOutcome::Failed { key_prefix, .. } => {
            (Family::Unauthenticated, format!("ip:{}", context.client_ip), key_prefix.clone())
        }
    };
    let decision = state.limiter.check(family, &bucket).await;
    match decision.outcome {
        Outcome::Allowed if refused_key.is_some() => {
            audit::auth_failure(AuthFailureReason::IpNotAllowed, &context, key_prefix.as_deref(), None);
            let key = refused_key.expect("matched above");
            if let Err(e) = crate::auth::service::record_refused_address(&state.db, key, context).await {
                return e.into_response();
            }
            let mut response =
                Error::client(StatusCode::FORBIDDEN, "IP_NOT_ALLOWED", "This API key may not be used from this address.").into_response();
            rate_limit_headers(response.headers_mut(), &decision);
            response
        }
        Outcome::Allowed => {
            request.extensions_mut().insert(outcome);
            let mut response = next.run(request).await;
            rate_limit_headers(response.headers_mut(), &decision);
            response
        }
        Outcome::Limited => {
            crate::observability::rate_limited(family.as_str());
            audit::auth_failure(AuthFailureReason::RateLimited, &context, key_prefix.as_deref(), None);
            let mut response = Error::RateLimited { retry_after_secs: decision.retry_after_secs() }.into_response();
            rate_limit_headers(response.headers_mut(), &decision);
            response
        }
        Outcome::StoreUnavailable => {
            let mut response = Error::Unavailable("Rate limiting is temporarily unavailable; retry shortly.".into())
                .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs().max(1)));
            response
        }
    }
}

/// `X-RateLimit-Reset` is in seconds from now until the bucket is full again (delta style, like
/// `Retry-After`, so clients need no synchronised clock). Unlimited families send no headers.
fn rate_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    if decision.is_unlimited() {
        return;
    }
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_after_secs()));
}

/// axum answers a known path with a wrong method by an empty 405 carrying `Allow`; give it the
/// error envelope (and keep `Allow`). A documented deviation: Calseta answered 404.
pub async fn method_not_allowed_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut out = envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "The method is not allowed for the requested resource.",
        serde_json::json!({}),
    );
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

pub async fn not_found() -> Response {
    envelope(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource was not found.", serde_json::json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family_for(&Method::POST, "/v1/ingest/splunk"), Family::Ingest);
        assert_eq!(family_for(&Method::POST, "/v1/alerts"), Family::Ingest);
        assert_eq!(family_for(&Method::GET, "/v1/alerts"), Family::Default);
        assert_eq!(family_for(&Method::POST, "/v1/alerts/abc/enrich"), Family::Enrichment);
        assert_eq!(family_for(&Method::POST, "/v1/enrichments"), Family::Enrichment);
        assert_eq!(family_for(&Method::POST, "/v1/enrichment-providers/x/test"), Family::Enrichment);
        assert_eq!(family_for(&Method::POST, "/v1/workflows/x/execute"), Family::WorkflowExecute);
        assert_eq!(family_for(&Method::GET, "/v1/workflows/x/execute"), Family::Default);
    }
}
