//! The approval gate's decisions over HTTP: one winner under concurrency (and one execution),
//! four-eyes, the decider taken from the authenticated key, expiry (lazy, swept, and 409 without a
//! run), cancellation when the workflow is deactivated or deleted, and the execution of an
//! approved request in the sandbox.

use std::time::Duration;

use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, ServerBuilder, TestServer, body, eventually, expect_error};

const OK_CODE: &str = "from app.workflows.context import WorkflowContext, WorkflowResult\n\n\
async def run(ctx: WorkflowContext) -> WorkflowResult:\n    \
return WorkflowResult.ok(\"done \" + ctx.indicator.value, data={\"type\": ctx.indicator.type})\n";

fn builder(backend: Backend) -> ServerBuilder {
    TestServer::builder(backend)
        .env("RATE_LIMIT_WORKFLOW_EXECUTE_PER_MINUTE", "100000")
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "100000")
        .env("QUEUE_POLL_INTERVAL_MS", "50")
        // Each test drives expiry itself unless it sets a short sweep.
        .env("APPROVAL_SWEEP_INTERVAL_SECONDS", "3600")
}

/// The keys of one scenario: an agent that asks, and a human that decides.
struct Keys {
    agent: String,
    approver: String,
    approver_uuid: String,
}

async fn make_keys(server: &TestServer) -> Keys {
    let (agent, _) = server.create_key(&["workflows:execute", "approvals:write"], json!({"key_type": "agent", "name": "triage-bot"})).await;
    let (approver, approver_uuid) = server.create_key(&["approvals:write"], json!({"key_type": "human", "name": "analyst on call"})).await;
    Keys { agent, approver, approver_uuid }
}

async fn gated_workflow(server: &TestServer) -> String {
    let request = json!({"name": "contain host", "code": OK_CODE, "state": "active", "approval_mode": "always", "risk_level": "high"});
    let response = server.post_json("/v1/workflows", &server.admin_key, &request).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    body(response).await["data"]["uuid"].as_str().unwrap().to_owned()
}

/// Executes `workflow` with the agent key; returns the pending approval request's uuid.
async fn request_approval(server: &TestServer, agent: &str, workflow: &str) -> String {
    let request = json!({"indicator_type": "ip", "indicator_value": "203.0.113.7", "reason": "beaconing to C2", "confidence": 0.92});
    let response = server.post_json(&format!("/v1/workflows/{workflow}/execute"), agent, &request).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let answer = body(response).await;
    assert_eq!(answer["data"]["status"], "pending_approval", "{answer}");
    answer["data"]["approval_request_uuid"].as_str().unwrap().to_owned()
}

async fn post(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.request(reqwest::Method::POST, path, Some(key)).send().await.unwrap()
}

fn approve_path(uuid: &str) -> String {
    format!("/v1/workflow-approvals/{uuid}/approve")
}

fn reject_path(uuid: &str) -> String {
    format!("/v1/workflow-approvals/{uuid}/reject")
}

async fn sandbox_ok(server: &TestServer, test: &str) -> bool {
    let health = body(server.client.get(server.url("/health")).send().await.unwrap()).await;
    let ok = health["workflow_sandbox"]["status"] == "ok";
    if !ok {
        eprintln!("skipping the execution part of {test}: workflow sandbox unavailable on this host: {}", health["workflow_sandbox"]);
        assert!(std::env::var("CALSETA_REQUIRE_SANDBOX").is_err(), "CALSETA_REQUIRE_SANDBOX is set");
    }
    ok
}

