//! Azure's default credential chain for a Key Vault token, in its order: the environment's client
//! secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE` with the tenant and client ids: the file's token is the client
//! assertion), then managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` on App Service,
//! Functions and Container Apps; else the instance metadata endpoint, overridable with
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST` as in Azure's SDKs). A source that is configured and fails
//! stops the chain with an error naming it. Errors never quote a response body or a credential.

use std::time::Duration;

use serde::Deserialize;

use super::Env;

const SCOPE: &str = "https://vault.azure.net/.default";
const RESOURCE: &str = "https://vault.azure.net";
const IMDS_BASE: &str = "http://169.254.169.254";

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

/// How the application proves itself to Entra ID.
enum Proof {
    Secret(String),
    /// The federated token of workload identity.
    Assertion(String),
}

/// A bearer token for Key Vault, and which credential obtained it.
pub async fn token(env: &Env, client: &reqwest::Client) -> Result<(String, &'static str), String> {
    let proof = match (env.get("AZURE_CLIENT_SECRET"), env.get("AZURE_FEDERATED_TOKEN_FILE")) {
        (Some(secret), _) => Proof::Secret(secret),
        (None, Some(file)) => Proof::Assertion(read_token_file(&file)?),
        (None, None) => return managed_identity(env, client).await,
    };
    let (what, source) = match proof {
        Proof::Secret(_) => ("client secret credential", "client_secret"),
        Proof::Assertion(_) => ("workload identity", "workload_identity"),
    };
    let tenant = env.get("AZURE_TENANT_ID").ok_or(format!("{what}: AZURE_TENANT_ID is not set"))?;
    let client_id = env.get("AZURE_CLIENT_ID").ok_or(format!("{what}: AZURE_CLIENT_ID is not set"))?;
    let mut form = vec![("grant_type", "client_credentials"), ("client_id", client_id.as_str()), ("scope", SCOPE)];
    match &proof {
        Proof::Secret(secret) => form.push(("client_secret", secret.as_str())),
        Proof::Assertion(assertion) => {
            form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
            form.push(("client_assertion", assertion.as_str()));
        }
    }
    let authority = env.get("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".into());
    let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = client.post(&url).header("content-type", "application/x-www-form-urlencoded").body(body);
    Ok((fetch_token(request, what).await?, source))
}

fn read_token_file(path: &str) -> Result<String, String> {
    let token = std::fs::read_to_string(path).map_err(|e| format!("workload identity: cannot read AZURE_FEDERATED_TOKEN_FILE: {}", e.kind()))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err("workload identity: AZURE_FEDERATED_TOKEN_FILE is empty".into());
    }
    Ok(token)
}

/// A user-assigned identity is chosen by `AZURE_CLIENT_ID`; without it the system-assigned one.
async fn managed_identity(env: &Env, client: &reqwest::Client) -> Result<(String, &'static str), String> {
    let client_id = env.get("AZURE_CLIENT_ID");
    if let Some(endpoint) = env.get("IDENTITY_ENDPOINT") {
        const WHAT: &str = "managed identity (IDENTITY_ENDPOINT)";
        let header = env.get("IDENTITY_HEADER").ok_or(format!("{WHAT}: IDENTITY_HEADER is not set"))?;
        let mut query = vec![("api-version", "2019-08-01"), ("resource", RESOURCE)];
        if let Some(id) = &client_id {
            query.push(("client_id", id.as_str()));
        }
        let request = client.get(with_query(&endpoint, &query, WHAT)?).header("x-identity-header", header).timeout(Duration::from_secs(10));
        return Ok((fetch_token(request, WHAT).await?, "managed_identity"));
    }
    const WHAT: &str = "managed identity (instance metadata)";
    let base = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS_BASE.into());
    let mut query = vec![("api-version", "2018-02-01"), ("resource", RESOURCE)];
    if let Some(id) = &client_id {
        query.push(("client_id", id.as_str()));
    }
    let request = client
        .get(with_query(&format!("{}/metadata/identity/oauth2/token", base.trim_end_matches('/')), &query, WHAT)?)
        .header("metadata", "true")
        // Off Azure nothing answers at the link-local address: give up quickly.
        .timeout(Duration::from_secs(3));
    let token = fetch_token(request, WHAT).await.map_err(|e| {
        format!("no credential: AZURE_CLIENT_SECRET and AZURE_FEDERATED_TOKEN_FILE are not set and IDENTITY_ENDPOINT is not set; {e}")
    })?;
    Ok((token, "managed_identity"))
}

fn with_query(base: &str, query: &[(&str, &str)], what: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|_| format!("{what}: the endpoint is not a URL"))?;
    url.query_pairs_mut().extend_pairs(query);
    Ok(url)
}

async fn fetch_token(request: reqwest::RequestBuilder, what: &str) -> Result<String, String> {
    let response = request.send().await.map_err(|e| format!("{what}: token request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{what}: token request answered HTTP {}", response.status().as_u16()));
    }
    let token: Token = response.json().await.map_err(|_| format!("{what}: the token response is not a token"))?;
    Ok(token.access_token)
}

#[cfg(test)]
mod tests;
