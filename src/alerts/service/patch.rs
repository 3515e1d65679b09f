//! `alerts.patch`: triage changes (status with its write-once lifecycle timestamps, severity,
//! close classification, tags, the analyst's malice override), each change an activity event.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AlertDetail, PatchAlert, alert_not_found, detail, find};
use crate::activity::{self, NewEvent, types};
use crate::alerts::model::{self, Lifecycle, parse_enum};
use crate::alerts::store::{self as alerts, AlertChanges};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::db::now;
use crate::domain::{AlertStatus, CloseClassification, Malice, Severity};
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::service::Operation;
use crate::state::AppState;

/// The request as sent; [`validate`] turns it into typed [`Requested`] changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub close_classification: Option<String>,
    /// Replaces the tag list.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub malice_override: Option<String>,
    /// Clears the override (wins over `malice_override`).
    #[serde(default)]
    pub reset_malice_override: Option<bool>,
}

const MAX_TAGS: usize = 100;
const MAX_TAG_CHARS: usize = 255;

/// A validated patch: every supplied field in its domain type.
#[derive(Debug, Default)]
struct Requested {
    status: Option<AlertStatus>,
    severity: Option<Severity>,
    close_classification: Option<CloseClassification>,
    tags: Option<Vec<String>>,
    malice_override: Option<Malice>,
    reset_malice_override: bool,
}

impl Requested {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.severity.is_none()
            && self.close_classification.is_none()
            && self.tags.is_none()
            && self.malice_override.is_none()
            && !self.reset_malice_override
    }
}

/// Parses one optional enumerated field, recording its error.
fn field<T: std::str::FromStr>(errors: &mut FieldErrors, name: &str, value: Option<&str>, names: &[&str]) -> Option<T> {
    let value = value?;
    match parse_enum(name, value, names) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn validate(body: AlertPatch) -> Result<Requested> {
    let mut errors = FieldErrors::default();
    let status = field(&mut errors, "status", body.status.as_deref(), &AlertStatus::NAMES);
    let severity = field(&mut errors, "severity", body.severity.as_deref(), &Severity::NAMES);
    let close_classification =
        field(&mut errors, "close_classification", body.close_classification.as_deref(), &CloseClassification::NAMES);
    let malice_override = field(&mut errors, "malice_override", body.malice_override.as_deref(), &Malice::NAMES);
    if let Some(tags) = &body.tags {
        if tags.len() > MAX_TAGS {
            errors.push(FieldError::body("tags", "too_long", format!("List should have at most {MAX_TAGS} items")));
        }
        for (i, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                errors.push(FieldError::new(
                    "string_length",
                    vec![json!("body"), json!("tags"), json!(i)],
                    format!("Each tag must be 1 to {MAX_TAG_CHARS} characters and not blank"),
                ));
            }
        }
    }
    errors.finish()?;
    if status == Some(AlertStatus::Closed) && close_classification.is_none() {
        let message = "close_classification is required when setting status to Closed.";
        return Err(Error::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "VALIDATION_ERROR",
            message: message.to_owned(),
            details: json!({"errors": [FieldError::body("close_classification", "missing", message)]}),
        });
    }
    Ok(Requested {
        status,
        severity,
        close_classification,
        tags: body.tags,
        malice_override,
        reset_malice_override: body.reset_malice_override == Some(true),
    })
}

/// The activity events and the audit record's `changes` of one patch, collected as the new
/// state is worked out.
#[derive(Default)]
struct ChangeLog {
    events: Vec<(&'static str, Value)>,
    changes: Map<String, Value>,
}

impl ChangeLog {
    fn changed(&mut self, field: &str, from: impl serde::Serialize, to: impl serde::Serialize) {
        self.changes.insert(field.to_owned(), json!({"from": from, "to": to}));
    }
}

/// Applies the patch and returns the alert as it now is.
pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, body: AlertPatch) -> Result<AlertDetail> {
    Ok(patch_from(state, who, uuid, body).await?.1)
}

