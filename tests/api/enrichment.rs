//! Enrichment through the public surface: provider and field-extraction CRUD with save-time
//! validation and SSRF vetting, live enrichment against local fake vendors (success, not found,
//! 500, 429, hang, slow drip, huge body, redirect, non-JSON), the cache and circuit breaker, the
//! provider test endpoint's masked debug steps, mock mode end to end, and cross-process registry
//! refresh.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alerts::{create_generic, event_types, wait_enriched};
use crate::dual;
use crate::fake_vendor::FakeVendor;
use crate::support::{Backend, TestServer, body, eventually, expect_error};

/// 32 distinct bytes, base64.
pub const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const VT_KEY: &str = "vt-secret-key-123456";

async fn server_with(backend: Backend, vendor: &FakeVendor, extra: &[(&str, &str)]) -> TestServer {
    let mut builder = TestServer::builder(backend)
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", &vendor.allow_entry())
        .env("RATE_LIMIT_ENRICHMENT_PER_MINUTE", "100000")
        .env("ENRICHMENT_REGISTRY_REFRESH_MS", "200");
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    builder.start().await
}

fn vt_provider(vendor: &FakeVendor, name: &str) -> Value {
    let base = vendor.base();
    json!({
        "provider_name": name, "display_name": "Fake VirusTotal", "supported_indicator_types": ["ip", "domain"],
        "http_config": {
            "steps": [{"name": "lookup", "url": format!("{base}/vt/api/v3/ip_addresses/{{{{indicator.value}}}}"),
                       "headers": {"x-apikey": "{{auth.api_key}}"}, "expected_status": [200], "not_found_status": [404]}],
            "url_templates_by_type": {"domain": format!("{base}/vt/api/v3/domains/{{{{indicator.value}}}}")}
        },
        "auth_type": "api_key", "auth_config": {"api_key": VT_KEY},
        "malice_rules": {"rules": [
            {"field": "data.attributes.last_analysis_stats.malicious", "operator": ">", "value": 0, "verdict": "Malicious"},
            {"field": "data.attributes.last_analysis_stats.suspicious", "operator": ">", "value": 0, "verdict": "Suspicious"}],
            "default_verdict": "Benign", "not_found_verdict": "Pending"}
    })
}

fn simple_provider(vendor: &FakeVendor, name: &str, path: &str, timeout: u64) -> Value {
    json!({
        "provider_name": name, "display_name": name, "supported_indicator_types": ["ip"],
        "http_config": {"steps": [{"name": "lookup", "url": format!("{}{path}", vendor.base()), "timeout_seconds": timeout}]},
    })
}

async fn create_provider(server: &TestServer, provider: &Value) -> Value {
    let response = server.post_json("/v1/enrichment-providers", &server.admin_key, provider).await;
    let status = response.status();
    let json = body(response).await;
    assert_eq!(status, 201, "{json}");
    json["data"].clone()
}

async fn enrich(server: &TestServer, indicator_type: &str, value: &str) -> Value {
    let response = server.post_json("/v1/enrichments", &server.admin_key, &json!({"type": indicator_type, "value": value})).await;
    assert_eq!(response.status(), 200);
    body(response).await["data"].clone()
}

