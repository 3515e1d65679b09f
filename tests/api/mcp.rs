//! The MCP server over both transports, driven by rmcp's own client: streamable HTTP at `/mcp`
//! and Calseta's legacy HTTP+SSE (`/sse` + `/messages/`, rmcp client over a small SSE bridge).

use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ReadResourceRequestParams, ResourceContents,
    ServerJsonRpcMessage,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body};

type Client = RunningService<RoleClient, ()>;

async fn connect(server: &TestServer, key: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp"))
        .auth_header(key.to_owned());
    let transport = StreamableHttpClientTransport::with_client(server.client.clone(), config);
    ().serve(transport)
        .await
        .expect("MCP initialize over streamable HTTP")
}

/// A legacy HTTP+SSE session: reads `endpoint` then `message` events from `GET /sse`, POSTs
/// each outgoing message to the announced endpoint. Returns the rmcp client and the endpoint.
async fn connect_legacy(server: &TestServer, key: &str) -> (Client, String) {
    let response = server
        .request(Method::GET, "/sse", Some(key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (events_tx, mut events_rx) = mpsc::unbounded::<(String, String)>();
    tokio::spawn(async move {
        let mut bytes = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = bytes.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.strip_prefix(' ').unwrap_or(text));
                    }
                }
                if !data.is_empty() && events_tx.unbounded_send((event, data)).is_err() {
                    return;
                }
            }
        }
    });
    let (event, endpoint) = events_rx.next().await.expect("endpoint event");
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages/?session_id="), "{endpoint}");

    let incoming = events_rx.filter_map(|(event, data)| async move {
        (event == "message")
            .then(|| serde_json::from_str::<ServerJsonRpcMessage>(&data).expect("server message"))
    })
    .boxed();
    let (outgoing, mut to_post) = mpsc::channel::<ClientJsonRpcMessage>(16);
    let (http, url, key_owned) = (server.client.clone(), server.url(&endpoint), key.to_owned());
    tokio::spawn(async move {
        while let Some(message) = to_post.next().await {
            let response = http
                .post(&url)
                .bearer_auth(&key_owned)
                .json(&message)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                202,
                "{}",
                response.text().await.unwrap_or_default()
            );
        }
    });
    let client =
        ().serve((outgoing.sink_map_err(std::io::Error::other), incoming))
            .await
            .expect("legacy initialize");
    (client, endpoint)
}

/// The JSON text of a tool result.
async fn call(client: &Client, tool: &str, arguments: Value) -> Value {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(arguments.as_object().unwrap().clone());
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone();
    serde_json::from_str(&text).unwrap()
}

async fn read(client: &Client, uri: &str) -> Value {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    match &result.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => serde_json::from_str(text).unwrap(),
        other => panic!("{uri}: {other:?}"),
    }
}

const AGENT_SCOPES: [&str; 5] = [
    "alerts:read",
    "alerts:write",
    "enrichments:read",
    "workflows:read",
    "workflows:execute",
];

