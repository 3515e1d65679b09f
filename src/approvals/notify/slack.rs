//! The Slack notifier (workflows.md §6.5): `chat.postMessage` with the request's blocks and
//! Approve/Reject buttons (their `action_id` is what the signed interactivity callback decides
//! on), `chat.update` replacing the buttons with the outcome, and a result message in the
//! request's thread. The bot token is sent as a bearer header only; it is never logged.
//!
//! Text from agents and workflows (reason, indicator, names) is escaped for Slack's mrkdwn
//! (`&`, `<`, `>`): unescaped, an agent's reason could ping `<!channel>` or show a disguised
//! `<https://evil|link>` next to the Approve button. Texts are cut to Slack's block limits so a
//! long reason cannot make Slack refuse the whole message.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Approval, DecidedBy, Notifier, NotifyError, Posted, post_json, setting, url_setting};
use crate::config::Settings;
use crate::egress::Egress;

/// Slack block limits (characters): header text, section text, a section field.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;

/// Slack `error` codes that say "later", not "never".
const TRANSIENT_ERRORS: &[&str] = &["ratelimited", "rate_limited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"];

pub struct Slack {
    token: String,
    /// `APPROVAL_DEFAULT_CHANNEL`, for requests whose workflow names no channel.
    channel: String,
    api_base: String,
}

impl Slack {
    /// Needs the bot token, a default channel, and the signing secret: without the secret the
    /// callback refuses every button press, so posting buttons would be a trap.
    pub fn build(settings: &Settings) -> Result<Box<dyn Notifier>, String> {
        let need = |what: &str| format!("APPROVAL_NOTIFIER=slack needs {what}");
        let token = setting(&settings.slack_bot_token).ok_or_else(|| need("SLACK_BOT_TOKEN (a bot token with chat:write)"))?;
        let channel = setting(&settings.approval_default_channel)
            .ok_or_else(|| need("APPROVAL_DEFAULT_CHANNEL (where requests go when their workflow names no channel)"))?;
        if setting(&settings.slack_signing_secret).is_none() {
            return Err(need("SLACK_SIGNING_SECRET: the Approve/Reject buttons call back to /v1/approvals/callback/slack, which refuses unsigned callbacks"));
        }
        let api_base = url_setting("SLACK_API_BASE_URL", settings.slack_api_base_url.trim())?;
        Ok(Box::new(Slack { token, channel, api_base }))
    }

    /// Calls a Web API method; success is `"ok": true` in the reply.
    async fn call(&self, egress: &Egress, method: &str, body: Value) -> Result<Value, NotifyError> {
        let what = format!("Slack {method}");
        let headers = vec![
            ("Authorization".to_owned(), format!("Bearer {}", self.token)),
            ("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned()),
        ];
        let response = post_json(egress, &what, &format!("{}/{method}", self.api_base), headers, body).await?;
        if !(200..300).contains(&response.status) {
            return Err(NotifyError::from_status(&what, response.status));
        }
        let reply: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if reply["ok"] == json!(true) {
            return Ok(reply);
        }
        let error = reply["error"].as_str().unwrap_or("no JSON reply").chars().take(100).collect::<String>();
        let message = format!("{what} refused: {error}");
        Err(if TRANSIENT_ERRORS.contains(&error.as_str()) { NotifyError::Transient(message) } else { NotifyError::Permanent(message) })
    }
}

impl Notifier for Slack {
    fn request<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<Option<Posted>, NotifyError>> {
        Box::pin(async move {
            let channel = approval.channel.clone().unwrap_or_else(|| self.channel.clone());
            let text = format!("Workflow approval needed: {} ({} risk)", escape(&approval.workflow_name), escape(&approval.risk_level));
            let body = json!({"channel": channel, "text": text, "blocks": request_blocks(approval)});
            let reply = self.call(egress, "chat.postMessage", body).await?;
            // The reply names the channel by id: chat.update accepts nothing else.
            Ok(match (reply["channel"].as_str(), reply["ts"].as_str()) {
                (Some(channel), Some(ts)) if !ts.is_empty() => Some(Posted { channel: channel.to_owned(), ts: ts.to_owned() }),
                _ => None,
            })
        })
    }

