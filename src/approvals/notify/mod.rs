//! Approval notifiers (workflows.md §6.5): where a pending approval request is announced, where
//! its outcome replaces the decision buttons, and where the execution result is reported.
//! `APPROVAL_NOTIFIER` picks one at start-up; each checks its own settings then, so a
//! misconfigured notifier stops the server instead of silently sending nothing.
//!
//! The notifiers are called by the jobs in [`jobs`] only, through the egress gateway. A vendor
//! failure worth retrying (5xx, 429, a timeout) fails the job's attempt and the queue retries it
//! with backoff; a refusal (bad token, unknown channel) fails it for good. Either is logged and
//! never touches the approval request: approving over REST or the decide page works regardless.
//!
//! Adding a notifier is one file implementing [`Notifier`] plus one line in [`NOTIFIERS`].

mod jobs;
mod slack;
mod teams;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

pub use jobs::{SendApprovalNotification, SendApprovalResult, UpdateApprovalNotification, enqueue_outcome, enqueue_outcomes, enqueue_result, retry_policy};

use super::store::ApprovalRow;
use crate::config::Settings;
use crate::egress::{self, Egress, EgressError};

/// A notifier's constructor: it reads (and checks) the settings it needs. `Err` is the start-up
/// error, naming the setting to fix.
type Build = fn(&Settings) -> Result<Box<dyn Notifier>, String>;

/// Every notifier, by its `APPROVAL_NOTIFIER` name.
const NOTIFIERS: &[(&str, Build)] = &[("none", LogOnly::build), ("slack", slack::Slack::build), ("teams", teams::Teams::build)];

/// One chat or messaging integration.
pub trait Notifier: Send + Sync {
    /// Announces a pending request; returns where the message landed when it can be edited later.
    fn request<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<Option<Posted>, NotifyError>>;

    /// Replaces the decision controls of the posted message with the request's outcome (decided,
    /// expired or cancelled). Notifiers that cannot edit what they posted do nothing.
    fn outcome<'a>(&'a self, _egress: &'a Egress, _approval: &'a Approval, _posted: &'a Posted) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async { Ok(()) })
    }

    /// Reports the execution result of an approved request.
    fn result<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// The configured notifier (`APPROVAL_NOTIFIER`, trimmed and lower-cased). Unknown names are
/// refused: Calseta fell back to "none" and sent nothing without a word.
pub fn from_settings(settings: &Settings) -> Result<Box<dyn Notifier>, String> {
    let name = settings.approval_notifier.trim().to_ascii_lowercase();
    let Some((_, build)) = NOTIFIERS.iter().find(|(known, _)| *known == name) else {
        let known: Vec<&str> = NOTIFIERS.iter().map(|(n, _)| *n).collect();
        return Err(format!("APPROVAL_NOTIFIER='{name}' is not a notifier; use one of: {}", known.join(", ")));
    };
    build(settings)
}

/// A setting's value when set and not blank.
fn setting(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// An absolute http(s) URL setting, without its trailing slash.
fn url_setting(name: &str, value: &str) -> Result<String, String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(value.trim_end_matches('/').to_owned()),
        _ => Err(format!("{name} must be an absolute http(s) URL")),
    }
}

/// Where a notifier's message landed (Slack: channel id and message `ts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

/// Who decided, as a notifier shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    Slack { user_id: String },
    Key { channel: String, name: String, prefix: String },
    Browser,
    System,
}

