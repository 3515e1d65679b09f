//! The workflow API's request and response shapes (the contract's field names and order), and
//! the checks on client input. Shapes only: no I/O here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{RunRow, VersionRow, WorkflowRow};
use crate::domain::IndicatorType;
use crate::error::{FieldError, FieldErrors};
use crate::http::extract::{MEDIUM_JSON_BYTES, check_json_size};

pub const WORKFLOW_TYPES: &[&str] = &["indicator", "alert"];
pub const STATES: &[&str] = &["draft", "active", "inactive"];
pub const RISK_LEVELS: &[&str] = &["low", "medium", "high", "critical"];
pub const APPROVAL_MODES: &[&str] = &["always", "agent_only", "never"];
pub const RUN_STATUSES: &[&str] = &["queued", "success", "failed", "timed_out"];

const NAME_MAX: usize = 255;
/// Workflow source is stored and shipped to the sandbox on every run: keep it bounded.
const CODE_MAX_BYTES: usize = 256 * 1024;
const DOCUMENTATION_MAX_BYTES: usize = 64 * 1024;
const SHORT_TEXT_MAX: usize = 255;
const LIST_MAX_ITEMS: usize = 50;
/// Runs execute inside a job whose lease must outlive them (see `runs`), so the timeout has a
/// ceiling Calseta does not have.
pub const TIMEOUT_MAX_SECONDS: i32 = 3600;
const APPROVAL_TIMEOUT_MAX_SECONDS: i32 = 7 * 24 * 3600;

/// `GET /v1/workflows` item: everything but the code and run settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub uuid: Uuid,
    pub name: String,
    pub workflow_type: Option<String>,
    pub indicator_types: Vec<String>,
    pub state: String,
    pub code_version: i32,
    pub is_active: bool,
    pub is_system: bool,
    pub tags: Vec<String>,
    pub time_saved_minutes: Option<i32>,
    pub approval_mode: String,
    pub risk_level: String,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The full workflow, code and approval settings included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowResponse {
    #[serde(flatten)]
    pub summary: WorkflowSummary,
    pub code: String,
    pub timeout_seconds: i32,
    pub retry_count: i32,
    pub approval_channel: Option<String>,
    pub approval_timeout_seconds: i32,
}

impl From<WorkflowRow> for WorkflowSummary {
    fn from(row: WorkflowRow) -> Self {
        WorkflowResponse::from(row).summary
    }
}