/// Seeds an alert (with an IP indicator), a detection rule and a context document.
async fn seed(server: &TestServer) -> (String, String, String) {
    let alert = crate::alerts::create_generic(
        server,
        json!({"title": "MCP test alert", "severity": "High", "src_ip": "203.0.113.9", "tags": ["mcp"]}),
    )
    .await;
    crate::alerts::wait_enriched(server, &alert).await;
    let rule = server
        .post_json(
            "/v1/detection-rules",
            &server.admin_key,
            &json!({"name": "Brute force MCP", "source_name": "generic", "severity": "High",
                    "mitre_tactics": ["TA0006"], "mitre_techniques": ["T1110"], "documentation": "x".repeat(300)}),
        )
        .await;
    assert_eq!(rule.status(), 201);
    let rule = body(rule).await["data"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = server
        .post_json(
            "/v1/context-documents",
            &server.admin_key,
            &json!({"title": "Global runbook", "document_type": "runbook", "is_global": true, "content": "Do the thing."}),
        )
        .await;
    assert_eq!(doc.status(), 201, "{}", doc.text().await.unwrap());
    let doc = body(doc).await["data"]["uuid"].as_str().unwrap().to_owned();
    (alert, rule, doc)
}

async fn every_resource_and_tool(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (alert, rule, doc) = seed(&server).await;
    let (key, _) = server
        .create_key(&AGENT_SCOPES, json!({"key_type": "agent"}))
        .await;
    let client = connect(&server, &key).await;

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "Calseta");
    assert!(info.instructions.as_deref().unwrap().contains("resources"));

    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(
        tools,
        [
            "enrich_indicator",
            "execute_workflow",
            "post_alert_finding",
            "search_alerts",
            "search_detection_rules",
            "update_alert_malice",
            "update_alert_status",
            "update_indicator_malice"
        ]
    );
    let resources = client.list_all_resources().await.unwrap();
    let templates = client.list_all_resource_templates().await.unwrap();
    assert_eq!(resources.len() + templates.len(), 12, "the 12 resources of agents-mcp-metrics.md §4.2");

    // Resources.
    let alerts = read(&client, "calseta://alerts").await;
    assert_eq!(alerts["count"], 1);
    assert_eq!(alerts["alerts"][0]["uuid"], alert.as_str());
    assert!(alerts["alerts"][0].get("raw_payload").is_none());
    let detail = read(&client, &format!("calseta://alerts/{alert}")).await;
    assert_eq!(detail["title"], "MCP test alert");
    assert_eq!(detail["indicators"][0]["value"], "203.0.113.9");
    let indicator = detail["indicators"][0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(detail["context_documents"][0]["uuid"], doc.as_str());
    let context = read(&client, &format!("calseta://alerts/{alert}/context")).await;
    assert_eq!(context["count"], 1);
    assert_eq!(context["context_documents"][0]["content"], "Do the thing.");
    let rules = read(&client, "calseta://detection-rules").await;
    assert_eq!(rules["count"], 1);
    let summary = rules["detection_rules"][0]["documentation_summary"]
        .as_str()
        .unwrap();
    assert_eq!(summary, format!("{}...", "x".repeat(200)));
    assert_eq!(
        read(&client, &format!("calseta://detection-rules/{rule}")).await["documentation"],
        "x".repeat(300)
    );
    assert_eq!(
        read(&client, "calseta://context-documents").await["count"],
        1
    );
    assert_eq!(
        read(&client, &format!("calseta://context-documents/{doc}")).await["content"],
        "Do the thing."
    );
    let workflows = read(&client, "calseta://workflows").await;
    assert!(workflows["workflows"].is_array());
    if let Some(first) = workflows["workflows"][0]["uuid"].as_str() {
        assert!(read(&client, &format!("calseta://workflows/{first}")).await["code"].is_string());
    }
    let summary = read(&client, "calseta://metrics/summary").await;
    assert!(summary["queue"].is_null(), "{summary}");
    assert!(summary.as_object().is_some_and(|o| o.len() > 1), "{summary}");
    let enrichment = read(&client, "calseta://enrichments/ip/203.0.113.9").await;
    assert_eq!(enrichment["type"], "ip");
    assert_eq!(enrichment["value"], "203.0.113.9");
    // Bad UUID and missing entity are MCP errors with Calseta's texts.
    let bad = client
        .read_resource(ReadResourceRequestParams::new("calseta://alerts/nope"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("Invalid UUID: nope"), "{bad}");
    let missing = uuid::Uuid::new_v4();
    let gone = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "calseta://alerts/{missing}"
        )))
        .await
        .unwrap_err();
    assert!(
        gone.to_string()
            .contains(&format!("Alert not found: {missing}")),
        "{gone}"
    );

    // Tools.
    let finding = call(
        &client,
        "post_alert_finding",
        json!({"alert_uuid": alert, "summary": "Looks bad", "confidence": "high"}),
    )
    .await;
    assert_eq!(finding["alert_uuid"], alert.as_str());
    assert!(
        finding["finding_id"].is_string() && finding["posted_at"].is_string(),
        "{finding}"
    );
    let bad_confidence = call(
        &client,
        "post_alert_finding",
        json!({"alert_uuid": alert, "summary": "x"}),
    )
    .await;
    assert!(
        bad_confidence["error"]
            .as_str()
            .unwrap()
            .contains("confidence"),
        "{bad_confidence}"
    );
    let status = call(
        &client,
        "update_alert_status",
        json!({"alert_uuid": alert, "status": "Triaging"}),
    )
    .await;
    assert_eq!(
        (
            status["status"].as_str(),
            status["previous_status"].as_str()
        ),
        (Some("Triaging"), Some("Open")),
        "{status}"
    );
    let closing = call(
        &client,
        "update_alert_status",
        json!({"alert_uuid": alert, "status": "Closed"}),
    )
    .await;
    assert!(closing["error"].is_string(), "{closing}");
    let malice = call(
        &client,
        "update_alert_malice",
        json!({"alert_uuid": alert, "malice": "Malicious"}),
    )
    .await;
    assert_eq!(
        (
            malice["malice_override"].as_str(),
            malice["effective_malice"].as_str()
        ),
        (Some("Malicious"), Some("Malicious"))
    );
    let reset = call(
        &client,
        "update_alert_malice",
        json!({"alert_uuid": alert, "malice": null}),
    )
    .await;
    assert_eq!(reset["malice_override"], Value::Null);
    let found = call(
        &client,
        "search_alerts",
        json!({"status": "Triaging", "tags": "mcp", "page_size": 500}),
    )
    .await;
    assert_eq!(
        (found["total"].as_i64(), found["page_size"].as_i64()),
        (Some(1), Some(100)),
        "{found}"
    );
    let none = call(&client, "search_alerts", json!({"status": "Closed"})).await;
    assert_eq!(none["total"], 0);
    let bad_sort = call(&client, "search_alerts", json!({"sort_by": "nope"})).await;
    assert!(
        bad_sort["error"]
            .as_str()
            .unwrap()
            .contains("Invalid sort_by"),
        "{bad_sort}"
    );
    let bad_time = call(&client, "search_alerts", json!({"from_time": "yesterday"})).await;
    assert!(bad_time["error"].is_string());
    let rules = call(
        &client,
        "search_detection_rules",
        json!({"name": "brute", "mitre_technique": "T1110"}),
    )
    .await;
    assert_eq!(rules["total"], 1, "{rules}");
    assert!(
        rules["detection_rules"][0]["documentation"]
            .as_str()
            .unwrap()
            .ends_with("...")
    );
    let no_rules = call(
        &client,
        "search_detection_rules",
        json!({"mitre_tactic": "TA0001", "sort_by": "bogus"}),
    )
    .await;
    assert_eq!(no_rules["total"], 0);
    let enriched = call(
        &client,
        "enrich_indicator",
        json!({"type": "ip", "value": " 203.0.113.9 "}),
    )
    .await;
    assert_eq!(enriched["value"], "203.0.113.9", "{enriched}");
    assert!(enriched["provider_count"].is_u64());
    let blank = call(&client, "enrich_indicator", json!({"type": "ip", "value": "  "})).await;
    assert_eq!(blank, json!({"error": "value must not be blank."}));
    let verdict = call(
        &client,
        "update_indicator_malice",
        json!({"indicator_uuid": indicator, "malice": "Benign"}),
    )
    .await;
    assert_eq!(
        (
            verdict["malice"].as_str(),
            verdict["malice_source"].as_str()
        ),
        (Some("Benign"), Some("analyst")),
        "{verdict}"
    );
    let unknown_workflow = call(
        &client,
        "execute_workflow",
        json!({"workflow_uuid": uuid::Uuid::new_v4(), "indicator_type": "ip", "indicator_value": "1.2.3.4", "reason": "r", "confidence": 0.9}),
    )
    .await;
    assert!(
        unknown_workflow["error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{unknown_workflow}"
    );
    let bad_uuid = call(
        &client,
        "execute_workflow",
        json!({"workflow_uuid": "x", "indicator_type": "ip", "indicator_value": "1"}),
    )
    .await;
    assert!(
        bad_uuid["error"].as_str().unwrap().contains("Invalid UUID"),
        "{bad_uuid}"
    );

    // The writes are recorded with actor type `mcp` and the key's prefix.
    let activity = read(&client, &format!("calseta://alerts/{alert}/activity")).await;
    let events = activity["activity"].as_array().unwrap();
    let by_mcp: Vec<&Value> = events.iter().filter(|e| e["actor_type"] == "mcp").collect();
    assert!(by_mcp.len() >= 4, "{activity}");
    assert_eq!(by_mcp[0]["actor_key_prefix"], &key[..8]);
    client.cancel().await.unwrap();
    server.stop().await;
}
dual!(every_resource_and_tool);

