//! Workflows over HTTP with the real sandbox: CRUD and versions, save-time validation, the
//! approval gate, runs (success, failure, timeout, unknown indicator), ctx.http through the
//! egress gateway, granted secrets, Okta through the parent, the test and generate endpoints,
//! builtins seeded once, and the production refusal. Sandbox-dependent tests print a skip reason
//! when this host cannot sandbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, ServerBuilder, TestServer, body, eventually, expect_error, run_cli};

const OK_CODE: &str = "from app.workflows.context import WorkflowContext, WorkflowResult\n\n\
async def run(ctx: WorkflowContext) -> WorkflowResult:\n    ctx.log.info(\"checked\", value=ctx.indicator.value)\n    \
return WorkflowResult.ok(\"done \" + ctx.indicator.value, data={\"type\": ctx.indicator.type})\n";

fn code(body: &str) -> String {
    format!("from app.workflows.context import WorkflowContext, WorkflowResult\nimport json\n\nasync def run(ctx):\n{body}")
}

fn builder(backend: Backend) -> ServerBuilder {
    TestServer::builder(backend).env("RATE_LIMIT_WORKFLOW_EXECUTE_PER_MINUTE", "100000").env("QUEUE_POLL_INTERVAL_MS", "50")
}

/// Whether this host runs the sandbox (read from /health); prints why not.
async fn sandbox_ok(server: &TestServer, test: &str) -> bool {
    let health = body(server.client.get(server.url("/health")).send().await.unwrap()).await;
    let ok = health["workflow_sandbox"]["status"] == "ok";
    if !ok {
        eprintln!("skipping {test}: workflow sandbox unavailable on this host: {}", health["workflow_sandbox"]);
        assert!(std::env::var("CALSETA_REQUIRE_SANDBOX").is_err(), "CALSETA_REQUIRE_SANDBOX is set");
    }
    ok
}

async fn create(server: &TestServer, extra: Value) -> Value {
    let mut request = json!({"name": "wf", "code": OK_CODE, "state": "active", "approval_mode": "never"});
    request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let response = server.post_json("/v1/workflows", &server.admin_key, &request).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    body(response).await["data"].clone()
}

async fn plant_indicator(server: &TestServer, kind: &str, value: &str) {
    let sql = format!(
        "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, created_at, updated_at) VALUES ({}, '{kind}', '{value}', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        server.uuid_sql(uuid::Uuid::new_v4())
    );
    server.db_execute(&sql).await;
}