/// [`patch`], also returning the status the alert had just before it, read under the same row
/// lock as the update (so concurrent patches cannot make it stale).
pub async fn patch_from(state: &AppState, who: &Principal, uuid: Uuid, body: AlertPatch) -> Result<(AlertStatus, AlertDetail)> {
    who.authorize::<PatchAlert>()?;
    let requested = validate(body)?;
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, uuid).await?.ok_or_else(alert_not_found)?;
    let at = now();
    let mut log = ChangeLog::default();

    let status = requested.status.unwrap_or(row.status);
    let current = Lifecycle { acknowledged_at: row.acknowledged_at, triaged_at: row.triaged_at, closed_at: row.closed_at };
    let lifecycle = match requested.status {
        Some(new) => model::apply_status(row.status, new, current, at),
        None => current,
    };
    let close_classification =
        requested.close_classification.map(CloseClassification::as_str).or(row.close_classification.as_deref());
    if status != row.status {
        if status == AlertStatus::Closed {
            log.events.push((types::ALERT_CLOSED, json!({"from_status": row.status, "close_classification": close_classification})));
        } else {
            log.events.push((types::ALERT_STATUS_UPDATED, json!({"from_status": row.status, "to_status": status})));
        }
        log.changed("status", row.status, status);
    }
    if close_classification != row.close_classification.as_deref() {
        log.changed("close_classification", &row.close_classification, close_classification);
    }
    let severity = requested.severity.map_or(row.severity.as_str(), |severity| severity.as_str());
    if severity != row.severity {
        log.events.push((types::ALERT_SEVERITY_UPDATED, json!({"from_severity": row.severity, "to_severity": severity})));
        log.changed("severity", &row.severity, severity);
    }
    let previous_override = row.malice_override.as_deref();
    let (malice_override, malice_override_source, malice_override_at) = if requested.reset_malice_override {
        if previous_override.is_some() {
            log.events.push((types::ALERT_MALICE_UPDATED, json!({"from_malice": previous_override, "to_malice": null, "malice_source": "reset"})));
            log.changed("malice_override", previous_override, None::<&str>);
        }
        (None, None, None)
    } else if let Some(verdict) = requested.malice_override.map(Malice::as_str) {
        if previous_override != Some(verdict) {
            log.events.push((types::ALERT_MALICE_UPDATED, json!({"from_malice": previous_override, "to_malice": verdict, "malice_source": "analyst"})));
            log.changed("malice_override", previous_override, verdict);
        }
        (Some(verdict), Some("analyst"), Some(at))
    } else {
        (previous_override, row.malice_override_source.as_deref(), row.malice_override_at)
    };
    let tags = requested.tags.as_deref().unwrap_or(&row.tags.0);
    if tags != row.tags.0.as_slice() {
        log.changed("tags", &row.tags.0, tags);
    }

    if !requested.is_empty() {
        let changes = AlertChanges {
            status,
            severity,
            close_classification,
            tags,
            acknowledged_at: lifecycle.acknowledged_at,
            triaged_at: lifecycle.triaged_at,
            closed_at: lifecycle.closed_at,
            malice_override,
            malice_override_source,
            malice_override_at,
        };
        alerts::apply_changes(&mut tx, row.id, &changes).await?;
        let actor = who.actor();
        let events = log.events.into_iter().map(|(event_type, references)| NewEvent::for_alert(event_type, &actor, row.id, references));
        activity::record_all(&mut tx, events.collect()).await?;
        let record = Record::success(PatchAlert::NAME, "alert", uuid).with_details(json!({"changes": log.changes}));
        audit::record(&mut tx, who, record).await?;
    }
    tx.commit().await?;
    Ok((row.status, detail(state, find(state, uuid).await?).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_at_once_then_closed_needs_a_classification() {
        let body = AlertPatch {
            status: Some("Done".into()),
            severity: Some("high".into()),
            malice_override: Some("Evil".into()),
            tags: Some(vec![" ".into()]),
            ..AlertPatch::default()
        };
        let Err(Error::Validation(errors)) = validate(body) else { panic!("expected 422") };
        let fields: Vec<String> = errors.iter().map(|e| e.loc[1].as_str().unwrap().to_owned()).collect();
        assert_eq!(fields, ["status", "severity", "malice_override", "tags"]);
        assert_eq!(errors[0].msg, "Input should be 'Open', 'Triaging', 'Escalated' or 'Closed'");

        let closing = AlertPatch { status: Some("Closed".into()), ..AlertPatch::default() };
        assert!(matches!(validate(closing), Err(Error::Client { code: "VALIDATION_ERROR", .. })));
        let typed = validate(AlertPatch {
            status: Some("Closed".into()),
            close_classification: Some("Duplicate".into()),
            reset_malice_override: Some(true),
            ..AlertPatch::default()
        })
        .unwrap();
        assert_eq!(typed.status, Some(AlertStatus::Closed));
        assert_eq!(typed.close_classification, Some(CloseClassification::Duplicate));
        assert!(typed.reset_malice_override && !typed.is_empty());
        assert!(validate(AlertPatch::default()).unwrap().is_empty());
    }
}
