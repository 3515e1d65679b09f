//! The Teams notifier (workflows.md §6.5): an Adaptive Card 1.4 posted to `TEAMS_WEBHOOK_URL`
//! (an incoming webhook or a Workflows "post to channel" URL). Incoming webhooks cannot carry
//! interactive actions back to us and cannot edit a posted card, so the card links to the browser
//! decide page and the outcome is not shown on it; the execution result is a second card.
//!
//! The webhook URL is itself the credential (anyone holding it can post to the channel): it is
//! never logged, and errors name "Teams webhook" only.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Approval, DecidedBy, Notifier, NotifyError, Posted, post_json, setting, url_setting};
use crate::config::Settings;
use crate::egress::Egress;

const WHAT: &str = "Teams webhook";

pub struct Teams {
    webhook_url: String,
}

impl Teams {
    pub fn build(settings: &Settings) -> Result<Box<dyn Notifier>, String> {
        let url = setting(&settings.teams_webhook_url)
            .ok_or("APPROVAL_NOTIFIER=teams needs TEAMS_WEBHOOK_URL (the channel's incoming webhook URL)")?;
        Ok(Box::new(Teams { webhook_url: url_setting("TEAMS_WEBHOOK_URL", &url)? }))
    }

    async fn post(&self, egress: &Egress, card: Value) -> Result<(), NotifyError> {
        let message = json!({
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        });
        let response = post_json(egress, WHAT, &self.webhook_url, Vec::new(), message).await?;
        match response.status {
            200..=202 => Ok(()),
            status => Err(NotifyError::from_status(WHAT, status)),
        }
    }
}

impl Notifier for Teams {
    fn request<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<Option<Posted>, NotifyError>> {
        Box::pin(async move { self.post(egress, request_card(approval)).await.map(|()| None) })
    }

    fn result<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move { self.post(egress, result_card(approval)).await })
    }
}

fn card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = json!(actions);
    }
    card
}

fn facts(pairs: &[(&str, String)]) -> Value {
    json!({"type": "FactSet", "facts": pairs.iter().map(|(title, value)| json!({"title": title, "value": value})).collect::<Vec<_>>()})
}

/// The request card. Its one action opens the browser decide page (when the decide link is
/// known). Calseta also offered "Approve/Reject via API" links, which open a browser GET on
/// POST-only routes and can never work; they are left out.
pub(super) fn request_card(a: &Approval) -> Value {
    let body = vec![
        json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
               "text": format!("[{} RISK] Workflow Approval Required", a.risk_level.to_uppercase())}),
        json!({"type": "TextBlock", "wrap": true, "text": a.workflow_name}),
        facts(&[
            ("Indicator", format!("{}: {}", a.indicator_type, a.indicator_value)),
            ("Trigger", a.trigger.clone()),
            ("Confidence", format!("{}%", a.confidence_percent)),
            ("Risk Level", a.risk_level.clone()),
            ("Expires", Approval::time(a.expires_at)),
        ]),
        json!({"type": "TextBlock", "wrap": true, "text": format!("**Agent reason:** {}", a.reason)}),
    ];
    let actions = a.decide_url.iter().map(|url| json!({"type": "Action.OpenUrl", "title": "Review & Decide", "url": url})).collect();
    card(body, actions)
}

pub(super) fn result_card(a: &Approval) -> Value {
    let (success, message) = a.execution.clone().unwrap_or_default();
    let by = match &a.decided_by {
        Some(DecidedBy::Slack { user_id }) => format!("Slack user {user_id}"),
        Some(DecidedBy::Key { name, prefix, .. }) => format!("{name} ({prefix})"),
        Some(DecidedBy::Browser) => "browser decide link".to_owned(),
        Some(DecidedBy::System) | None => "system".to_owned(),
    };
    card(
        vec![
            json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "color": "Good", "wrap": true,
                   "text": format!("Workflow Approved: {}", a.workflow_name)}),
            facts(&[
                ("Decision", format!("Approved by {by}")),
                ("Workflow", a.workflow_name.clone()),
                ("Execution result", format!("{} {message}", if success { "✅" } else { "❌" })),
            ]),
        ],
        Vec::new(),
    )
}
