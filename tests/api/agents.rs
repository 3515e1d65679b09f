//! Agents: registration over REST, matching after real enrichment, and signed, durable delivery
//! to local receivers on loopback (allow-listed through SSRF_ALLOWED_HOSTS). Signatures are
//! checked with an independent Standard Webhooks implementation on the bytes received.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::alerts::{create_generic, wait_enriched};
use crate::dual;
use crate::enrichment::TEST_KEY;
use crate::fake_vendor::Canary;
use crate::support::{Backend, TestServer, body, eventually, expect_error};

/// One request an agent endpoint received: path, headers and the exact body bytes.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    calls: Arc<AtomicUsize>,
    canary_port: u16,
}

/// A local agent endpoint with the behaviours a dispatcher must survive.
struct Receiver {
    port: u16,
    shared: Shared,
    canary: Canary,
}

impl Receiver {
    async fn start() -> Receiver {
        let canary = Canary::start().await;
        let shared = Shared { canary_port: canary.port, ..Default::default() };
        let app = Router::new().route("/{behaviour}", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, shared, canary }
    }

    fn url(&self, behaviour: &str) -> String {
        format!("http://127.0.0.1:{}/{behaviour}", self.port)
    }

    fn allow_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn received(&self, behaviour: &str) -> Vec<Received> {
        let path = format!("/{behaviour}");
        self.shared.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    async fn wait_for(&self, behaviour: &str, count: usize, within: Duration) -> Vec<Received> {
        let arrived = eventually(within, || async { self.received(behaviour).len() >= count }).await;
        let received = self.received(behaviour);
        assert!(arrived, "{behaviour}: expected {count} deliveries, got {}", received.len());
        received
    }
}

async fn receive(State(shared): State<Shared>, Path(behaviour): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let nth = {
        let mut received = shared.received.lock().unwrap();
        received.push(Received { path: format!("/{behaviour}"), headers, body });
        received.iter().filter(|r| r.path == format!("/{behaviour}")).count()
    };
    shared.calls.fetch_add(1, Ordering::SeqCst);
    match behaviour.as_str() {
        "fail-twice" if nth <= 2 => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        "fail" => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "unavailable"}))).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late".into_response()
        }
        "stall-once" if nth == 1 => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            "late".into_response()
        }
        "redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("http://127.0.0.1:{}/", shared.canary_port))
            .body(axum::body::Body::empty())
            .unwrap(),
        "big" => (StatusCode::OK, "x".repeat(2 * 1024 * 1024)).into_response(),
        "text" => (StatusCode::OK, "y".repeat(5000)).into_response(),
        _ => axum::Json(json!({"received": true})).into_response(),
    }
}

async fn server_for(backend: Backend, receiver: &Receiver, extra: &[(&str, &str)]) -> TestServer {
    let mut builder = TestServer::builder(backend)
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", &receiver.allow_entry())
        .env("CALSETA_API_BASE_URL", "https://calseta.example");
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    builder.start().await
}

/// Registers an agent; returns the response's `data` (with the one-time `signing_secret`).
async fn create_agent(server: &TestServer, agent: Value) -> Value {
    let response = server.post_json("/v1/agents", &server.admin_key, &agent).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    body(response).await["data"].clone()
}

fn verify(secret: &str, received: &Received) -> bool {
    standardwebhooks::Webhook::new(secret).unwrap().verify(&received.body, &received.headers).is_ok()
}

async fn runs(server: &TestServer, agent_uuid: &str) -> Vec<Option<String>> {
    let agent = server.uuid_sql(agent_uuid.parse().unwrap());
    server
        .db_texts(&format!(
            "SELECT status || '|' || attempt_count || '|' || COALESCE(CAST(response_status_code AS TEXT), '-') || '|' || \
             COALESCE(webhook_id, '-') || '|' || COALESCE(CAST(response_body AS TEXT), '-') FROM agent_runs \
             WHERE agent_registration_id = (SELECT id FROM agent_registrations WHERE uuid = {agent}) ORDER BY attempt_count"
        ))
        .await
}