async fn provider_crud_and_validation(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let admin = server.admin_key.clone();
    let (reader, _) = server.create_key(&["enrichments:read"], json!({})).await;

    // Builtins: seven providers, 91 system extractions, none configured without credentials.
    let list = body(server.get("/v1/enrichment-providers?is_builtin=true&page_size=50", &reader).await).await;
    assert_eq!(list["meta"]["total"], 7, "{list}");
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|p| p["provider_name"].as_str().unwrap()).collect();
    for expected in ["virustotal", "abuseipdb", "okta", "entra", "internal_ip_intel", "hr_insider_risk", "asset_management"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    assert!(list["data"].as_array().unwrap().iter().all(|p| p["is_configured"] == false && p.get("auth_config").is_none()));
    let system = body(server.get("/v1/enrichment-field-extractions?is_system=true&page_size=1", &reader).await).await;
    assert_eq!(system["meta"]["total"], 91);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_providers").await, 7);

    // Create: sealed credentials, never returned.
    let created = create_provider(&server, &vt_provider(&vendor, "fakevt")).await;
    assert_eq!(created["is_builtin"], false);
    assert_eq!(created["has_credentials"], true);
    assert_eq!(created["is_configured"], true);
    assert!(created.get("auth_config").is_none() && created.get("mock_responses").is_none());
    let column = if server.db.url.starts_with("postgres") { "auth_config::text" } else { "auth_config" };
    let sealed_pg = server
        .db_count(&format!("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = 'fakevt' AND {column} LIKE '%_encrypted%' AND {column} NOT LIKE '%vt-secret%'"))
        .await;
    assert_eq!(sealed_pg, 1, "auth_config is stored sealed");
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/enrichment-providers/{uuid}");
    assert_eq!(body(server.get(&path, &reader).await).await["data"]["provider_name"], "fakevt");

    // Duplicate, bad fields, bad recipes, unsafe URLs: 4xx naming the problem, nothing stored.
    expect_error(server.post_json("/v1/enrichment-providers", &admin, &vt_provider(&vendor, "fakevt")).await, 409, "DUPLICATE_PROVIDER").await;
    let bad_cases = [
        (json!({"provider_name": "Bad Name"}), "provider_name"),
        (json!({"supported_indicator_types": ["ipv9"]}), "Invalid indicator type: 'ipv9'"),
        (json!({"auth_type": "magic"}), "Unknown auth_type"),
        (json!({"default_cache_ttl_seconds": 86401}), "default_cache_ttl_seconds"),
        (json!({"http_config": {"steps": []}}), "steps"),
        (json!({"http_config": {"steps": [{"url": "https://api.example.com/{{indicator.value"}]}}), "http_config"),
        (json!({"http_config": {"steps": [{"url": "https://api.example.com/{{nope.value}}"}]}}), "http_config"),
        (json!({"http_config": {"steps": [{"url": "https://api.example.com/", "bogus": 1}]}}), "bogus"),
        (json!({"http_config": {"steps": [{"url": "http://169.254.169.254/latest/meta-data/"}]}}), "SSRF"),
        (json!({"http_config": {"steps": [{"url": "http://10.1.2.3/x"}]}}), "SSRF"),
        (json!({"http_config": {"steps": [{"url": format!("http://127.0.0.1:{}/", vendor.canary.port)}]}}), "SSRF"),
        (json!({"http_config": {"steps": [{"url": "http://user:pass@api.example.com/"}]}}), "SSRF"),
        (json!({"http_config": {"steps": [{"url": "file:///etc/passwd"}]}}), "must start with http"),
        (json!({"http_config": {"steps": [{"url": "http://2130706433/"}]}}), "SSRF"),
        (json!({"malice_rules": {"rules": [{"field": "a", "operator": "~=", "value": 1, "verdict": "Malicious"}]}}), "malice_rules"),
        (json!({"malice_rules": {"rules": [{"field": "a", "operator": ">", "value": 1, "verdict": "Evil"}]}}), "malice_rules"),
        (json!({"supported_indicator_types": "ip"}), "supported_indicator_types"),
        (json!({"http_config": "https://api.example.com/"}), "http_config"),
        (json!({"http_config": {"steps": [{"url": "https://api.example.com/", "headers": {"X-Pad": "x".repeat(300_000)}}]}}), "http_config"),
        (json!({"http_config": {"steps": [{"url": "https://api.example.com/", "headers": {"X-Bad": "a\r\nInjected: 1"}}]}}), "http_config"),
        (json!({"is_builtin": true}), "is_builtin"),
    ];
    for (override_fields, needle) in bad_cases {
        let mut provider = vt_provider(&vendor, "another");
        for (k, v) in override_fields.as_object().unwrap() {
            provider[k] = v.clone();
        }
        let response = server.post_json("/v1/enrichment-providers", &admin, &provider).await;
        let json = expect_error(response, 422, "VALIDATION_ERROR").await;
        assert!(json.to_string().contains(needle), "{needle}: {json}");
    }
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = 'another'").await, 0);
    assert_eq!(vendor.canary.connections(), 0, "save-time vetting never connects");
    let malformed = server.request(reqwest::Method::POST, "/v1/enrichment-providers", Some(&admin))
        .header("content-type", "application/json").body("{\"provider_name\": ").send().await.unwrap();
    let json = expect_error(malformed, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid", "malformed JSON, as FastAPI reports it");
    let unknown = format!("/v1/enrichment-providers/{}/test", uuid::Uuid::new_v4());
    expect_error(server.post_json(&unknown, &admin, &json!({"indicator_type": "ip", "indicator_value": "1.1.1.1"})).await, 404, "NOT_FOUND").await;
    expect_error(server.post_json("/v1/enrichments", &admin, &json!({"type": "ip", "value": "x".repeat(3000)})).await, 422, "VALIDATION_ERROR").await;

    // Scopes: reads need enrichments:read, writes admin.
    expect_error(server.post_json("/v1/enrichment-providers", &reader, &vt_provider(&vendor, "x")).await, 403, "FORBIDDEN").await;

    // Patch, deactivate/activate, builtin restrictions.
    let patched = body(server.patch_json(&path, &admin, &json!({"display_name": "Renamed", "cache_ttl_by_type": {"ip": 60}})).await).await;
    assert_eq!(patched["data"]["display_name"], "Renamed");
    assert_eq!(patched["data"]["cache_ttl_by_type"], json!({"ip": 60}));
    let off = body(server.post_json(&format!("{path}/deactivate"), &admin, &json!({})).await).await;
    assert_eq!(off["data"]["is_active"], false);
    assert_eq!(off["data"]["is_configured"], false);
    let on = body(server.post_json(&format!("{path}/activate"), &admin, &json!({})).await).await;
    assert_eq!(on["data"]["is_active"], true);
    let builtin_uuid = list["data"][0]["uuid"].as_str().unwrap().to_owned();
    let builtin_path = format!("/v1/enrichment-providers/{builtin_uuid}");
    expect_error(server.patch_json(&builtin_path, &admin, &json!({"http_config": {"steps": [{"url": "https://x.example.com/"}]}})).await, 400, "BUILTIN_RESTRICTED").await;
    let response = server.request(reqwest::Method::DELETE, &builtin_path, Some(&admin)).send().await.unwrap();
    expect_error(response, 400, "BUILTIN_RESTRICTED").await;
    let ok = server.patch_json(&builtin_path, &admin, &json!({"description": "ours", "default_cache_ttl_seconds": 120})).await;
    assert_eq!(ok.status(), 200);

    // Field extractions: create, bulk (all or nothing), system rows protected.
    let extraction = json!({"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.country", "target_key": "country"});
    let created = body(server.post_json("/v1/enrichment-field-extractions", &admin, &extraction).await).await;
    assert_eq!(created["data"]["is_system"], false);
    assert_eq!(created["data"]["value_type"], "string");
    expect_error(server.post_json("/v1/enrichment-field-extractions", &admin, &extraction).await, 409, "DUPLICATE_EXTRACTION").await;
    let missing = json!({"provider_name": "nope", "indicator_type": "ip", "source_path": "a", "target_key": "b"});
    expect_error(server.post_json("/v1/enrichment-field-extractions", &admin, &missing).await, 422, "PROVIDER_NOT_FOUND").await;
    let bad = json!({"provider_name": "fakevt", "indicator_type": "ip", "source_path": "a..b", "target_key": "b", "value_type": "complex"});
    let json = expect_error(server.post_json("/v1/enrichment-field-extractions", &admin, &bad).await, 422, "VALIDATION_ERROR").await;
    assert!(json.to_string().contains("source_path") && json.to_string().contains("value_type"), "{json}");
    let bulk = json!({"extractions": [
        {"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.asn", "target_key": "asn", "value_type": "int"},
        extraction.clone()]});
    expect_error(server.post_json("/v1/enrichment-field-extractions/bulk", &admin, &bulk).await, 409, "DUPLICATE_EXTRACTION").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_field_extractions WHERE target_key = 'asn' AND is_system = FALSE").await, 0);
    let bulk = json!({"extractions": [
        {"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.asn", "target_key": "asn", "value_type": "int"},
        {"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.last_analysis_stats.malicious", "target_key": "malicious_count", "value_type": "int"}]});
    let created_bulk = server.post_json("/v1/enrichment-field-extractions/bulk", &admin, &bulk).await;
    assert_eq!(created_bulk.status(), 201);
    assert_eq!(body(created_bulk).await["data"].as_array().unwrap().len(), 2);
    let system_row = body(server.get("/v1/enrichment-field-extractions?is_system=true&provider_name=abuseipdb&page_size=1", &reader).await).await;
    let system_uuid = system_row["data"][0]["uuid"].as_str().unwrap().to_owned();
    let system_path = format!("/v1/enrichment-field-extractions/{system_uuid}");
    expect_error(server.patch_json(&system_path, &admin, &json!({"target_key": "x"})).await, 403, "SYSTEM_EXTRACTION_RESTRICTED").await;
    assert_eq!(server.patch_json(&system_path, &admin, &json!({"is_active": false})).await.status(), 200);
    let response = server.request(reqwest::Method::DELETE, &system_path, Some(&admin)).send().await.unwrap();
    expect_error(response, 403, "SYSTEM_EXTRACTION_RESTRICTED").await;
    expect_error(server.get("/v1/enrichment-field-extractions/not-a-uuid", &reader).await, 422, "VALIDATION_ERROR").await;

    // Delete removes the provider and its own (non-system) extractions.
    let response = server.request(reqwest::Method::DELETE, &path, Some(&admin)).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_field_extractions WHERE provider_name = 'fakevt'").await, 0);
    expect_error(server.get(&path, &reader).await, 404, "NOT_FOUND").await;
    server.stop().await;
}
dual!(provider_crud_and_validation);

async fn secrets_need_a_key(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = TestServer::builder(backend).env("SSRF_ALLOWED_HOSTS", &vendor.allow_entry()).start().await;
    let response = server.post_json("/v1/enrichment-providers", &server.admin_key, &vt_provider(&vendor, "fakevt")).await;
    expect_error(response, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = 'fakevt'").await, 0);
    server.stop().await;
}
dual!(secrets_need_a_key);

async fn live_pipeline_with_fake_vendors(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let admin = server.admin_key.clone();
    create_provider(&server, &vt_provider(&vendor, "fakevt")).await;
    let abuse = json!({
        "provider_name": "fakeabuse", "display_name": "Fake AbuseIPDB", "supported_indicator_types": ["ip"],
        "http_config": {"steps": [{"name": "lookup", "url": format!("{}/abuse/api/v2/check", vendor.base()),
            "headers": {"Accept": "application/json"}, "query_params": {"ipAddress": "{{indicator.value}}", "maxAgeInDays": "90"}}]},
        "malice_rules": {"rules": [
            {"field": "data.abuseConfidenceScore", "operator": ">=", "value": 75, "verdict": "Malicious"},
            {"field": "data.abuseConfidenceScore", "operator": ">=", "value": 25, "verdict": "Suspicious"}],
            "default_verdict": "Benign", "not_found_verdict": "Pending"}
    });
    create_provider(&server, &abuse).await;
    let extractions = json!({"extractions": [
        {"provider_name": "fakeabuse", "indicator_type": "ip", "source_path": "data.abuseConfidenceScore", "target_key": "score", "value_type": "int"},
        {"provider_name": "fakeabuse", "indicator_type": "ip", "source_path": "data.isTor", "target_key": "is_tor", "value_type": "bool"},
        {"provider_name": "fakeabuse", "indicator_type": "domain", "source_path": "data.isp", "target_key": "isp_for_domains_only"},
        {"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.country", "target_key": "country"}]});
    assert_eq!(server.post_json("/v1/enrichment-field-extractions/bulk", &admin, &extractions).await.status(), 201);

    // One alert: a malicious IP, a clean IP, an unknown IP, a private IP (never sent out) and a
    // domain (VirusTotal only).
    let uuid = create_generic(&server, json!({"title": "live enrichment", "severity": "high",
        "src_ip": "45.33.32.66", "dest_ip": "8.8.8.8", "domain": "example.org"})).await;
    let alert = wait_enriched(&server, &uuid).await;
    let indicators = alert["data"]["indicators"].as_array().unwrap().clone();
    let find = |value: &str| indicators.iter().find(|i| i["value"] == value).unwrap_or_else(|| panic!("{value} in {indicators:?}")).clone();
    let bad = find("45.33.32.66");
    assert_eq!(bad["malice"], "Malicious");
    assert_eq!(bad["is_enriched"], true);
    let clean = find("8.8.8.8");
    assert_eq!(clean["malice"], "Benign");
    assert_eq!(find("example.org")["malice"], "Benign");
    assert_eq!(alert["meta"]["enrichment"]["succeeded"], json!(["fakeabuse", "fakevt"]), "{alert}");
    assert_eq!(alert["meta"]["enrichment"]["failed"], json!([]));

    // The indicator detail keeps the raw response and the extractions of its own type only.
    let detail = body(server.get(&format!("/v1/indicators/{}", bad["uuid"].as_str().unwrap()), &admin).await).await["data"].clone();
    let abuse_result = &detail["enrichment_results"]["fakeabuse"];
    assert_eq!(abuse_result["extracted"], json!({"score": 90, "is_tor": true, "malice": "Malicious"}), "{detail}");
    assert_eq!(abuse_result["raw"]["data"]["abuseConfidenceScore"], 90);
    assert_eq!(detail["enrichment_results"]["fakevt"]["extracted"]["country"], "NL");
    // The credential went in the header the recipe named, to the vendor only.
    let vt_hit = vendor.hits().into_iter().find(|h| h.path.starts_with("/vt/api/v3/ip_addresses/45.33.32.66")).unwrap();
    assert_eq!(vt_hit.headers.get("x-apikey").unwrap(), VT_KEY);
    assert!(vendor.hits().iter().any(|h| h.path == "/abuse/api/v2/check?ipAddress=45.33.32.66&maxAgeInDays=90"), "{:?}", vendor.hits().iter().map(|h| h.path.clone()).collect::<Vec<_>>());

    // Activity references as the spec lists them.
    assert!(event_types(&server, &uuid).await.contains(&"alert_enrichment_completed".to_owned()));
    let activity = body(server.get(&format!("/v1/alerts/{uuid}/activity"), &admin).await).await;
    let completed = activity["data"].as_array().unwrap().iter().find(|e| e["event_type"] == "alert_enrichment_completed").unwrap().clone();
    let references = &completed["references"];
    assert_eq!(references["providers_succeeded"], json!(["fakeabuse", "fakevt"]), "{completed}");
    assert_eq!(references["malice_counts"]["Malicious"], 1);

    // A private address is never sent out: skipped with a reason, the vendor sees nothing.
    let before = vendor.hits().len();
    let private = enrich(&server, "ip", "10.1.2.3").await;
    assert_eq!(private["results"]["_validation"]["status"], "skipped", "{private}");
    assert!(private["results"]["_validation"]["error_message"].as_str().unwrap().starts_with("Enrichment skipped: "));
    assert_eq!(vendor.hits().len(), before);

    // On demand: a cache hit for what the pipeline already looked up; not found → Pending.
    let again = enrich(&server, "ip", "45.33.32.66").await;
    assert_eq!(again["results"]["fakevt"]["cache_hit"], true, "{again}");
    assert_eq!(again["results"]["fakevt"]["extracted"]["malice"], "Malicious");
    assert_eq!(vendor.hits().len(), before, "served from the cache");
    let unknown = enrich(&server, "ip", "45.33.32.99").await;
    assert_eq!(unknown["results"]["fakevt"]["success"], true);
    assert_eq!(unknown["results"]["fakevt"]["extracted"], json!({"found": false, "malice": "Pending"}));
    assert_eq!(unknown["results"]["fakevt"]["cache_hit"], false);
    expect_error(server.post_json("/v1/enrichments", &admin, &json!({"type": "ipv4", "value": "1.1.1.1"})).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.post_json("/v1/enrichments", &admin, &json!({"type": "ip"})).await, 422, "VALIDATION_ERROR").await;
    let aliases = server.post_json("/v1/enrichments", &admin, &json!({"indicator_type": "hash_md5", "indicator_value": "d41d8cd98f00b204e9800998ecf8427e"})).await;
    assert_eq!(body(aliases).await["data"]["results"], json!({}), "no provider for hashes");

    // A provider edit reaches the pipeline at once (the cache key includes the row version).
    let registered = body(server.get("/v1/enrichments/providers", &admin).await).await;
    assert!(registered["data"].as_array().unwrap().iter().any(|p| p["provider_name"] == "fakevt" && p["is_configured"] == true));
    server.stop().await;
}
dual!(live_pipeline_with_fake_vendors);

async fn failure_modes_are_isolated(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[("ENRICHMENT_BREAKER_FAILURES", "2"), ("EGRESS_MAX_RESPONSE_BYTES", "1048576")]).await;
    create_provider(&server, &vt_provider(&vendor, "good")).await;
    for (name, path, timeout) in [
        ("err500", "/status/500", 5),
        ("throttled", "/status/429", 5),
        ("hangs", "/hang", 1),
        ("drips", "/drip", 1),
        ("huge", "/big", 5),
        ("redirects", "/redirect", 5),
        ("html", "/html", 5),
    ] {
        create_provider(&server, &simple_provider(&vendor, name, path, timeout)).await;
    }
    let started = std::time::Instant::now();
    let data = enrich(&server, "ip", "45.33.32.66").await;
    let results = &data["results"];
    assert!(started.elapsed() < Duration::from_secs(10), "slow providers do not block: {:?}", started.elapsed());
    assert_eq!(results["good"]["extracted"]["malice"], "Malicious", "{data}");
    let message = |name: &str| results[name]["error_message"].as_str().unwrap_or_default().to_owned();
    assert_eq!(results["err500"]["status"], "failed");
    assert_eq!(message("err500"), "Step 'lookup' returned HTTP 500");
    assert_eq!(message("throttled"), "Step 'lookup' returned HTTP 429");
    assert!(message("hangs").contains("timed out"), "{}", message("hangs"));
    assert!(message("drips").contains("timed out"), "{}", message("drips"));
    assert!(message("huge").contains("exceeds"), "{}", message("huge"));
    assert_eq!(message("redirects"), "Step 'lookup' returned HTTP 302");
    assert_eq!(results["html"]["success"], true);
    assert_eq!(vendor.canary.connections(), 0, "the redirect to a private address was not followed");

    // 429 + Retry-After: the provider is held, not called again.
    let throttled_calls = vendor.hits_to("/status/429");
    let data = enrich(&server, "ip", "45.33.32.67").await;
    assert!(data["results"]["throttled"]["error_message"].as_str().unwrap().contains("429"), "{data}");
    assert_eq!(vendor.hits_to("/status/429"), throttled_calls);

    // Circuit breaker: after two failures the 500 provider is no longer called.
    enrich(&server, "ip", "45.33.32.68").await;
    let calls = vendor.hits_to("/status/500");
    assert_eq!(calls, 2);
    let data = enrich(&server, "ip", "45.33.32.69").await;
    assert!(data["results"]["err500"]["error_message"].as_str().unwrap().contains("circuit open"), "{data}");
    assert_eq!(vendor.hits_to("/status/500"), calls);
    assert_eq!(data["results"]["good"]["success"], true, "other providers unaffected");

    // An alert whose providers all fail still completes: Enriched, failures listed.
    let uuid = create_generic(&server, json!({"title": "failing providers", "src_ip": "45.33.32.70"})).await;
    let alert = wait_enriched(&server, &uuid).await;
    let failed = alert["meta"]["enrichment"]["failed"].as_array().unwrap().clone();
    assert!(failed.contains(&json!("err500")) && failed.contains(&json!("hangs")), "{alert}");
    assert_eq!(vendor.canary.connections(), 0);
    server.stop().await;
}
dual!(failure_modes_are_isolated);

async fn provider_test_endpoint(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let admin = server.admin_key.clone();
    let created = create_provider(&server, &vt_provider(&vendor, "fakevt")).await;
    let path = format!("/v1/enrichment-providers/{}/test", created["uuid"].as_str().unwrap());
    // Live, with the routability check skipped and debug steps whose secrets are masked.
    let response = server.post_json(&path, &admin, &json!({"indicator_type": "ip", "indicator_value": "45.33.32.66"})).await;
    let json = body(response).await;
    let data = &json["data"];
    assert_eq!(data["success"], true, "{json}");
    assert_eq!(data["extracted"]["malice"], "Malicious");
    assert_eq!(data["raw_response"]["data"]["attributes"]["last_analysis_stats"]["malicious"], 7);
    let step = &data["steps"][0];
    assert_eq!(step["step_name"], "lookup");
    assert_eq!(step["request_method"], "GET");
    assert_eq!(step["response_status_code"], 200);
    assert_eq!(step["request_headers"]["x-apikey"], "****", "{step}");
    assert!(!json.to_string().contains(VT_KEY), "the credential never appears");
    // Test bypasses the cache: a second run calls the vendor again.
    let calls = vendor.hits_to("/vt/api/v3/ip_addresses/45.33.32.66");
    server.post_json(&path, &admin, &json!({"indicator_type": "ip", "indicator_value": "45.33.32.66"})).await;
    assert_eq!(vendor.hits_to("/vt/api/v3/ip_addresses/45.33.32.66"), calls + 1);
    expect_error(server.post_json(&path, &admin, &json!({"indicator_type": "ipv9", "indicator_value": "x"})).await, 422, "VALIDATION_ERROR").await;
    // Inactive providers are not in the registry.
    server.post_json(&format!("/v1/enrichment-providers/{}/deactivate", created["uuid"].as_str().unwrap()), &admin, &json!({})).await;
    let response = server.post_json(&path, &admin, &json!({"indicator_type": "ip", "indicator_value": "45.33.32.66"})).await;
    expect_error(response, 400, "PROVIDER_NOT_LOADED").await;
    server.stop().await;
}
dual!(provider_test_endpoint);

async fn mock_mode_end_to_end(backend: Backend) {
    let server = TestServer::builder(backend).env("ENRICHMENT_MOCK_MODE", "true").start().await;
    let admin = server.admin_key.clone();
    let registered = body(server.get("/v1/enrichments/providers", &admin).await).await;
    assert!(registered["data"].as_array().unwrap().iter().all(|p| p["is_configured"] == true), "{registered}");
    let uuid = create_generic(&server, json!({"title": "mock mode", "severity": "high", "src_ip": "45.33.32.66",
        "dest_ip": "10.0.0.5", "username": "ada@example.com", "sha256": "a".repeat(64)})).await;
    let alert = wait_enriched(&server, &uuid).await;
    let indicators = alert["data"]["indicators"].as_array().unwrap().clone();
    let ip = indicators.iter().find(|i| i["value"] == "45.33.32.66").unwrap();
    assert_eq!(ip["malice"], "Malicious", "{alert}");
    let private = indicators.iter().find(|i| i["value"] == "10.0.0.5").unwrap();
    assert_eq!(private["malice"], "Pending", "private values are never enriched, even by mocks");
    assert_eq!(alert["data"]["malice"], "Malicious");
    let succeeded = alert["meta"]["enrichment"]["succeeded"].as_array().unwrap().clone();
    assert!(succeeded.contains(&json!("virustotal")) && succeeded.contains(&json!("abuseipdb")), "{alert}");
    let data = enrich(&server, "ip", "45.33.32.66").await;
    assert_eq!(data["results"]["virustotal"]["cache_hit"], true);
    server.stop().await;
}
dual!(mock_mode_end_to_end);

async fn registry_changes_reach_other_replicas(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let first = server_with(backend, &vendor, &[]).await;
    let second = TestServer::builder(Backend::Sqlite)
        .sharing(&first)
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", &vendor.allow_entry())
        .env("ENRICHMENT_REGISTRY_REFRESH_MS", "200")
        .start()
        .await;
    let key = first.admin_key.clone();
    let sees = |server: &TestServer, name: &'static str| {
        let request = server.request(reqwest::Method::GET, "/v1/enrichments/providers", Some(&key));
        async move {
            let json: Value = request.send().await.unwrap().json().await.unwrap();
            json["data"].as_array().unwrap().iter().any(|p| p["provider_name"] == name)
        }
    };
    assert!(!sees(&second, "fakevt").await);
    let created = create_provider(&first, &vt_provider(&vendor, "fakevt")).await;
    assert!(eventually(Duration::from_secs(5), || sees(&second, "fakevt")).await, "the other replica sees the new provider");
    first.post_json(&format!("/v1/enrichment-providers/{}/deactivate", created["uuid"].as_str().unwrap()), &key, &json!({})).await;
    assert!(eventually(Duration::from_secs(5), || async { !sees(&second, "fakevt").await }).await, "and its deactivation");
    second.stop().await;
    first.stop().await;
}
dual!(registry_changes_reach_other_replicas);

