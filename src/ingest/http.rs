//! `POST /v1/ingest/{source_name}` (SIEM webhooks, signature-checked) and `POST /v1/alerts`
//! (programmatic; routed by `crate::alerts::http`, which owns the `/v1/alerts` path). Both
//! answer 202 once the alert and its job are committed.

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::service::{IngestResponse, Provenance, ingest};
use super::signature::{self, SignatureError};
use super::sources::{self, AlertSource};
use crate::auth::{Authorized, Principal};
use crate::error::{Error, FieldError};
use crate::http::extract::{
    ALERT_PAYLOAD_MAX_BYTES, JsonBody, JsonTextError, ValidPath, check_json_size, is_json_content_type, parse_json_text,
    read_body, unsupported_media_type,
};
use crate::pagination::Data;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest_webhook))
}

fn accepted(outcome: IngestResponse) -> Response {
    (StatusCode::ACCEPTED, Data::new(outcome)).into_response()
}

crate::operation!(
    /// Both ingest routes: the key's scope is checked before the body is read.
    IngestAlert = "alerts.ingest", scopes ["alerts:write"]
);

fn find_source(who: &Principal, name: &str) -> Result<&'static dyn AlertSource, Error> {
    let source = sources::get(name).ok_or_else(|| {
        Error::client(StatusCode::NOT_FOUND, "UNKNOWN_SOURCE", format!("Alert source '{name}' is not registered."))
    })?;
    if who.key().is_some_and(|key| !key.may_ingest_from(name)) {
        return Err(Error::Denied {
            code: "SOURCE_NOT_ALLOWED",
            message: format!("API key is not authorized to ingest from source '{name}'."),
        });
    }
    Ok(source)
}

fn invalid_payload(message: String) -> Error {
    Error::client(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PAYLOAD", message)
}

fn structure_mismatch(source: &dyn AlertSource) -> Error {
    invalid_payload(format!("Payload does not match expected structure for source '{}'.", source.name()))
}

#[utoipa::path(post, path = "/v1/ingest/{source_name}", tag = "ingest", params(("source_name" = String, Path)),
    request_body(content = Object, description = "The SIEM's alert payload, as sent"),
    responses((status = 202, body = IngestResponse), (status = 401, description = "Missing/invalid key or signature"),
        (status = 404, description = "UNKNOWN_SOURCE"), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE"),
        (status = 422, description = "INVALID_PAYLOAD")),
    security(("bearer" = ["alerts:write"])))]
pub async fn ingest_webhook(
    auth: Authorized<IngestAlert>,
    State(state): State<AppState>,
    ValidPath(source_name): ValidPath<String>,
    request: Request,
) -> Result<Response, Error> {
    let source = find_source(&auth.principal, &source_name)?;
    refused_counted(source, receive_webhook(&state, &auth.principal, source, request).await)
}

/// Counts an alert refused after its source was known (unknown source names are not counted:
/// they would be unbounded labels).
fn refused_counted(source: &dyn AlertSource, outcome: Result<IngestResponse, Error>) -> Result<Response, Error> {
    if outcome.is_err() {
        crate::observability::ingest(source.name(), "refused");
    }
    outcome.map(accepted)
}