impl From<WorkflowRow> for WorkflowResponse {
    fn from(row: WorkflowRow) -> Self {
        WorkflowResponse {
            summary: WorkflowSummary {
                uuid: row.uuid,
                name: row.name,
                workflow_type: row.workflow_type,
                indicator_types: row.indicator_types.0,
                state: row.state,
                code_version: row.code_version,
                is_active: row.is_active,
                is_system: row.is_system,
                tags: row.tags.0,
                time_saved_minutes: row.time_saved_minutes,
                approval_mode: row.approval_mode,
                risk_level: row.risk_level,
                documentation: row.documentation,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            code: row.code,
            timeout_seconds: row.timeout_seconds,
            retry_count: row.retry_count,
            approval_channel: row.approval_channel,
            approval_timeout_seconds: row.approval_timeout_seconds,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowVersionResponse {
    pub version: i32,
    pub code_preview: String,
    pub saved_at: DateTime<Utc>,
}

impl From<VersionRow> for WorkflowVersionResponse {
    fn from(row: VersionRow) -> Self {
        WorkflowVersionResponse { version: row.version, code_preview: row.code.chars().take(120).collect(), saved_at: row.saved_at }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowRunResponse {
    pub uuid: Uuid,
    pub workflow_id: i64,
    pub trigger_type: String,
    pub trigger_context: Option<Value>,
    pub code_version_executed: i32,
    pub status: String,
    pub attempt_count: i32,
    pub log_output: Option<String>,
    pub result: Option<Value>,
    pub duration_ms: Option<i64>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RunRow> for WorkflowRunResponse {
    fn from(row: RunRow) -> Self {
        WorkflowRunResponse {
            uuid: row.uuid,
            workflow_id: row.workflow_id,
            trigger_type: row.trigger_type,
            trigger_context: row.trigger_context.map(|c| c.0),
            code_version_executed: row.code_version_executed,
            status: row.status,
            attempt_count: row.attempt_count,
            log_output: row.log_output,
            result: row.result.map(|r| r.0),
            duration_ms: row.duration_ms.map(i64::from),
            started_at: row.started_at,
            completed_at: row.completed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn default_state() -> String {
    "draft".into()
}
fn default_timeout() -> i32 {
    300
}
fn default_true() -> bool {
    true
}
fn default_approval_mode() -> String {
    "always".into()
}
fn default_approval_timeout() -> i32 {
    3600
}
fn default_risk() -> String {
    "medium".into()
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCreate {
    pub name: String,
    /// Python source defining `async def run(ctx)`; validated at save.
    pub code: String,
    #[serde(default)]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub indicator_types: Vec<String>,
    #[serde(default = "default_state")]
    pub state: String,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: i32,
    #[serde(default)]
    pub retry_count: i32,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub time_saved_minutes: Option<i32>,
    #[serde(default = "default_approval_mode")]
    pub approval_mode: String,
    #[serde(default)]
    pub approval_channel: Option<String>,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_seconds: i32,
    #[serde(default = "default_risk")]
    pub risk_level: String,
    #[serde(default)]
    pub documentation: Option<String>,
}

/// PATCH body: any create field; `null` leaves a field unchanged (Calseta's "nulls ignored").
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub indicator_types: Option<Vec<String>>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
    #[serde(default)]
    pub retry_count: Option<i32>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub time_saved_minutes: Option<i32>,
    #[serde(default)]
    pub approval_mode: Option<String>,
    #[serde(default)]
    pub approval_channel: Option<String>,
    #[serde(default)]
    pub approval_timeout_seconds: Option<i32>,
    #[serde(default)]
    pub risk_level: Option<String>,
    #[serde(default)]
    pub documentation: Option<String>,
}

impl From<WorkflowCreate> for WorkflowPatch {
    fn from(c: WorkflowCreate) -> Self {
        WorkflowPatch {
            name: Some(c.name),
            code: Some(c.code),
            workflow_type: c.workflow_type,
            indicator_types: Some(c.indicator_types),
            state: Some(c.state),
            timeout_seconds: Some(c.timeout_seconds),
            retry_count: Some(c.retry_count),
            is_active: Some(c.is_active),
            tags: Some(c.tags),
            time_saved_minutes: c.time_saved_minutes,
            approval_mode: Some(c.approval_mode),
            approval_channel: c.approval_channel,
            approval_timeout_seconds: Some(c.approval_timeout_seconds),
            risk_level: Some(c.risk_level),
            documentation: c.documentation,
        }
    }
}

fn one_of(errors: &mut FieldErrors, field: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(value) = value
        && !allowed.contains(&value)
    {
        errors.push(FieldError::body(field, "enum", format!("{field} must be one of: {}", allowed.join(", "))));
    }
}

fn text(errors: &mut FieldErrors, field: &str, value: Option<&str>, max_chars: usize, required: bool) {
    let Some(value) = value else { return };
    if (required && value.trim().is_empty()) || value.chars().count() > max_chars {
        let rule = if required { "1 to " } else { "at most " };
        errors.push(FieldError::body(field, "string_length", format!("{field} must be {rule}{max_chars} characters")));
    }
}

fn range(errors: &mut FieldErrors, field: &str, value: Option<i32>, min: i32, max: i32) {
    if let Some(value) = value
        && !(min..=max).contains(&value)
    {
        errors.push(FieldError::body(field, "range", format!("{field} must be between {min} and {max}")));
    }
}

fn list(errors: &mut FieldErrors, field: &str, items: Option<&[String]>) {
    let Some(items) = items else { return };
    if items.len() > LIST_MAX_ITEMS || items.iter().any(|i| i.trim().is_empty() || i.chars().count() > SHORT_TEXT_MAX) {
        errors.push(FieldError::body(
            field,
            "list",
            format!("{field} takes at most {LIST_MAX_ITEMS} items of 1 to {SHORT_TEXT_MAX} characters"),
        ));
    }
}

impl WorkflowPatch {
    /// Field checks shared by create and PATCH (422 with every problem). The code's AST and
    /// compile checks come after, as 400 `WORKFLOW_CODE_INVALID`.
    pub fn check(&self) -> crate::error::Result<()> {
        let mut errors = FieldErrors::default();
        text(&mut errors, "name", self.name.as_deref(), NAME_MAX, true);
        if self.code.as_ref().is_some_and(|c| c.len() > CODE_MAX_BYTES) {
            errors.push(FieldError::body("code", "string_length", format!("code must be at most {} KB", CODE_MAX_BYTES / 1024)));
        }
        one_of(&mut errors, "workflow_type", self.workflow_type.as_deref(), WORKFLOW_TYPES);
        if let Some(types) = &self.indicator_types
            && (types.len() > IndicatorType::ALL.len() || types.iter().any(|t| t.parse::<IndicatorType>().is_err()))
        {
            let allowed: Vec<&str> = IndicatorType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(FieldError::body("indicator_types", "enum", format!("indicator_types items must be one of: {}", allowed.join(", "))));
        }
        one_of(&mut errors, "state", self.state.as_deref(), STATES);
        range(&mut errors, "timeout_seconds", self.timeout_seconds, 1, TIMEOUT_MAX_SECONDS);
        range(&mut errors, "retry_count", self.retry_count, 0, 10);
        list(&mut errors, "tags", self.tags.as_deref());
        range(&mut errors, "time_saved_minutes", self.time_saved_minutes, 0, 100_000);
        one_of(&mut errors, "approval_mode", self.approval_mode.as_deref(), APPROVAL_MODES);
        text(&mut errors, "approval_channel", self.approval_channel.as_deref(), SHORT_TEXT_MAX, false);
        range(&mut errors, "approval_timeout_seconds", self.approval_timeout_seconds, 0, APPROVAL_TIMEOUT_MAX_SECONDS);
        one_of(&mut errors, "risk_level", self.risk_level.as_deref(), RISK_LEVELS);
        if self.documentation.as_ref().is_some_and(|d| d.len() > DOCUMENTATION_MAX_BYTES) {
            errors.push(FieldError::body("documentation", "string_length", "documentation must be at most 64 KB"));
        }
        errors.finish()
    }
}

/// `POST /v1/workflows/{uuid}/execute`. The trigger type is the caller key's type, never a field.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowExecuteRequest {
    pub indicator_type: String,
    pub indicator_value: String,
    #[serde(default)]
    pub alert_uuid: Option<Uuid>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub confidence: Option<f64>,
}

const INDICATOR_VALUE_MAX: usize = 2048;
const REASON_MAX: usize = 4096;

fn check_indicator(errors: &mut FieldErrors, indicator_type: &str, value: &str) {
    if indicator_type.parse::<IndicatorType>().is_err() {
        let allowed: Vec<&str> = IndicatorType::ALL.iter().map(|t| t.as_str()).collect();
        errors.push(FieldError::body("indicator_type", "enum", format!("indicator_type must be one of: {}", allowed.join(", "))));
    }
    if value.trim().is_empty() || value.chars().count() > INDICATOR_VALUE_MAX {
        errors.push(FieldError::body("indicator_value", "string_length", format!("indicator_value must be 1 to {INDICATOR_VALUE_MAX} characters")));
    }
}

impl WorkflowExecuteRequest {
    pub fn check(&self) -> crate::error::Result<()> {
        let mut errors = FieldErrors::default();
        check_indicator(&mut errors, &self.indicator_type, &self.indicator_value);
        if let Some(c) = self.confidence
            && !(0.0..=1.0).contains(&c)
        {
            errors.push(FieldError::body("confidence", "range", "confidence must be between 0 and 1"));
        }
        text(&mut errors, "reason", self.reason.as_deref(), REASON_MAX, false);
        errors.finish()
    }
}

/// 202 answers of execute: a queued run, or a pending approval request (no `meta`, as Calseta).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ExecuteOutcome {
    Queued { run_uuid: Uuid, status: &'static str },
    PendingApproval { status: &'static str, approval_request_uuid: Uuid, expires_at: DateTime<Utc> },
}

fn default_test_type() -> String {
    "ip".into()
}
fn default_test_value() -> String {
    "1.2.3.4".into()
}
fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTestRequest {
    #[serde(default = "default_test_type")]
    pub indicator_type: String,
    #[serde(default = "default_test_value")]
    pub indicator_value: String,
    /// The JSON body every `ctx.http` request gets (HTTP 200) unless `live_http`.
    #[serde(default = "empty_object")]
    pub mock_http_responses: Value,
    /// Send `ctx.http` requests for real, through the egress gateway (SSRF rules apply).
    #[serde(default)]
    pub live_http: bool,
}

impl WorkflowTestRequest {
    pub fn check(&self) -> crate::error::Result<()> {
        let mut errors = FieldErrors::default();
        check_indicator(&mut errors, &self.indicator_type, &self.indicator_value);
        if !self.mock_http_responses.is_object() {
            errors.push(FieldError::body("mock_http_responses", "dict_type", "mock_http_responses must be an object"));
        } else {
            errors.check(check_json_size("mock_http_responses", &self.mock_http_responses, MEDIUM_JSON_BYTES));
        }
        errors.finish()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowTestResponse {
    pub success: bool,
    pub message: String,
    pub log_output: String,
    /// Always 0, as Calseta answers.
    pub duration_ms: i64,
    pub result_data: Value,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowGenerateRequest {
    pub description: String,
    #[serde(default)]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub indicator_types: Vec<String>,
}

const DESCRIPTION_MAX: usize = 8192;

impl WorkflowGenerateRequest {
    pub fn check(&self) -> crate::error::Result<()> {
        let mut errors = FieldErrors::default();
        text(&mut errors, "description", Some(&self.description), DESCRIPTION_MAX, true);
        text(&mut errors, "workflow_type", self.workflow_type.as_deref(), SHORT_TEXT_MAX, false);
        list(&mut errors, "indicator_types", Some(&self.indicator_types));
        errors.finish()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowGenerateResponse {
    pub generated_code: String,
    pub suggested_name: String,
    pub suggested_documentation: String,
    pub warnings: Vec<String>,
}