/// An Okta-shaped, three-step recipe: the base URL comes from the credentials (substituted raw:
/// Calseta percent-encoded it), later steps use the first step's response, an optional step's 404
/// skips only that step, and a missing user is "not found".
async fn multi_step_okta_shaped(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let admin = server.admin_key.clone();
    let headers = json!({"Authorization": "SSWS {{auth.api_token}}", "Accept": "application/json"});
    let provider = json!({
        "provider_name": "fakeokta", "display_name": "Fake Okta", "supported_indicator_types": ["account"], "auth_type": "api_token",
        "auth_config": {"base_url": format!("{}/okta", vendor.base()), "api_token": "okta-token-abcdef"},
        "http_config": {"steps": [
            {"name": "user_lookup", "url": "{{auth.base_url}}/api/v1/users/{{indicator.value | urlencode}}", "headers": headers, "not_found_status": [404]},
            {"name": "user_groups", "url": "{{auth.base_url}}/api/v1/users/{{steps.user_lookup.response.id}}/groups", "headers": headers, "optional": true},
            {"name": "user_manager", "url": "{{auth.base_url}}/api/v1/users/{{steps.user_lookup.response.id}}/linkedObjects/manager", "headers": headers,
             "optional": true, "not_found_status": [404]}]}
    });
    create_provider(&server, &provider).await;
    let extractions = json!({"extractions": [
        {"provider_name": "fakeokta", "indicator_type": "account", "source_path": "user_lookup.profile.login", "target_key": "login"},
        {"provider_name": "fakeokta", "indicator_type": "account", "source_path": "user_lookup.status", "target_key": "status"},
        {"provider_name": "fakeokta", "indicator_type": "account", "source_path": "user_groups.0.profile.name", "target_key": "first_group"}]});
    assert_eq!(server.post_json("/v1/enrichment-field-extractions/bulk", &admin, &extractions).await.status(), 201);

    let data = enrich(&server, "account", "ada@example.com").await;
    let result = &data["results"]["fakeokta"];
    assert_eq!(result["success"], true, "{data}");
    assert_eq!(result["extracted"], json!({"login": "ada@example.com", "status": "ACTIVE", "first_group": "Engineering", "malice": "Pending"}));
    let paths: Vec<String> = vendor.hits().iter().map(|h| h.path.clone()).collect();
    assert!(paths.contains(&"/okta/api/v1/users/ada%40example.com".to_owned()), "{paths:?}");
    assert!(paths.contains(&"/okta/api/v1/users/00u1/groups".to_owned()), "{paths:?}");
    let hit = vendor.hits().into_iter().find(|h| h.path.ends_with("/groups")).unwrap();
    assert_eq!(hit.headers.get("authorization").unwrap(), "SSWS okta-token-abcdef");

    let ghost = enrich(&server, "account", "ghost@example.com").await;
    assert_eq!(ghost["results"]["fakeokta"]["extracted"], json!({"found": false, "malice": "Pending"}), "{ghost}");
    server.stop().await;
}
dual!(multi_step_okta_shaped);