async fn receive_webhook(
    state: &AppState,
    who: &Principal,
    source: &'static dyn AlertSource,
    request: Request,
) -> Result<IngestResponse, Error> {
    // Every SIEM we support posts JSON with a JSON content type (Sentinel's Logic App HTTP
    // action, Elastic's webhook connector, Splunk's webhook alert action); anything else is
    // refused before the body is read.
    if !is_json_content_type(request.headers()) {
        return Err(unsupported_media_type());
    }
    let headers = request.headers().clone();
    let body = read_body(request).await?;

    let scheme = source.signature();
    let mut signature_verified = false;
    if let Some(setting) = scheme.secret_env_var {
        match state.settings.webhook_secret(setting) {
            Some(secret) => {
                signature_verified = true;
                if let Err(reason) = signature::verify(&scheme, Some(secret.as_bytes()), &headers, &body, chrono::Utc::now()) {
                    tracing::warn!(target: "calseta::audit", event = "webhook_signature_failure", source = source.name(),
                        reason = ?reason, key_prefix = who.key_prefix(), "webhook signature rejected");
                    let message = match reason {
                        SignatureError::Stale => "Webhook timestamp is outside the allowed window.",
                        _ => "Webhook signature verification failed.",
                    };
                    return Err(Error::client(StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE", message));
                }
            }
            None => tracing::warn!(source = source.name(), setting, "webhook secret not set: accepting an unsigned alert (development only)"),
        }
    }

    let value = parse_json_text(&body, state.settings.max_json_depth).map_err(|e| match e {
        JsonTextError::Syntax(_) => Error::bad_request("INVALID_JSON", "Request body is not valid JSON."),
        JsonTextError::Encoding(message) => Error::bad_request("INVALID_JSON", message),
    })?;
    let Value::Object(raw) = value else {
        return Err(invalid_payload("Request body must be a JSON object.".into()));
    };
    check_payload(source, &raw)?;
    let provenance = Provenance::Webhook { signature_verified };
    ingest(state, source, raw, &who.actor(), provenance).await
}

/// The checks both ingest paths apply to an alert payload, in the same order: its size (compact
/// JSON, [`ALERT_PAYLOAD_MAX_BYTES`]), then the source's expected structure.
fn check_payload(source: &dyn AlertSource, raw: &Map<String, Value>) -> Result<(), Error> {
    check_json_size("payload", raw, ALERT_PAYLOAD_MAX_BYTES).map_err(|e| Error::Validation(vec![e]))?;
    if !source.validate(raw) {
        return Err(structure_mismatch(source));
    }
    Ok(())
}

/// `POST /v1/alerts` naming a source whose webhook is signed (sentinel, elastic, splunk) skips
/// that signature, so it must not pass for the SIEM itself:
/// * production refuses it unless `INGEST_API_SIGNED_SOURCES_ALLOWED` names the source;
/// * when the source's secret is configured, only a key restricted to that source
///   (`allowed_sources` listing it) may submit for it;
/// * the alert's ingest event records `submitted_via: "api"`, `signature_verified: false` and
///   the key prefix (the raw payload is stored as sent).
fn check_api_submission(state: &AppState, who: &Principal, source: &dyn AlertSource) -> Result<(), Error> {
    let Some(setting) = source.signature().secret_env_var else { return Ok(()) };
    let name = source.name();
    if state.settings.is_production() && !state.settings.api_signed_sources_allowed().iter().any(|s| s == name) {
        return Err(Error::Denied {
            code: "SIGNED_SOURCE_REQUIRES_WEBHOOK",
            message: format!(
                "Alerts of source '{name}' must arrive signed through POST /v1/ingest/{name}; \
                 INGEST_API_SIGNED_SOURCES_ALLOWED can waive this."
            ),
        });
    }
    let restricted_to_source = who.key().and_then(|k| k.allowed_sources.as_ref()).is_some_and(|list| list.iter().any(|s| s == name));
    if state.settings.webhook_secret(setting).is_some() && !restricted_to_source {
        return Err(Error::Denied {
            code: "SOURCE_NOT_ALLOWED",
            message: format!(
                "Source '{name}' is signed: POST /v1/alerts accepts its alerts only from keys whose allowed_sources list it."
            ),
        });
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenericIngestBody {
    pub source_name: String,
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[utoipa::path(post, path = "/v1/alerts", tag = "alerts", request_body = GenericIngestBody,
    responses((status = 202, body = IngestResponse),
        (status = 403, description = "SOURCE_NOT_ALLOWED / SIGNED_SOURCE_REQUIRES_WEBHOOK (a signed source's alerts must come through its webhook)"),
        (status = 404, description = "UNKNOWN_SOURCE"), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE"),
        (status = 422, description = "VALIDATION_ERROR / INVALID_PAYLOAD")),
    security(("bearer" = ["alerts:write"])))]
pub async fn ingest_programmatic(
    auth: Authorized<IngestAlert>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<GenericIngestBody>,
) -> Result<Response, Error> {
    let raw: Map<String, Value> = match body.payload {
        Value::Object(map) => map,
        _ => return Err(Error::Validation(vec![FieldError::body("payload", "dict_type", "Input should be a valid dictionary")])),
    };
    let source = find_source(&auth.principal, &body.source_name)?;
    let outcome = match check_api_submission(&state, &auth.principal, source).and_then(|()| check_payload(source, &raw)) {
        Ok(()) => ingest(&state, source, raw, &auth.actor(), Provenance::Api).await,
        Err(e) => Err(e),
    };
    refused_counted(source, outcome)
}