async fn twenty_concurrent_approves_have_one_winner(backend: Backend) {
    let server = builder(backend).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;

    let attempts = (0..20).map(|i| {
        let request = server.request(reqwest::Method::POST, &approve_path(&uuid), Some(&keys.approver));
        async move {
            let response = request.json(&json!({"responder_id": format!("label-{i}")})).send().await.unwrap();
            let status = response.status().as_u16();
            (status, body(response).await)
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, answer) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "APPROVAL_ALREADY_DECIDED", "{answer}");
        assert_eq!(answer["error"]["message"], format!("Approval request {uuid} is already in terminal status 'approved'"));
    }
    let won = &winners[0]["data"];
    assert_eq!(won["status"], "approved");
    // The label is the client's; who decided comes from the authenticated key.
    assert!(won["responder_id"].as_str().unwrap().starts_with("label-"), "{won}");
    assert_eq!(won["decided_by"]["type"], "api");
    assert_eq!(won["decided_by"]["id"], keys.approver_uuid.as_str());
    assert_eq!(won["decided_by"]["key_name"], "analyst on call");
    assert_eq!(won["decided_by"]["key_prefix"].as_str().unwrap(), &keys.approver[..won["decided_by"]["key_prefix"].as_str().unwrap().len()]);
    assert!(won["responded_at"].is_string());
    assert_eq!(won["workflow_uuid"], workflow.as_str());
    assert_eq!(won["workflow_name"], "contain host");

    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 1);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'workflow_approval_responded'").await, 1);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'approvals.approve' AND outcome = 'success'").await, 1);
    // The decide token stays readable ("already decided") but can no longer decide.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE decide_token_hash IS NOT NULL").await, 1);
    let ran = eventually(Duration::from_secs(20), || async { server.db_count("SELECT COUNT(*) FROM workflow_runs").await == 1 }).await;
    assert!(ran, "one run");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_runs").await, 1, "exactly one run");
}
dual!(twenty_concurrent_approves_have_one_winner);

async fn approve_and_reject_race_has_one_winner(backend: Backend) {
    let server = builder(backend).start().await;
    let keys = make_keys(&server).await;
    let (second, _) = server.create_key(&["approvals:write"], json!({"key_type": "human"})).await;
    let workflow = gated_workflow(&server).await;
    for _ in 0..5 {
        let uuid = request_approval(&server, &keys.agent, &workflow).await;
        let (approve_to, reject_to) = (approve_path(&uuid), reject_path(&uuid));
        let (approve, reject) = tokio::join!(post(&server, &approve_to, &keys.approver), post(&server, &reject_to, &second));
        let (a, r) = (approve.status().as_u16(), reject.status().as_u16());
        assert!((a, r) == (200, 409) || (a, r) == (409, 200), "approve {a}, reject {r}");
        let stored = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await;
        assert_eq!(stored["data"]["status"], if a == 200 { "approved" } else { "rejected" });
    }
    let approved = server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'approved'").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, approved);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending'").await, 0);
}
dual!(approve_and_reject_race_has_one_winner);

async fn the_requesting_key_cannot_decide(backend: Backend) {
    let server = builder(backend.clone()).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    for path in [approve_path(&uuid), reject_path(&uuid)] {
        let error = expect_error(post(&server, &path, &keys.agent).await, 403, "SELF_APPROVAL_FORBIDDEN").await;
        assert_eq!(error["error"]["message"], "The API key that requested this approval cannot decide it");
    }
    let stored = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await;
    assert_eq!(stored["data"]["status"], "pending");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'approvals.approve' AND outcome = 'denied'").await, 1);
    // Another key may; a forged label does not make it the requester or hide who decided.
    let body_label = json!({"responder_id": "the-agent-itself"});
    let response = server.post_json(&reject_path(&uuid), &keys.approver, &body_label).await;
    assert_eq!(response.status(), 200);
    let decided = body(response).await["data"].clone();
    assert_eq!(decided["responder_id"], "the-agent-itself");
    assert_eq!(decided["decided_by"]["id"], keys.approver_uuid.as_str());
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 0, "a rejection runs nothing");
    server.stop().await;

    // The documented escape hatch turns four-eyes off.
    let server = builder(backend).env("APPROVAL_ALLOW_SELF_APPROVAL", "true").start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    let response = post(&server, &approve_path(&uuid), &keys.agent).await;
    assert_eq!(response.status(), 200);
    let decided = body(response).await["data"].clone();
    // Without a label the responder is the key prefix, as Calseta.
    assert_eq!(decided["responder_id"].as_str().unwrap(), &keys.agent[..decided["responder_id"].as_str().unwrap().len()]);
}
dual!(the_requesting_key_cannot_decide);

