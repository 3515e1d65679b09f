//! Operations (issue 15): Prometheus metrics (off by default; behind an admin key on the API
//! listener, or alone on METRICS_BIND), network controls (IP allow-list, TRUSTED_HOSTS, the
//! https redirect behind a trusted proxy), and no secrets or PII in the server's output.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::dual;
use crate::support::{Backend, TestServer, eventually, expect_error};

async fn ingest_generic(server: &TestServer, key: &str, payload: serde_json::Value) {
    let response = server.post_json("/v1/alerts", key, &json!({"source_name": "generic", "payload": payload})).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
}

async fn scrape(server: &TestServer, key: &str) -> String {
    let response = server.get("/metrics", key).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = server.get("/metrics", &server.admin_key).await;
    assert_eq!(response.status(), 404);
}

async fn metrics_behind_an_admin_key(backend: Backend) {
    let sqlite = matches!(backend, Backend::Sqlite);
    let server = TestServer::builder(backend).env("METRICS_ENABLED", "true").start().await;
    let admin = server.admin_key.clone();
    expect_error(server.request(Method::GET, "/metrics", None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    expect_error(server.get("/metrics", &reader).await, 403, "FORBIDDEN").await;

    ingest_generic(&server, &admin, json!({"title": "Brute force", "severity": "high", "src_ip": "198.51.100.7"})).await;
    ingest_generic(&server, &admin, json!({"title": "Brute force", "severity": "high", "src_ip": "198.51.100.7"})).await;
    let bad = server.post_json("/v1/alerts", &admin, &json!({"source_name": "generic", "payload": {"severity": "high"}})).await;
    assert!(bad.status().is_client_error());
    let titles = server.db_texts("SELECT CAST(title AS TEXT) FROM alerts").await;
    assert_eq!(titles.len(), 1);
    let missing = format!("/v1/alerts/{}", uuid::Uuid::new_v4());
    assert_eq!(server.get(&missing, &admin).await.status(), 404);
    assert!(eventually(Duration::from_secs(20), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'").await >= 1
    }).await);

    let text = scrape(&server, &admin).await;
    assert!(text.contains(r#"calseta_ingest_alerts_total{source="generic",outcome="accepted"} 1"#), "{text}");
    assert!(text.contains(r#"calseta_ingest_alerts_total{source="generic",outcome="deduplicated"} 1"#), "{text}");
    assert!(text.contains(r#"calseta_ingest_alerts_total{source="generic",outcome="refused"} 1"#), "{text}");
    // Latency by route template and status: the template, never the uuid asked for.
    assert!(text.contains(r#"calseta_http_request_duration_seconds_bucket{route="/v1/alerts",method="POST",status="202",le="0.005"}"#), "{text}");
    assert!(text.contains(r#"route="/v1/alerts/{alert_uuid}",method="GET",status="404""#), "{text}");
    assert!(text.contains(r#"calseta_jobs_total{queue="#) && text.contains(r#"task="enrich_alert",outcome="succeeded"}"#), "{text}");
    assert!(text.contains("calseta_job_duration_seconds_bucket"), "{text}");
    // How long the one SQLite write connection was held (the ingest and enrichment transactions
    // at least): the rate of its sum is the writer's occupancy. PostgreSQL has no such gate.
    let held = sample(&text, "calseta_sqlite_writer_held_seconds_count");
    if sqlite {
        assert!(held.is_some_and(|count| count >= 2.0), "{held:?} in {text}");
        assert!(sample(&text, "calseta_sqlite_writer_held_seconds_sum").is_some_and(|seconds| seconds > 0.0), "{text}");
        // Its own buckets, from half a millisecond: a transaction holds it for a few.
        assert!(text.contains(r#"calseta_sqlite_writer_held_seconds_bucket{le="0.0005"}"#), "{text}");
    } else {
        assert_eq!(held, None, "{text}");
    }
    // Bounded cardinality: no uuid, no indicator value, no key material in any series.
    let uuid_like = regex_lite_uuid(&text);
    assert!(uuid_like.is_none(), "a uuid in the metrics: {uuid_like:?}");
    assert!(!text.contains("198.51.100.7") && !text.contains(&admin[..12]));
}
dual!(metrics_behind_an_admin_key);

/// The value of an unlabelled series in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Finds a hyphenated uuid without a regex dependency.
fn regex_lite_uuid(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|word| uuid::Uuid::parse_str(word).is_ok() && word.len() == 36)
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() {
    let server = TestServer::builder(Backend::Sqlite)
        .env("METRICS_BIND", "127.0.0.1:0")
        .env("RATE_LIMIT_UNAUTHED_PER_MINUTE", "1")
        .start()
        .await;
    let base = server
        .stderr
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("calseta metrics listening on ").map(str::to_owned))
        .expect("metrics address announced");
    // The API listener does not serve /metrics then.
    assert_eq!(server.get("/metrics", &server.admin_key).await.status(), 404);
    // Unauthenticated traffic meets its 429 (rate-limit rejections by family).
    for _ in 0..3 {
        server.request(Method::GET, "/v1/alerts", Some("cai_not_a_real_key_at_all_00000000")).send().await.unwrap();
    }
    let client = reqwest::Client::new();
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"calseta_rate_limit_rejections_total{family="unauthenticated"}"#), "{text}");
    assert!(text.contains(r#"route="unmatched""#) || text.contains(r#"route="/v1/alerts""#), "{text}");
    assert_eq!(client.get(format!("{base}/v1/alerts")).send().await.unwrap().status(), 404);
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_allow_list() {
    let refused = TestServer::builder(Backend::Sqlite).env("IP_ALLOWLIST", "10.0.0.0/8, 192.0.2.1").start().await;
    expect_error(refused.get("/v1/alerts", &refused.admin_key).await, 403, "IP_NOT_ALLOWED").await;
    // Health probes are exempt.
    assert_eq!(refused.client.get(refused.url("/health")).send().await.unwrap().status(), 200);
    // A forged X-Forwarded-For is ignored without TRUSTED_PROXY_COUNT.
    let forged = refused.request(Method::GET, "/v1/alerts", Some(&refused.admin_key)).header("x-forwarded-for", "10.1.2.3");
    expect_error(forged.send().await.unwrap(), 403, "IP_NOT_ALLOWED").await;

    let allowed = TestServer::builder(Backend::Sqlite).env("IP_ALLOWLIST", "127.0.0.0/8").start().await;
    assert_eq!(allowed.get("/v1/alerts", &allowed.admin_key).await.status(), 200);

    // Behind one trusted proxy the client is the address the proxy saw.
    let proxied = TestServer::builder(Backend::Sqlite)
        .env("IP_ALLOWLIST", "10.0.0.0/8")
        .env("TRUSTED_PROXY_COUNT", "1")
        .start()
        .await;
    let via_proxy = proxied.request(Method::GET, "/v1/alerts", Some(&proxied.admin_key)).header("x-forwarded-for", "10.1.2.3");
    assert_eq!(via_proxy.send().await.unwrap().status(), 200);
    let outsider = proxied.request(Method::GET, "/v1/alerts", Some(&proxied.admin_key)).header("x-forwarded-for", "10.1.2.3, 203.0.113.9");
    expect_error(outsider.send().await.unwrap(), 403, "IP_NOT_ALLOWED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_hosts() {
    let server = TestServer::builder(Backend::Sqlite).env("TRUSTED_HOSTS", "api.example.com, *.soc.example").start().await;
    let key = server.admin_key.clone();
    expect_error(server.get("/v1/alerts", &key).await, 400, "INVALID_HOST").await;
    for host in ["api.example.com", "API.example.com:8443", "eu.soc.example"] {
        let response = server.request(Method::GET, "/v1/alerts", Some(&key)).header("host", host).send().await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
    let evil = server.request(Method::GET, "/v1/alerts", Some(&key)).header("host", "api.example.com.evil.test").send().await.unwrap();
    let json = expect_error(evil, 400, "INVALID_HOST").await;
    assert!(!json.to_string().contains("evil"), "the refused host is not echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_redirect_believes_only_trusted_proxies() {
    let server = TestServer::builder(Backend::Sqlite).env("HTTPS_REDIRECT", "true").env("TRUSTED_PROXIES", "127.0.0.1").start().await;
    let client = no_redirects();
    let plain = client
        .get(server.url("/v1/alerts?page=2"))
        .header("host", "soc.example.com")
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 308);
    assert_eq!(plain.headers()["location"], "https://soc.example.com/v1/alerts?page=2");
    let forwarded = client
        .get(server.url("/v1/alerts"))
        .header("x-forwarded-proto", "https")
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
    assert_eq!(client.get(server.url("/health")).send().await.unwrap().status(), 200);

    // The same header from a peer that is not a trusted proxy changes nothing.
    let untrusted = TestServer::builder(Backend::Sqlite).env("HTTPS_REDIRECT", "true").env("TRUSTED_PROXIES", "10.0.0.1").start().await;
    let spoofed = client.get(untrusted.url("/v1/alerts")).header("x-forwarded-proto", "https").send().await.unwrap();
    assert_eq!(spoofed.status(), 308);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_network_settings_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [("IP_ALLOWLIST", "10.0.0.0/33"), ("TRUSTED_PROXIES", "proxy.local"), ("TRUSTED_HOSTS", "a*b.example")] {
        let env = vec![(name.to_owned(), value.to_owned()), ("DATABASE_URL".to_owned(), format!("sqlite://{}/x.db", dir.path().display()))];
        let (code, _, stderr) = crate::support::run_cli(&["migrate"], dir.path(), &env).await;
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// Values an alert may carry that must never reach the server's output, whatever the level.
const SENSITIVE: &[&str] = &[
    "jane.doe@victim-corp.example",
    "+1-415-555-0132",
    "4111111111111111",
    "5500 0000 0000 0004",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJlX2hlcmVfMTIzNDU2",
    "cai_ZmFrZWtleWZvcnRlc3Rpbmdvbmx5MDAwMDAwMDA",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
];

async fn ingest_sensitive_alert(server: &TestServer) {
    let key = server.admin_key.clone();
    let payload = json!({
        "title": format!("Suspicious login by {} ({})", SENSITIVE[0], SENSITIVE[1]),
        "severity": "high",
        "description": format!("card {} / {} token {}", SENSITIVE[2], SENSITIVE[3], SENSITIVE[4]),
        "src_ip": "198.51.100.23",
        "username": SENSITIVE[0],
        "email": SENSITIVE[0],
        "phone": SENSITIVE[1],
        "api_key": SENSITIVE[5],
        "aws_access_key_id": SENSITIVE[6],
        "aws_secret_access_key": SENSITIVE[7],
        "authorization": format!("Bearer {}", SENSITIVE[4]),
    });
    ingest_generic(server, &key, payload.clone()).await;
    ingest_generic(server, &key, payload).await; // the deduplicated path too
    // A malformed ingest carrying the same values, and a lookup by value.
    let bad = server.post_json("/v1/alerts", &key, &json!({"source_name": "generic", "payload": {"severity": SENSITIVE[2], "email": SENSITIVE[0]}})).await;
    assert!(bad.status().is_client_error());
    let bad_json = server.request(Method::POST, "/v1/alerts", Some(&key)).header("content-type", "application/json")
        .body(format!("{{\"source_name\": \"generic\", \"payload\": {{\"x\": \"{}\"", SENSITIVE[6])).send().await.unwrap();
    assert!(bad_json.status().is_client_error());
    let lookup = format!("/v1/indicators?value={}", SENSITIVE[0]);
    server.get(&lookup, &key).await;
    // Values pasted into paths reach the request log's `path` field.
    for value in SENSITIVE {
        server.get(&format!("/v1/alerts/{value}"), &key).await;
        server.post_json(&format!("/v1/ingest/{value}"), &key, &json!({})).await;
    }
    assert!(eventually(Duration::from_secs(20), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE status IN ('todo', 'doing')").await == 0
            && server.db_count("SELECT COUNT(*) FROM jobs").await >= 1
    }).await, "enrichment ran");
}

async fn assert_nothing_sensitive(server: &TestServer, level: &str) {
    let output = format!("{}\n{}", server.stdout.text(), server.stderr.text());
    assert!(output.lines().count() > 5, "the server logged at {level}:\n{output}");
    for value in SENSITIVE {
        let hit = output.lines().find(|l| l.contains(value));
        assert!(hit.is_none(), "{value} appears in the output at {level}: {}", hit.unwrap_or_default());
    }
}

async fn no_pii_or_secrets_in_logs(backend: Backend) {
    for (level, format) in [("debug", "json"), ("trace", "text"), ("info", "text"), ("warning", "json"), ("error", "json")] {
        let server = TestServer::builder(backend.clone())
            .env("LOG_LEVEL", level)
            .env("LOG_FORMAT", format)
            .env("ENRICHMENT_MOCK_MODE", "true")
            .start()
            .await;
        ingest_sensitive_alert(&server).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_nothing_sensitive(&server, level).await;
        server.stop().await;
    }
}
dual!(no_pii_or_secrets_in_logs);

/// A fake Azure AD + Key Vault, or AWS Secrets Manager, on loopback. Records the requests.
mod fake_cloud {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    #[derive(Clone, Default)]
    pub struct Seen(pub Arc<Mutex<Vec<(String, HeaderMap, String)>>>);

    /// A fake STS answering `AssumeRoleWithWebIdentity` with fixed credentials.
    pub async fn start_sts(seen: Seen) -> String {
        let app = Router::new().route("/", post(sts)).with_state((seen, 200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://127.0.0.1:{port}")
    }

    async fn sts(State((seen, _)): S, headers: HeaderMap, body: String) -> Response {
        seen.0.lock().unwrap().push(("sts".into(), headers, body));
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                   <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey>\
                   <SessionToken>web-session</SessionToken></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        xml.into_response()
    }

    pub async fn start(seen: Seen, secret_status: u16) -> String {
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/secrets", get(list))
            .route("/secrets/{name}", get(secret))
            .route("/", post(aws))
            .with_state((seen, secret_status));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://127.0.0.1:{port}")
    }

    type S = State<(Seen, u16)>;

    async fn token(State((seen, _)): S, Path(tenant): Path<String>, headers: HeaderMap, body: String) -> Response {
        seen.0.lock().unwrap().push((format!("token:{tenant}"), headers, body.clone()));
        if !body.contains("client_secret=azure-client-secret") && !body.contains("client_assertion=federated-sa-token") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        axum::Json(json!({"access_token": "vault-token", "token_type": "Bearer"})).into_response()
    }

    async fn list(State((seen, _)): S, headers: HeaderMap) -> Response {
        seen.0.lock().unwrap().push(("list".into(), headers, String::new()));
        axum::Json(json!({"value": [
            {"id": "https://vault.example/secrets/virustotal-api-key", "attributes": {"enabled": true}},
            {"id": "https://vault.example/secrets/abuseipdb-api-key", "attributes": {"enabled": true}},
            {"id": "https://vault.example/secrets/unrelated-thing", "attributes": {"enabled": true}}
        ], "nextLink": null}))
        .into_response()
    }

    async fn secret(State((seen, status)): S, Path(name): Path<String>, headers: HeaderMap) -> Response {
        seen.0.lock().unwrap().push((format!("secret:{name}"), headers.clone(), String::new()));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer vault-token") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if name == "abuseipdb-api-key" && status != 200 {
            return (StatusCode::from_u16(status).unwrap(), "value-that-must-not-be-logged").into_response();
        }
        axum::Json(json!({"value": format!("{name}-from-vault"), "id": name})).into_response()
    }

    async fn aws(State((seen, status)): S, headers: HeaderMap, body: String) -> Response {
        seen.0.lock().unwrap().push(("aws".into(), headers, body.clone()));
        if status != 200 {
            return (StatusCode::from_u16(status).unwrap(), "{\"SecretString\":\"value-that-must-not-be-logged\"}").into_response();
        }
        let secret: Value = json!({"VIRUSTOTAL_API_KEY": "vt-from-aws", "abuseipdb_api_key": "abuse-from-aws"});
        axum::Json(json!({"Name": "calseta/prod", "SecretString": secret.to_string()})).into_response()
    }
}

/// Which builtin providers report credentials: the settings the backend supplied reach them.
async fn configured_providers(server: &TestServer) -> Vec<String> {
    let response = server.get("/v1/enrichment-providers", &server.admin_key).await;
    let json: serde_json::Value = response.json().await.unwrap();
    json["data"].as_array().unwrap().iter()
        .filter(|p| p["is_configured"] == true || p["has_credentials"] == true)
        .map(|p| p["provider_name"].as_str().or(p["name"].as_str()).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_key_vault_supplies_settings() {
    let seen = fake_cloud::Seen::default();
    let base = fake_cloud::start(seen.clone(), 200).await;
    let server = TestServer::builder(Backend::Sqlite)
        .env("AZURE_KEY_VAULT_URL", &base)
        .env("AZURE_AUTHORITY_HOST", &base)
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "client-1")
        .env("AZURE_CLIENT_SECRET", "azure-client-secret")
        .start()
        .await;
    let log = server.stdout.text();
    assert!(log.contains("secrets_source=azure_key_vault"), "{log}");
    let calls: Vec<String> = seen.0.lock().unwrap().iter().map(|(what, _, _)| what.clone()).collect();
    assert_eq!(calls, ["token:tenant-1", "list", "secret:virustotal-api-key", "secret:abuseipdb-api-key", "secret:unrelated-thing"]);
    let providers = configured_providers(&server).await;
    assert!(providers.iter().any(|p| p == "virustotal") && providers.iter().any(|p| p == "abuseipdb"), "{providers:?}");
    assert!(!log.contains("from-vault") && !log.contains("azure-client-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_backend_failures_name_backend_and_secret_never_values() {
    let seen = fake_cloud::Seen::default();
    let base = fake_cloud::start(seen.clone(), 500).await;
    let server = TestServer::builder(Backend::Sqlite)
        .env("AZURE_KEY_VAULT_URL", &base)
        .env("AZURE_AUTHORITY_HOST", &base)
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "client-1")
        .env("AZURE_CLIENT_SECRET", "azure-client-secret")
        .start()
        .await;
    let log = server.stdout.text();
    assert!(log.contains("azure_key_vault") && log.contains("'abuseipdb-api-key'") && log.contains("HTTP 500"), "{log}");
    assert!(!log.contains("value-that-must-not-be-logged") && !log.contains("from-vault"), "{log}");
    // The backend contributed nothing, not even the secrets read before the failure.
    assert!(configured_providers(&server).await.is_empty());

    let aws = TestServer::builder(Backend::Sqlite)
        .env("AWS_SECRETS_MANAGER_SECRET_NAME", "calseta/prod")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &base)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
        .start()
        .await;
    let log = aws.stdout.text();
    assert!(log.contains("aws_secrets_manager") && log.contains("'calseta/prod'") && log.contains("HTTP 500"), "{log}");
    assert!(!log.contains("value-that-must-not-be-logged"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_supplies_settings() {
    let seen = fake_cloud::Seen::default();
    let base = fake_cloud::start(seen.clone(), 200).await;
    let server = TestServer::builder(Backend::Sqlite)
        .env("AWS_SECRETS_MANAGER_SECRET_NAME", "calseta/prod")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &base)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret")
        .env("AWS_SESSION_TOKEN", "session-1")
        .start()
        .await;
    assert!(server.stdout.text().contains("secrets_source=aws_secrets_manager"));
    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (_, headers, body) = &requests[0];
    assert_eq!(body, r#"{"SecretId":"calseta/prod"}"#);
    assert_eq!(headers["x-amz-target"], "secretsmanager.GetSecretValue");
    assert_eq!(headers["x-amz-security-token"], "session-1");
    let authorization = headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{authorization}");
    assert!(authorization.contains("/eu-west-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="), "{authorization}");
    let providers = configured_providers(&server).await;
    assert!(providers.iter().any(|p| p == "virustotal") && providers.iter().any(|p| p == "abuseipdb"), "{providers:?}");
}

/// The credential chains run in the server: web identity (STS) signs the Secrets Manager call,
/// and a workload-identity token file authenticates to the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_backends_use_the_credential_chains() {
    let seen = fake_cloud::Seen::default();
    let base = fake_cloud::start(seen.clone(), 200).await;
    let sts = fake_cloud::start_sts(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "federated-sa-token\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    let server = TestServer::builder(Backend::Sqlite)
        .env("AWS_SECRETS_MANAGER_SECRET_NAME", "calseta/prod")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &base)
        .env("AWS_ENDPOINT_URL_STS", &sts)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/calseta")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .start()
        .await;
    assert!(server.stdout.text().contains("secrets_source=aws_secrets_manager"));
    assert!(server.stdout.text().contains(r#""credentials_source":"web_identity""#), "{}", server.stdout.text());
    let requests = seen.0.lock().unwrap().clone();
    let calls: Vec<&str> = requests.iter().map(|(what, _, _)| what.as_str()).collect();
    assert_eq!(calls, ["sts", "aws"]);
    assert!(requests[0].2.contains("WebIdentityToken=federated-sa-token"), "{}", requests[0].2);
    let authorization = requests[1].1["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=ASIAWEBIDENTITY/"), "{authorization}");
    assert_eq!(requests[1].1["x-amz-security-token"], "web-session");
    assert!(configured_providers(&server).await.iter().any(|p| p == "virustotal"));
    seen.0.lock().unwrap().clear();

    let azure = TestServer::builder(Backend::Sqlite)
        .env("AZURE_KEY_VAULT_URL", &base)
        .env("AZURE_AUTHORITY_HOST", &base)
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "client-1")
        .env("AZURE_FEDERATED_TOKEN_FILE", token_file)
        .start()
        .await;
    assert!(azure.stdout.text().contains("secrets_source=azure_key_vault"));
    assert!(azure.stdout.text().contains(r#""credentials_source":"workload_identity""#), "{}", azure.stdout.text());
    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests[0].0, "token:tenant-1");
    assert!(requests[0].2.contains("client_assertion=federated-sa-token") && !requests[0].2.contains("client_secret"), "{}", requests[0].2);
    assert!(configured_providers(&azure).await.iter().any(|p| p == "abuseipdb"));

    // A configured link that fails stops the chain: the error names the backend, the secret and
    // the link, and the backend contributes nothing.
    let missing_profile = TestServer::builder(Backend::Sqlite)
        .env("AWS_SECRETS_MANAGER_SECRET_NAME", "calseta/prod")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &base)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_PROFILE", "nowhere")
        .env("AWS_SHARED_CREDENTIALS_FILE", token_file)
        .start()
        .await;
    let log = missing_profile.stdout.text();
    assert!(log.contains("aws_secrets_manager: secret 'calseta/prod': credentials: shared credentials: AWS_PROFILE names profile 'nowhere'"), "{log}");
    assert!(configured_providers(&missing_profile).await.is_empty());
}
