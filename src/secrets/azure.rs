//! Azure Key Vault: every secret of the vault, `my-setting` → `MY_SETTING`. Authentication:
//! Azure's default credential chain (`azure_credentials`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Env, Fetched};

const API_VERSION: &str = "7.4";
const BACKEND: &str = "azure_key_vault";

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

pub async fn fetch(env: Env, vault_url: String) -> Result<Fetched, String> {
    let vault = vault_url.trim_end_matches('/').to_owned();
    let client = super::http_client()?;
    let (token, credentials) = super::azure_credentials::token(&env, &client).await.map_err(|e| format!("{BACKEND}: vault '{vault}': credentials: {e}"))?;
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
    Ok(Fetched { values, credentials })
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