async fn expired_requests_conflict_and_never_run(backend: Backend) {
    let server = builder(backend).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    let where_uuid = format!("uuid = {}", server.uuid_sql(uuid.parse().unwrap()));
    server.db_execute(&format!("UPDATE workflow_approval_requests SET expires_at = '2020-01-01T00:00:00Z' WHERE {where_uuid}")).await;

    let error = expect_error(post(&server, &approve_path(&uuid), &keys.approver).await, 409, "APPROVAL_EXPIRED").await;
    assert_eq!(error["error"]["message"], format!("Approval request {uuid} has expired"));
    expect_error(post(&server, &reject_path(&uuid), &keys.approver).await, 409, "APPROVAL_EXPIRED").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 0);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_runs").await, 0);

    // A read materializes the expiry (and the decide token dies with it).
    let list = body(server.get("/v1/workflow-approvals?status=pending", &keys.approver).await).await;
    assert_eq!(list["meta"]["total"], 1);
    assert_eq!(list["data"][0]["status"], "expired", "the filter applies before materialization, as Calseta");
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {where_uuid} AND status = 'expired' AND decide_token_hash IS NULL")).await, 1);
    let error = expect_error(post(&server, &approve_path(&uuid), &keys.approver).await, 409, "APPROVAL_ALREADY_DECIDED").await;
    assert_eq!(error["error"]["message"], format!("Approval request {uuid} is already in terminal status 'expired'"));
    let get = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await;
    assert_eq!(get["data"]["status"], "expired");
    assert_eq!(get["data"]["decided_by"], Value::Null);
}
dual!(expired_requests_conflict_and_never_run);

async fn the_sweep_expires_without_a_read(backend: Backend) {
    let server = builder(backend).env("APPROVAL_SWEEP_INTERVAL_SECONDS", "1").start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let stale = request_approval(&server, &keys.agent, &workflow).await;
    let fresh = request_approval(&server, &keys.agent, &workflow).await;
    let where_stale = format!("uuid = {}", server.uuid_sql(stale.parse().unwrap()));
    server.db_execute(&format!("UPDATE workflow_approval_requests SET expires_at = '2020-01-01T00:00:00Z' WHERE {where_stale}")).await;
    let swept = eventually(Duration::from_secs(15), || async {
        server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {where_stale} AND status = 'expired'")).await == 1
    })
    .await;
    assert!(swept, "the sweep expired the stale request");
    let where_fresh = format!("uuid = {}", server.uuid_sql(fresh.parse().unwrap()));
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {where_fresh} AND status = 'pending'")).await, 1);
    assert!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'approvals.expire'").await >= 1);
}
dual!(the_sweep_expires_without_a_read);

async fn deactivating_or_deleting_the_workflow_cancels_pending_requests(backend: Backend) {
    let server = builder(backend).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let pending = request_approval(&server, &keys.agent, &workflow).await;
    let decided = request_approval(&server, &keys.agent, &workflow).await;
    assert_eq!(post(&server, &reject_path(&decided), &keys.approver).await.status(), 200);

    let response = server.patch_json(&format!("/v1/workflows/{workflow}"), &server.admin_key, &json!({"state": "inactive"})).await;
    assert_eq!(response.status(), 200);
    let get = body(server.get(&format!("/v1/workflow-approvals/{pending}"), &keys.approver).await).await;
    assert_eq!(get["data"]["status"], "cancelled");
    let get = body(server.get(&format!("/v1/workflow-approvals/{decided}"), &keys.approver).await).await;
    assert_eq!(get["data"]["status"], "rejected", "decided requests keep their outcome");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'cancelled' AND decide_token_hash IS NULL").await, 1);
    let error = expect_error(post(&server, &approve_path(&pending), &keys.approver).await, 409, "APPROVAL_ALREADY_DECIDED").await;
    assert_eq!(error["error"]["message"], format!("Approval request {pending} is already in terminal status 'cancelled'"));

    // Deleting takes the requests (and their links) with the workflow.
    let other = gated_workflow(&server).await;
    let doomed = request_approval(&server, &keys.agent, &other).await;
    let response = server.request(reqwest::Method::DELETE, &format!("/v1/workflows/{other}"), Some(&server.admin_key)).send().await.unwrap();
    assert_eq!(response.status(), 204);
    expect_error(server.get(&format!("/v1/workflow-approvals/{doomed}"), &keys.approver).await, 404, "NOT_FOUND").await;
}
dual!(deactivating_or_deleting_the_workflow_cancels_pending_requests);

