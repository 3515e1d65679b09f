//! OpenTelemetry traces (issue 15 item 2) against a fake OTLP/HTTP collector on loopback: one
//! alert's trace runs from the ingest request through enrichment (a live provider call) to the
//! agent webhook, under one trace id; the provider and the agent receive that trace's
//! `traceparent`; an incoming `traceparent` is continued; and without
//! `OTEL_EXPORTER_OTLP_ENDPOINT` nothing of it happens (no header goes out).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::json;

use crate::dual;
use crate::enrichment::TEST_KEY;
use crate::fake_vendor::FakeVendor;
use crate::support::{Backend, TestServer, body, eventually};

/// One exported span, as the collector decoded it.
#[derive(Clone, Debug)]
struct ExportedSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
    service_name: String,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A fake OTLP/HTTP collector: `POST /v1/traces`, protobuf bodies.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    port: u16,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<ExportedSpan>>> = Arc::default();
        let app = Router::new().route("/v1/traces", post(export)).with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { spans, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    fn in_trace(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn export(State(spans): State<Arc<Mutex<Vec<ExportedSpan>>>>, headers: HeaderMap, bytes: Bytes) -> Vec<u8> {
    assert_eq!(headers.get("content-type").unwrap(), "application/x-protobuf");
    let request = ExportTraceServiceRequest::decode(bytes).expect("an OTLP protobuf export");
    let mut decoded = Vec::new();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(&kv.value))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            decoded.push(ExportedSpan {
                name: span.name,
                trace_id: hex::encode(span.trace_id),
                span_id: hex::encode(span.span_id),
                parent_span_id: hex::encode(span.parent_span_id),
                attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect(),
                service_name: service_name.clone(),
            });
        }
    }
    spans.lock().unwrap().extend(decoded);
    // An empty ExportTraceServiceResponse: full success.
    Vec::new()
}

/// A loopback agent endpoint recording the `traceparent` of each delivery.
#[derive(Clone, Default)]
struct Agent {
    received: Arc<Mutex<Vec<Option<String>>>>,
    port: u16,
}

impl Agent {
    async fn start() -> Agent {
        let received: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(|State(received): State<Arc<Mutex<Vec<Option<String>>>>>, headers: HeaderMap| async move {
                    received.lock().unwrap().push(headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned()));
                    axum::Json(json!({"received": true}))
                }),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Agent { received, port }
    }

    fn received(&self) -> Vec<Option<String>> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Option<String>> {
        let arrived = eventually(Duration::from_secs(20), || async { self.received().len() >= count }).await;
        assert!(arrived, "expected {count} deliveries, got {:?}", self.received());
        self.received()
    }
}

async fn server(backend: Backend, vendor: &FakeVendor, agent: &Agent, collector: Option<&Collector>) -> TestServer {
    let allowed = format!("{},127.0.0.1:{}", vendor.allow_entry(), agent.port);
    let mut builder = TestServer::builder(backend)
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", &allowed)
        .env("RATE_LIMIT_ENRICHMENT_PER_MINUTE", "100000")
        .env("CALSETA_API_BASE_URL", "https://calseta.example");
    if let Some(collector) = collector {
        builder = builder
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint())
            .env("OTEL_SERVICE_NAME", "calseta-under-test")
            // Export every 100 ms rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    let server = builder.start().await;
    // A live provider for IPs on the fake vendor, and an agent for every generic alert.
    let provider = json!({
        "provider_name": "tracedvt", "display_name": "Traced VT", "supported_indicator_types": ["ip"],
        "http_config": {"steps": [{"name": "lookup", "url": format!("{}/vt/api/v3/ip_addresses/{{{{indicator.value}}}}", vendor.base()),
            "headers": {"x-apikey": "{{auth.api_key}}"}, "expected_status": [200]}]},
        "auth_type": "api_key", "auth_config": {"api_key": "vt-secret-key-123456"},
    });
    let response = server.post_json("/v1/enrichment-providers", &server.admin_key, &provider).await;
    assert_eq!(response.status(), 201, "{}", body(response).await);
    let agent_body = json!({"name": "traced-agent", "endpoint_url": format!("http://127.0.0.1:{}/hook", agent.port),
        "trigger_on_sources": ["generic"]});
    let response = server.post_json("/v1/agents", &server.admin_key, &agent_body).await;
    assert_eq!(response.status(), 201, "{}", body(response).await);
    server
}

async fn ingest(server: &TestServer, title: &str, ip: &str, traceparent: Option<&str>) {
    let payload = json!({"source_name": "generic", "payload": {"title": title, "severity": "high", "src_ip": ip}});
    let mut request = server.request(reqwest::Method::POST, "/v1/alerts", Some(&server.admin_key)).json(&payload);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
}

/// The trace id inside a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
fn trace_id_of(traceparent: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1].len(), parts[2].len()), (4, "00", 32, 16), "{traceparent}");
    parts[1].to_owned()
}

