//! Approval notifiers against fake Slack and Teams servers on loopback: the request message with
//! its blocks and bearer token, retries with backoff through a vendor outage, a refusal that is
//! not retried, `chat.update` after a decision (REST, Slack button, expiry), the result message
//! after execution, the Teams card, and the start-up refusal of a misconfigured notifier.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::dual;
use crate::enrichment::TEST_KEY;
use crate::support::{Backend, ServerBuilder, TestServer, body, eventually, run_cli};

const BOT_TOKEN: &str = "xoxb-test-bot-token-5f2c9a";
const SIGNING_SECRET: &str = "slack-signing-secret-for-notify-tests";
const SLACK_CHANNEL_ID: &str = "C0SOCAPPROV";

const OK_CODE: &str = "from app.workflows.context import WorkflowContext, WorkflowResult\n\n\
async def run(ctx: WorkflowContext) -> WorkflowResult:\n    \
return WorkflowResult.ok(\"contained \" + ctx.indicator.value)\n";

/// One request the fake received: when, where, with which bearer header and body.
#[derive(Clone, Debug)]
struct Call {
    at: Instant,
    path: String,
    authorization: Option<String>,
    body: Value,
    answered: u16,
}

#[derive(Clone, Default)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    /// chat.postMessage calls still to fail with a 500.
    outage: Arc<AtomicUsize>,
    /// Milliseconds chat.postMessage takes to answer (after the request is recorded).
    delay_ms: Arc<AtomicUsize>,
    ts: Arc<AtomicUsize>,
}

/// A fake Slack Web API (`/api/chat.*`) and Teams webhook (`/teams/hook`).
struct FakeChat {
    port: u16,
    shared: Shared,
}

impl FakeChat {
    async fn start() -> FakeChat {
        let shared = Shared::default();
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update))
            .route("/teams/hook", post(teams))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeChat { port, shared }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn calls(&self, path: &str) -> Vec<Call> {
        self.shared.calls.lock().unwrap().iter().filter(|c| c.path == path).cloned().collect()
    }

    /// Waits until `path` received `n` requests; returns them.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Call> {
        let arrived = eventually(Duration::from_secs(30), || async { self.calls(path).len() >= n }).await;
        assert!(arrived, "{path}: expected {n} requests, got {:?}", self.calls(path));
        self.calls(path)
    }
}

fn record(shared: &Shared, path: &str, headers: &HeaderMap, body: &str, answered: u16) {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    shared.calls.lock().unwrap().push(Call { at: Instant::now(), path: path.to_owned(), authorization, body, answered });
}

async fn post_message(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let failing = shared.outage.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        record(&shared, "chat.postMessage", &headers, &body, 500);
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
    }
    record(&shared, "chat.postMessage", &headers, &body, 200);
    tokio::time::sleep(Duration::from_millis(shared.delay_ms.load(Ordering::SeqCst) as u64)).await;
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    if request["channel"] == "#missing" {
        return axum::Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
    }
    let ts = format!("1765000000.{:06}", shared.ts.fetch_add(1, Ordering::SeqCst) + 1);
    axum::Json(json!({"ok": true, "channel": SLACK_CHANNEL_ID, "ts": ts, "message": {}})).into_response()
}

async fn update(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    record(&shared, "chat.update", &headers, &body, 200);
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    axum::Json(json!({"ok": true, "channel": request["channel"], "ts": request["ts"]})).into_response()
}

async fn teams(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    record(&shared, "teams", &headers, &body, 200);
    (StatusCode::OK, "1").into_response()
}

fn builder(backend: Backend, chat: &FakeChat) -> ServerBuilder {
    TestServer::builder(backend)
        .env("RATE_LIMIT_WORKFLOW_EXECUTE_PER_MINUTE", "100000")
        .env("QUEUE_POLL_INTERVAL_MS", "50")
        .env("APPROVAL_SWEEP_INTERVAL_SECONDS", "1")
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", &format!("127.0.0.1:{}", chat.port))
        .env("CALSETA_BASE_URL", "https://calseta.example/")
        .env("APPROVAL_NOTIFY_RETRY_SECONDS", "1")
}

