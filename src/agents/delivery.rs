//! One signed POST to an agent through the egress gateway, and what it came to. Shared by the
//! durable delivery job and the test endpoint.
//!
//! The gateway checks the URL again at send time (scheme, host rules, DNS answers; it connects
//! only to the addresses it vetted), never follows redirects, and bounds time and response
//! size. Headers: `Content-Type`, the operator's auth header (when its sealed value opens), then
//! the Standard Webhooks headers — reserved names are refused at save and skipped here, so an
//! operator header can never stand in for a signature.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::signing;
use super::store::{self, AgentRow};
use crate::egress::{self, EgressError};
use crate::state::AppState;

/// Response bodies stored on `agent_runs`: parsed JSON up to this many bytes, else the first
/// [`RAW_PREVIEW_CHARS`] characters as `{"raw": …}` (Calseta stored any JSON whole).
const MAX_STORED_JSON_BYTES: usize = 16 * 1024;
const RAW_PREVIEW_CHARS: usize = 2000;

/// The agent's secrets, opened for one send.
#[derive(Default)]
pub struct OpenedSecrets {
    pub auth_header_value: Option<String>,
    /// Current first, then the previous one while its overlap lasts.
    pub signing: Vec<String>,
}

fn open(state: &AppState, envelope: Option<&str>, what: &str, agent: &AgentRow) -> Option<String> {
    let envelope = envelope?;
    let Some(cipher) = state.cipher.as_ref() else {
        tracing::warn!(agent_uuid = %agent.uuid, "{what} cannot be opened: ENCRYPTION_KEY is not set");
        return None;
    };
    match cipher.decrypt(envelope).map(String::from_utf8) {
        Ok(Ok(text)) => Some(text),
        _ => {
            tracing::warn!(agent_uuid = %agent.uuid, "{what} could not be decrypted; sending without it");
            None
        }
    }
}

/// Opens what `agent` needs at send time. A secret that will not open is left out (Calseta's
/// behaviour for the auth header), never fatal.
pub async fn open_secrets(state: &AppState, agent: &AgentRow) -> sqlx::Result<OpenedSecrets> {
    let Some(sealed) = store::find_secrets(&state.db, agent.id).await? else { return Ok(OpenedSecrets::default()) };
    let mut signing = Vec::new();
    signing.extend(open(state, sealed.signing_secret_encrypted.as_deref(), "signing secret", agent));
    if sealed.previous_signing_secret_expires_at.is_some_and(|until| until > Utc::now()) {
        signing.extend(open(state, sealed.previous_signing_secret_encrypted.as_deref(), "previous signing secret", agent));
    }
    let auth_header_value = open(state, sealed.auth_header_value_encrypted.as_deref(), "auth header value", agent);
    Ok(OpenedSecrets { auth_header_value, signing })
}

/// How one attempt ended, in `agent_runs` terms.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `success`, `failed` or `timeout`.
    pub status: &'static str,
    pub status_code: Option<u16>,
    pub response_body: Option<Value>,
    pub error: Option<String>,
    /// The gateway refused the URL: nothing was sent (no `agent_runs` row, no retry).
    pub blocked: bool,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub elapsed: Duration,
}

/// POSTs `body` to the agent, signed with `secrets`, and classifies the result.
pub async fn send(state: &AppState, agent: &AgentRow, secrets: &OpenedSecrets, webhook_id: &str, body: &Value) -> Attempt {
    // The gateway serializes `Body::Json` with `serde_json::to_vec`; signing those same bytes
    // is what makes the signature cover exactly what goes on the wire.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let timestamp = Utc::now().timestamp();
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let (Some(name), Some(value)) = (&agent.auth_header_name, &secrets.auth_header_value)
        && !signing::RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name))
    {
        headers.push((name.clone(), value.clone()));
    }
    headers.extend(signing::headers(&secrets.signing, webhook_id, timestamp, &bytes));
    let request = egress::Request {
        method: http::Method::POST,
        url: agent.endpoint_url.clone(),
        headers,
        body: egress::Body::Json(body.clone()),
        timeout: Duration::from_secs(agent.timeout_seconds.max(1) as u64),
    };
    let started_at = crate::db::now();
    let started = std::time::Instant::now();
    let result = super::egress(state).send(request).await;
    let (elapsed, completed_at) = (started.elapsed(), crate::db::now());
    let attempt = |status, status_code, response_body, error: Option<String>, blocked| Attempt {
        status,
        status_code,
        response_body,
        error,
        blocked,
        started_at,
        completed_at,
        elapsed,
    };
    match result {
        Ok(response) if (200..300).contains(&response.status) => {
            attempt("success", Some(response.status), stored_body(&response.body), None, false)
        }
        Ok(response) => {
            let error = format!("HTTP {}", response.status);
            attempt("failed", Some(response.status), stored_body(&response.body), Some(error), false)
        }
        Err(EgressError::Timeout(after)) => attempt("timeout", None, None, Some(format!("Timeout: no response within {after:?}")), false),
        Err(EgressError::Blocked(reason)) => {
            attempt("failed", None, None, Some(format!("endpoint_url blocked by SSRF protection: {reason}")), true)
        }
        Err(EgressError::InvalidUrl(reason)) => attempt("failed", None, None, Some(format!("invalid endpoint_url: {reason}")), true),
        Err(e @ EgressError::TooLarge(_)) => attempt("failed", None, None, Some(format!("Response rejected: {e}")), false),
        Err(e) => attempt("failed", None, None, Some(format!("Connection error: {e}")), false),
    }
}

/// The stored form of a response body: parsed JSON when small, else a bounded text preview.
fn stored_body(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() <= MAX_STORED_JSON_BYTES
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
    {
        return Some(value);
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(RAW_PREVIEW_CHARS * 4)]);
    let preview: String = text.chars().take(RAW_PREVIEW_CHARS).collect();
    Some(json!({"raw": preview, "truncated": bytes.len() > preview.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bodies_are_bounded() {
        assert_eq!(stored_body(b""), None);
        assert_eq!(stored_body(br#"{"ok":true}"#), Some(json!({"ok": true})));
        assert_eq!(stored_body(b"plain"), Some(json!({"raw": "plain", "truncated": false})));
        let big = format!("[{}]", vec!["1"; 20_000].join(","));
        let stored = stored_body(big.as_bytes()).unwrap();
        assert_eq!(stored["raw"].as_str().unwrap().chars().count(), RAW_PREVIEW_CHARS);
        assert_eq!(stored["truncated"], true);
    }
}
