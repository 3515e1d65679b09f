//! The parent side of `ctx`: what the sandboxed child asks for over its pipes and the server
//! does on its behalf. `ctx.http` goes through the egress gateway (SSRF rules, no redirects,
//! size and time caps); `ctx.secrets` answers only names granted by `WORKFLOW_SECRETS`;
//! `ctx.integrations.okta/entra` are performed here with credentials the child never sees.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::runtime::{Entra, Okta};
use crate::egress::{Body, Egress, Request};
use crate::sandbox::{HostApi, HttpCall, HttpReply};
use crate::state::AppState;

/// The gateway every workflow request leaves through (the one place that knows where it lives).
fn egress(state: &AppState) -> &Egress {
    &state.egress
}

/// Real integrations (runs) or stand-ins whose actions do nothing (the test endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrations {
    Real,
    StandIn,
}

pub struct Host {
    state: AppState,
    integrations: Integrations,
    /// Entra client-credentials token, cached for this run (as Calseta caches it per client).
    entra_token: tokio::sync::Mutex<Option<String>>,
}

impl Host {
    pub fn new(state: AppState, integrations: Integrations) -> Arc<Host> {
        Arc::new(Host { state, integrations, entra_token: Default::default() })
    }

    async fn send(&self, method: http::Method, url: String, headers: Vec<(String, String)>, body: Body) -> Result<(u16, Value), String> {
        let request = Request { method, url, headers, body, timeout: INTEGRATION_TIMEOUT };
        let response = egress(&self.state).send(request).await.map_err(|e| e.to_string())?;
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok((response.status, value))
    }

    async fn okta(&self, okta: &Okta, method: &str, login: &str) -> Result<Value, String> {
        let headers = vec![
            ("Authorization".to_owned(), format!("SSWS {}", okta.api_token)),
            ("Accept".to_owned(), "application/json".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        let (status, user) = self.send(http::Method::GET, url_with(&okta.base_url, &["api", "v1", "users", login])?, headers.clone(), Body::Empty).await?;
        expect_2xx("Okta", status)?;
        let id = user["id"].as_str().ok_or("Okta user lookup returned no id")?.to_owned();
        let (verb, path, query): (http::Method, &[&str], &str) = match method {
            "revoke_sessions" => (http::Method::DELETE, &["sessions"], ""),
            "suspend_user" => (http::Method::POST, &["lifecycle", "suspend"], ""),
            "unsuspend_user" => (http::Method::POST, &["lifecycle", "unsuspend"], ""),
            "reset_password" => (http::Method::POST, &["lifecycle", "reset_password"], "sendEmail=true"),
            "expire_password" => (http::Method::POST, &["lifecycle", "expire_password"], ""),
            other => return Err(format!("Okta integration has no method '{other}'")),
        };
        let mut segments = vec!["api", "v1", "users", id.as_str()];
        segments.extend_from_slice(path);
        let mut url = url_with(&okta.base_url, &segments)?;
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let (status, reply) = self.send(verb, url, headers, Body::Empty).await?;
        expect_2xx("Okta", status)?;
        Ok(if method == "reset_password" { reply.get("resetPasswordUrl").cloned().unwrap_or(Value::Null) } else { Value::Null })
    }

    async fn entra_token(&self, entra: &Entra) -> Result<String, String> {
        let mut cached = self.entra_token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let url = url_with(&entra.login_base_url, &[&entra.tenant_id, "oauth2", "v2.0", "token"])?;
        let form = vec![
            ("client_id".to_owned(), entra.client_id.clone()),
            ("client_secret".to_owned(), entra.client_secret.clone()),
            ("scope".to_owned(), "https://graph.microsoft.com/.default".to_owned()),
            ("grant_type".to_owned(), "client_credentials".to_owned()),
        ];
        let (status, reply) = self.send(http::Method::POST, url, Vec::new(), Body::Form(form)).await?;
        expect_2xx("Entra token endpoint", status)?;
        let token = reply["access_token"].as_str().ok_or("Entra token endpoint returned no access_token")?.to_owned();
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn entra(&self, entra: &Entra, method: &str, user: &str) -> Result<Value, String> {
        let headers = vec![("Authorization".to_owned(), format!("Bearer {}", self.entra_token(entra).await?))];
        let graph = |extra: &[&str]| {
            let mut segments = vec!["users", user];
            segments.extend_from_slice(extra);
            url_with(&entra.graph_base_url, &segments)
        };
        let (verb, url, body) = match method {
            "revoke_sessions" => (http::Method::POST, graph(&["revokeSignInSessions"])?, Body::Empty),
            "disable_account" => (http::Method::PATCH, graph(&[])?, Body::Json(json!({"accountEnabled": false}))),
            "enable_account" => (http::Method::PATCH, graph(&[])?, Body::Json(json!({"accountEnabled": true}))),
            "reset_mfa" => {
                let (status, methods) = self.send(http::Method::GET, graph(&["authentication", "methods"])?, headers.clone(), Body::Empty).await?;
                expect_2xx("Microsoft Graph", status)?;
                for method in methods["value"].as_array().into_iter().flatten() {
                    let kind = method["@odata.type"].as_str().unwrap_or_default();
                    let Some(id) = method["id"].as_str().filter(|_| !kind.contains("password")) else { continue };
                    // Calseta ignores failures of the individual deletions.
                    let _ = self.send(http::Method::DELETE, graph(&["authentication", "methods", id])?, headers.clone(), Body::Empty).await;
                }
                return Ok(Value::Null);
            }
            other => return Err(format!("Entra integration has no method '{other}'")),
        };
        let (status, _) = self.send(verb, url, headers, body).await?;
        expect_2xx("Microsoft Graph", status)?;
        Ok(Value::Null)
    }
}

/// Integration calls have Calseta's 30 s client timeout.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

fn expect_2xx(api: &str, status: u16) -> Result<(), String> {
    if (200..300).contains(&status) { Ok(()) } else { Err(format!("{api} API returned HTTP {status}")) }
}

/// `base` + percent-encoded path segments (a login such as `a b/c@x` stays one segment).
fn url_with(base: &str, segments: &[&str]) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("integration base URL is invalid: {e}"))?;
    url.path_segments_mut().map_err(|_| "integration base URL cannot take a path".to_owned())?.pop_if_empty().extend(segments);
    Ok(url.to_string())
}

/// The first positional argument (the account), as every integration method takes.
fn first_argument(args: &Value) -> Result<String, String> {
    match args["args"].get(0).or_else(|| args["kwargs"].as_object().and_then(|k| k.values().next())) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err("missing the account argument".into()),
    }
}