fn slack(backend: Backend, chat: &FakeChat) -> ServerBuilder {
    builder(backend, chat)
        .env("APPROVAL_NOTIFIER", "slack")
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("APPROVAL_DEFAULT_CHANNEL", "#soc-approvals")
        .env("SLACK_API_BASE_URL", &chat.url("/api"))
}

async fn sandbox_ok(server: &TestServer, test: &str) -> bool {
    let health = body(server.client.get(server.url("/health")).send().await.unwrap()).await;
    let ok = health["workflow_sandbox"]["status"] == "ok";
    if !ok {
        eprintln!("skipping the execution part of {test}: workflow sandbox unavailable: {}", health["workflow_sandbox"]);
        assert!(std::env::var("CALSETA_REQUIRE_SANDBOX").is_err(), "CALSETA_REQUIRE_SANDBOX is set");
    }
    ok
}

/// A gated workflow (optionally posting to its own channel) and the indicator it acts on.
async fn gated_workflow(server: &TestServer, channel: Option<&str>) -> String {
    let mut request = json!({"name": "contain host", "code": OK_CODE, "state": "active", "approval_mode": "always", "risk_level": "high"});
    if let Some(channel) = channel {
        request["approval_channel"] = json!(channel);
    }
    let response = server.post_json("/v1/workflows", &server.admin_key, &request).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    if server.db_count("SELECT COUNT(*) FROM indicators WHERE value = '203.0.113.7'").await == 0 {
        let sql = format!(
            "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, created_at, updated_at) VALUES ({}, 'ip', '203.0.113.7', \
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            server.uuid_sql(uuid::Uuid::new_v4())
        );
        server.db_execute(&sql).await;
    }
    body(response).await["data"]["uuid"].as_str().unwrap().to_owned()
}

/// An agent key asks to run `workflow`; returns the pending approval request's uuid.
async fn request_approval(server: &TestServer, agent: &str, workflow: &str) -> String {
    let request = json!({"indicator_type": "ip", "indicator_value": "203.0.113.7", "reason": "beaconing to <!channel> C2", "confidence": 0.92});
    let response = server.post_json(&format!("/v1/workflows/{workflow}/execute"), agent, &request).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    body(response).await["data"]["approval_request_uuid"].as_str().unwrap().to_owned()
}

async fn keys(server: &TestServer) -> (String, String) {
    let (agent, _) = server.create_key(&["workflows:execute"], json!({"key_type": "agent", "name": "triage-bot"})).await;
    let (approver, _) = server.create_key(&["approvals:write"], json!({"key_type": "human", "name": "analyst on call"})).await;
    (agent, approver)
}

fn where_uuid(server: &TestServer, uuid: &str) -> String {
    format!("uuid = {}", server.uuid_sql(uuid.parse().unwrap()))
}

fn section_texts(blocks: &Value) -> Vec<String> {
    blocks.as_array().unwrap().iter().filter(|b| b["type"] == "section").filter_map(|b| b["text"]["text"].as_str().map(str::to_owned)).collect()
}