/// Every forbidden URL form is refused when a provider is registered (422 naming the reason),
/// and nothing ever connects to the loopback canary.
async fn ssrf_at_registration(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let c = vendor.canary.port;
    let forms = [
        format!("http://127.0.0.1:{c}/"), format!("http://localhost:{c}/"), format!("http://[::1]:{c}/"),
        format!("http://0.0.0.0:{c}/"), "http://169.254.169.254/latest/meta-data/".into(),
        "http://metadata.google.internal/computeMetadata/v1/".into(), "http://10.0.0.1/".into(), "http://172.16.0.1/".into(),
        "http://192.168.0.1/".into(), "http://100.64.0.1/".into(), "http://198.18.0.1/".into(), "http://224.0.0.1/".into(),
        "http://240.0.0.1/".into(), format!("http://[::ffff:127.0.0.1]:{c}/"), "http://[fd00::1]/".into(), "http://[fe80::1]/".into(),
        format!("http://[64:ff9b::7f00:1]:{c}/"), format!("http://[2002:7f00:1::]:{c}/"), format!("http://2130706433:{c}/"),
        format!("http://0177.0.0.1:{c}/"), format!("http://0x7f.1:{c}/"), "http://user:pass@example.com/".into(),
        "gopher://example.com/".into(), "file:///etc/passwd".into(), "http://no-such-host.calseta-test.invalid/".into(),
    ];
    for url in forms {
        let provider = json!({"provider_name": "ssrf", "display_name": "ssrf", "supported_indicator_types": ["ip"],
            "http_config": {"steps": [{"url": format!("{url}{{{{indicator.value}}}}")}]}});
        let response = server.post_json("/v1/enrichment-providers", &server.admin_key, &provider).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 422, "{url} was accepted: {text}");
        // The same URL through a PATCH of an existing provider.
        assert!(text.contains("http_config"), "{url}: {text}");
    }
    let created = create_provider(&server, &simple_provider(&vendor, "okprov", "/html", 5)).await;
    let patch = json!({"http_config": {"steps": [{"url": format!("http://127.0.0.1:{c}/")}]}});
    let path = format!("/v1/enrichment-providers/{}", created["uuid"].as_str().unwrap());
    expect_error(server.patch_json(&path, &server.admin_key, &patch).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM enrichment_providers WHERE provider_name = 'ssrf'").await, 0);
    assert_eq!(vendor.canary.connections(), 0);
    server.stop().await;
}
dual!(ssrf_at_registration);