async fn list_filters_bad_input_and_defaults(backend: Backend) {
    let server = builder(backend).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let first = request_approval(&server, &keys.agent, &workflow).await;
    let second = request_approval(&server, &keys.agent, &workflow).await;
    assert_eq!(post(&server, &reject_path(&first), &keys.approver).await.status(), 200);

    let page = body(server.get("/v1/workflow-approvals?page_size=1", &keys.approver).await).await;
    assert_eq!(page["meta"], json!({"total": 2, "page": 1, "page_size": 1, "total_pages": 2}));
    assert_eq!(page["data"][0]["uuid"], second.as_str(), "newest first");
    let item = &page["data"][0];
    for field in ["uuid", "workflow_id", "workflow_name", "workflow_uuid", "trigger_type", "trigger_agent_key_prefix", "trigger_context", "reason",
                  "confidence", "notifier_type", "notifier_channel", "status", "responder_id", "responded_at", "expires_at", "execution_result",
                  "created_at", "updated_at"] {
        assert!(item.get(field).is_some(), "{field} in {item}");
    }
    assert_eq!(item["trigger_type"], "agent");
    assert_eq!(item["reason"], "beaconing to C2");
    assert_eq!(item["trigger_context"]["indicator_value"], "203.0.113.7");
    let rejected = body(server.get("/v1/workflow-approvals?status=rejected", &keys.approver).await).await;
    assert_eq!(rejected["meta"]["total"], 1);
    assert_eq!(rejected["data"][0]["uuid"], first.as_str());
    let by_workflow = body(server.get(&format!("/v1/workflow-approvals?workflow_uuid={workflow}"), &keys.approver).await).await;
    assert_eq!(by_workflow["meta"]["total"], 2);

    let unknown = uuid::Uuid::new_v4();
    let error = expect_error(server.get(&format!("/v1/workflow-approvals?workflow_uuid={unknown}"), &keys.approver).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"]["message"], format!("Workflow {unknown} not found"));
    expect_error(server.get("/v1/workflow-approvals?workflow_uuid=nope", &keys.approver).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.get("/v1/workflow-approvals?page_size=501", &keys.approver).await, 422, "VALIDATION_ERROR").await;
    let error = expect_error(server.get("/v1/workflow-approvals?status=aproved", &keys.approver).await, 422, "VALIDATION_ERROR").await;
    assert!(error.to_string().contains("aproved"), "{error}");
    assert_eq!(error["error"]["details"]["errors"][0]["loc"], serde_json::json!(["query", "status"]));
    let error = expect_error(server.get(&format!("/v1/workflow-approvals/{unknown}"), &keys.approver).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"]["message"], format!("Approval request {unknown} not found"));
    expect_error(post(&server, &approve_path(&unknown.to_string()), &keys.approver).await, 404, "NOT_FOUND").await;
    expect_error(server.get("/v1/workflow-approvals/not-a-uuid", &keys.approver).await, 422, "VALIDATION_ERROR").await;
    let bad = server.request(reqwest::Method::POST, &approve_path(&second), Some(&keys.approver)).header("content-type", "application/json").body("[1]").send().await.unwrap();
    expect_error(bad, 422, "VALIDATION_ERROR").await;
    let bad = server.request(reqwest::Method::POST, &approve_path(&second), Some(&keys.approver)).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let bad = server.request(reqwest::Method::POST, &approve_path(&second), Some(&keys.approver)).body("responder_id=x").send().await.unwrap();
    expect_error(bad, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let bad = server.post_json(&approve_path(&second), &keys.approver, &json!({"responder_id": 5})).await;
    expect_error(bad, 422, "VALIDATION_ERROR").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending'").await, 1, "bad input decides nothing");

    // Scopes: approvals:write for the API, admin for the defaults.
    let (reader, _) = server.create_key(&["workflows:read"], json!({})).await;
    expect_error(server.get("/v1/workflow-approvals", &reader).await, 403, "FORBIDDEN").await;
    expect_error(post(&server, &approve_path(&second), &reader).await, 403, "FORBIDDEN").await;
    expect_error(server.get("/v1/settings/approval-defaults", &keys.approver).await, 403, "FORBIDDEN").await;
    let defaults = body(server.get("/v1/settings/approval-defaults", &server.admin_key).await).await;
    assert_eq!(
        defaults,
        json!({"data": {"notifier": "none", "default_channel": null, "default_timeout_seconds": 3600, "slack_configured": false, "teams_configured": false}, "meta": {}})
    );
}
dual!(list_filters_bad_input_and_defaults);

async fn an_approved_request_runs_once_in_the_sandbox(backend: Backend) {
    let server = builder(backend).start().await;
    if !sandbox_ok(&server, "an_approved_request_runs_once_in_the_sandbox").await {
        return;
    }
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let sql = format!(
        "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, created_at, updated_at) VALUES ({}, 'ip', '203.0.113.7', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        server.uuid_sql(uuid::Uuid::new_v4())
    );
    server.db_execute(&sql).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    // The code changes after the request: the run executes the version current at approval time.
    let new_code = OK_CODE.replace("\"done \"", "\"v2 \"");
    assert_eq!(server.patch_json(&format!("/v1/workflows/{workflow}"), &server.admin_key, &json!({"code": new_code})).await.status(), 200);
    assert_eq!(post(&server, &approve_path(&uuid), &keys.approver).await.status(), 200);
    let path = format!("/v1/workflow-approvals/{uuid}");
    let done = eventually(Duration::from_secs(30), || async {
        !body(server.get(&path, &keys.approver).await).await["data"]["execution_result"].is_null()
    })
    .await;
    assert!(done, "execution_result stored");
    let approval = body(server.get(&path, &keys.approver).await).await["data"].clone();
    assert_eq!(approval["execution_result"], json!({"success": true, "message": "v2 203.0.113.7", "data": {"type": "ip"}}));
    let runs = body(server.get(&format!("/v1/workflow-runs?workflow_uuid={workflow}"), &server.admin_key).await).await;
    assert_eq!(runs["meta"]["total"], 1);
    assert_eq!(runs["data"][0]["status"], "success");
    assert_eq!(runs["data"][0]["trigger_type"], "agent");
    assert_eq!(runs["data"][0]["code_version_executed"], 2);
    let refs = server.db_texts("SELECT CAST(event_references AS TEXT) FROM activity_events WHERE event_type = 'workflow_executed'").await;
    assert_eq!(refs.len(), 1);
    let refs: Value = serde_json::from_str(refs[0].as_deref().unwrap()).unwrap();
    assert_eq!(refs["approval_uuid"], uuid.as_str());
}
dual!(an_approved_request_runs_once_in_the_sandbox);

// ------------------------------------------------------------------------------------------
// The browser decide page.

/// Gives request `uuid` a known decide token (the real one only ever leaves sealed, for the
/// notifier): the database keeps its SHA-256 hex, as the gate writes it.
async fn plant_token(server: &TestServer, uuid: &str) -> String {
    use sha2::Digest;
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let sql = format!("UPDATE workflow_approval_requests SET decide_token_hash = '{hash}' WHERE uuid = {}", server.uuid_sql(uuid.parse().unwrap()));
    assert_eq!(server.db_execute(&sql).await, 1);
    token
}

fn decide_path(uuid: &str) -> String {
    format!("/v1/approvals/{uuid}/decide")
}

fn with_token(server: &TestServer, uuid: &str, token: &str) -> String {
    format!("{}?{}", server.url(&decide_path(uuid)), serde_urlencoded::to_string([("token", token)]).unwrap())
}

fn form_post(server: &TestServer, uuid: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    server
        .client
        .post(server.url(&decide_path(uuid)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
}

async fn page_get(server: &TestServer, uuid: &str, token: &str) -> (u16, String) {
    let response = server.client.get(with_token(server, uuid, token)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn page_post(server: &TestServer, uuid: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response = form_post(server, uuid, form).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn the_decide_page_cases(backend: Backend) {
    let server = builder(backend).env("RATE_LIMIT_UNAUTHED_PER_MINUTE", "60").start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let hostile = json!({"indicator_type": "domain", "indicator_value": "<img src=x onerror=alert(1)>.example", "reason": "<script>alert('x')</script> & \"quotes\"", "confidence": 0.5});
    let response = server.post_json(&format!("/v1/workflows/{workflow}/execute"), &keys.agent, &hostile).await;
    let uuid = body(response).await["data"]["approval_request_uuid"].as_str().unwrap().to_owned();
    let other = request_approval(&server, &keys.agent, &workflow).await;
    let token = plant_token(&server, &uuid).await;
    let other_token = plant_token(&server, &other).await;

    // The pending form: escaped, self-contained, under the page CSP, no token in the form's URL.
    let response = server.client.get(with_token(&server, &uuid, &token)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("script-src") && csp.contains("form-action 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt; &amp; &quot;quotes&quot;"), "{html}");
    assert!(html.contains("contain host") && html.contains("50%") && html.contains("HIGH risk") && html.contains(" UTC"));
    assert!(html.contains(&format!("action=\"/v1/approvals/{uuid}/decide\"")), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing remote: {html}");

    // Credentials: missing → 422 JSON, wrong or another request's → 403, unknown request → 404.
    let response = server.client.get(server.url(&decide_path(&uuid))).send().await.unwrap();
    expect_error(response, 422, "VALIDATION_ERROR").await;
    let (status, html) = page_get(&server, &uuid, "wrong").await;
    assert_eq!((status, html.contains("Invalid approval token.")), (403, true));
    let (status, html) = page_get(&server, &uuid, &other_token).await;
    assert_eq!((status, html.contains("Invalid approval token.")), (403, true));
    let (status, html) = page_get(&server, &uuid::Uuid::new_v4().to_string(), &token).await;
    assert_eq!((status, html.contains("Approval request not found.")), (404, true));
    let (status, _) = page_post(&server, &uuid, &[("token", &other_token), ("decision", "approve")]).await;
    assert_eq!(status, 403);
    let (status, html) = page_post(&server, &uuid, &[("token", &token), ("decision", "maybe")]).await;
    assert_eq!((status, html.contains("Invalid decision. Must be &#x27;approve&#x27; or &#x27;reject&#x27;.")), (400, true), "{html}");
    let response = form_post(&server, &uuid, &[("token", &token)]).send().await.unwrap();
    expect_error(response, 422, "VALIDATION_ERROR").await;
    let response = server.client.post(server.url(&decide_path(&uuid))).json(&json!({"token": token, "decision": "approve"})).send().await.unwrap();
    expect_error(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending'").await, 2, "nothing decided yet");

    // Approve once; the token cannot decide again.
    let (status, html) = page_post(&server, &uuid, &[("token", &token), ("decision", "approve")]).await;
    assert_eq!((status, html.contains("Workflow approved. Execution has been queued.")), (200, true), "{html}");
    let (status, html) = page_post(&server, &uuid, &[("token", &token), ("decision", "reject")]).await;
    assert_eq!((status, html.contains("This approval request has already been decided.")), (200, true));
    let (status, html) = page_get(&server, &uuid, &token).await;
    assert_eq!((status, html.contains("This approval request has already been approved.")), (200, true));
    let decided = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await["data"].clone();
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["responder_id"], "browser");
    assert_eq!(decided["decided_by"], json!({"type": "browser", "id": "browser", "key_prefix": null, "key_name": null}));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 1);

    // Expiry: the page persists it, and the link dies with it.
    let where_other = format!("uuid = {}", server.uuid_sql(other.parse().unwrap()));
    server.db_execute(&format!("UPDATE workflow_approval_requests SET expires_at = '2020-01-01T00:00:00Z' WHERE {where_other}")).await;
    let (status, html) = page_post(&server, &other, &[("token", &other_token), ("decision", "approve")]).await;
    assert_eq!((status, html.contains("This approval request has expired.")), (200, true), "{html}");
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) FROM workflow_approval_requests WHERE {where_other} AND status = 'expired'")).await, 1);
    let (status, _) = page_get(&server, &other, &other_token).await;
    assert_eq!(status, 403, "an expired request's link is dead");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 1, "no run for the expired one");

    // Cancellation kills the link too.
    let third = request_approval(&server, &keys.agent, &workflow).await;
    let third_token = plant_token(&server, &third).await;
    assert_eq!(page_get(&server, &third, &third_token).await.0, 200);
    server.patch_json(&format!("/v1/workflows/{workflow}"), &server.admin_key, &json!({"is_active": false})).await;
    assert_eq!(page_get(&server, &third, &third_token).await.0, 403);

    // The token never reaches the logs.
    let logs = format!("{}\n{}", server.stdout.text(), server.stderr.text());
    assert!(!logs.contains(&token) && !logs.contains(&other_token) && !logs.contains(&third_token), "a decide token was logged");

    // Rate-limited per client IP (the unauthenticated budget).
    let mut limited = false;
    for _ in 0..70 {
        let response = server.client.get(with_token(&server, &uuid, "guess")).send().await.unwrap();
        if response.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "token guessing meets 429");
}
dual!(the_decide_page_cases);

/// A real headless browser (Debian's chromium driven by chromedriver over WebDriver): load the
/// page, read it, click Approve, see the confirmation; loading the link again shows the request
/// already decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_approves_through_the_decide_page() {
    let (Some(driver), Some(browser)) = (which("chromedriver"), which("chromium").or_else(|| which("chromium-browser"))) else {
        eprintln!("skipping a_real_browser_approves_through_the_decide_page: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let server = builder(Backend::Sqlite).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    let token = plant_token(&server, &uuid).await;
    let link = format!("{}?token={token}", server.url(&decide_path(&uuid)));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut chromedriver = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let wd = WebDriver { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), session: String::new() };
    let profile = tempfile::tempdir().unwrap();
    let wd = wd.start(&browser, profile.path()).await;

    wd.go(&link).await;
    assert_eq!(wd.text("#workflow").await, "contain host");
    assert_eq!(wd.text("#indicator").await, "203.0.113.7");
    assert_eq!(wd.text("#reason").await, "beaconing to C2");
    wd.click("#approve").await;
    let confirmed = wd.text("#message").await;
    assert_eq!(confirmed, "Workflow approved. Execution has been queued.");
    wd.go(&link).await;
    assert_eq!(wd.text("#message").await, "This approval request has already been approved.");
    wd.quit().await;
    let _ = chromedriver.kill().await;

    let decided = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await["data"].clone();
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"]["type"], "browser");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| std::path::Path::new(dir).join(program)).find(|p| p.is_file())
}

/// The few WebDriver commands the browser test needs, as JSON over HTTP.
struct WebDriver {
    base: String,
    client: reqwest::Client,
    session: String,
}

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, payload: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(payload) = payload {
            request = request.json(&payload);
        }
        let answer: Value = request.send().await.expect("webdriver reachable").json().await.unwrap();
        answer["value"].clone()
    }

    async fn start(mut self, browser: &std::path::Path, profile: &std::path::Path) -> Self {
        let args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": browser.to_str().unwrap(), "args": args}}}});
        let mut session = Value::Null;
        for _ in 0..50 {
            if let Ok(response) = self.client.post(format!("{}/session", self.base)).json(&capabilities).send().await {
                session = response.json::<Value>().await.unwrap()["value"].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.session = session["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        self
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, &format!("/session/{}/url", self.session), Some(json!({"url": url}))).await;
    }

    async fn element(&self, css: &str) -> String {
        for _ in 0..50 {
            let found = self.call(reqwest::Method::POST, &format!("/session/{}/element", self.session), Some(json!({"using": "css selector", "value": css}))).await;
            if let Some(id) = found.get("element-6066-11e4-a52e-4f735466cecf").and_then(Value::as_str) {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css}");
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/session/{}/element/{id}/text", self.session), None).await.as_str().unwrap_or_default().to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/session/{}/element/{id}/click", self.session), Some(json!({}))).await;
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, &format!("/session/{}", self.session), None).await;
    }
}

// ------------------------------------------------------------------------------------------
// Chat callbacks.

fn slack_signed(secret: &str, timestamp: i64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

async fn slack_post(server: &TestServer, timestamp: Option<String>, signature: Option<String>, body: &str) -> (u16, String) {
    let mut request = server.client.post(server.url("/v1/approvals/callback/slack")).header("content-type", "application/x-www-form-urlencoded").body(body.to_owned());
    if let Some(t) = timestamp {
        request = request.header("x-slack-request-timestamp", t);
    }
    if let Some(s) = signature {
        request = request.header("x-slack-signature", s);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn slack_callbacks_are_signed_and_decide_once(backend: Backend) {
    // Without a signing secret the callback is refused (fail closed).
    let server = builder(backend.clone()).start().await;
    let (status, text) = slack_post(&server, None, None, "payload=%7B%7D").await;
    assert_eq!((status, text.contains("SLACK_SIGNING_SECRET")), (403, true), "{text}");
    let teams = server.client.post(server.url("/v1/approvals/callback/teams")).send().await.unwrap();
    assert_eq!(teams.status(), 200);
    assert!(body(teams).await["message"].as_str().unwrap().contains("not supported"));
    server.stop().await;

    let secret = "slack-signing-secret-for-tests";
    let server = builder(backend).env("SLACK_SIGNING_SECRET", secret).start().await;
    let keys = make_keys(&server).await;
    let workflow = gated_workflow(&server).await;
    let uuid = request_approval(&server, &keys.agent, &workflow).await;
    let payload = json!({"type": "block_actions", "user": {"id": "U024BE7LH"}, "actions": [{"action_id": format!("approve:{uuid}"), "value": uuid}]});
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
    let now = chrono::Utc::now().timestamp();

    // Missing, non-numeric, stale, and wrong signatures: refused, nothing decided.
    assert_eq!(slack_post(&server, None, Some(slack_signed(secret, now, &form)), &form).await, (403, "Invalid timestamp".into()));
    assert_eq!(slack_post(&server, Some("soon".into()), Some(slack_signed(secret, now, &form)), &form).await, (403, "Invalid timestamp".into()));
    let stale = now - 301;
    assert_eq!(slack_post(&server, Some(stale.to_string()), Some(slack_signed(secret, stale, &form)), &form).await, (403, "Request too old".into()));
    assert_eq!(slack_post(&server, Some(now.to_string()), None, &form).await, (403, "Invalid signature".into()));
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed("other-secret", now, &form)), &form).await, (403, "Invalid signature".into()));
    let tampered = form.replace("approve", "reject");
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed(secret, now, &form)), &tampered).await, (403, "Invalid signature".into()));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending'").await, 1);

    // Signed: payload checks, then the decision.
    let empty = "nothing=1";
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed(secret, now, empty)), empty).await, (400, "Missing payload".into()));
    let broken = "payload=%7Bnot-json";
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed(secret, now, broken)), broken).await, (400, "Invalid JSON payload".into()));
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed(secret, now, &form)), &form).await, (200, "ok".into()));
    let decided = body(server.get(&format!("/v1/workflow-approvals/{uuid}"), &keys.approver).await).await["data"].clone();
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["responder_id"], "U024BE7LH");
    assert_eq!(decided["decided_by"]["type"], "slack");
    assert_eq!(decided["decided_by"]["id"], "U024BE7LH");
    // A replay inside the window is answered but cannot decide again.
    assert_eq!(slack_post(&server, Some(now.to_string()), Some(slack_signed(secret, now, &form)), &form).await, (200, "ok".into()));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'execute_approved_workflow_task'").await, 1);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'workflow_approval_responded'").await, 1);
}
dual!(slack_callbacks_are_signed_and_decide_once);
