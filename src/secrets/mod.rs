//! Cloud secret backends as a source of settings at start-up (security-and-config.md §8):
//! Azure Key Vault when `AZURE_KEY_VAULT_URL` is set in the real environment, else AWS Secrets
//! Manager when `AWS_SECRETS_MANAGER_SECRET_NAME` is; their values rank above the process
//! environment. A load failure is logged naming the backend and the secret (never a value) and
//! the backend contributes nothing. One `secrets_source=…` line is always logged.
//!
//! Credentials come from each vendor's default credential chain (`aws_credentials`,
//! `azure_credentials`: environment, files, workload/web identity, container and instance
//! metadata); endpoint overrides (`AZURE_AUTHORITY_HOST`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` /
//! `AWS_ENDPOINT_URL`, and each chain's own) let tests use fake servers on loopback.

mod aws;
mod aws_credentials;
mod azure;
mod azure_credentials;
#[cfg(test)]
mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use figment::providers::Serialized;

use crate::config::{ConfigError, Settings};

/// What the start-up load did, logged once logging is up.
pub struct Report {
    pub source: &'static str,
    pub loaded: usize,
    pub error: Option<String>,
    /// Which link of the vendor's credential chain authenticated the load.
    pub credentials: Option<&'static str>,
}

impl Report {
    pub fn log(&self) {
        match &self.error {
            None => tracing::info!(
                secrets_source = self.source,
                settings_loaded = self.loaded,
                credentials_source = self.credentials,
                "secrets_source={}",
                self.source
            ),
            Some(error) => {
                tracing::error!(secrets_source = self.source, error = %error, "loading settings from the secret backend failed; it contributes nothing");
                tracing::info!(secrets_source = self.source, settings_loaded = 0, "secrets_source={}", self.source);
            }
        }
    }
}

/// Loads the settings (`.env`, environment, files) with the configured secret backend on top.
pub fn load_settings() -> Result<(Settings, Report), ConfigError> {
    let _ = dotenvy::dotenv();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (source, fetched) = if let Some(vault) = env("AZURE_KEY_VAULT_URL") {
        ("azure_key_vault", Some(block_on(azure::fetch(Env::process(), vault))))
    } else if let Some(secret) = env("AWS_SECRETS_MANAGER_SECRET_NAME") {
        ("aws_secrets_manager", Some(block_on(aws::fetch(Env::process(), secret))))
    } else {
        ("environment", None)
    };
    let (values, credentials, error) = match fetched {
        None => (BTreeMap::new(), None, None),
        Some(Ok(Fetched { values, credentials })) => (values, Some(credentials), None),
        Some(Err(error)) => (BTreeMap::new(), None, Some(error)),
    };
    let known = crate::config::known_setting_names();
    let values: BTreeMap<String, String> =
        values.into_iter().map(|(k, v)| (k.to_lowercase(), v)).filter(|(k, _)| known.contains(k)).collect();
    let loaded = values.len();
    let settings = Settings::from_figment(Settings::figment().merge(Serialized::defaults(values)))?;
    Ok((settings, Report { source, loaded, error, credentials }))
}

/// What a backend returned: setting name → value, and the credential source it used.
pub struct Fetched {
    pub values: BTreeMap<String, String>,
    pub credentials: &'static str,
}

/// The start-up fetch runs before the application's runtime exists.
fn block_on<F: std::future::Future<Output = Result<Fetched, String>>>(future: F) -> Result<Fetched, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for the secret backend: {e}"))?;
    runtime.block_on(future)
}

/// The variables the backends and their credential chains read: the process environment, or a
/// fixed map in unit tests (so tests never mutate the process environment). Blank = unset.
pub struct Env(Option<std::collections::HashMap<String, String>>);

impl Env {
    pub fn process() -> Self {
        Env(None)
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env(Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.0 {
            None => std::env::var(name).ok(),
            Some(map) => map.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("http client: {e}"))
}