async fn execute_workflow_follows_the_gate(backend: Backend) {
    let server = TestServer::start(backend).await;
    let code = "from app.workflows.context import WorkflowContext, WorkflowResult\n\n\
async def run(ctx: WorkflowContext) -> WorkflowResult:\n    return WorkflowResult.ok(\"done\")\n";
    let mut workflows = Vec::new();
    for mode in ["never", "agent_only"] {
        let request = json!({"name": format!("wf-{mode}"), "code": code, "state": "active", "approval_mode": mode});
        let response = server
            .post_json("/v1/workflows", &server.admin_key, &request)
            .await;
        if response.status() != 201 {
            eprintln!(
                "skipping execute_workflow_follows_the_gate: workflow create answered {}",
                response.status()
            );
            return;
        }
        workflows.push(
            body(response).await["data"]["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A human key over MCP is still an agent: the agent_only workflow is gated.
    let (key, _) = server
        .create_key(
            &["workflows:execute", "workflows:read"],
            json!({"key_type": "human"}),
        )
        .await;
    let client = connect(&server, &key).await;
    let request = |workflow: &str| json!({"workflow_uuid": workflow, "indicator_type": "ip", "indicator_value": "1.2.3.4", "reason": "check", "confidence": 0.8});
    let queued = call(&client, "execute_workflow", request(&workflows[0])).await;
    assert_eq!(queued["status"], "queued", "{queued}");
    assert!(queued["run_uuid"].is_string());
    let gated = call(&client, "execute_workflow", request(&workflows[1])).await;
    assert_eq!(gated["status"], "pending_approval", "{gated}");
    assert!(gated["approval_request_uuid"].is_string() && gated["expires_at"].is_string());
    let no_reason = call(&client, "execute_workflow", json!({"workflow_uuid": workflows[0], "indicator_type": "ip", "indicator_value": "1.2.3.4"})).await;
    assert!(no_reason["error"].is_string(), "{no_reason}");
    let detail = read(&client, &format!("calseta://workflows/{}", workflows[0])).await;
    assert_eq!(detail["name"], "wf-never");
    client.cancel().await.unwrap();
    server.stop().await;
}
dual!(execute_workflow_follows_the_gate);

async fn scope_denial_is_a_result(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (alert, _, _) = seed(&server).await;
    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    let client = connect(&server, &reader).await;
    let denied = call(
        &client,
        "post_alert_finding",
        json!({"alert_uuid": alert, "summary": "x", "confidence": "low"}),
    )
    .await;
    assert_eq!(
        denied,
        json!({"error": "Insufficient scope. Required: alerts:write"})
    );
    let denied = read(&client, "calseta://workflows").await;
    assert_eq!(
        denied,
        json!({"error": "Insufficient scope. Required: workflows:read"})
    );
    let denied = call(
        &client,
        "enrich_indicator",
        json!({"type": "ip", "value": "1.2.3.4"}),
    )
    .await;
    assert_eq!(
        denied,
        json!({"error": "Insufficient scope. Required: enrichments:read"})
    );
    // Nothing was written.
    assert_eq!(
        read(&client, &format!("calseta://alerts/{alert}")).await["agent_findings"],
        Value::Null
    );
    client.cancel().await.unwrap();
    server.stop().await;
}
dual!(scope_denial_is_a_result);

async fn legacy_sse_sessions_are_bound_to_their_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_uuid) = server.create_key(&AGENT_SCOPES, json!({})).await;
    let (other, _) = server.create_key(&AGENT_SCOPES, json!({})).await;
    let (client, endpoint) = connect_legacy(&server, &key).await;
    assert_eq!(
        client
            .peer_info()
            .unwrap()
            .server_info
            .as_ref()
            .unwrap()
            .name,
        "Calseta"
    );
    assert_eq!(client.list_all_tools().await.unwrap().len(), 8);
    assert_eq!(read(&client, "calseta://alerts").await["count"], 0);
    let searched = call(&client, "search_alerts", json!({})).await;
    assert_eq!(searched["total"], 0);

    let ping = json!({"jsonrpc": "2.0", "id": 99, "method": "ping"});
    // Another key cannot post into this session.
    let hijack = server
        .client
        .post(server.url(&endpoint))
        .bearer_auth(&other)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(hijack.status(), 403);
    assert_eq!(body(hijack).await["error"]["code"], "SESSION_KEY_MISMATCH");
    // No key, unknown session, no session id.
    let anonymous = server
        .client
        .post(server.url(&endpoint))
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let unknown = server
        .client
        .post(server.url("/messages/?session_id=nope"))
        .bearer_auth(&key)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let no_id = server
        .client
        .post(server.url("/messages/"))
        .bearer_auth(&key)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(no_id.status(), 400);
    let junk = server
        .client
        .post(server.url(&endpoint))
        .bearer_auth(&key)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);

    // Revoked mid-session: the next message is refused.
    let revoked = server
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{key_uuid}"),
            Some(&server.admin_key),
        )
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let after = server
        .client
        .post(server.url(&endpoint))
        .bearer_auth(&key)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    drop(client);
    server.stop().await;
}
dual!(legacy_sse_sessions_are_bound_to_their_key);