/// Every enrichment write leaves exactly one audit record (action, target UUID, acting key), in
/// order; refused writes leave none; no credential reaches a record.
async fn writes_are_audited(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = server_with(backend, &vendor, &[]).await;
    let admin = server.admin_key.clone();
    let (reader, _) = server.create_key(&["enrichments:read"], json!({})).await;
    let created = create_provider(&server, &vt_provider(&vendor, "fakevt")).await;
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/enrichment-providers/{uuid}");

    // Refused: duplicate, bad field, wrong scope, builtin delete. None is audited.
    expect_error(server.post_json("/v1/enrichment-providers", &admin, &vt_provider(&vendor, "fakevt")).await, 409, "DUPLICATE_PROVIDER").await;
    expect_error(server.patch_json(&path, &admin, &json!({"auth_type": "magic"})).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.patch_json(&path, &reader, &json!({"display_name": "x"})).await, 403, "FORBIDDEN").await;
    let builtins = body(server.get("/v1/enrichment-providers?is_builtin=true&page_size=1", &reader).await).await;
    let builtin_path = format!("/v1/enrichment-providers/{}", builtins["data"][0]["uuid"].as_str().unwrap());
    expect_error(server.request(reqwest::Method::DELETE, &builtin_path, Some(&admin)).send().await.unwrap(), 400, "BUILTIN_RESTRICTED").await;

    let patched = server.patch_json(&path, &admin, &json!({"display_name": "Renamed", "auth_config": {"api_key": "rotated-secret-999"}})).await;
    assert_eq!(patched.status(), 200);
    assert_eq!(server.post_json(&format!("{path}/deactivate"), &admin, &json!({})).await.status(), 200);
    assert_eq!(server.post_json(&format!("{path}/activate"), &admin, &json!({})).await.status(), 200);
    let extraction = json!({"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.country", "target_key": "country"});
    let one = body(server.post_json("/v1/enrichment-field-extractions", &admin, &extraction).await).await;
    let extraction_uuid = one["data"]["uuid"].as_str().unwrap().to_owned();
    let bulk = json!({"extractions": [
        {"provider_name": "fakevt", "indicator_type": "ip", "source_path": "data.attributes.asn", "target_key": "asn", "value_type": "int"},
        {"provider_name": "fakevt", "indicator_type": "domain", "source_path": "data.attributes.asn", "target_key": "asn", "value_type": "int"}]});
    assert_eq!(server.post_json("/v1/enrichment-field-extractions/bulk", &admin, &bulk).await.status(), 201);
    expect_error(server.post_json("/v1/enrichment-field-extractions", &admin, &extraction).await, 409, "DUPLICATE_EXTRACTION").await;
    let extraction_path = format!("/v1/enrichment-field-extractions/{extraction_uuid}");
    assert_eq!(server.patch_json(&extraction_path, &admin, &json!({"target_key": "cc"})).await.status(), 200);
    assert_eq!(server.request(reqwest::Method::DELETE, &extraction_path, Some(&admin)).send().await.unwrap().status(), 204);
    assert_eq!(server.request(reqwest::Method::DELETE, &path, Some(&admin)).send().await.unwrap().status(), 204);

    let actions = server.db_texts("SELECT action FROM audit_log WHERE action LIKE 'enrichment%' ORDER BY id").await;
    let actions: Vec<&str> = actions.iter().map(|a| a.as_deref().unwrap()).collect();
    assert_eq!(actions, [
        "enrichment_providers.create",
        "enrichment_providers.update",
        "enrichment_providers.deactivate",
        "enrichment_providers.activate",
        "enrichment_field_extractions.create",
        "enrichment_field_extractions.bulk_create",
        "enrichment_field_extractions.update",
        "enrichment_field_extractions.delete",
        "enrichment_providers.delete",
    ]);
    let on_provider = format!("SELECT COUNT(*) FROM audit_log WHERE target_type = 'enrichment_provider' AND target_id = '{uuid}'");
    assert_eq!(server.db_count(&on_provider).await, 5);
    let on_extraction = format!("SELECT COUNT(*) FROM audit_log WHERE target_type = 'enrichment_field_extraction' AND target_id = '{extraction_uuid}'");
    assert_eq!(server.db_count(&on_extraction).await, 3);
    let by_admin = "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'enrichment%' AND actor_type = 'api' AND outcome = 'success' AND actor_key_prefix LIKE 'cai_%'";
    assert_eq!(server.db_count(by_admin).await, 9);
    let details = server.db_texts("SELECT CAST(details AS TEXT) FROM audit_log WHERE action = 'enrichment_providers.update'").await;
    let details = details[0].as_deref().unwrap();
    assert!(details.contains("auth_config") && details.contains("display_name"), "the changed fields are named: {details}");
    let leaked = "SELECT COUNT(*) FROM audit_log WHERE CAST(details AS TEXT) LIKE '%secret-%'";
    assert_eq!(server.db_count(leaked).await, 0, "no credential in any record");
    server.stop().await;
}
dual!(writes_are_audited);