    fn outcome<'a>(&'a self, egress: &'a Egress, approval: &'a Approval, posted: &'a Posted) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let body = json!({
                "channel": posted.channel,
                "ts": posted.ts,
                "text": format!("Workflow approval {}: {}", approval.status, escape(&approval.workflow_name)),
                "blocks": outcome_blocks(approval),
            });
            self.call(egress, "chat.update", body).await.map(|_| ())
        })
    }

    fn result<'a>(&'a self, egress: &'a Egress, approval: &'a Approval) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (success, message) = approval.execution.clone().unwrap_or_default();
            let mut body = json!({
                "text": format!("Workflow Approved: {}", escape(&approval.workflow_name)),
                "blocks": [section(&format!(
                    "*Decision:* Approved by {}\n{} *Execution result:* {}",
                    decided_by(approval),
                    if success { ":white_check_mark:" } else { ":x:" },
                    escape(&message)
                ))],
            });
            // In the request's thread when it was posted (Calseta meant to thread it and did not).
            match &approval.posted {
                Some(posted) => {
                    body["channel"] = json!(posted.channel);
                    body["thread_ts"] = json!(posted.ts);
                }
                None => body["channel"] = json!(approval.channel.clone().unwrap_or_else(|| self.channel.clone())),
            }
            self.call(egress, "chat.postMessage", body).await.map(|_| ())
        })
    }
}

/// Slack mrkdwn's three control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters (an ellipsis marks the cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_MAX)}})
}

/// Header, facts and reason: what both the request and its outcome show.
fn fact_blocks(a: &Approval) -> Vec<Value> {
    let header = format!("[{} RISK] Workflow Approval: {}", a.risk_level.to_uppercase(), a.workflow_name);
    let field = |text: String| json!({"type": "mrkdwn", "text": cut(&text, FIELD_MAX)});
    vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&header, HEADER_MAX)}}),
        json!({"type": "section", "fields": [
            field(format!("*Indicator:* `{}: {}`", escape(&a.indicator_type), escape(&a.indicator_value))),
            field(format!("*Trigger:* {}", escape(&a.trigger))),
            field(format!("*Confidence:* {}%", a.confidence_percent)),
            field(format!("*Expires:* {}", Approval::time(a.expires_at))),
        ]}),
        section(&format!("*Agent reason:*\n{}", escape(&a.reason))),
    ]
}

/// §6.5 blocks: facts, the buttons the callback decides on, and the browser link when known.
pub(super) fn request_blocks(a: &Approval) -> Vec<Value> {
    let mut blocks = fact_blocks(a);
    blocks.push(json!({
        "type": "actions",
        "block_id": format!("approval:{}", a.uuid),
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary",
             "action_id": format!("approve:{}", a.uuid), "value": a.uuid.to_string()},
            {"type": "button", "text": {"type": "plain_text", "text": "Reject"}, "style": "danger",
             "action_id": format!("reject:{}", a.uuid), "value": a.uuid.to_string()},
        ],
    }));
    if let Some(url) = &a.decide_url {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Or <{url}|decide via browser>")}]}));
    }
    blocks
}

/// The facts again, the buttons and link gone, and one line saying what became of the request.
pub(super) fn outcome_blocks(a: &Approval) -> Vec<Value> {
    let when = a.decided_at.map(|at| format!(" at {}", Approval::time(at))).unwrap_or_default();
    let line = match a.status.as_str() {
        "approved" => format!("✅ *Approved* by {}{when}", decided_by(a)),
        "rejected" => format!("❌ *Rejected* by {}{when}", decided_by(a)),
        "expired" => format!(":hourglass: *Expired* at {} without a decision", Approval::time(a.expires_at)),
        "cancelled" => ":no_entry_sign: *Cancelled*: the workflow can no longer run".to_owned(),
        other => format!("*{}*", escape(other)),
    };
    let mut blocks = fact_blocks(a);
    blocks.push(section(&line));
    blocks
}

