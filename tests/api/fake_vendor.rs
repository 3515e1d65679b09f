//! Local fake enrichment vendors on loopback: VirusTotal-, AbuseIPDB- and Okta-shaped JSON plus the
//! misbehaviours a provider must survive (500, 429, hang, slow drip, huge body, redirect,
//! non-JSON). Every request is recorded so tests can assert what was (not) sent. A separate
//! canary listener counts connections that must never happen.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    canary_port: u16,
}

pub struct FakeVendor {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    pub canary: Canary,
}

impl FakeVendor {
    pub async fn start() -> FakeVendor {
        let canary = Canary::start().await;
        let shared = Shared { hits: Arc::default(), canary_port: canary.port };
        let app = Router::new()
            .route("/vt/api/v3/ip_addresses/{ip}", get(vt_ip))
            .route("/vt/api/v3/domains/{domain}", get(vt_domain))
            .route("/abuse/api/v2/check", get(abuse_check))
            .route("/okta/api/v1/users/{login}", get(okta_user))
            .route("/okta/api/v1/users/{id}/groups", get(okta_groups))
            .route("/okta/api/v1/users/{id}/linkedObjects/manager", get(|| async { StatusCode::NOT_FOUND }))
            .route("/token", post(|| async { axum::Json(json!({"access_token": "tok-123"})) }))
            .route("/status/{code}", get(status))
            .route("/hang", get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }))
            .route("/drip", get(drip))
            .route("/big", get(|| async { "x".repeat(8 * 1024 * 1024) }))
            .route("/redirect", get(redirect))
            .route("/html", get(|| async { ([("content-type", "text/html")], "<html>not json</html>") }))
            .with_state(shared.clone())
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeVendor { port, hits: shared.hits, canary }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The allow-list entry that lets the server reach this vendor and nothing else on loopback.
    pub fn allow_entry(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn hits_to(&self, prefix: &str) -> usize {
        self.hits().iter().filter(|h| h.path.starts_with(prefix)).count()
    }
}

async fn record(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = match request.uri().query() {
        Some(q) => format!("{}?{q}", request.uri().path()),
        None => request.uri().path().to_owned(),
    };
    shared.hits.lock().unwrap().push(Hit { path, headers: request.headers().clone() });
    next.run(request).await
}

fn vt_body(malicious: u64, suspicious: u64) -> Value {
    json!({"data": {"id": "x", "type": "ip_address", "attributes": {
        "last_analysis_stats": {"malicious": malicious, "suspicious": suspicious, "harmless": 60, "undetected": 10},
        "reputation": -12, "country": "NL", "as_owner": "Example AS", "asn": 64500, "network": "203.0.113.0/24",
        "tags": ["scanner"], "categories": {"vendor": "malware"}}}})
}

/// Verdict by address: `*.66` malicious, `*.77` suspicious, `*.99` unknown (404), else clean.
async fn vt_ip(Path(ip): Path<String>, headers: HeaderMap) -> Response {
    if headers.get("x-apikey").and_then(|v| v.to_str().ok()) != Some("vt-secret-key-123456") {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "bad key"}))).into_response();
    }
    match ip.rsplit('.').next() {
        Some("66") => axum::Json(vt_body(7, 1)).into_response(),
        Some("77") => axum::Json(vt_body(0, 3)).into_response(),
        Some("99") => (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "NotFoundError"}}))).into_response(),
        _ => axum::Json(vt_body(0, 0)).into_response(),
    }
}

async fn vt_domain(Path(_domain): Path<String>) -> Response {
    axum::Json(json!({"data": {"attributes": {"last_analysis_stats": {"malicious": 0, "suspicious": 0}, "registrar": "Example Registrar"}}})).into_response()
}

async fn abuse_check(Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
    let ip = query.get("ipAddress").cloned().unwrap_or_default();
    let score = if ip.ends_with(".66") { 90 } else { 10 };
    axum::Json(json!({"data": {"ipAddress": ip, "abuseConfidenceScore": score, "totalReports": 4, "countryCode": "NL",
        "isp": "Example ISP", "usageType": "Data Center", "isWhitelisted": false, "isTor": "true", "isPublic": true,
        "numDistinctUsers": 2, "lastReportedAt": "2026-11-01T00:00:00+00:00"}}))
    .into_response()
}

async fn okta_user(Path(login): Path<String>) -> Response {
    if login.starts_with("ghost") {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(json!({"id": "00u1", "status": "ACTIVE", "created": "2024-01-01T00:00:00.000Z",
        "profile": {"login": login, "email": login, "firstName": "Ada", "lastName": "Lovelace", "department": "R&D", "title": "Engineer"}}))
    .into_response()
}

async fn okta_groups(Path(id): Path<String>) -> Response {
    axum::Json(json!([{"id": format!("g-{id}"), "profile": {"name": "Engineering"}}])).into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == 429 {
        return (status, [("retry-after", "120")], axum::Json(json!({"error": "slow down"}))).into_response();
    }
    (status, axum::Json(json!({"error": code}))).into_response()
}

/// A body that trickles one byte every 200 ms, forever (within the test's lifetime).
async fn drip() -> Response {
    let stream = futures::stream::unfold(0u32, |n| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), n + 1))
    });
    Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap()
}

async fn redirect(State(shared): State<Shared>) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", format!("http://127.0.0.1:{}/", shared.canary_port))
        .body(Body::empty())
        .unwrap()
}

/// Counts every TCP connection it accepts; a test asserts it stays at zero.
pub struct Canary {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    pub async fn start() -> Canary {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Canary { port, connections }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
