//! The one error type of the HTTP surface. Every failure a client can see is an `Error`, and every
//! `Error` renders as the envelope `{"error": {"code", "message", "details"}}` with a stable code.
//! Internal errors are logged with their cause and answered with a generic message: no SQL, no
//! stack trace, no secret ever reaches a response body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Authentication failed (missing, malformed, unknown, wrong or revoked key): one body for all.
    #[error("unauthorized")]
    Unauthorized,
    #[error("key expired")]
    KeyExpired,
    #[error("insufficient scope")]
    Forbidden { required: Vec<String> },
    /// A 403 with a specific code, e.g. SOURCE_NOT_ALLOWED.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// 422 with the field-level `details.errors` list.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A 4xx with its own code and message (INVALID_JSON, UNKNOWN_SOURCE, …).
    #[error("{message}")]
    Client { status: StatusCode, code: &'static str, message: String, details: Value },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge { limit_mb: u64, ingest: bool },
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// One entry of `details.errors` on a 422, shaped like Calseta's (FastAPI) validation errors.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: String,
    pub loc: Vec<Value>,
    pub msg: String,
}

impl FieldError {
    pub fn new(kind: &str, loc: Vec<Value>, msg: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), loc, msg: msg.into() }
    }
    pub fn body(field: &str, kind: &str, msg: impl Into<String>) -> Self {
        Self::new(kind, vec![json!("body"), json!(field)], msg)
    }
}

impl Error {
    pub fn not_found(what: &str) -> Self {
        Error::NotFound(format!("{what} not found."))
    }
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Error::Client { status, code, message: message.into(), details: json!({}) }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }
    /// A single-field 422.
    pub fn invalid_field(field: &str, msg: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::body(field, "value_error", msg)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized | Error::KeyExpired => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } | Error::Denied { .. } => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Client { status, .. } => *status,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(e) if client_constraint_violation(e).is_some() => StatusCode::CONFLICT,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The envelope's `message`, for surfaces that have no envelope (MCP results).
    pub fn client_message(&self) -> String {
        self.code_message_details().1
    }

    fn code_message_details(&self) -> (&'static str, String, Value) {
        match self {
            Error::Unauthorized => (
                "UNAUTHORIZED",
                "Missing or invalid API key. Expected: Authorization: Bearer cai_...".into(),
                json!({}),
            ),
            Error::KeyExpired => ("KEY_EXPIRED", "API key has expired.".into(), json!({})),
            Error::Forbidden { required } => (
                "FORBIDDEN",
                format!("Insufficient scope. Required: {}", required.join(" or ")),
                json!({ "required_scopes": required }),
            ),
            Error::Denied { code, message } => (code, message.clone(), json!({})),
            Error::NotFound(m) => ("NOT_FOUND", m.clone(), json!({})),
            Error::Validation(errors) => {
                ("VALIDATION_ERROR", "Request validation failed.".into(), json!({ "errors": errors }))
            }
            Error::Client { code, message, details, .. } => (code, message.clone(), details.clone()),
            Error::Conflict(m) => ("CONFLICT", m.clone(), json!({})),
            Error::PayloadTooLarge { limit_mb, ingest } => (
                "PAYLOAD_TOO_LARGE",
                if *ingest {
                    format!("Request body exceeds the {limit_mb}MB limit for ingest endpoints.")
                } else {
                    format!("Request body exceeds the {limit_mb}MB limit for this endpoint.")
                },
                json!({ "limit_bytes": limit_mb * 1024 * 1024 }),
            ),
            Error::RateLimited { retry_after_secs } => (
                "RATE_LIMITED",
                format!("Rate limit exceeded. Retry after {retry_after_secs} seconds."),
                json!({ "retry_after_seconds": retry_after_secs }),
            ),
            Error::Unavailable(m) => ("SERVICE_UNAVAILABLE", m.clone(), json!({})),
            Error::Database(e) if let Some(message) = client_constraint_violation(e) => ("CONFLICT", message.into(), json!({})),
            Error::Database(_) | Error::Internal(_) => {
                ("INTERNAL_ERROR", "An unexpected error occurred.".into(), json!({}))
            }
        }
    }
}

/// Named unique constraints a client can run into, with the 409 message each deserves:
/// (PostgreSQL constraint name, SQLite's `table.column[, table.column]` text, message).
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    ("uq_enrichment_provider_name", "enrichment_providers.provider_name", "An enrichment provider with this name already exists."),
    (
        "uq_enrichment_extraction_provider_type_path",
        "enrichment_field_extractions.provider_name, enrichment_field_extractions.indicator_type, enrichment_field_extractions.source_path",
        "A field extraction with this provider, indicator type and source path already exists.",
    ),
    ("uq_indicator_type_value", "indicators.type, indicators.value", "An indicator with this type and value already exists."),
    ("uq_alert_indicator", "alert_indicators.alert_id, alert_indicators.indicator_id", "The indicator is already linked to the alert."),
];

/// The 409 message for a constraint violation the *client* caused: a unique value taken (named
/// constraints get their own message) or a reference to a row that is gone. `None` for CHECK
/// and NOT NULL violations: validation should have refused such input first, so reaching the
/// database with it is our bug and stays a 500 (logged with its cause).
pub fn client_constraint_violation(e: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(db) = e else { return None };
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => {
            let message = db.message();
            let named = UNIQUE_CONSTRAINTS.iter().find(|(pg, sqlite, _)| {
                db.constraint() == Some(*pg) || message.ends_with(&format!("constraint failed: {sqlite}"))
            });
            Some(named.map_or("The request conflicts with an existing resource.", |(_, _, m)| *m))
        }
        sqlx::error::ErrorKind::ForeignKeyViolation => Some("The request references a resource that does not exist (or no longer exists)."),
        _ => None,
    }
}

/// Collects the field errors of one validation pass, so a client learns every problem at once:
/// `let mut errors = FieldErrors::default(); errors.check(…); errors.push(…); errors.finish()?`.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, error: FieldError) -> &mut Self {
        self.0.push(error);
        self
    }
    /// Records the error of a check that failed; a passing check adds nothing.
    pub fn check(&mut self, result: std::result::Result<(), FieldError>) -> &mut Self {
        if let Err(e) = result {
            self.0.push(e);
        }
        self
    }
    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) -> &mut Self {
        self.0.extend(errors);
        self
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok` when nothing was recorded, else the 422 with every error.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::Validation(self.0)) }
    }
}

/// Renders the error envelope. Used by `Error` and by the fallbacks that build responses for
/// failures axum detects itself (unknown route, wrong method).
pub fn envelope(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "details": details } });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            // The cause goes to the log only; the client sees a generic message.
            tracing::error!(error = %self, debug = ?self, "request failed");
        }
        let (code, message, details) = self.code_message_details();
        let mut response = envelope(status, code, &message, details);
        if let Error::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl Error {
    /// For places that need a response without owning an `Error` value's generics (panic hook).
    pub fn into_response_static(self) -> Response {
        self.into_response()
    }
}