/// What a notifier knows of a request: its facts, its state, and where it was posted.
#[derive(Debug, Clone)]
pub struct Approval {
    pub uuid: Uuid,
    pub workflow_name: String,
    pub risk_level: String,
    pub indicator_type: String,
    pub indicator_value: String,
    pub trigger: String,
    pub confidence_percent: i64,
    pub reason: String,
    pub expires_at: DateTime<Utc>,
    /// The workflow's own channel, if it names one.
    pub channel: Option<String>,
    /// The browser decide link, when the decide token could be recovered (needs `ENCRYPTION_KEY`).
    pub decide_url: Option<String>,
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`.
    pub status: String,
    pub decided_by: Option<DecidedBy>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The run's `(success, message)` once an approved request executed.
    pub execution: Option<(bool, String)>,
    pub posted: Option<Posted>,
}

impl Approval {
    pub(crate) fn from_row(row: &ApprovalRow, decide_url: Option<String>) -> Approval {
        let context = row.trigger_context.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let decided_by = row.decided_by_type.as_deref().map(|kind| match kind {
            "slack" => DecidedBy::Slack { user_id: row.decided_by_id.clone().unwrap_or_default() },
            "api" | "mcp" => DecidedBy::Key {
                channel: kind.to_owned(),
                name: row.decided_by_key_name.clone().unwrap_or_default(),
                prefix: row.decided_by_key_prefix.clone().unwrap_or_default(),
            },
            "browser" => DecidedBy::Browser,
            _ => DecidedBy::System,
        });
        let execution = row.execution_result.as_ref().map(|r| {
            (r.0["success"].as_bool().unwrap_or(false), r.0["message"].as_str().unwrap_or_default().to_owned())
        });
        let posted = match (&row.external_channel_id, &row.external_message_id) {
            (Some(channel), Some(ts)) => Some(Posted { channel: channel.clone(), ts: ts.clone() }),
            _ => None,
        };
        Approval {
            uuid: row.uuid,
            workflow_name: row.workflow_name.clone().unwrap_or_default(),
            risk_level: row.risk_level.clone().unwrap_or_else(|| "medium".into()),
            indicator_type: text(&context["indicator_type"]),
            indicator_value: text(&context["indicator_value"]),
            trigger: row.trigger_type.clone(),
            confidence_percent: (row.confidence * 100.0).round() as i64,
            reason: row.reason.clone(),
            expires_at: row.expires_at,
            channel: row.notifier_channel.clone().filter(|c| !c.trim().is_empty()),
            decide_url,
            status: row.status.clone(),
            decided_by,
            decided_at: row.responded_at,
            execution,
            posted,
        }
    }

    /// `YYYY-MM-DD HH:MM UTC`, as Calseta's messages show times.
    pub fn time(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// Worth another attempt later: the vendor is down, slow or rate-limiting.
    Transient(String),
    /// The vendor refused what was sent (credentials, channel, payload): retrying cannot help.
    Permanent(String),
}

impl NotifyError {
    /// A failed exchange: timeouts and transport errors are transient; a refusal by the egress
    /// policy or an oversized answer is not.
    fn from_egress(what: &str, error: EgressError) -> NotifyError {
        match error {
            EgressError::Timeout(_) | EgressError::Transport(_) => NotifyError::Transient(format!("{what}: {error}")),
            _ => NotifyError::Permanent(format!("{what}: {error}")),
        }
    }

    /// A non-success HTTP status: 408, 429 and 5xx are transient, the rest a refusal.
    fn from_status(what: &str, status: u16) -> NotifyError {
        let message = format!("{what}: HTTP {status}");
        if status == 408 || status == 429 || status >= 500 { NotifyError::Transient(message) } else { NotifyError::Permanent(message) }
    }
}

/// POSTs a JSON body through the gateway. `headers` may carry credentials: they are never part
/// of an error message (the gateway's messages leave out URLs and header values).
async fn post_json(egress: &Egress, what: &str, url: &str, headers: Vec<(String, String)>, body: serde_json::Value) -> Result<egress::Response, NotifyError> {
    let request = egress::Request {
        method: http::Method::POST,
        url: url.to_owned(),
        headers,
        body: egress::Body::Json(body),
        timeout: std::time::Duration::from_secs(15),
    };
    egress.send(request).await.map_err(|e| NotifyError::from_egress(what, e))
}

/// `APPROVAL_NOTIFIER=none`: Calseta's "none" notifier logs that nothing was sent.
struct LogOnly;

impl LogOnly {
    fn build(_: &Settings) -> Result<Box<dyn Notifier>, String> {
        Ok(Box::new(LogOnly))
    }
}

impl Notifier for LogOnly {
    fn request<'a>(&'a self, _: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<Option<Posted>, NotifyError>> {
        tracing::info!(
            approval = %approval.uuid,
            workflow = approval.workflow_name,
            risk = approval.risk_level,
            channel = approval.channel.as_deref().unwrap_or(""),
            expires_at = %approval.expires_at,
            "approval requested; no notifier configured, no notification sent"
        );
        Box::pin(async { Ok(None) })
    }

    fn result<'a>(&'a self, _: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<(), NotifyError>> {
        tracing::info!(approval = %approval.uuid, workflow = approval.workflow_name, "approved workflow executed; no notifier configured");
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            let value = (*v).to_owned();
            match *k {
                "notifier" => s.approval_notifier = value,
                "token" => s.slack_bot_token = Some(value),
                "channel" => s.approval_default_channel = Some(value),
                "secret" => s.slack_signing_secret = Some(value),
                "teams" => s.teams_webhook_url = Some(value),
                "slack_api" => s.slack_api_base_url = value,
                _ => unreachable!(),
            }
        }
        s
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        from_settings(&settings(pairs)).err().unwrap_or_default()
    }

    #[test]
    fn each_notifier_names_what_it_misses() {
        assert!(from_settings(&settings(&[])).is_ok(), "none needs nothing");
        assert!(refusal(&[("notifier", "pager")]).contains("APPROVAL_NOTIFIER='pager'"));
        assert!(refusal(&[("notifier", "slack")]).contains("SLACK_BOT_TOKEN"));
        assert!(refusal(&[("notifier", "slack"), ("token", "xoxb-1")]).contains("APPROVAL_DEFAULT_CHANNEL"));
        assert!(refusal(&[("notifier", "slack"), ("token", "xoxb-1"), ("channel", "#soc")]).contains("SLACK_SIGNING_SECRET"));
        let slack = [("notifier", " Slack "), ("token", "xoxb-1"), ("channel", "#soc"), ("secret", "s")];
        assert!(from_settings(&settings(&slack)).is_ok());
        let mut bad_base = slack.to_vec();
        bad_base.push(("slack_api", "slack.com/api"));
        assert!(refusal(&bad_base).contains("SLACK_API_BASE_URL"));
        assert!(refusal(&[("notifier", "teams")]).contains("TEAMS_WEBHOOK_URL"));
        assert!(refusal(&[("notifier", "teams"), ("teams", "not a url")]).contains("TEAMS_WEBHOOK_URL"));
        assert!(from_settings(&settings(&[("notifier", "teams"), ("teams", "https://example.webhook.office.com/x")])).is_ok());
    }

    #[test]
    fn refusals_never_echo_secret_values() {
        let message = refusal(&[("notifier", "teams"), ("teams", "ftp://hooks.example/very-secret-path")]);
        assert!(!message.contains("very-secret-path"), "{message}");
    }

    #[test]
    fn statuses_worth_retrying() {
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(NotifyError::from_status("x", status), NotifyError::Transient(_)), "{status}");
        }
        for status in [400, 401, 403, 404, 410] {
            assert!(matches!(NotifyError::from_status("x", status), NotifyError::Permanent(_)), "{status}");
        }
    }
}