/// Who decided, in mrkdwn: a Slack user as a mention, a key by its name and prefix.
fn decided_by(a: &Approval) -> String {
    match &a.decided_by {
        Some(DecidedBy::Slack { user_id }) => format!("<@{}>", escape(user_id)),
        Some(DecidedBy::Key { channel, name, prefix }) => {
            let via = if channel == "mcp" { "MCP" } else { "API" };
            format!("{} ({via} key `{}`)", escape(name), escape(prefix))
        }
        Some(DecidedBy::Browser) => "the browser decide link".to_owned(),
        Some(DecidedBy::System) | None => "the system".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval() -> Approval {
        Approval {
            uuid: uuid::Uuid::nil(),
            workflow_name: "contain host".into(),
            risk_level: "high".into(),
            indicator_type: "ip".into(),
            indicator_value: "203.0.113.7".into(),
            trigger: "agent".into(),
            confidence_percent: 92,
            reason: "beaconing <!channel> & <https://evil.example|here>".into(),
            expires_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            channel: None,
            decide_url: Some("https://calseta.example/v1/approvals/x/decide?token=t".into()),
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
            execution: None,
            posted: None,
        }
    }

    #[test]
    fn request_blocks_follow_the_spec_and_escape_agent_text() {
        let blocks = request_blocks(&approval());
        assert_eq!(blocks.len(), 5);
        assert_eq!(blocks[0]["text"]["text"], "[HIGH RISK] Workflow Approval: contain host");
        assert_eq!(blocks[1]["fields"][0]["text"], "*Indicator:* `ip: 203.0.113.7`");
        assert_eq!(blocks[1]["fields"][2]["text"], "*Confidence:* 92%");
        assert_eq!(blocks[1]["fields"][3]["text"], "*Expires:* 2027-01-15 08:00 UTC");
        assert_eq!(blocks[2]["text"]["text"], "*Agent reason:*\nbeaconing &lt;!channel&gt; &amp; &lt;https://evil.example|here&gt;");
        assert_eq!(blocks[3]["elements"][0]["action_id"], format!("approve:{}", uuid::Uuid::nil()));
        assert_eq!(blocks[3]["elements"][1]["style"], "danger");
        assert_eq!(blocks[4]["elements"][0]["text"], "Or <https://calseta.example/v1/approvals/x/decide?token=t|decide via browser>");
    }

    #[test]
    fn long_texts_are_cut_to_slack_limits() {
        let mut a = approval();
        a.reason = "r".repeat(10_000);
        a.workflow_name = "w".repeat(500);
        let blocks = request_blocks(&a);
        assert_eq!(blocks[0]["text"]["text"].as_str().unwrap().chars().count(), HEADER_MAX);
        assert_eq!(blocks[2]["text"]["text"].as_str().unwrap().chars().count(), SECTION_MAX);
    }

    #[test]
    fn outcome_blocks_drop_the_buttons_and_say_who_decided() {
        let mut a = approval();
        a.status = "approved".into();
        a.decided_by = Some(DecidedBy::Slack { user_id: "U123".into() });
        a.decided_at = Some(a.expires_at);
        let blocks = outcome_blocks(&a);
        assert!(blocks.iter().all(|b| b["type"] != "actions" && b["type"] != "context"), "{blocks:?}");
        assert_eq!(blocks.last().unwrap()["text"]["text"], "✅ *Approved* by <@U123> at 2027-01-15 08:00 UTC");
        a.status = "rejected".into();
        a.decided_by = Some(DecidedBy::Key { channel: "api".into(), name: "analyst".into(), prefix: "cai_ab12".into() });
        assert_eq!(outcome_blocks(&a).last().unwrap()["text"]["text"], "❌ *Rejected* by analyst (API key `cai_ab12`) at 2027-01-15 08:00 UTC");
    }
}
