//! Chat callbacks (workflows.md §6.6, §6.7), no API key. Slack's is authenticated by its `v0`
//! signature over the raw body within ±300 s, and refused outright without
//! `SLACK_SIGNING_SECRET` (Calseta accepted unsigned callbacks then). A replayed callback reaches
//! the same one-winner decision, so it cannot decide twice. The pressed message is then updated
//! by the notifier's outcome job, as after any decision (`notify`), not from the callback's
//! payload. Teams has no interactive callback: Calseta's "not supported" answer is kept.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::service::{self, Decider, Decision};
use crate::state::AppState;

/// Slack's replay window.
const MAX_SKEW_SECONDS: i64 = 300;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(slack_callback)).routes(routes!(teams_callback))
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, body).into_response()
}

/// `v0=` + hex HMAC-SHA256(secret, `v0:<timestamp>:<body>`), checked in constant time.
/// `Err` is the 403 text.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let timestamp = header("x-slack-request-timestamp");
    let Ok(at) = timestamp.trim().parse::<i64>() else { return Err("Invalid timestamp") };
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err("Request too old");
    }
    let signature = header("x-slack-signature").strip_prefix("v0=").and_then(|h| hex::decode(h).ok());
    let Some(signature) = signature else { return Err("Invalid signature") };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return Err("Invalid signature");
    };
    mac.update(format!("v0:{}:", timestamp.trim()).as_bytes());
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| "Invalid signature")
}

#[utoipa::path(post, path = "/v1/approvals/callback/slack", tag = "approvals",
    request_body(content_type = "application/x-www-form-urlencoded", description = "Slack interactive payload (form field `payload`)"),
    responses((status = 200, description = "`ok`"), (status = 400, description = "Missing or invalid payload"),
              (status = 403, description = "Unsigned, stale or wrongly signed; or SLACK_SIGNING_SECRET unset")))]
pub async fn slack_callback(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = state.settings.slack_signing_secret.as_deref() else {
        return text(StatusCode::FORBIDDEN, "Slack callbacks are disabled: SLACK_SIGNING_SECRET is not set");
    };
    if let Err(refused) = verify(secret, &headers, &body, chrono::Utc::now().timestamp()) {
        return text(StatusCode::FORBIDDEN, refused);
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let Some((_, payload)) = fields.into_iter().find(|(k, _)| k == "payload") else { return text(StatusCode::BAD_REQUEST, "Missing payload") };
    let Ok(payload) = serde_json::from_str::<Value>(&payload) else { return text(StatusCode::BAD_REQUEST, "Invalid JSON payload") };
    let action_id = payload["actions"][0]["action_id"].as_str().unwrap_or("");
    let Some((verb, uuid)) = action_id.split_once(':') else { return text(StatusCode::OK, "ok") };
    let Ok(uuid) = Uuid::parse_str(uuid) else { return text(StatusCode::OK, "ok") };
    let decision = if verb == "approve" { Decision::Approve } else { Decision::Reject };
    let user_id = payload["user"]["id"].as_str().unwrap_or("").to_owned();
    if user_id.is_empty() {
        tracing::warn!(approval = %uuid, "slack callback without a user id ignored");
        return text(StatusCode::OK, "ok");
    }
    if let Err(e) = service::decide(&state, uuid, decision, Decider::Slack { user_id }).await {
        tracing::info!(approval = %uuid, error = %e, "slack decision not applied");
    }
    text(StatusCode::OK, "ok")
}

#[utoipa::path(post, path = "/v1/approvals/callback/teams", tag = "approvals", responses((status = 200, description = "Not supported message")))]
pub async fn teams_callback() -> Response {
    Json(json!({"message": "Teams interactive callbacks are not supported via incoming webhooks in v1. Use the REST API (POST /v1/workflow-approvals/{uuid}/approve or /reject) or the browser approval page (GET /v1/approvals/{uuid}/decide?token=...)."}))
        .into_response()
}