impl HostApi for Host {
    fn http(&self, call: HttpCall) -> BoxFuture<'_, Result<HttpReply, String>> {
        Box::pin(async move {
            let method = http::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes()).map_err(|_| format!("invalid HTTP method '{}'", call.method))?;
            let body = match call.body {
                Some(bytes) if !bytes.is_empty() => Body::Bytes(bytes),
                _ => Body::Empty,
            };
            let request = Request { method, url: call.url, headers: call.headers, body, timeout: call.timeout };
            let response = egress(&self.state).send(request).await.map_err(|e| e.to_string())?;
            Ok(HttpReply { status: response.status, headers: response.headers, body: response.body.to_vec() })
        })
    }

    fn secret(&self, name: String) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move { self.state.workflows.secret(&name) })
    }

    fn integration_available(&self, name: &str) -> bool {
        let configured = &self.state.workflows.integrations;
        match (self.integrations, name) {
            (Integrations::StandIn, "okta" | "entra") => true,
            (Integrations::Real, "okta") => configured.okta.is_some(),
            (Integrations::Real, "entra") => configured.entra.is_some(),
            _ => false,
        }
    }

    fn integration(&self, name: String, method: String, args: Value) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            if self.integrations == Integrations::StandIn {
                return Ok(Value::Null);
            }
            let account = first_argument(&args)?;
            let configured = self.state.workflows.integrations.clone();
            match name.as_str() {
                "okta" => match &configured.okta {
                    Some(okta) => self.okta(okta, &method, &account).await,
                    None => Err("Okta integration is not configured".into()),
                },
                "entra" => match &configured.entra {
                    Some(entra) => self.entra(entra, &method, &account).await,
                    None => Err("Microsoft Entra integration is not configured".into()),
                },
                other => Err(format!("unknown integration '{other}'")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_stay_one_path_segment() {
        assert_eq!(
            url_with("https://x.okta.com", &["api", "v1", "users", "a b/c@x.org"]).unwrap(),
            "https://x.okta.com/api/v1/users/a%20b%2Fc@x.org"
        );
        assert_eq!(url_with("http://127.0.0.1:9/graph/v1.0/", &["users", "u"]).unwrap(), "http://127.0.0.1:9/graph/v1.0/users/u");
        assert_eq!(first_argument(&json!({"args": ["j.doe"], "kwargs": {}})).unwrap(), "j.doe");
        assert!(first_argument(&json!({"args": [], "kwargs": {}})).is_err());
    }
}
