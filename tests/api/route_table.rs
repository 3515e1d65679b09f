//! The route table seen from outside: every operation of `/openapi.json` is served (the router
//! and the document are built from one list), every one of the contract's 91 operations is among
//! them, and every authenticated route checks its scope before it reads the path, query or body.

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body};

/// The router's own 404 (no such route), as opposed to a handler's "<resource> not found".
const ROUTE_FALLBACK_MESSAGE: &str = "The requested resource was not found.";

/// Every (method, path template, needs-auth) of the served document.
fn operations(spec: &Value) -> Vec<(Method, String, bool)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
            ops.push((method, path.clone(), secured));
        }
    }
    ops.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
    ops
}

/// A concrete URL for a template: every `{param}` becomes a fresh UUID, or a source name.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if segment.starts_with('{') {
            if segment.contains("source") && !segment.contains("uuid") {
                out.push_str("generic");
            } else {
                out.push_str(&uuid::Uuid::new_v4().to_string());
            }
        } else {
            out.push_str(segment);
        }
    }
    out
}

async fn every_documented_route_is_served(backend: Backend) {
    let server = TestServer::start(backend).await;
    let spec = body(server.client.get(server.url("/openapi.json")).send().await.unwrap()).await;
    let ops = operations(&spec);
    assert!(ops.len() >= 60, "the document lists {} operations", ops.len());
    for (method, path, _) in &ops {
        let response = server
            .request(method.clone(), &concrete(path), Some(&server.admin_key))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but its method is not routed: {text}");
        assert!(
            !(status == 404 && text.contains(ROUTE_FALLBACK_MESSAGE)),
            "{method} {path} is documented but not routed: {text}"
        );
        assert!(status < 500, "{method} {path} answered {status} to an empty body: {text}");
    }
    // The other way round: paths that are not in the document are not served.
    for path in ["/v1/undocumented", "/v1/alerts/x/y/z", "/internal", "/admin"] {
        let response = server.get(path, &server.admin_key).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    // And every served operation is one of the contract's (same paths and methods).
    let contract: Value =
        serde_json::from_str(&std::fs::read_to_string(crate::support::contract_path()).expect("contract")).unwrap();
    let contract_ops = operations(&contract);
    let extensions = ["/health", "/health/live", "/health/ready", "/v1/agents/{agent_uuid}/rotate-secret"];
    for (method, path, _) in &ops {
        let known = contract_ops.iter().any(|(m, p, _)| m == method && p == path) || extensions.contains(&path.as_str());
        assert!(known, "{method} {path} is served but is not in the contract (document it as an extension here)");
    }
    let missing: Vec<String> = contract_ops
        .iter()
        .filter(|(m, p, _)| !ops.iter().any(|(m2, p2, _)| m2 == m && p2 == p))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert_eq!(contract_ops.len(), 91, "the contract lists 91 operations");
    assert!(missing.is_empty(), "contract operations not served ({}): {missing:?}", missing.len());
    server.stop().await;
}
dual!(every_documented_route_is_served);

/// A key with one scope per key, for each scope but `admin`. For every authenticated route, the
/// keys lacking its scope must get 403 for a junk body (the scope is checked first), and at most
/// two of the single-scope keys may pass the check (routes accept one scope, or one of two).
async fn every_route_checks_its_scope_before_the_body(backend: Backend) {
    let server = TestServer::start(backend).await;
    let scopes = [
        "alerts:read",
        "alerts:write",
        "enrichments:read",
        "workflows:read",
        "workflows:write",
        "workflows:execute",
        "approvals:write",
        "agents:read",
        "agents:write",
    ];
    let mut keys = Vec::new();
    for scope in scopes {
        keys.push((scope, server.create_key(&[scope], json!({})).await.0));
    }
    let spec = body(server.client.get(server.url("/openapi.json")).send().await.unwrap()).await;
    let junk = r#"{"junk": [1, {"deeper": null}], "name": 7}"#;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (method, path, secured) in operations(&spec) {
        if !secured {
            continue;
        }
        let url = format!("{}?page=-1&page_size=junk", concrete(&path));
        let mut denied = Vec::new();
        let mut passed = Vec::new();
        for (scope, key) in &keys {
            let response = server
                .request(method.clone(), &url, Some(key))
                .header("content-type", "application/json")
                .body(junk)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if status == 403 {
                assert_eq!(json["error"]["code"], "FORBIDDEN", "{method} {path} with {scope}: {json}");
                denied.push(*scope);
            } else {
                assert!(status < 500, "{method} {path} with {scope}: {status} {json}");
                passed.push(*scope);
            }
        }
        if passed.len() > 2 || denied.is_empty() {
            failures.push(format!("{method} {path}: {} single-scope keys got past the scope check: {passed:?}", passed.len()));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "routes that read the request before checking the scope:\n{}", failures.join("\n"));
    assert!(checked >= 55, "only {checked} authenticated routes");
    server.stop().await;
}
dual!(every_route_checks_its_scope_before_the_body);
