use std::collections::HashMap;

use axum::http::StatusCode;

use super::*;
use crate::secrets::fake::Fake;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::secrets::http_client().unwrap()
}

fn token_answer(token: &'static str) -> impl Fn(&axum::http::Method, &str) -> (StatusCode, String) + Send + Sync + 'static {
    move |_, _| (StatusCode::OK, serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}).to_string())
}

fn form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn client_secret_from_the_environment() {
    let entra = Fake::start(token_answer("secret-token")).await;
    let env = Env::from_pairs(&[
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_CLIENT_SECRET", "s3cret"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent"),
        ("AZURE_AUTHORITY_HOST", entra.base.as_str()),
    ]);
    assert_eq!(token(&env, &client()).await.unwrap(), ("secret-token".into(), "client_secret"));
    let seen = entra.seen();
    assert_eq!(seen[0].target, "/tenant-1/oauth2/v2.0/token");
    let sent = form(&seen[0].body);
    assert_eq!((sent["grant_type"].as_str(), sent["client_secret"].as_str(), sent["scope"].as_str()), ("client_credentials", "s3cret", SCOPE));
    let no_tenant = Env::from_pairs(&[("AZURE_CLIENT_ID", "app-1"), ("AZURE_CLIENT_SECRET", "s3cret")]);
    assert!(token(&no_tenant, &client()).await.unwrap_err().contains("AZURE_TENANT_ID"));
}

#[tokio::test]
async fn workload_identity_uses_the_federated_token() {
    let entra = Fake::start(token_answer("federated-token")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, "eyJhbGciOiJSUzI1NiJ9.sa-token.sig\n").unwrap();
    let env = Env::from_pairs(&[
        ("AZURE_TENANT_ID", "tenant-2"),
        ("AZURE_CLIENT_ID", "app-2"),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ("AZURE_AUTHORITY_HOST", entra.base.as_str()),
    ]);
    assert_eq!(token(&env, &client()).await.unwrap(), ("federated-token".into(), "workload_identity"));
    let sent = form(&entra.seen()[0].body);
    assert_eq!(sent["client_assertion"], "eyJhbGciOiJSUzI1NiJ9.sa-token.sig");
    assert_eq!(sent["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert!(!sent.contains_key("client_secret"));
    let unreadable = Env::from_pairs(&[("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token")]);
    assert!(token(&unreadable, &client()).await.unwrap_err().contains("workload identity"));
}

#[tokio::test]
async fn managed_identity_through_identity_endpoint() {
    let endpoint = Fake::start(token_answer("app-service-token")).await;
    let url = format!("{}/msi/token", endpoint.base);
    let env = Env::from_pairs(&[("IDENTITY_ENDPOINT", url.as_str()), ("IDENTITY_HEADER", "header-secret"), ("AZURE_CLIENT_ID", "user-assigned")]);
    assert_eq!(token(&env, &client()).await.unwrap(), ("app-service-token".into(), "managed_identity"));
    let seen = endpoint.seen();
    assert_eq!(seen[0].headers["x-identity-header"], "header-secret");
    assert!(seen[0].target.starts_with("/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net&client_id=user-assigned"), "{}", seen[0].target);
    let no_header = Env::from_pairs(&[("IDENTITY_ENDPOINT", url.as_str())]);
    assert!(token(&no_header, &client()).await.unwrap_err().contains("IDENTITY_HEADER"));
}

#[tokio::test]
async fn managed_identity_through_instance_metadata() {
    let imds = Fake::start(token_answer("imds-token")).await;
    let env = Env::from_pairs(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.base.as_str())]);
    assert_eq!(token(&env, &client()).await.unwrap(), ("imds-token".into(), "managed_identity"));
    let seen = imds.seen();
    assert_eq!(seen[0].headers["metadata"], "true");
    assert_eq!(seen[0].target, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net");

    let refusing = Fake::start(|_, _| (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\",\"secret\":\"leak-me\"}".into())).await;
    let env = Env::from_pairs(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", refusing.base.as_str())]);
    let error = token(&env, &client()).await.unwrap_err();
    assert!(error.contains("managed identity (instance metadata)") && error.contains("HTTP 400"), "{error}");
    assert!(!error.contains("leak-me"), "{error}");
}