async fn dispatched_events(server: &TestServer, alert_uuid: &str) -> Vec<Value> {
    let json = body(server.get(&format!("/v1/alerts/{alert_uuid}/activity?page_size=500"), &server.admin_key).await).await;
    json["data"].as_array().unwrap().iter().filter(|e| e["event_type"] == "agent_webhook_dispatched").cloned().collect()
}

async fn registration_and_validation(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[]).await;
    let admin = server.admin_key.clone();
    let created = create_agent(&server, json!({"name": "triage-bot", "endpoint_url": receiver.url("ok"),
        "auth_header_name": "X-Agent-Token", "auth_header_value": "tok-secret-value-123", "trigger_on_sources": ["generic"]})).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert!(created["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["auth_header_name"], "X-Agent-Token");
    assert!(created.get("auth_header_value").is_none());
    assert_eq!((created["timeout_seconds"].clone(), created["retry_count"].clone(), created["is_active"].clone()), (json!(30), json!(3), json!(true)));
    assert_eq!(created["redact_untrusted_fields"], false);
    // Neither the secret nor the header value is stored in clear or shown again.
    let stored = server.db_texts("SELECT auth_header_value_encrypted || signing_secret_encrypted FROM agent_registrations").await;
    let stored = stored[0].clone().unwrap();
    assert!(!stored.contains("tok-secret-value-123") && !stored.contains(created["signing_secret"].as_str().unwrap()));
    let fetched = body(server.get(&format!("/v1/agents/{uuid}"), &admin).await).await["data"].clone();
    assert!(fetched.get("signing_secret").is_none() && fetched.get("auth_header_value").is_none());
    let list = body(server.get("/v1/agents", &admin).await).await;
    assert_eq!(list["meta"]["total"], 1);
    assert_eq!(list["data"][0]["uuid"], uuid.as_str());

    // Field validation: every problem at once, 422.
    let bad = server.post_json("/v1/agents", &admin, &json!({"name": "", "endpoint_url": receiver.url("ok"), "auth_header_name": "X-A",
        "trigger_on_severities": ["high"], "trigger_filter": {"match_any": "not-a-list"}, "timeout_seconds": 301, "retry_count": -1})).await;
    let error = expect_error(bad, 422, "VALIDATION_ERROR").await;
    let fields: Vec<String> = error["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["loc"][1].as_str().unwrap().to_owned()).collect();
    for field in ["name", "auth_header_value", "trigger_on_severities", "trigger_filter", "timeout_seconds", "retry_count"] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
    // Operator headers can never take a signature header's name.
    let reserved = server.post_json("/v1/agents", &admin, &json!({"name": "x", "endpoint_url": receiver.url("ok"),
        "auth_header_name": "Webhook-Signature", "auth_header_value": "v1,forged"})).await;
    expect_error(reserved, 422, "VALIDATION_ERROR").await;
    // SSRF vetting at save names the reason.
    for url in ["http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://localhost/x", "file:///etc/passwd", "http://{{host}}/x", "http://[::1]/"] {
        let refused = server.post_json("/v1/agents", &admin, &json!({"name": "x", "endpoint_url": url})).await;
        assert_eq!(refused.status(), 422, "{url}");
        let error = body(refused).await;
        let message = error["error"]["details"]["errors"][0]["msg"].as_str().unwrap().to_owned();
        assert!(message.starts_with("endpoint_url"), "{url}: {message}");
        assert_eq!(error["error"]["details"]["errors"][0]["loc"][1], "endpoint_url");
    }
    let patched = server.patch_json(&format!("/v1/agents/{uuid}"), &admin, &json!({"endpoint_url": "http://10.0.0.1/x"})).await;
    expect_error(patched, 422, "VALIDATION_ERROR").await;
    assert_eq!(receiver.canary.connections(), 0);

    // PATCH: nulls ignored, header value re-sealed, half a pair refused on an agent without one.
    let patched = server.patch_json(&format!("/v1/agents/{uuid}"), &admin, &json!({"is_active": false, "auth_header_value": "new-token-456",
        "description": null, "redact_untrusted_fields": true})).await;
    assert_eq!(patched.status(), 200);
    let patched = body(patched).await["data"].clone();
    assert_eq!((patched["is_active"].clone(), patched["redact_untrusted_fields"].clone()), (json!(false), json!(true)));
    assert_eq!(patched["trigger_on_sources"], json!(["generic"]));
    let bare = create_agent(&server, json!({"name": "bare", "endpoint_url": receiver.url("ok")})).await;
    let half = server.patch_json(&format!("/v1/agents/{}", bare["uuid"].as_str().unwrap()), &admin, &json!({"auth_header_name": "X-Only"})).await;
    expect_error(half, 422, "VALIDATION_ERROR").await;

    // Scopes: a read key reads, cannot write; unknown ids are 404; bad ids 422.
    let (reader, _) = server.create_key(&["agents:read"], json!({})).await;
    assert_eq!(server.get("/v1/agents", &reader).await.status(), 200);
    let denied = server.post_json("/v1/agents", &reader, &json!({"name": "x", "endpoint_url": receiver.url("ok")})).await;
    expect_error(denied, 403, "FORBIDDEN").await;
    let missing = uuid::Uuid::new_v4();
    expect_error(server.get(&format!("/v1/agents/{missing}"), &admin).await, 404, "NOT_FOUND").await;
    expect_error(server.get("/v1/agents/not-a-uuid", &admin).await, 422, "VALIDATION_ERROR").await;
    let deleted = server.request(reqwest::Method::DELETE, &format!("/v1/agents/{uuid}"), Some(&admin)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let again = server.request(reqwest::Method::DELETE, &format!("/v1/agents/{uuid}"), Some(&admin)).send().await.unwrap();
    expect_error(again, 404, "NOT_FOUND").await;
    // Every write was audited, without secrets.
    assert!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'agents.%'").await >= 4);
    let details = server.db_texts("SELECT CAST(details AS TEXT) FROM audit_log WHERE action LIKE 'agents.%'").await;
    assert!(details.iter().flatten().all(|d| !d.contains("new-token-456") && !d.contains("whsec_")));
    server.stop().await;
}
dual!(registration_and_validation);

async fn secrets_need_a_key(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = TestServer::builder(backend).env("SSRF_ALLOWED_HOSTS", &receiver.allow_entry()).start().await;
    let response = server.post_json("/v1/agents", &server.admin_key, &json!({"name": "x", "endpoint_url": receiver.url("ok"),
        "auth_header_name": "X-T", "auth_header_value": "v"})).await;
    expect_error(response, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    // Without a header value the agent is accepted, unsigned (development only).
    let created = create_agent(&server, json!({"name": "dev", "endpoint_url": receiver.url("ok")})).await;
    assert_eq!(created["signing_secret"], Value::Null);
    let rotate = server.post_json(&format!("/v1/agents/{}/rotate-secret", created["uuid"].as_str().unwrap()), &server.admin_key, &json!({})).await;
    expect_error(rotate, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    server.stop().await;
}
dual!(secrets_need_a_key);

async fn enriched_alerts_reach_matching_agents_signed(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[]).await;
    let matching = create_agent(&server, json!({"name": "generic-high", "endpoint_url": receiver.url("ok"),
        "auth_header_name": "X-Agent-Token", "auth_header_value": "tok-123", "trigger_on_sources": ["generic"],
        "trigger_on_severities": ["High"], "trigger_filter": {"match_all": [{"field": "tags", "op": "contains", "value": "phish"}]}})).await;
    let redacting = create_agent(&server, json!({"name": "redacting", "endpoint_url": receiver.url("redacted"), "redact_untrusted_fields": true})).await;
    let other_source = create_agent(&server, json!({"name": "splunk-only", "endpoint_url": receiver.url("splunk"), "trigger_on_sources": ["splunk"]})).await;
    let critical_only = create_agent(&server, json!({"name": "critical", "endpoint_url": receiver.url("critical"), "trigger_on_severities": ["Critical"]})).await;
    let filtered_out = create_agent(&server, json!({"name": "filtered", "endpoint_url": receiver.url("filtered"),
        "trigger_filter": {"match_any": [{"field": "tags", "op": "contains", "value": "malware"}]}})).await;
    create_agent(&server, json!({"name": "inactive", "endpoint_url": receiver.url("inactive"), "is_active": false})).await;

    let alert_uuid = create_generic(&server, json!({"title": "Phish reported by jane.doe@corp.example", "severity": "high",
        "src_ip": "198.51.100.7", "tags": ["phish"]})).await;
    wait_enriched(&server, &alert_uuid).await;
    let delivered = receiver.wait_for("ok", 1, Duration::from_secs(20)).await;
    receiver.wait_for("redacted", 1, Duration::from_secs(20)).await;
    let received = &delivered[0];
    // Signed over the exact bytes received, verified by an independent implementation.
    assert!(verify(matching["signing_secret"].as_str().unwrap(), received));
    assert!(!verify(redacting["signing_secret"].as_str().unwrap(), received), "per-agent secrets");
    assert!(received.header("webhook-id").unwrap().starts_with("msg_"));
    assert_eq!(received.header("x-agent-token").as_deref(), Some("tok-123"));
    assert_eq!(received.header("content-type").as_deref(), Some("application/json"));
    // The payload of agents-mcp-metrics.md §1.3.
    let payload = received.json();
    let alert = &payload["alert"];
    assert_eq!(alert["uuid"], alert_uuid.as_str());
    assert_eq!((alert["severity"].clone(), alert["source_name"].clone(), alert["is_enriched"].clone()), (json!("High"), json!("generic"), json!(true)));
    assert_eq!(alert["title"], "Phish reported by jane.doe@corp.example");
    for absent in ["description", "raw_payload", "enrichment_status", "fingerprint", "duplicate_count", "malice"] {
        assert!(alert.get(absent).is_none(), "{absent}");
    }
    let meta = &alert["_metadata"];
    assert_eq!(meta["alert_source"], "generic");
    assert_eq!(meta["indicator_count"], payload["indicators"].as_array().unwrap().len());
    assert!(meta["enrichment"]["succeeded"].is_array() && meta["enrichment"]["failed"].is_array());
    assert!(meta["untrusted_fields"].as_array().unwrap().contains(&json!("alert.title")));
    assert!(payload["indicators"].as_array().unwrap().iter().any(|i| i["type"] == "ip" && i["value"] == "198.51.100.7"));
    assert_eq!(payload["calseta_api_base_url"], "https://calseta.example");
    assert!(payload["workflows"].is_array() && payload["context_documents"].is_array());
    // The redacting agent got the same alert with its untrusted text masked.
    let redacted = receiver.received("redacted")[0].json();
    assert_eq!(redacted["alert"]["title"], "Phish reported by [REDACTED:email]");
    assert_eq!(redacted["alert"]["_metadata"]["redacted"], true);
    assert!(verify(redacting["signing_secret"].as_str().unwrap(), &receiver.received("redacted")[0]));

    // Non-matching and inactive agents got nothing; one run row and one event per delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for path in ["splunk", "critical", "filtered", "inactive"] {
        assert!(receiver.received(path).is_empty(), "{path}");
    }
    let matching_runs = runs(&server, matching["uuid"].as_str().unwrap()).await;
    assert_eq!(matching_runs.len(), 1);
    let webhook_id = received.header("webhook-id").unwrap();
    assert!(matching_runs[0].as_deref().unwrap().starts_with(&format!("success|1|200|{webhook_id}|")), "{matching_runs:?}");
    for agent in [&other_source, &critical_only, &filtered_out] {
        assert!(runs(&server, agent["uuid"].as_str().unwrap()).await.is_empty());
    }
    assert!(eventually(Duration::from_secs(5), || async { dispatched_events(&server, &alert_uuid).await.len() == 2 }).await);
    let events = dispatched_events(&server, &alert_uuid).await;
    let event = events.iter().find(|e| e["references"]["agent_name"] == "generic-high").unwrap();
    assert_eq!(event["references"]["status"], "success");
    assert_eq!(event["references"]["attempt_count"], 1);
    assert_eq!(event["references"]["status_code"], 200);
    assert_eq!(event["actor_type"], "system");
    server.stop().await;
}
dual!(enriched_alerts_reach_matching_agents_signed);

/// trigger-agents and dispatch-agent: 202 shapes, 404s, the inactive agent, a bad query.
async fn manual_dispatch(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[]).await;
    let admin = server.admin_key.clone();
    let alert_uuid = create_generic(&server, json!({"title": "Manual", "severity": "low", "src_ip": "198.51.100.9"})).await;
    wait_enriched(&server, &alert_uuid).await;
    // Created after enrichment: only the manual routes reach it.
    let agent = create_agent(&server, json!({"name": "manual", "endpoint_url": receiver.url("ok"), "trigger_on_severities": ["Low"]})).await;
    let inactive = create_agent(&server, json!({"name": "sleeper", "endpoint_url": receiver.url("sleeper"), "is_active": false})).await;
    create_agent(&server, json!({"name": "high-only", "endpoint_url": receiver.url("high"), "trigger_on_severities": ["High"]})).await;

    let response = server.post_json(&format!("/v1/alerts/{alert_uuid}/trigger-agents"), &admin, &json!({})).await;
    assert_eq!(response.status(), 202);
    assert_eq!(body(response).await, json!({"data": {"queued_agent_count": 1, "agent_names": ["manual"]}, "meta": {}}));
    receiver.wait_for("ok", 1, Duration::from_secs(15)).await;

    let path = format!("/v1/alerts/{alert_uuid}/dispatch-agent?agent_uuid={}", agent["uuid"].as_str().unwrap());
    let response = server.post_json(&path, &admin, &json!({})).await;
    assert_eq!(response.status(), 202);
    assert_eq!(body(response).await["data"], json!({"agent_uuid": agent["uuid"], "agent_name": "manual", "alert_uuid": alert_uuid}));
    let both = receiver.wait_for("ok", 2, Duration::from_secs(15)).await;
    assert_ne!(both[0].header("webhook-id"), both[1].header("webhook-id"), "a new delivery gets a new id");

    let sleeper = format!("/v1/alerts/{alert_uuid}/dispatch-agent?agent_uuid={}", inactive["uuid"].as_str().unwrap());
    let error = expect_error(server.post_json(&sleeper, &admin, &json!({})).await, 422, "AGENT_INACTIVE").await;
    assert_eq!(error["error"]["message"], "Agent 'sleeper' is inactive.");
    let unknown_agent = format!("/v1/alerts/{alert_uuid}/dispatch-agent?agent_uuid={}", uuid::Uuid::new_v4());
    let error = expect_error(server.post_json(&unknown_agent, &admin, &json!({})).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"]["message"], "Agent not found.");
    let unknown_alert = format!("/v1/alerts/{}/dispatch-agent?agent_uuid={}", uuid::Uuid::new_v4(), agent["uuid"].as_str().unwrap());
    expect_error(server.post_json(&unknown_alert, &admin, &json!({})).await, 404, "NOT_FOUND").await;
    let no_query = format!("/v1/alerts/{alert_uuid}/dispatch-agent");
    expect_error(server.post_json(&no_query, &admin, &json!({})).await, 422, "VALIDATION_ERROR").await;
    let trigger_missing = format!("/v1/alerts/{}/trigger-agents", uuid::Uuid::new_v4());
    expect_error(server.post_json(&trigger_missing, &admin, &json!({})).await, 404, "NOT_FOUND").await;
    let (reader, _) = server.create_key(&["agents:read", "alerts:read"], json!({})).await;
    expect_error(server.post_json(&path, &reader, &json!({})).await, 403, "FORBIDDEN").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received("sleeper").is_empty() && receiver.received("high").is_empty());

    // The test endpoint: one signed synthetic delivery, reported, no run row.
    let test = server.post_json(&format!("/v1/agents/{}/test", agent["uuid"].as_str().unwrap()), &admin, &json!({})).await;
    assert_eq!(test.status(), 200);
    let result = body(test).await["data"].clone();
    assert_eq!((result["delivered"].clone(), result["status_code"].clone(), result["error"].clone()), (json!(true), json!(200), Value::Null));
    let synthetic = receiver.wait_for("ok", 3, Duration::from_secs(5)).await.pop().unwrap();
    assert_eq!(synthetic.json()["test"], true);
    assert!(verify(agent["signing_secret"].as_str().unwrap(), &synthetic));
    assert_eq!(runs(&server, agent["uuid"].as_str().unwrap()).await.len(), 2);

    // Re-enrichment re-notifies the matching agents (and only them).
    let reenrich = server.post_json(&format!("/v1/alerts/{alert_uuid}/enrich"), &admin, &json!({})).await;
    assert_eq!(reenrich.status(), 202);
    let after = receiver.wait_for("ok", 4, Duration::from_secs(15)).await;
    assert_eq!(after[3].json()["alert"]["uuid"], alert_uuid.as_str());
    assert!(receiver.received("high").is_empty());
    server.stop().await;
}
dual!(manual_dispatch);

/// A receiver failing twice gets three attempts under one id; the rows record each attempt.
async fn retries_keep_one_webhook_id(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[]).await;
    let agent = create_agent(&server, json!({"name": "flaky", "endpoint_url": receiver.url("fail-twice"), "retry_count": 3})).await;
    let gives_up = create_agent(&server, json!({"name": "down", "endpoint_url": receiver.url("fail"), "retry_count": 1})).await;
    let alert_uuid = create_generic(&server, json!({"title": "Retry me", "severity": "medium"})).await;
    let received = receiver.wait_for("fail-twice", 3, Duration::from_secs(30)).await;
    let ids: Vec<String> = received.iter().map(|r| r.header("webhook-id").unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // Same bytes every time; each attempt freshly timestamped and signed.
    assert!(received.iter().all(|r| r.body == received[0].body && verify(agent["signing_secret"].as_str().unwrap(), r)));
    assert!(eventually(Duration::from_secs(10), || async { runs(&server, agent["uuid"].as_str().unwrap()).await.len() == 3 }).await);
    let rows = runs(&server, agent["uuid"].as_str().unwrap()).await;
    let prefixes: Vec<String> = rows.iter().map(|r| r.as_deref().unwrap().splitn(4, '|').take(3).collect::<Vec<_>>().join("|")).collect();
    assert_eq!(prefixes, ["failed|1|500", "failed|2|500", "success|3|200"]);
    // The one that never recovers: retry_count + 1 attempts, then a failed outcome.
    receiver.wait_for("fail", 2, Duration::from_secs(20)).await;
    assert!(eventually(Duration::from_secs(10), || async { dispatched_events(&server, &alert_uuid).await.len() == 2 }).await);
    let events = dispatched_events(&server, &alert_uuid).await;
    let down = events.iter().find(|e| e["references"]["agent_name"] == "down").unwrap();
    assert_eq!((down["references"]["status"].clone(), down["references"]["attempt_count"].clone()), (json!("failed"), json!(2)));
    assert_eq!(down["references"]["status_code"], 503);
    let rows = runs(&server, gives_up["uuid"].as_str().unwrap()).await;
    assert!(rows[0].as_deref().unwrap().starts_with("failed|1|503|") && rows[0].as_deref().unwrap().contains("unavailable"), "{rows:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received("fail").len(), 2, "no attempt beyond retry_count + 1");
    server.stop().await;
}
dual!(retries_keep_one_webhook_id);

/// Timeout, redirect not followed, oversized and long responses, SSRF refused at send time.
async fn hostile_receivers(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[("EGRESS_MAX_RESPONSE_BYTES", "1048576")]).await;
    let slow = create_agent(&server, json!({"name": "slow", "endpoint_url": receiver.url("slow"), "timeout_seconds": 1, "retry_count": 0})).await;
    let redirect = create_agent(&server, json!({"name": "redirect", "endpoint_url": receiver.url("redirect"), "retry_count": 0})).await;
    let big = create_agent(&server, json!({"name": "big", "endpoint_url": receiver.url("big"), "retry_count": 0})).await;
    let text = create_agent(&server, json!({"name": "text", "endpoint_url": receiver.url("text"), "retry_count": 0})).await;
    let moved = create_agent(&server, json!({"name": "moved", "endpoint_url": receiver.url("moved"), "retry_count": 2})).await;
    // Allowed when saved, pointed at an address the gateway refuses afterwards (as a DNS
    // change would): the send-time check stops it.
    let moved_sql = server.uuid_sql(moved["uuid"].as_str().unwrap().parse().unwrap());
    let canary_url = format!("http://127.0.0.1:{}/x", receiver.canary.port);
    server.db_execute(&format!("UPDATE agent_registrations SET endpoint_url = '{canary_url}' WHERE uuid = {moved_sql}")).await;

    let alert_uuid = create_generic(&server, json!({"title": "Hostile", "severity": "low"})).await;
    assert!(eventually(Duration::from_secs(20), || async { dispatched_events(&server, &alert_uuid).await.len() == 5 }).await,
        "{:?}", dispatched_events(&server, &alert_uuid).await);
    let events = dispatched_events(&server, &alert_uuid).await;
    let outcome = |name: &str| events.iter().find(|e| e["references"]["agent_name"] == name).unwrap()["references"].clone();
    assert_eq!(outcome("slow")["status"], "timeout");
    assert!(outcome("slow")["error"].as_str().unwrap().starts_with("Timeout"));
    assert_eq!((outcome("redirect")["status"].clone(), outcome("redirect")["status_code"].clone()), (json!("failed"), json!(302)));
    assert_eq!(outcome("big")["status"], "failed");
    assert_eq!(outcome("text")["status"], "success");
    let blocked = outcome("moved");
    assert_eq!((blocked["status"].clone(), blocked["attempt_count"].clone(), blocked["status_code"].clone()), (json!("failed"), json!(0), Value::Null));
    assert!(blocked["error"].as_str().unwrap().contains("blocked by SSRF protection"), "{blocked}");
    assert!(runs(&server, moved["uuid"].as_str().unwrap()).await.is_empty(), "no request, no run row");
    assert_eq!(receiver.canary.connections(), 0, "neither the redirect nor the moved agent reached the canary");
    assert!(runs(&server, slow["uuid"].as_str().unwrap()).await[0].as_deref().unwrap().starts_with("timeout|1|-|"));
    assert!(runs(&server, redirect["uuid"].as_str().unwrap()).await[0].as_deref().unwrap().starts_with("failed|1|302|"));
    assert!(runs(&server, big["uuid"].as_str().unwrap()).await[0].as_deref().unwrap().starts_with("failed|1|-|"));
    // A long non-JSON answer is stored as a bounded preview.
    let text_row = runs(&server, text["uuid"].as_str().unwrap()).await[0].clone().unwrap();
    let stored: Value = serde_json::from_str(text_row.splitn(5, '|').nth(4).unwrap()).unwrap();
    assert_eq!((stored["raw"].as_str().unwrap().len(), stored["truncated"].clone()), (2000, json!(true)));
    server.stop().await;
}
dual!(hostile_receivers);

/// Rotation: both signatures until the overlap ends, then only the new one.
async fn secret_rotation_overlap(backend: Backend) {
    let receiver = Receiver::start().await;
    let server = server_for(backend, &receiver, &[]).await;
    let admin = server.admin_key.clone();
    let agent = create_agent(&server, json!({"name": "rotating", "endpoint_url": receiver.url("ok")})).await;
    let uuid = agent["uuid"].as_str().unwrap();
    let old = agent["signing_secret"].as_str().unwrap().to_owned();
    let rotated = server.post_json(&format!("/v1/agents/{uuid}/rotate-secret?overlap_seconds=3600"), &admin, &json!({})).await;
    assert_eq!(rotated.status(), 200);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let rotated = body(rotated).await["data"].clone();
    let new = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let alert_uuid = create_generic(&server, json!({"title": "Rotate", "severity": "low"})).await;
    wait_enriched(&server, &alert_uuid).await;
    let first = receiver.wait_for("ok", 1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(first.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert!(verify(&new, &first) && verify(&old, &first), "both secrets verify during the overlap");

    let ended = server.post_json(&format!("/v1/agents/{uuid}/rotate-secret?overlap_seconds=0"), &admin, &json!({})).await;
    let newest = body(ended).await["data"]["signing_secret"].as_str().unwrap().to_owned();
    let trigger = server.post_json(&format!("/v1/alerts/{alert_uuid}/trigger-agents"), &admin, &json!({})).await;
    assert_eq!(trigger.status(), 202);
    let second = receiver.wait_for("ok", 2, Duration::from_secs(15)).await.remove(1);
    assert_eq!(second.header("webhook-signature").unwrap().split(' ').count(), 1);
    assert!(verify(&newest, &second) && !verify(&new, &second) && !verify(&old, &second));
    let bad = server.post_json(&format!("/v1/agents/{uuid}/rotate-secret?overlap_seconds=-5"), &admin, &json!({})).await;
    expect_error(bad, 422, "VALIDATION_ERROR").await;
    let missing = server.post_json(&format!("/v1/agents/{}/rotate-secret", uuid::Uuid::new_v4()), &admin, &json!({})).await;
    expect_error(missing, 404, "NOT_FOUND").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'agents.rotate_secret'").await, 2);
    server.stop().await;
}
dual!(secret_rotation_overlap);

/// kill -9 while a delivery is in flight: after restart the same delivery (same webhook-id,
/// same bytes: the first attempt's body is rebuilt at the same `generated_at`, and nothing about
/// the alert or the configuration changed) arrives, once the dead worker's lease expired.
async fn kill9_mid_dispatch_redelivers(backend: Backend) {
    let receiver = Receiver::start().await;
    let env = [("QUEUE_LEASE_SECONDS", "10"), ("QUEUE_POLL_INTERVAL_MS", "100")];
    let mut first = server_for(backend, &receiver, &env).await;
    let agent = create_agent(&first, json!({"name": "stalled", "endpoint_url": receiver.url("stall-once"), "timeout_seconds": 4, "retry_count": 0})).await;
    let alert_uuid = create_generic(&first, json!({"title": "Crash", "severity": "low"})).await;
    let stalled = receiver.wait_for("stall-once", 1, Duration::from_secs(20)).await.remove(0);
    first.kill9();
    let mut builder = TestServer::builder(backend_of(&first)).sharing(&first);
    let allow = receiver.allow_entry();
    let restarted = [
        ("ENCRYPTION_KEY", TEST_KEY),
        ("SSRF_ALLOWED_HOSTS", allow.as_str()),
        ("CALSETA_API_BASE_URL", "https://calseta.example"),
    ];
    for (k, v) in restarted.into_iter().chain(env) {
        builder = builder.env(k, v);
    }
    let second = builder.start().await;
    let redelivered = receiver.wait_for("stall-once", 2, Duration::from_secs(45)).await.remove(1);
    assert_eq!(redelivered.header("webhook-id"), stalled.header("webhook-id"));
    assert_eq!(redelivered.body, stalled.body);
    assert!(verify(agent["signing_secret"].as_str().unwrap(), &redelivered));
    let second_key = first.admin_key.clone();
    assert!(eventually(Duration::from_secs(10), || async {
        let json = body(second.get(&format!("/v1/alerts/{alert_uuid}/activity"), &second_key).await).await;
        json["data"].as_array().unwrap().iter().any(|e| e["event_type"] == "agent_webhook_dispatched" && e["references"]["status"] == "success")
    }).await);
    let rows = runs(&second, agent["uuid"].as_str().unwrap()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].as_deref().unwrap().starts_with("success|1|200|"));
    second.stop().await;
    first.stop().await;
}
dual!(kill9_mid_dispatch_redelivers);

fn backend_of(server: &TestServer) -> Backend {
    if server.db.url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres { admin_url: String::new() } }
}