/// Waits until the collector holds, in `trace_id`, a span of every name in `names`.
async fn wait_for_spans(collector: &Collector, trace_id: &str, names: &[&str]) -> Vec<ExportedSpan> {
    let complete = eventually(Duration::from_secs(20), || async {
        let spans = collector.in_trace(trace_id);
        names.iter().all(|name| spans.iter().any(|s| s.name == *name))
    })
    .await;
    let spans = collector.in_trace(trace_id);
    let seen: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(complete, "trace {trace_id} lacks some of {names:?}; has {seen:?}; all spans: {:?}",
        collector.spans().iter().map(|s| (&s.name, &s.trace_id)).collect::<Vec<_>>());
    spans
}

/// The spans every alert's trace holds, by name.
const ALERT_TRACE: &[&str] = &["POST /v1/alerts", "enrich_alert", "deliver_agent_webhook"];

async fn one_trace_from_ingest_to_the_agent(backend: Backend) {
    let collector = Collector::start().await;
    let vendor = FakeVendor::start().await;
    let agent = Agent::start().await;
    let server = server(backend, &vendor, &agent, Some(&collector)).await;

    // A trace that starts at the ingest request.
    ingest(&server, "traced alert", "45.33.32.70", None).await;
    let delivered = agent.wait_for(1).await;
    let traceparent = delivered[0].clone().expect("the agent webhook carries a traceparent");
    let trace_id = trace_id_of(&traceparent);
    // The provider call was made in the same trace, with its own client span as parent.
    let vendor_calls: Vec<String> =
        vendor.hits().iter().filter_map(|h| h.headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned())).collect();
    assert_eq!(vendor_calls.len(), 1, "{vendor_calls:?}");
    assert_eq!(trace_id_of(&vendor_calls[0]), trace_id);
    let names: Vec<&str> = ALERT_TRACE.iter().copied().chain(["GET 127.0.0.1", "POST 127.0.0.1"]).collect();
    let spans = wait_for_spans(&collector, &trace_id, &names).await;
    let get = spans.iter().find(|s| s.name == "GET 127.0.0.1").unwrap();
    assert_eq!(get.attribute("http.response.status_code"), Some("200"), "{get:?}");
    assert_eq!(get.span_id, vendor_calls[0].split('-').nth(2).unwrap(), "the provider's parent is its client span");
    // The webhook's parent is its own client span too.
    let post = spans.iter().find(|s| s.span_id == traceparent.split('-').nth(2).unwrap()).expect("the webhook's client span");
    assert_eq!((post.name.as_str(), post.attribute("http.request.method")), ("POST 127.0.0.1", Some("POST")));
    // The chain is parent to child: request → enrich job → delivery job (queued by the enrich
    // job's transaction) → POST.
    let by_name = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let request = by_name("POST /v1/alerts");
    assert_eq!(request.parent_span_id, "", "the request span is the root");
    assert_eq!(by_name("enrich_alert").parent_span_id, request.span_id);
    assert_eq!(get.parent_span_id, by_name("enrich_alert").span_id);
    assert_eq!(by_name("deliver_agent_webhook").parent_span_id, by_name("enrich_alert").span_id);
    assert_eq!(post.parent_span_id, by_name("deliver_agent_webhook").span_id);
    assert!(spans.iter().all(|s| s.service_name == "calseta-under-test"));
    // No span carries a URL path, a query or the indicator value.
    for span in &spans {
        assert!(span.attributes.iter().all(|(_, v)| !v.contains("45.33.32.70") && !v.contains("vt-secret")), "{span:?}");
    }

    // A caller's trace is continued: the SIEM's trace id runs through to the agent.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    ingest(&server, "continued alert", "45.33.32.71", Some(&format!("00-{caller_trace}-00f067aa0ba902b7-01"))).await;
    let delivered = agent.wait_for(2).await;
    assert_eq!(trace_id_of(delivered[1].as_deref().unwrap()), caller_trace);
    let spans = wait_for_spans(&collector, caller_trace, ALERT_TRACE).await;
    assert_eq!(spans.iter().find(|s| s.name == "POST /v1/alerts").unwrap().parent_span_id, "00f067aa0ba902b7");
    server.stop().await;
}
dual!(one_trace_from_ingest_to_the_agent);

async fn off_by_default(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let agent = Agent::start().await;
    let server = server(backend, &vendor, &agent, None).await;
    // Even an incoming traceparent goes nowhere.
    ingest(&server, "untraced alert", "45.33.32.72", Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).await;
    assert_eq!(agent.wait_for(1).await, vec![None], "no traceparent header without OTEL_EXPORTER_OTLP_ENDPOINT");
    let hits = vendor.hits();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].headers.get("traceparent").is_none());
    // Nor does any job payload carry a trace context.
    let payloads = server.db_texts("SELECT CAST(payload AS TEXT) FROM jobs").await;
    assert!(!payloads.is_empty() && payloads.iter().flatten().all(|p: &String| !p.contains("traceparent")), "{payloads:?}");
    server.stop().await;
}
dual!(off_by_default);

/// A malformed endpoint stops the start-up with exit code 2, naming the setting.
#[tokio::test]
async fn a_bad_endpoint_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DATABASE_URL".to_owned(), format!("sqlite://{}/calseta.db", dir.path().display())),
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), "collector:4318".to_owned()),
    ];
    let (code, _, stderr) = crate::support::run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{stderr}");
}