/// Executes and waits for the run to finish; returns the run.
async fn execute_and_wait(server: &TestServer, key: &str, workflow: &str, request: Value) -> Value {
    let response = server.post_json(&format!("/v1/workflows/{workflow}/execute"), key, &request).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let accepted = body(response).await;
    assert_eq!(accepted["data"]["status"], "queued");
    assert_eq!(accepted["meta"], json!({}));
    let run_uuid = accepted["data"]["run_uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/workflow-runs?workflow_uuid={workflow}&page_size=500");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = body(server.get(&path, &server.admin_key).await).await;
        let found = page["data"].as_array().unwrap().iter().find(|r| r["uuid"] == run_uuid.as_str()).cloned();
        if let Some(run) = found.filter(|r| r["status"] != "queued") {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "run {run_uuid} did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn crud_versions_and_validation(backend: Backend) {
    let server = builder(backend).start().await;
    let key = &server.admin_key;
    let created = create(&server, json!({"state": "draft", "tags": ["a"], "risk_level": "high"})).await;
    assert_eq!(created["code_version"], 1);
    assert_eq!(created["is_active"], true);
    assert_eq!(created["is_system"], false);
    assert_eq!(created["timeout_seconds"], 300);
    let uuid = created["uuid"].as_str().unwrap();

    // Validation: AST rules (line numbers), bad fields, and CPython's own compile() in the sandbox.
    let bad = server.post_json("/v1/workflows", key, &json!({"name": "x", "code": "import os\nasync def run(ctx):\n    eval('1')\n"})).await;
    let error = expect_error(bad, 400, "WORKFLOW_CODE_INVALID").await;
    assert_eq!(error["error"]["message"], "Workflow code failed validation");
    assert_eq!(error["error"]["details"]["errors"], json!(["Line 1: import of 'os' is not allowed", "Line 3: use of 'eval' is not allowed"]));
    let no_run = server.post_json("/v1/workflows", key, &json!({"name": "x", "code": "def run(ctx):\n    pass\n"})).await;
    let error = expect_error(no_run, 400, "WORKFLOW_CODE_INVALID").await;
    assert_eq!(error["error"]["details"]["errors"][0], "Workflow code must define an async function named 'run'");
    for bad_field in [json!({"state": "running"}), json!({"approval_mode": "maybe"}), json!({"indicator_types": ["ipv9"]}), json!({"timeout_seconds": 0}), json!({"name": " "})] {
        let mut request = json!({"name": "x", "code": OK_CODE});
        request.as_object_mut().unwrap().extend(bad_field.as_object().unwrap().clone());
        expect_error(server.post_json("/v1/workflows", key, &request).await, 422, "VALIDATION_ERROR").await;
    }
    if sandbox_ok(&server, "crud_versions_and_validation (compile check)").await {
        // rustpython accepts this 3.12-only statement; the 3.11 runtime does not.
        let newer = code("    type X = int\n    return WorkflowResult.ok()\n");
        let error = expect_error(server.post_json("/v1/workflows", key, &json!({"name": "x", "code": newer})).await, 400, "WORKFLOW_CODE_INVALID").await;
        assert!(error["error"]["details"]["errors"][0].as_str().unwrap().starts_with("Syntax error"), "{error}");
    }

    // Pathological nesting is a clear 400 (CPython's parser limit), never a crash.
    let deep = format!("from app.workflows.context import WorkflowResult\nasync def run(ctx):\n    return {}1{}\n", "(".repeat(5000), ")".repeat(5000));
    let response = server.post_json("/v1/workflows", key, &json!({"name": "deep", "code": deep})).await;
    assert_eq!(response.status(), 400, "{}", response.text().await.unwrap());
    assert_eq!(server.get("/v1/workflows?page_size=1", key).await.status(), 200, "the server survived");

    // Versioning: every PATCH with code snapshots the previous code, even identical code.
    for _ in 0..2 {
        let patched = body(server.patch_json(&format!("/v1/workflows/{uuid}"), key, &json!({"code": OK_CODE})).await).await;
        assert!(patched["data"]["code_version"].is_number(), "{patched}");
    }
    let versions = body(server.get(&format!("/v1/workflows/{uuid}/versions"), key).await).await;
    assert_eq!(versions["data"].as_array().unwrap().iter().map(|v| v["version"].clone()).collect::<Vec<_>>(), vec![json!(2), json!(1)]);
    assert_eq!(versions["data"][0]["code_preview"].as_str().unwrap().chars().count(), 120);
    assert_eq!(versions["meta"], json!({}));
    let bad_patch = server.patch_json(&format!("/v1/workflows/{uuid}"), key, &json!({"code": "import socket\nasync def run(ctx): pass\n"})).await;
    expect_error(bad_patch, 400, "WORKFLOW_CODE_INVALID").await;
    // state without is_active syncs it; nulls leave fields alone.
    let patched = body(server.patch_json(&format!("/v1/workflows/{uuid}"), key, &json!({"state": "inactive", "name": null})).await).await;
    assert_eq!(patched["data"]["is_active"], false);
    assert_eq!(patched["data"]["name"], "wf");
    assert_eq!(patched["data"]["code_version"], 3);

    // List: builtins are there, filters and sort work, summaries omit the code.
    let list = body(server.get("/v1/workflows?risk_level=high,critical&sort_by=risk_level&page_size=100", key).await).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"wf") && names.contains(&"Okta — Suspend User"), "{names:?}");
    assert!(list["data"][0].get("code").is_none());
    expect_error(server.get("/v1/workflows?sort_by=code", key).await, 400, "VALIDATION_ERROR").await;
    let system = body(server.get("/v1/workflows?page_size=100", key).await).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["is_system"] == true)
        .map(|w| w["uuid"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(system.len(), 9);
    let denied = server.request(reqwest::Method::DELETE, &format!("/v1/workflows/{}", system[0]), Some(key)).send().await.unwrap();
    let error = expect_error(denied, 403, "FORBIDDEN").await;
    assert_eq!(error["error"]["message"], "System workflows cannot be deleted");

    // Scopes: read-only keys read, cannot write.
    let (reader, _) = server.create_key(&["workflows:read"], json!({})).await;
    assert_eq!(server.get(&format!("/v1/workflows/{uuid}"), &reader).await.status(), 200);
    expect_error(server.post_json("/v1/workflows", &reader, &json!({})).await, 403, "FORBIDDEN").await;

    let deleted = server.request(reqwest::Method::DELETE, &format!("/v1/workflows/{uuid}"), Some(key)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = expect_error(server.get(&format!("/v1/workflows/{uuid}"), key).await, 404, "NOT_FOUND").await;
    assert_eq!(gone["error"]["message"], format!("Workflow {uuid} not found"));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_code_versions").await, 0, "versions cascade");
    assert!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'workflows.%'").await >= 5);
}
dual!(crud_versions_and_validation);

async fn gate_table_and_approval_requests(backend: Backend) {
    let server = builder(backend).start().await;
    let (human, _) = server.create_key(&["workflows:execute", "workflows:read"], json!({"key_type": "human"})).await;
    let (agent, _) = server.create_key(&["workflows:execute", "workflows:read"], json!({"key_type": "agent"})).await;
    let request = json!({"indicator_type": "account", "indicator_value": "j.doe@example.org"});
    let with_reason = json!({"indicator_type": "account", "indicator_value": "j.doe@example.org", "reason": "impossible travel", "confidence": 0.9});

    // Agent keys must say why and how sure, even when no gate applies; checked before the lookup.
    let missing = server.post_json(&format!("/v1/workflows/{}/execute", uuid::Uuid::new_v4()), &agent, &request).await;
    let error = expect_error(missing, 422, "VALIDATION_ERROR").await;
    assert_eq!(error["error"]["message"], "Missing required fields for agent-triggered execution");
    assert_eq!(error["error"]["details"]["errors"], json!(["reason is required for agent API keys", "confidence is required for agent API keys"]));
    expect_error(server.post_json(&format!("/v1/workflows/{}/execute", uuid::Uuid::new_v4()), &human, &request).await, 404, "NOT_FOUND").await;
    let bad = json!({"indicator_type": "ipv9", "indicator_value": "x", "confidence": 2.0});
    expect_error(server.post_json(&format!("/v1/workflows/{}/execute", uuid::Uuid::new_v4()), &human, &bad).await, 422, "VALIDATION_ERROR").await;

    let draft = create(&server, json!({"state": "draft"})).await;
    let error = expect_error(server.post_json(&format!("/v1/workflows/{}/execute", draft["uuid"].as_str().unwrap()), &human, &request).await, 400, "WORKFLOW_NOT_EXECUTABLE").await;
    assert_eq!(error["error"]["message"], "Workflow cannot be executed: state is 'draft'. Set state to 'active' before executing.");

    // The §5.1 table: (mode, key) → pending approval or a queued run.
    let mut approvals = 0;
    for (mode, human_gated, agent_gated) in [("always", true, true), ("agent_only", false, true), ("never", false, false)] {
        let workflow = create(&server, json!({"approval_mode": mode, "approval_timeout_seconds": 0, "approval_channel": "#soc"})).await;
        let uuid = workflow["uuid"].as_str().unwrap();
        for (key, body_json, gated) in [(&human, &request, human_gated), (&agent, &with_reason, agent_gated)] {
            let response = server.post_json(&format!("/v1/workflows/{uuid}/execute"), key, body_json).await;
            assert_eq!(response.status(), 202);
            let answer = body(response).await;
            if gated {
                approvals += 1;
                assert_eq!(answer["data"]["status"], "pending_approval", "{mode}: {answer}");
                assert!(answer.get("meta").is_none(), "no meta on pending approval");
                assert!(answer["data"]["approval_request_uuid"].is_string() && answer["data"]["expires_at"].is_string());
            } else {
                assert_eq!(answer["data"]["status"], "queued", "{mode}: {answer}");
                assert!(answer["data"]["run_uuid"].is_string());
            }
        }
    }
    assert_eq!(approvals, 3);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending'").await, 3);
    // The decide token exists only as a SHA-256 hash; the plaintext column stays empty.
    let hashes = server.db_texts("SELECT decide_token_hash FROM workflow_approval_requests").await;
    assert!(hashes.iter().all(|h| h.as_ref().is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))), "{hashes:?}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_approval_requests WHERE decide_token IS NOT NULL").await, 0);
    // Human without reason: "" and 0.0; agent: its own. APPROVAL_DEFAULT_TIMEOUT_SECONDS applies for 0.
    let reasons = server.db_texts("SELECT reason || '|' || trigger_type || '|' || notifier_type || '|' || notifier_channel FROM workflow_approval_requests ORDER BY id").await;
    assert_eq!(reasons[0].as_deref(), Some("|human|none|#soc"));
    assert_eq!(reasons[1].as_deref(), Some("impossible travel|agent|none|#soc"));
    let prefixes = server.db_texts("SELECT trigger_agent_key_prefix FROM workflow_approval_requests ORDER BY id").await;
    assert_eq!(prefixes[1].as_deref(), Some(&agent[..prefixes[1].as_ref().unwrap().len()]));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'workflow_approval_requested' AND workflow_id IS NOT NULL").await, 3);
    let notified = eventually(Duration::from_secs(15), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'send_approval_notification_task' AND status = 'succeeded'").await == 3
    })
    .await;
    assert!(notified, "notification jobs ran: {:?}", server.db_texts("SELECT status FROM jobs").await);
}
dual!(gate_table_and_approval_requests);

