//! The shapes of `/v1/agents` (api.md §11, the contract's `AgentRegistration*`) and their
//! field validation. The extensions (`redact_untrusted_fields`, `signing_secret`,
//! `previous_secret_expires_at`) default so that Calseta clients see Calseta's behaviour.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::AgentRow;
use crate::domain::Severity;
use crate::error::{FieldError, FieldErrors};

pub const MAX_NAME: usize = 255;
const MAX_URL: usize = 2048;
const MAX_HEADER_NAME: usize = 255;
const MAX_HEADER_VALUE: usize = 8192;
const MAX_DOCUMENTATION: usize = 100_000;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_TRIGGER_ITEMS: usize = 100;

/// A registration as returned: the auth header *value* and the signing secrets are never here.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentResponse {
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub endpoint_url: String,
    pub auth_header_name: Option<String>,
    pub trigger_on_sources: Vec<String>,
    pub trigger_on_severities: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub trigger_filter: Option<Value>,
    pub timeout_seconds: i32,
    pub retry_count: i32,
    pub is_active: bool,
    pub documentation: Option<String>,
    /// Extension: mask PII and credential-looking strings in the payload's untrusted fields.
    pub redact_untrusted_fields: bool,
    /// Extension: until then deliveries carry the previous secret's signature too (rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AgentRow> for AgentResponse {
    fn from(row: AgentRow) -> Self {
        AgentResponse {
            uuid: row.uuid,
            name: row.name,
            description: row.description,
            endpoint_url: row.endpoint_url,
            auth_header_name: row.auth_header_name,
            trigger_on_sources: row.trigger_on_sources.0,
            trigger_on_severities: row.trigger_on_severities.0,
            trigger_filter: row.trigger_filter.map(|f| f.0),
            timeout_seconds: row.timeout_seconds,
            retry_count: row.retry_count,
            is_active: row.is_active,
            documentation: row.documentation,
            redact_untrusted_fields: row.redact_untrusted_fields,
            previous_secret_expires_at: row.previous_signing_secret_expires_at.filter(|until| *until > Utc::now()),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The create and rotate-secret responses: the registration plus its signing secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentWithSecret {
    #[serde(flatten)]
    pub agent: AgentResponse,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Never shown again; `null`
    /// when the server has no `ENCRYPTION_KEY` to store it with (deliveries are then unsigned).
    pub signing_secret: Option<String>,
}

fn default_timeout() -> i32 {
    30
}
fn default_retries() -> i32 {
    3
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub endpoint_url: String,
    #[serde(default)]
    pub auth_header_name: Option<String>,
    /// Secret: sealed before storage, never returned.
    #[serde(default)]
    pub auth_header_value: Option<String>,
    #[serde(default)]
    pub trigger_on_sources: Vec<String>,
    #[serde(default)]
    pub trigger_on_severities: Vec<String>,
    /// A targeting-rules document (`match_any` / `match_all`), validated on write.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub trigger_filter: Option<Value>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: i32,
    #[serde(default = "default_retries")]
    pub retry_count: i32,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default)]
    pub redact_untrusted_fields: bool,
}

/// Every field optional; `null` means "leave unchanged".
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub auth_header_name: Option<String>,
    #[serde(default)]
    pub auth_header_value: Option<String>,
    #[serde(default)]
    pub trigger_on_sources: Option<Vec<String>>,
    #[serde(default)]
    pub trigger_on_severities: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub trigger_filter: Option<Value>,
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
    #[serde(default)]
    pub retry_count: Option<i32>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default)]
    pub redact_untrusted_fields: Option<bool>,
}

/// `POST /v1/agents/{uuid}/test` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentTestResult {
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// `POST /v1/alerts/{uuid}/trigger-agents` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerResult {
    pub queued_agent_count: usize,
    pub agent_names: Vec<String>,
}

/// `POST /v1/alerts/{uuid}/dispatch-agent` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct DispatchResult {
    pub agent_uuid: Uuid,
    pub agent_name: String,
    pub alert_uuid: Uuid,
}

fn length(errors: &mut FieldErrors, field: &str, value: Option<&str>, min: usize, max: usize) {
    if let Some(value) = value {
        let chars = value.chars().count();
        if chars < min || chars > max || (min > 0 && value.trim().is_empty()) {
            let kind = if chars > max { "string_too_long" } else { "string_too_short" };
            errors.push(FieldError::body(field, kind, format!("{field} must be {min} to {max} characters")));
        }
    }
}

fn range(errors: &mut FieldErrors, field: &str, value: Option<i32>, min: i32, max: i32) {
    if let Some(value) = value
        && !(min..=max).contains(&value)
    {
        errors.push(FieldError::body(field, "value_error", format!("{field} must be between {min} and {max}")));
    }
}

/// The auth header's name must be a valid HTTP header name and must not shadow a header the
/// signer owns (operators can never replace the signature headers).
fn header_name(errors: &mut FieldErrors, name: Option<&str>) {
    let Some(name) = name else { return };
    length(errors, "auth_header_name", Some(name), 1, MAX_HEADER_NAME);
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        errors.push(FieldError::body("auth_header_name", "value_error", "auth_header_name is not a valid HTTP header name"));
    } else if super::signing::RESERVED_HEADERS.iter().any(|reserved| reserved.eq_ignore_ascii_case(name)) {
        errors.push(FieldError::body(
            "auth_header_name",
            "value_error",
            format!("auth_header_name may not be one of the signing headers {:?}", super::signing::RESERVED_HEADERS),
        ));
    }
}