async fn revoked_key_stops_a_streamable_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, key_uuid) = server.create_key(&["alerts:read"], json!({})).await;
    let client = connect(&server, &key).await;
    assert_eq!(read(&client, "calseta://alerts").await["count"], 0);
    let revoked = server
        .request(
            Method::DELETE,
            &format!("/v1/api-keys/{key_uuid}"),
            Some(&server.admin_key),
        )
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        client.read_resource(ReadResourceRequestParams::new("calseta://alerts")),
    )
    .await
    .expect("refused promptly");
    assert!(refused.is_err(), "a revoked key must not read: {refused:?}");
    server.stop().await;
}
dual!(revoked_key_stops_a_streamable_session);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_wrong_host_and_rate_limited() {
    let server = TestServer::builder(Backend::Sqlite)
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "8")
        .start()
        .await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |key: Option<&str>| {
        server
            .request(Method::POST, "/mcp", key)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
    };
    let anonymous = post(None).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let bad_key = post(Some("cai_not_a_real_key_at_all_0000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    let sse = server
        .request(Method::GET, "/sse", None)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 401);

    let (key, _) = server.create_key(&["alerts:read"], json!({})).await;
    let evil = post(Some(&key))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403, "DNS rebinding: unknown Host refused");
    let evil_sse = server
        .request(Method::GET, "/sse", Some(&key))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil_sse.status(), 403);

    // Same limiter as REST: the key's default bucket runs out, MCP answers 429 like REST.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(post(Some(&key)).send().await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    let rest = server.get("/v1/alerts", &key).await;
    assert_eq!(rest.status(), 429, "one bucket for both surfaces");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_bind_serves_only_mcp() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::builder(Backend::Sqlite)
        .env("MCP_BIND", &format!("127.0.0.1:{port}"))
        .start()
        .await;
    let (key, _) = server.create_key(&["alerts:read"], json!({})).await;
    let base = format!("http://127.0.0.1:{port}");
    let ok = crate::support::eventually(Duration::from_secs(10), || async {
        server
            .client
            .get(format!("{base}/v1/alerts"))
            .bearer_auth(&key)
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(ok, "MCP listener up");
    let rest = server
        .client
        .get(format!("{base}/v1/alerts"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 404, "REST is not served on the MCP listener");
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .auth_header(key.clone());
    let client = ()
        .serve(StreamableHttpClientTransport::with_client(
            server.client.clone(),
            config,
        ))
        .await
        .unwrap();
    assert_eq!(read(&client, "calseta://alerts").await["count"], 0);
    client.cancel().await.unwrap();
    server.stop().await;
}