async fn runs_success_failure_timeout_unknown_indicator(backend: Backend) {
    let server = builder(backend).env("WORKFLOW_MAX_CONCURRENT_RUNS", "2").start().await;
    if !sandbox_ok(&server, "runs_success_failure_timeout_unknown_indicator").await {
        return;
    }
    let key = server.admin_key.clone();
    plant_indicator(&server, "account", "j.doe@example.org").await;
    let request = json!({"indicator_type": "account", "indicator_value": "j.doe@example.org"});

    let ok = create(&server, json!({})).await;
    let run = execute_and_wait(&server, &key, ok["uuid"].as_str().unwrap(), request.clone()).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["result"], json!({"success": true, "message": "done j.doe@example.org", "data": {"type": "account"}}));
    assert_eq!(run["attempt_count"], 1);
    assert_eq!(run["trigger_type"], "human");
    assert_eq!(run["trigger_context"]["indicator_value"], "j.doe@example.org");
    let log: Value = serde_json::from_str(run["log_output"].as_str().unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((log["level"].as_str(), log["message"].as_str()), (Some("info"), Some("checked")));
    assert_eq!(log["extra"]["value"], "j.doe@example.org");
    assert!(run["duration_ms"].as_i64().unwrap() >= 0 && run["started_at"].is_string() && run["completed_at"].is_string());

    let failing = create(&server, json!({"code": code("    return WorkflowResult.fail('the vendor timed out')\n")})).await;
    let run = execute_and_wait(&server, &key, failing["uuid"].as_str().unwrap(), request.clone()).await;
    // A workflow's own message mentioning "timed out" is a failure, not a timeout (Calseta's quirk fixed).
    assert_eq!((run["status"].as_str(), run["result"]["message"].as_str()), (Some("failed"), Some("the vendor timed out")));

    let raising = create(&server, json!({"code": code("    raise ValueError('boom')\n")})).await;
    let run = execute_and_wait(&server, &key, raising["uuid"].as_str().unwrap(), request.clone()).await;
    assert_eq!(run["status"], "failed");
    assert!(run["result"]["message"].as_str().unwrap().starts_with("Workflow run() raised an exception: boom"), "{run}");

    let spinning = create(&server, json!({"timeout_seconds": 1, "code": code("    while True:\n        pass\n")})).await;
    let started = std::time::Instant::now();
    let run = execute_and_wait(&server, &key, spinning["uuid"].as_str().unwrap(), request.clone()).await;
    assert_eq!(run["status"], "timed_out", "{run}");
    assert_eq!(run["result"]["message"], "Workflow execution timed out after 1 seconds");
    assert!(started.elapsed() < Duration::from_secs(10));

    let unknown = execute_and_wait(&server, &key, ok["uuid"].as_str().unwrap(), json!({"indicator_type": "ip", "indicator_value": "203.0.113.9"})).await;
    assert_eq!(unknown["status"], "failed");
    assert_eq!(unknown["result"]["message"], "Indicator (ip, '203.0.113.9') not found in database");

    let per_workflow = body(server.get(&format!("/v1/workflows/{}/runs", ok["uuid"].as_str().unwrap()), &key).await).await;
    assert_eq!(per_workflow["meta"]["total"], 2);
    let failed = body(server.get("/v1/workflow-runs?status=failed", &key).await).await;
    assert_eq!(failed["meta"]["total"], 3);
    expect_error(server.get(&format!("/v1/workflow-runs?workflow_uuid={}", uuid::Uuid::new_v4()), &key).await, 404, "NOT_FOUND").await;
    expect_error(server.get("/v1/workflow-runs?workflow_uuid=nope", &key).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'workflow_executed'").await, 5);

    // A burst larger than the concurrent-run limit: surplus claimed jobs go back to the queue and
    // every run still completes exactly once.
    let path = format!("/v1/workflows/{}/execute", ok["uuid"].as_str().unwrap());
    let burst = (0..6).map(|_| server.post_json(&path, &key, &request));
    for response in futures::future::join_all(burst).await {
        assert_eq!(response.status(), 202);
    }
    let done = eventually(Duration::from_secs(60), || async {
        server.db_count("SELECT COUNT(*) FROM workflow_runs WHERE status = 'success'").await == 7
    })
    .await;
    assert!(done, "runs: {:?}", server.db_texts("SELECT status FROM workflow_runs").await);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_runs WHERE attempt_count <> 1").await, 0);
}
dual!(runs_success_failure_timeout_unknown_indicator);

/// (method, path and query, headers, body) of one request the fake received.
type Hit = (String, String, HeaderMap, String);

/// A loopback fake for ctx.http, Okta, and the Anthropic Messages API; records every request.
#[derive(Clone, Default)]
struct Fake {
    hits: Arc<Mutex<Vec<Hit>>>,
    anthropic_answer: Arc<Mutex<Value>>,
}

impl Fake {
    async fn start() -> (Fake, u16) {
        let fake = Fake::default();
        let app = Router::new().fallback(any(fake_handler)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, port)
    }
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn fake_handler(State(fake): State<Fake>, method: Method, uri: Uri, headers: HeaderMap, payload: String) -> axum::Json<Value> {
    fake.hits.lock().unwrap().push((method.to_string(), uri.to_string(), headers, payload.clone()));
    let path = uri.path();
    let answer = if path == "/v1/messages" {
        fake.anthropic_answer.lock().unwrap().clone()
    } else if path.ends_with("/oauth2/v2.0/token") {
        json!({"access_token": "graph-token"})
    } else if path.ends_with("/authentication/methods") {
        json!({"value": [{"id": "pw", "@odata.type": "#microsoft.graph.passwordAuthenticationMethod"},
                         {"id": "m1", "@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"}]})
    } else if path.starts_with("/api/v1/users/") && method == Method::GET {
        json!({"id": "00u-okta-id"})
    } else {
        json!({"echo": path, "method": method.to_string(), "body": payload})
    };
    axum::Json(answer)
}

async fn ctx_http_secrets_and_okta(backend: Backend) {
    let (fake, port) = Fake::start().await;
    let server = builder(backend)
        .env("SSRF_ALLOWED_HOSTS", "127.0.0.1")
        .env("WORKFLOW_SECRETS", "WF_TOKEN,NOT_SET")
        .env("WF_TOKEN", "s3cret")
        .env("ENCRYPTION_KEY", "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8=")
        .env("OKTA_DOMAIN", "example.okta.com")
        .env("OKTA_API_TOKEN", "okta-token-never-in-child")
        .env("OKTA_BASE_URL", &format!("http://127.0.0.1:{port}"))
        .env("ENTRA_TENANT_ID", "t1")
        .env("ENTRA_CLIENT_ID", "c1")
        .env("ENTRA_CLIENT_SECRET", "entra-secret")
        .env("ENTRA_LOGIN_BASE_URL", &format!("http://127.0.0.1:{port}/login"))
        .env("ENTRA_GRAPH_BASE_URL", &format!("http://127.0.0.1:{port}/graph/v1.0"))
        .start()
        .await;
    if !sandbox_ok(&server, "ctx_http_secrets_and_okta").await {
        return;
    }
    let key = server.admin_key.clone();
    plant_indicator(&server, "account", "j.doe@example.org").await;
    let request = json!({"indicator_type": "account", "indicator_value": "j.doe@example.org"});
    let body_code = code(&format!(
        "    r = await ctx.http.post('http://127.0.0.1:{port}/hook', json={{'who': ctx.indicator.value}})\n    \
         blocked = ''\n    try:\n        await ctx.http.get('http://169.254.169.254/latest/meta-data/')\n    except Exception as e:\n        blocked = str(e)\n    \
         return WorkflowResult.ok('ok', data={{'status': r.status_code, 'echo': r.json(), 'blocked': blocked, \
         'token': ctx.secrets.get('WF_TOKEN'), 'db': ctx.secrets.get('DATABASE_URL'), 'okta_token': ctx.secrets.get('OKTA_API_TOKEN')}})\n"
    ));
    let workflow = create(&server, json!({"code": body_code})).await;
    let run = execute_and_wait(&server, &key, workflow["uuid"].as_str().unwrap(), request.clone()).await;
    assert_eq!(run["status"], "success", "{run}");
    let data = &run["result"]["data"];
    assert_eq!(data["status"], 200);
    assert_eq!(data["echo"]["echo"], "/hook");
    assert_eq!(serde_json::from_str::<Value>(data["echo"]["body"].as_str().unwrap()).unwrap(), json!({"who": "j.doe@example.org"}));
    assert!(data["blocked"].as_str().unwrap().contains("SSRF"), "{data}");
    assert_eq!(data["token"], "s3cret");
    assert_eq!((data["db"].clone(), data["okta_token"].clone()), (Value::Null, Value::Null), "platform secrets are never granted");

    // A builtin drives Okta through the parent: the child never holds the token.
    let list = body(server.get("/v1/workflows?page_size=100", &key).await).await;
    let suspend = list["data"].as_array().unwrap().iter().find(|w| w["name"] == "Okta — Suspend User").unwrap().clone();
    assert_eq!(suspend["is_active"], true, "credentials were set at first seeding");
    let uuid = suspend["uuid"].as_str().unwrap();
    server.patch_json(&format!("/v1/workflows/{uuid}"), &key, &json!({"approval_mode": "never"})).await;
    let run = execute_and_wait(&server, &key, uuid, request.clone()).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["result"]["message"], "Suspended Okta user j.doe@example.org");
    let okta: Vec<_> = fake.hits().into_iter().filter(|(_, path, _, _)| path.starts_with("/api/v1/")).collect();
    assert_eq!(okta.iter().map(|(m, p, _, _)| format!("{m} {p}")).collect::<Vec<_>>(), vec![
        "GET /api/v1/users/j.doe@example.org".to_owned(),
        "POST /api/v1/users/00u-okta-id/lifecycle/suspend".to_owned()
    ]);
    assert!(okta.iter().all(|(_, _, h, _)| h["authorization"] == "SSWS okta-token-never-in-child"));

    // Entra: client-credentials token, then Graph; password methods are kept.
    let mfa = list["data"].as_array().unwrap().iter().find(|w| w["name"] == "Entra — Force MFA Re-registration").unwrap().clone();
    let uuid = mfa["uuid"].as_str().unwrap();
    server.patch_json(&format!("/v1/workflows/{uuid}"), &key, &json!({"approval_mode": "never"})).await;
    let run = execute_and_wait(&server, &key, uuid, json!({"indicator_type": "account", "indicator_value": "j.doe@example.org"})).await;
    assert_eq!(run["result"]["message"], "Forced MFA re-registration for j.doe@example.org", "{run}");
    let entra: Vec<_> = fake.hits().into_iter().filter(|(_, path, _, _)| path.starts_with("/login") || path.starts_with("/graph")).collect();
    assert_eq!(entra.iter().map(|(m, p, _, _)| format!("{m} {p}")).collect::<Vec<_>>(), vec![
        "POST /login/t1/oauth2/v2.0/token".to_owned(),
        "GET /graph/v1.0/users/j.doe@example.org/authentication/methods".to_owned(),
        "DELETE /graph/v1.0/users/j.doe@example.org/authentication/methods/m1".to_owned(),
    ]);
    assert!(entra[0].3.contains("client_secret=entra-secret") && entra[0].3.contains("grant_type=client_credentials"));
    assert!(entra[1..].iter().all(|(_, _, h, _)| h["authorization"] == "Bearer graph-token"));

    // A secret name that is a server setting is refused at start-up.
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DATABASE_URL".to_owned(), format!("sqlite://{}/x.db", dir.path().display())),
        ("WORKFLOW_SECRETS".to_owned(), "ENCRYPTION_KEY".to_owned()),
    ];
    let (code, _, stderr) = run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("WORKFLOW_SECRETS") && stderr.contains("ENCRYPTION_KEY"), "{stderr}");
}
dual!(ctx_http_secrets_and_okta);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_and_generate_endpoints() {
    let (fake, port) = Fake::start().await;
    let server = builder(Backend::Sqlite)
        .env("SSRF_ALLOWED_HOSTS", "127.0.0.1")
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", &format!("http://127.0.0.1:{port}"))
        .env("WORKFLOW_GENERATE_MODEL", "claude-test")
        .start()
        .await;
    let key = server.admin_key.clone();
    // Generate: the model's fenced JSON answer, AST-validated; nothing saved.
    let generated = format!("```json\n{}\n```", json!({"code": OK_CODE, "suggested_name": "Check account", "warnings": ["w"]}));
    *fake.anthropic_answer.lock().unwrap() = json!({"content": [{"type": "text", "text": generated}]});
    let answer = body(server.post_json("/v1/workflows/generate", &key, &json!({"description": "check an account", "indicator_types": ["account"]})).await).await;
    assert_eq!(answer["data"], json!({"generated_code": OK_CODE, "suggested_name": "Check account", "suggested_documentation": "", "warnings": ["w"]}));
    let (_, path, headers, sent) = fake.hits().into_iter().find(|(_, p, _, _)| p == "/v1/messages").unwrap();
    assert_eq!(path, "/v1/messages");
    assert_eq!((headers["x-api-key"].to_str().unwrap(), headers["anthropic-version"].to_str().unwrap()), ("sk-test", "2023-06-01"));
    let sent: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["model"], "claude-test");
    assert!(sent["messages"][0]["content"].as_str().unwrap().contains("Indicator types: account"));
    *fake.anthropic_answer.lock().unwrap() = json!({"content": [{"type": "text", "text": json!({"code": "import os\nasync def run(ctx): pass\n"}).to_string()}]});
    let error = expect_error(server.post_json("/v1/workflows/generate", &key, &json!({"description": "x"})).await, 400, "WORKFLOW_GENERATION_FAILED").await;
    assert!(error["error"]["message"].as_str().unwrap().starts_with("Generated code failed AST validation: Line 1: import of 'os'"), "{error}");
    *fake.anthropic_answer.lock().unwrap() = json!({"content": []});
    expect_error(server.post_json("/v1/workflows/generate", &key, &json!({"description": "x"})).await, 400, "WORKFLOW_GENERATION_FAILED").await;
    expect_error(server.post_json("/v1/workflows/generate", &key, &json!({})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflows WHERE is_system = FALSE").await, 0);

    if !sandbox_ok(&server, "test_and_generate_endpoints (test endpoint)").await {
        return;
    }
    let probe = code(&format!(
        "    r = await ctx.http.get('http://127.0.0.1:{port}/live')\n    ok = await ctx.integrations.okta.suspend_user(ctx.indicator.value)\n    \
         ctx.log('tested')\n    return WorkflowResult.ok('t', data={{'body': r.json(), 'indicator': ctx.indicator.value, 'malice': ctx.indicator.malice, 'okta': ok}})\n"
    ));
    let workflow = create(&server, json!({"code": probe})).await;
    let path = format!("/v1/workflows/{}/test", workflow["uuid"].as_str().unwrap());
    let mocked = body(server.post_json(&path, &key, &json!({"mock_http_responses": {"mocked": true}})).await).await;
    assert_eq!(mocked["data"]["success"], true, "{mocked}");
    assert_eq!(mocked["data"]["duration_ms"], 0);
    assert_eq!(mocked["data"]["result_data"], json!({"body": {"mocked": true}, "indicator": "1.2.3.4", "malice": "Pending", "okta": null}));
    assert!(mocked["data"]["log_output"].as_str().unwrap().contains("\"tested\""));
    assert!(!fake.hits().iter().any(|(_, p, _, _)| p == "/live"), "mocked requests never leave");
    let live = body(server.post_json(&path, &key, &json!({"live_http": true, "indicator_type": "ip", "indicator_value": "198.51.100.7"})).await).await;
    assert_eq!(live["data"]["result_data"]["body"]["echo"], "/live", "{live}");
    // live_http goes through the egress gateway: the metadata address is refused.
    let metadata = create(&server, json!({"code": code("    r = await ctx.http.get('http://169.254.169.254/')\n    return WorkflowResult.ok('reached')\n")})).await;
    let refused = body(server.post_json(&format!("/v1/workflows/{}/test", metadata["uuid"].as_str().unwrap()), &key, &json!({"live_http": true})).await).await;
    assert_eq!(refused["data"]["success"], false);
    assert!(refused["data"]["message"].as_str().unwrap().contains("SSRF"), "{refused}");
    let draft = create(&server, json!({"state": "draft"})).await;
    let error = expect_error(server.post_json(&format!("/v1/workflows/{}/test", draft["uuid"].as_str().unwrap()), &key, &json!({})).await, 400, "WORKFLOW_NOT_EXECUTABLE").await;
    assert_eq!(error["error"]["message"], "Workflow is in 'draft' state — set state to 'active' before testing");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM workflow_runs").await, 0, "tests persist nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_are_seeded_once_and_edits_survive_restarts() {
    let mut first = builder(Backend::Sqlite).start().await;
    assert_eq!(first.db_count("SELECT COUNT(*) FROM workflows WHERE is_system = TRUE").await, 9);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM workflows WHERE is_system = TRUE AND is_active = FALSE").await, 9, "no credentials at first seeding");
    first.db_execute("UPDATE workflows SET documentation = 'edited' WHERE name = 'Okta — Reset Password'").await;
    first.terminate().await;
    let second = builder(Backend::Sqlite).sharing(&first).env("OKTA_DOMAIN", "x.okta.com").env("OKTA_API_TOKEN", "t").start().await;
    assert_eq!(second.db_count("SELECT COUNT(*) FROM workflows WHERE is_system = TRUE").await, 9);
    assert_eq!(second.db_count("SELECT COUNT(*) FROM workflows WHERE documentation = 'edited'").await, 1);
    assert_eq!(second.db_count("SELECT COUNT(*) FROM workflows WHERE is_system = TRUE AND is_active = TRUE").await, 0, "never re-evaluated");
    let health = body(second.client.get(second.url("/health")).send().await.unwrap()).await;
    assert!(health["workflow_sandbox"]["status"].is_string(), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_an_unavailable_sandbox_unless_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = [
        ("ENVIRONMENT", "production"),
        ("ENCRYPTION_KEY", "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8="),
        ("HTTPS_ENABLED", "true"),
        ("LOG_FORMAT", "json"),
        ("SENTINEL_WEBHOOK_SECRET", "a"),
        ("ELASTIC_WEBHOOK_SECRET", "b"),
        ("SPLUNK_WEBHOOK_SECRET", "c"),
        ("WORKFLOW_PYTHON", "/nonexistent/python3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("DATABASE_URL".into(), format!("sqlite://{}/prod.db", dir.path().display())));
    let (code, _, stderr) = run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env).await;
    assert_ne!(code, 0, "must refuse: {stderr}");
    assert!(stderr.contains("WORKFLOWS_ENABLED") && stderr.contains("sandbox is unavailable"), "{stderr}");

    // Disabled workflows start; /health says so and runs fail without running anything.
    // Disabled workflows start (in development here); /health says so and runs do not happen.
    let server = builder(Backend::Sqlite).env("WORKFLOWS_ENABLED", "false").env("WORKFLOW_PYTHON", "/nonexistent/python3").start().await;
    let health = body(server.client.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(health["workflow_sandbox"], json!({"status": "disabled"}));
    let workflow = create(&server, json!({})).await;
    let tested = body(server.post_json(&format!("/v1/workflows/{}/test", workflow["uuid"].as_str().unwrap()), &server.admin_key, &json!({})).await).await;
    assert_eq!(tested["data"]["success"], false);
    assert_eq!(tested["data"]["message"], "Workflows are disabled on this server (WORKFLOWS_ENABLED=false)");
}