async fn slack_request_update_and_result(backend: Backend) {
    let chat = FakeChat::start().await;
    let server = slack(backend, &chat).start().await;
    let (agent, approver) = keys(&server).await;
    let workflow = gated_workflow(&server, None).await;
    let uuid = request_approval(&server, &agent, &workflow).await;

    let posted = chat.wait_for("chat.postMessage", 1).await;
    let call = &posted[0];
    assert_eq!(call.authorization.as_deref(), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    assert_eq!(call.body["channel"], "#soc-approvals", "the default channel: the workflow names none");
    assert_eq!(call.body["text"], "Workflow approval needed: contain host (high risk)");
    let blocks = call.body["blocks"].as_array().unwrap();
    assert_eq!(blocks.iter().map(|b| b["type"].as_str().unwrap()).collect::<Vec<_>>(), ["header", "section", "section", "actions", "context"]);
    assert_eq!(blocks[0]["text"], json!({"type": "plain_text", "text": "[HIGH RISK] Workflow Approval: contain host"}));
    let fields: Vec<&str> = blocks[1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert_eq!(&fields[..3], ["*Indicator:* `ip: 203.0.113.7`", "*Trigger:* agent", "*Confidence:* 92%"]);
    assert!(fields[3].starts_with("*Expires:* ") && fields[3].ends_with(" UTC"), "{fields:?}");
    assert_eq!(blocks[2]["text"]["text"], "*Agent reason:*\nbeaconing to &lt;!channel&gt; C2", "agent text cannot ping the channel");
    assert_eq!(blocks[3]["block_id"], format!("approval:{uuid}"));
    assert_eq!(blocks[3]["elements"][0]["action_id"], format!("approve:{uuid}"));
    assert_eq!(blocks[3]["elements"][0]["style"], "primary");
    assert_eq!(blocks[3]["elements"][0]["value"], uuid.as_str());
    assert_eq!(blocks[3]["elements"][1]["action_id"], format!("reject:{uuid}"));
    assert_eq!(blocks[3]["elements"][1]["style"], "danger");
    // The browser link carries the real decide token: it opens the decide page.
    let link = blocks[4]["elements"][0]["text"].as_str().unwrap();
    let prefix = format!("Or <https://calseta.example/v1/approvals/{uuid}/decide?token=");
    let token = link.strip_prefix(&prefix).and_then(|t| t.strip_suffix("|decide via browser>")).unwrap_or_else(|| panic!("{link}"));
    assert_eq!(token.len(), 43);
    let page = server.client.get(server.url(&format!("/v1/approvals/{uuid}/decide?token={token}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"approve\""));

    // Where it landed is stored, for chat.update.
    let stored = eventually(Duration::from_secs(10), || async {
        server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {} AND external_message_id = '1765000000.000001' AND external_channel_id = '{SLACK_CHANNEL_ID}'", where_uuid(&server, &uuid))).await == 1
    })
    .await;
    assert!(stored, "message ts and channel id stored");
    let defaults = body(server.get("/v1/settings/approval-defaults", &server.admin_key).await).await;
    assert_eq!(defaults["data"], json!({"notifier": "slack", "default_channel": "#soc-approvals", "default_timeout_seconds": 3600, "slack_configured": true, "teams_configured": false}));

    // A REST decision replaces the buttons with the outcome.
    let decided = server.request(reqwest::Method::POST, &format!("/v1/workflow-approvals/{uuid}/approve"), Some(&approver)).send().await.unwrap();
    assert_eq!(decided.status(), 200);
    let key_prefix = body(decided).await["data"]["decided_by"]["key_prefix"].as_str().unwrap().to_owned();
    let updates = chat.wait_for("chat.update", 1).await;
    let update = &updates[0];
    assert_eq!(update.authorization.as_deref(), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    assert_eq!(update.body["channel"], SLACK_CHANNEL_ID);
    assert_eq!(update.body["ts"], "1765000000.000001");
    let blocks = update.body["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] != "actions" && b["type"] != "context"), "buttons and link gone: {blocks:?}");
    let outcome = section_texts(&update.body["blocks"]).pop().unwrap();
    assert!(outcome.starts_with(&format!("✅ *Approved* by analyst on call (API key `{key_prefix}`) at ")), "{outcome}");
    assert!(outcome.contains(" at 20") && outcome.ends_with(" UTC"), "{outcome}");

    if sandbox_ok(&server, "slack_request_update_and_result").await {
        // The execution result follows in the request's thread.
        let posted = chat.wait_for("chat.postMessage", 2).await;
        let result = &posted[1];
        assert_eq!(result.body["channel"], SLACK_CHANNEL_ID);
        assert_eq!(result.body["thread_ts"], "1765000000.000001");
        assert_eq!(result.body["text"], "Workflow Approved: contain host");
        let text = section_texts(&result.body["blocks"]).pop().unwrap();
        assert!(text.starts_with("*Decision:* Approved by analyst on call"), "{text}");
        assert!(text.ends_with("\n:white_check_mark: *Execution result:* contained 203.0.113.7"), "{text}");
        let succeeded = eventually(Duration::from_secs(10), || async {
            server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'send_approval_result_task' AND status = 'succeeded'").await == 1
        })
        .await;
        assert!(succeeded, "the result job succeeded");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chat.calls("chat.update").len(), 1, "one decision, one update");
    let logs = format!("{}\n{}", server.stdout.text(), server.stderr.text());
    assert!(!logs.contains(BOT_TOKEN), "the bot token never reaches a log line");
    assert!(!logs.contains(token), "the decide token never reaches a log line");
}
dual!(slack_request_update_and_result);

async fn slack_outage_is_retried_with_backoff_and_refusals_are_not(backend: Backend) {
    let chat = FakeChat::start().await;
    chat.shared.outage.store(2, Ordering::SeqCst);
    let server = slack(backend, &chat).env("APPROVAL_NOTIFY_MAX_ATTEMPTS", "4").start().await;
    let (agent, _) = keys(&server).await;
    let workflow = gated_workflow(&server, None).await;
    let uuid = request_approval(&server, &agent, &workflow).await;

    let calls = chat.wait_for("chat.postMessage", 3).await;
    assert_eq!(calls.iter().map(|c| c.answered).collect::<Vec<_>>(), [500, 500, 200]);
    // Backoff: the first retry waits 0.5–1 s, the second 1–2 s (exponential, jittered).
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(450), "{:?}", calls[1].at - calls[0].at);
    assert!(calls[2].at - calls[1].at >= Duration::from_millis(950), "{:?}", calls[2].at - calls[1].at);
    let done = eventually(Duration::from_secs(10), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'send_approval_notification_task' AND status = 'succeeded' AND attempts = 3").await == 1
    })
    .await;
    assert!(done, "one job, succeeded on its third attempt");
    let stored = server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {} AND external_message_id IS NOT NULL", where_uuid(&server, &uuid))).await;
    assert_eq!(stored, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chat.calls("chat.postMessage").len(), 3, "delivered once: no repost after the success");

    // A refusal (unknown channel) is not worth a retry: one attempt, failed, logged.
    let refused = gated_workflow(&server, Some("#missing")).await;
    let other = request_approval(&server, &agent, &refused).await;
    let failed = eventually(Duration::from_secs(10), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'send_approval_notification_task' AND status = 'failed' AND attempts = 1").await == 1
    })
    .await;
    assert!(failed, "failed for good after one attempt");
    let errors = server.db_texts("SELECT last_error FROM jobs WHERE status = 'failed'").await;
    assert!(errors[0].as_deref().unwrap().contains("channel_not_found"), "{errors:?}");
    assert_eq!(chat.calls("chat.postMessage").iter().filter(|c| c.body["channel"] == "#missing").count(), 1);
    // The request itself is untouched: it can still be decided over REST.
    let state = body(server.get(&format!("/v1/workflow-approvals/{other}"), &server.admin_key).await).await;
    assert_eq!(state["data"]["status"], "pending");
    let logs = format!("{}\n{}", server.stdout.text(), server.stderr.text());
    assert!(logs.contains("will retry"), "retries are logged");
    assert!(!logs.contains(BOT_TOKEN), "the bot token never reaches a log line");
}
dual!(slack_outage_is_retried_with_backoff_and_refusals_are_not);

fn slack_signature(timestamp: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Presses a button of the posted message, as Slack's signed interactivity callback does.
async fn press(server: &TestServer, action: &str, uuid: &str, user: &str, ts: &str) -> (u16, String) {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": SLACK_CHANNEL_ID},
        "message": {"ts": ts},
        "actions": [{"action_id": format!("{action}:{uuid}"), "value": uuid}],
    });
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let now = chrono::Utc::now().timestamp();
    let response = server
        .client
        .post(server.url("/v1/approvals/callback/slack"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", slack_signature(now, &form))
        .body(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn slack_buttons_and_expiry_update_the_message(backend: Backend) {
    let chat = FakeChat::start().await;
    let server = slack(backend, &chat).start().await;
    let (agent, _) = keys(&server).await;
    let workflow = gated_workflow(&server, Some("#ir-team")).await;

    let rejected = request_approval(&server, &agent, &workflow).await;
    let posted = chat.wait_for("chat.postMessage", 1).await;
    assert_eq!(posted[0].body["channel"], "#ir-team", "the workflow's own channel");
    let ts = "1765000000.000001";
    let stored = eventually(Duration::from_secs(10), || async {
        server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {} AND external_message_id = '{ts}'", where_uuid(&server, &rejected))).await == 1
    })
    .await;
    assert!(stored);
    assert_eq!(press(&server, "reject", &rejected, "U0ANALYST", ts).await, (200, "ok".into()));
    let updates = chat.wait_for("chat.update", 1).await;
    assert_eq!(updates[0].body["ts"], ts);
    let outcome = section_texts(&updates[0].body["blocks"]).pop().unwrap();
    assert!(outcome.starts_with("❌ *Rejected* by <@U0ANALYST> at "), "{outcome}");
    assert_eq!(updates[0].body["text"], "Workflow approval rejected: contain host");
    // A replayed press decides nothing and updates nothing.
    assert_eq!(press(&server, "approve", &rejected, "U0OTHER", ts).await, (200, "ok".into()));
    let state = body(server.get(&format!("/v1/workflow-approvals/{rejected}"), &server.admin_key).await).await;
    assert_eq!(state["data"]["status"], "rejected");
    assert_eq!(state["data"]["decided_by"]["id"], "U0ANALYST");

    // Expiry (the periodic sweep) shows on the message too.
    let expiring = request_approval(&server, &agent, &workflow).await;
    chat.wait_for("chat.postMessage", 2).await;
    let ts2 = "1765000000.000002";
    let stored = eventually(Duration::from_secs(10), || async {
        server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {} AND external_message_id = '{ts2}'", where_uuid(&server, &expiring))).await == 1
    })
    .await;
    assert!(stored);
    server.db_execute(&format!("UPDATE workflow_approval_requests SET expires_at = '2020-01-01T00:00:00Z' WHERE {}", where_uuid(&server, &expiring))).await;
    let updates = chat.wait_for("chat.update", 2).await;
    assert_eq!(updates[1].body["ts"], ts2);
    let outcome = section_texts(&updates[1].body["blocks"]).pop().unwrap();
    assert_eq!(outcome, ":hourglass: *Expired* at 2020-01-01 00:00 UTC without a decision");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chat.calls("chat.update").len(), 2);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 0);
}
dual!(slack_buttons_and_expiry_update_the_message);

/// A decision landing while the message is being posted: the decision sees no message to update
/// yet, so storing the message's id must notice the decision and update it.
async fn a_decision_racing_the_post_still_updates_the_message(backend: Backend) {
    let chat = FakeChat::start().await;
    chat.shared.delay_ms.store(3000, Ordering::SeqCst);
    let server = slack(backend, &chat).start().await;
    let (agent, approver) = keys(&server).await;
    let workflow = gated_workflow(&server, None).await;
    let uuid = request_approval(&server, &agent, &workflow).await;
    chat.wait_for("chat.postMessage", 1).await;
    let decided = server.request(reqwest::Method::POST, &format!("/v1/workflow-approvals/{uuid}/reject"), Some(&approver)).send().await.unwrap();
    assert_eq!(decided.status(), 200);
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {} AND external_message_id IS NULL", where_uuid(&server, &uuid))).await, 1, "decided while the post is in flight");
    let updates = chat.wait_for("chat.update", 1).await;
    assert_eq!(updates[0].body["ts"], "1765000000.000001");
    let outcome = section_texts(&updates[0].body["blocks"]).pop().unwrap();
    assert!(outcome.starts_with("❌ *Rejected* by analyst on call"), "{outcome}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(chat.calls("chat.update").len(), 1);
    assert_eq!(chat.calls("chat.postMessage").len(), 1, "a rejection sends no result message");
}
dual!(a_decision_racing_the_post_still_updates_the_message);

async fn teams_card_and_result(backend: Backend) {
    let chat = FakeChat::start().await;
    let server = builder(backend, &chat).env("APPROVAL_NOTIFIER", "teams").env("TEAMS_WEBHOOK_URL", &chat.url("/teams/hook")).start().await;
    let (agent, _) = keys(&server).await;
    let workflow = gated_workflow(&server, None).await;
    let uuid = request_approval(&server, &agent, &workflow).await;

    let calls = chat.wait_for("teams", 1).await;
    let message = &calls[0].body;
    assert_eq!(message["type"], "message");
    assert_eq!(message["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &message["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0], json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "text": "[HIGH RISK] Workflow Approval Required"}));
    assert_eq!(card["body"][1]["text"], "contain host");
    let facts: Vec<(String, String)> = card["body"][2]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap().to_owned(), f["value"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(&facts[..4], [
        ("Indicator".to_owned(), "ip: 203.0.113.7".to_owned()),
        ("Trigger".to_owned(), "agent".to_owned()),
        ("Confidence".to_owned(), "92%".to_owned()),
        ("Risk Level".to_owned(), "high".to_owned()),
    ]);
    assert_eq!(facts[4].0, "Expires");
    assert_eq!(card["body"][3]["text"], "**Agent reason:** beaconing to <!channel> C2");
    let actions = card["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "only the decide page: API links cannot work from a browser");
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(actions[0]["title"], "Review & Decide");
    let url = actions[0]["url"].as_str().unwrap();
    let path = url.strip_prefix("https://calseta.example").unwrap();
    assert!(path.starts_with(&format!("/v1/approvals/{uuid}/decide?token=")), "{url}");

    // Teams has no interactive callback (incoming webhooks): the Calseta stub answer, unchanged.
    let stub = server.client.post(server.url("/v1/approvals/callback/teams")).send().await.unwrap();
    assert_eq!(stub.status(), 200);
    assert!(body(stub).await["message"].as_str().unwrap().starts_with("Teams interactive callbacks are not supported"));

    // The card's link decides (in the browser); the result card follows the execution.
    let token = path.split("token=").nth(1).unwrap();
    let decided = server
        .client
        .post(server.url(&format!("/v1/approvals/{uuid}/decide")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&decision=approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 200);
    assert!(decided.text().await.unwrap().contains("Workflow approved. Execution has been queued."));
    if sandbox_ok(&server, "teams_card_and_result").await {
        let calls = chat.wait_for("teams", 2).await;
        let card = &calls[1].body["attachments"][0]["content"];
        assert_eq!(card["body"][0]["text"], "Workflow Approved: contain host");
        assert_eq!(card["body"][0]["color"], "Good");
        assert_eq!(card["body"][1]["facts"][0], json!({"title": "Decision", "value": "Approved by browser decide link"}));
        assert_eq!(card["body"][1]["facts"][2], json!({"title": "Execution result", "value": "✅ contained 203.0.113.7"}));
    }
    assert!(chat.calls("chat.update").is_empty() && chat.calls("chat.postMessage").is_empty());
}
dual!(teams_card_and_result);

#[tokio::test]
async fn misconfigured_notifiers_refuse_to_start() {
    let slack_complete = [
        ("APPROVAL_NOTIFIER", "slack"),
        ("SLACK_BOT_TOKEN", BOT_TOKEN),
        ("APPROVAL_DEFAULT_CHANNEL", "#soc"),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
    ];
    let without = |name: &str| slack_complete.iter().filter(|(k, _)| *k != name).copied().collect::<Vec<_>>();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (without("SLACK_BOT_TOKEN"), "APPROVAL_NOTIFIER=slack needs SLACK_BOT_TOKEN"),
        (without("APPROVAL_DEFAULT_CHANNEL"), "APPROVAL_NOTIFIER=slack needs APPROVAL_DEFAULT_CHANNEL"),
        (without("SLACK_SIGNING_SECRET"), "APPROVAL_NOTIFIER=slack needs SLACK_SIGNING_SECRET"),
        ([slack_complete.as_slice(), &[("SLACK_API_BASE_URL", "slack.com/api")]].concat(), "SLACK_API_BASE_URL must be an absolute http(s) URL"),
        (vec![("APPROVAL_NOTIFIER", "teams")], "APPROVAL_NOTIFIER=teams needs TEAMS_WEBHOOK_URL"),
        (vec![("APPROVAL_NOTIFIER", "teams"), ("TEAMS_WEBHOOK_URL", "hooks-secret-path")], "TEAMS_WEBHOOK_URL must be an absolute http(s) URL"),
        (vec![("APPROVAL_NOTIFIER", "pagerduty")], "APPROVAL_NOTIFIER='pagerduty' is not a notifier; use one of: none, slack, teams"),
    ];
    for (settings, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![("DATABASE_URL".into(), format!("sqlite://{}/calseta.db", dir.path().display()))];
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (code, _, stderr) = run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env).await;
        assert_ne!(code, 0, "{settings:?} must not start");
        assert!(stderr.contains(expected), "{settings:?}: {stderr}");
        assert!(!stderr.contains(BOT_TOKEN) && !stderr.contains("hooks-secret-path"), "no secret in the error: {stderr}");
    }
}
