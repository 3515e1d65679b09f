//! Azure Key Vault: every secret of the vault, `my-setting` → `MY_SETTING`. Authentication is the
//! environment credential of Azure's default chain (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`, token from `AZURE_AUTHORITY_HOST`, default login.microsoftonline.com).

use std::collections::BTreeMap;

use serde::Deserialize;

const API_VERSION: &str = "7.4";
const BACKEND: &str = "azure_key_vault";

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Item>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    #[serde(default)]
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Secret {
    value: String,
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{BACKEND}: no credential: {name} is not set (environment credential)"))
}

pub async fn fetch(vault_url: String) -> Result<BTreeMap<String, String>, String> {
    let vault = vault_url.trim_end_matches('/').to_owned();
    let client = super::http_client()?;
    let token = token(&client).await?;
    let mut names = Vec::new();
    let mut next = Some(format!("{vault}/secrets?api-version={API_VERSION}"));
    while let Some(url) = next {
        let page: Page = get(&client, &url, &token, "listing the vault's secrets").await?;
        names.extend(
            page.value
                .into_iter()
                .filter(|item| item.attributes.as_ref().and_then(|a| a.enabled).unwrap_or(true))
                .filter_map(|item| item.id.rsplit('/').next().map(str::to_owned)),
        );
        // Only follow pages of the same vault: the token must not be sent elsewhere.
        next = page.next_link.filter(|link| link.starts_with(&vault));
    }
    let mut values = BTreeMap::new();
    for name in names {
        let url = format!("{vault}/secrets/{name}?api-version={API_VERSION}");
        let secret: Secret = get(&client, &url, &token, &format!("reading secret '{name}'")).await?;
        values.insert(name.replace('-', "_").to_uppercase(), secret.value);
    }
    Ok(values)
}

async fn token(client: &reqwest::Client) -> Result<String, String> {
    let tenant = var("AZURE_TENANT_ID")?;
    let client_id = var("AZURE_CLIENT_ID")?;
    let client_secret = var("AZURE_CLIENT_SECRET")?;
    let authority = std::env::var("AZURE_AUTHORITY_HOST").unwrap_or_else(|_| "https://login.microsoftonline.com".into());
    let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id.as_str()),
        ("client_secret", client_secret.as_str()),
        ("scope", "https://vault.azure.net/.default"),
    ];
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{BACKEND}: token request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{BACKEND}: token request answered HTTP {}", response.status().as_u16()));
    }
    let token: Token = response.json().await.map_err(|_| format!("{BACKEND}: the token response is not a token"))?;
    Ok(token.access_token)
}

async fn get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str, token: &str, what: &str) -> Result<T, String> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("{BACKEND}: {what} failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{BACKEND}: {what} answered HTTP {}", response.status().as_u16()));
    }
    // The body is never quoted in the error: it may hold the secret.
    response.json().await.map_err(|_| format!("{BACKEND}: {what}: unexpected response shape"))
}