fn header_value(errors: &mut FieldErrors, value: Option<&str>) {
    let Some(value) = value else { return };
    length(errors, "auth_header_value", Some(value), 1, MAX_HEADER_VALUE);
    if http::HeaderValue::from_str(value).is_err() {
        errors.push(FieldError::body("auth_header_value", "value_error", "auth_header_value is not a valid HTTP header value"));
    }
}

fn triggers(errors: &mut FieldErrors, sources: Option<&[String]>, severities: Option<&[String]>) {
    for (field, list) in [("trigger_on_sources", sources), ("trigger_on_severities", severities)] {
        if list.is_some_and(|l| l.len() > MAX_TRIGGER_ITEMS) {
            errors.push(FieldError::body(field, "too_long", format!("{field} may hold at most {MAX_TRIGGER_ITEMS} items")));
        }
    }
    for (index, severity) in severities.unwrap_or_default().iter().enumerate() {
        if Severity::from_str(severity).is_err() {
            let allowed: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(FieldError::new(
                "enum",
                vec!["body".into(), "trigger_on_severities".into(), index.into()],
                format!("trigger_on_severities[{index}]: {severity:?} is not one of {allowed:?}"),
            ));
        }
    }
    for (index, source) in sources.unwrap_or_default().iter().enumerate() {
        if source.is_empty() || source.chars().count() > MAX_NAME {
            errors.push(FieldError::new(
                "value_error",
                vec!["body".into(), "trigger_on_sources".into(), index.into()],
                format!("trigger_on_sources[{index}] must be 1 to {MAX_NAME} characters"),
            ));
        }
    }
}

fn filter(errors: &mut FieldErrors, value: Option<&Value>) {
    if let Some(value) = value.filter(|v| !v.is_null())
        && let Err(problems) = crate::context::targeting::validate(value, "trigger_filter")
    {
        errors.extend(problems);
    }
}

impl AgentCreate {
    /// Every field-level problem at once (the URL's SSRF vetting is the service's, it needs DNS).
    /// A create is checked as the PATCH that would set every field on an agent without an auth
    /// header: the same rules, including "both header fields or neither".
    pub fn validate(&self) -> crate::error::Result<()> {
        let as_patch = AgentPatch {
            name: Some(self.name.clone()),
            description: self.description.clone(),
            endpoint_url: Some(self.endpoint_url.clone()),
            auth_header_name: self.auth_header_name.clone(),
            auth_header_value: self.auth_header_value.clone(),
            trigger_on_sources: Some(self.trigger_on_sources.clone()),
            trigger_on_severities: Some(self.trigger_on_severities.clone()),
            trigger_filter: self.trigger_filter.clone(),
            timeout_seconds: Some(self.timeout_seconds),
            retry_count: Some(self.retry_count),
            is_active: Some(self.is_active),
            documentation: self.documentation.clone(),
            redact_untrusted_fields: Some(self.redact_untrusted_fields),
        };
        as_patch.validate(false)
    }
}

impl AgentPatch {
    /// `has_auth_header` says whether the stored row holds the name/value pair already: a PATCH
    /// may replace either side then, but cannot create half a pair (Calseta answered that with
    /// the database's CHECK violation, a 500).
    pub fn validate(&self, has_auth_header: bool) -> crate::error::Result<()> {
        let mut errors = FieldErrors::default();
        length(&mut errors, "name", self.name.as_deref(), 1, MAX_NAME);
        length(&mut errors, "description", self.description.as_deref(), 0, MAX_DESCRIPTION);
        length(&mut errors, "endpoint_url", self.endpoint_url.as_deref(), 1, MAX_URL);
        length(&mut errors, "documentation", self.documentation.as_deref(), 0, MAX_DOCUMENTATION);
        header_name(&mut errors, self.auth_header_name.as_deref());
        header_value(&mut errors, self.auth_header_value.as_deref());
        if !has_auth_header && self.auth_header_name.is_some() != self.auth_header_value.is_some() {
            errors.push(FieldError::body(
                "auth_header_value",
                "value_error",
                "auth_header_name and auth_header_value must be provided together",
            ));
        }
        triggers(&mut errors, self.trigger_on_sources.as_deref(), self.trigger_on_severities.as_deref());
        filter(&mut errors, self.trigger_filter.as_ref());
        range(&mut errors, "timeout_seconds", self.timeout_seconds, 1, 300);
        range(&mut errors, "retry_count", self.retry_count, 0, 10);
        errors.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(body: Value) -> AgentCreate {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn create_rules() {
        assert!(create(json!({"name": "a", "endpoint_url": "https://x.example/h"})).validate().is_ok());
        let bad = create(json!({"name": "", "endpoint_url": "https://x", "auth_header_name": "webhook-signature",
            "trigger_on_severities": ["high"], "trigger_filter": {"match_any": [{"field": "nope", "op": "eq", "value": 1}]},
            "timeout_seconds": 0, "retry_count": 11}));
        let Err(crate::error::Error::Validation(errors)) = bad.validate() else { panic!() };
        let fields: Vec<String> = errors.iter().map(|e| e.loc[1].as_str().unwrap().to_owned()).collect();
        for expected in ["name", "auth_header_name", "auth_header_value", "trigger_on_severities", "trigger_filter", "timeout_seconds", "retry_count"] {
            assert!(fields.iter().any(|f| f == expected), "{expected} missing from {fields:?}");
        }
    }

    #[test]
    fn patch_pairs() {
        let patch = AgentPatch { auth_header_value: Some("v".into()), ..Default::default() };
        assert!(patch.validate(false).is_err());
        assert!(patch.validate(true).is_ok());
        let patch = AgentPatch { auth_header_name: Some("Content-Type".into()), auth_header_value: Some("x".into()), ..Default::default() };
        assert!(patch.validate(true).is_err(), "content-type is the signer's");
    }
}
