//! AWS's default credential chain, in its order: environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), the shared credentials and config files
//! (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`), web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged at STS by
//! `AssumeRoleWithWebIdentity`), container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI` /
//! `_RELATIVE_URI`), then EC2 instance metadata (IMDSv2). A source that is not configured is
//! skipped; one that is configured and fails stops the chain with an error naming that source
//! (falling through would silently pick up a different identity). Endpoints are overridable
//! (`AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`) so every step runs against fake
//! servers in tests. Errors never quote a response body or a credential.

use std::time::Duration;

use serde::Deserialize;

use super::Env;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Which link of the chain supplied them (for the start-up log line).
    pub source: &'static str,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("source", &self.source).finish_non_exhaustive()
    }
}

/// The container agent's link-local addresses (ECS, EKS Pod Identity): the only plain-http
/// hosts besides loopback a full container-credentials URI may name, as in AWS's SDKs.
const CONTAINER_HOSTS: &[&str] = &["169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"];
const CONTAINER_BASE: &str = "http://169.254.170.2";
const IMDS_BASE: &str = "http://169.254.169.254";

/// Resolves credentials, first source that is configured wins.
pub async fn resolve(env: &Env, client: &reqwest::Client) -> Result<Credentials, String> {
    if let Some(credentials) = from_environment(env)? {
        return Ok(credentials);
    }
    if let Some(credentials) = from_shared_files(env)? {
        return Ok(credentials);
    }
    if let Some(credentials) = from_web_identity(env, client).await? {
        return Ok(credentials);
    }
    if let Some(credentials) = from_container(env, client).await? {
        return Ok(credentials);
    }
    if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("no credentials: none in the environment, the shared files, web identity or container credentials, and IMDS is disabled".into());
    }
    from_imds(env, client).await
}

/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region` in the config file.
pub fn region(env: &Env) -> Option<String> {
    env.get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .or_else(|| profile_section(&read_optional(&config_file(env)?)?, &profile(env), true).and_then(|s| value(&s, "region")))
}

fn from_environment(env: &Env) -> Result<Option<Credentials>, String> {
    let Some(access_key_id) = env.get("AWS_ACCESS_KEY_ID") else { return Ok(None) };
    let secret_access_key = env.get("AWS_SECRET_ACCESS_KEY").ok_or("environment credentials: AWS_SECRET_ACCESS_KEY is not set")?;
    Ok(Some(Credentials { access_key_id, secret_access_key, session_token: env.get("AWS_SESSION_TOKEN"), source: "environment" }))
}

fn profile(env: &Env) -> String {
    env.get("AWS_PROFILE").unwrap_or_else(|| "default".into())
}

fn credentials_file(env: &Env) -> Option<String> {
    env.get("AWS_SHARED_CREDENTIALS_FILE").or_else(|| env.get("HOME").map(|h| format!("{h}/.aws/credentials")))
}

fn config_file(env: &Env) -> Option<String> {
    env.get("AWS_CONFIG_FILE").or_else(|| env.get("HOME").map(|h| format!("{h}/.aws/config")))
}

fn read_optional(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Static keys of the profile, from the credentials file, else the config file. Profiles that
/// assume a role (`role_arn`, `source_profile`, SSO, `credential_process`) are not supported and
/// say so rather than being skipped.
fn from_shared_files(env: &Env) -> Result<Option<Credentials>, String> {
    let name = profile(env);
    let explicit = env.get("AWS_PROFILE").is_some();
    let sections = [
        credentials_file(env).and_then(|p| read_optional(&p)).and_then(|t| profile_section(&t, &name, false)),
        config_file(env).and_then(|p| read_optional(&p)).and_then(|t| profile_section(&t, &name, true)),
    ];
    for section in sections.into_iter().flatten() {
        if let Some(access_key_id) = value(&section, "aws_access_key_id") {
            let secret_access_key = value(&section, "aws_secret_access_key")
                .ok_or_else(|| format!("shared credentials: profile '{name}' has no aws_secret_access_key"))?;
            let session_token = value(&section, "aws_session_token");
            return Ok(Some(Credentials { access_key_id, secret_access_key, session_token, source: "shared_credentials_file" }));
        }
        if ["role_arn", "credential_process", "sso_session", "sso_start_url"].iter().any(|k| value(&section, k).is_some()) {
            return Err(format!("shared credentials: profile '{name}' assumes a role or uses SSO/credential_process, which is not supported; give it static keys or use web identity"));
        }
    }
    if explicit {
        return Err(format!("shared credentials: AWS_PROFILE names profile '{name}', which has no keys in the shared files"));
    }
    Ok(None)
}

/// The lines of one `[name]` section (`[profile name]` in the config file, except `default`).
fn profile_section(text: &str, name: &str, config: bool) -> Option<Vec<(String, String)>> {
    let wanted = if config && name != "default" { format!("profile {name}") } else { name.to_owned() };
    let mut inside = false;
    let mut found = None::<Vec<(String, String)>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.split_whitespace().collect::<Vec<_>>().join(" ") == wanted;
            if inside {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if inside && let Some((key, val)) = line.split_once('=') {
            found.get_or_insert_with(Vec::new).push((key.trim().to_ascii_lowercase(), val.trim().to_owned()));
        }
    }
    found
}

fn value(section: &[(String, String)], key: &str) -> Option<String> {
    section.iter().rev().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.clone())
}

fn read_token_file(path: &str, what: &str) -> Result<String, String> {
    let token = std::fs::read_to_string(path).map_err(|e| format!("{what}: cannot read the token file: {}", e.kind()))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(format!("{what}: the token file is empty"));
    }
    Ok(token)
}

/// `AssumeRoleWithWebIdentity` at STS (an unsigned call: the web identity token is the proof).
async fn from_web_identity(env: &Env, client: &reqwest::Client) -> Result<Option<Credentials>, String> {
    const WHAT: &str = "web identity";
    let Some(token_file) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else { return Ok(None) };
    let role_arn = env.get("AWS_ROLE_ARN").ok_or(format!("{WHAT}: AWS_ROLE_ARN is not set"))?;
    let token = read_token_file(&token_file, WHAT)?;
    let session = env.get("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "calseta".into());
    let endpoint = match env.get("AWS_ENDPOINT_URL_STS").or_else(|| env.get("AWS_ENDPOINT_URL")) {
        Some(url) => url,
        None => match region(env) {
            Some(region) => format!("https://sts.{region}.amazonaws.com"),
            None => "https://sts.amazonaws.com".into(),
        },
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn.as_str()),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token.as_str()),
        ])
        .finish();
    let response = client
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|e| format!("{WHAT}: STS request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{WHAT}: STS AssumeRoleWithWebIdentity answered HTTP {}", response.status().as_u16()));
    }
    let body = response.text().await.map_err(|_| format!("{WHAT}: unreadable STS response"))?;
    let field = |name: &str| xml_text(&body, name).ok_or_else(|| format!("{WHAT}: the STS response has no {name}"));
    Ok(Some(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
        source: "web_identity",
    }))
}

/// The text of the first `<name>` element (STS answers in XML).
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = quick_xml::escape::unescape(xml[start..end].trim()).ok()?.into_owned();
    (!text.is_empty()).then_some(text)
}

/// The JSON shape of container and instance-metadata credentials.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Issued {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    code: Option<String>,
}

async fn from_container(env: &Env, client: &reqwest::Client) -> Result<Option<Credentials>, String> {
    const WHAT: &str = "container credentials";
    let url = match (env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        (Some(relative), _) => {
            let base = env.get("AWS_CONTAINER_CREDENTIALS_ENDPOINT").unwrap_or_else(|| CONTAINER_BASE.into());
            format!("{}/{}", base.trim_end_matches('/'), relative.trim_start_matches('/'))
        }
        (None, Some(full)) => {
            let parsed = reqwest::Url::parse(&full).map_err(|_| format!("{WHAT}: AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL"))?;
            if !container_uri_allowed(&parsed) {
                return Err(format!("{WHAT}: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to loopback or the container agent"));
            }
            full
        }
        (None, None) => return Ok(None),
    };
    let authorization = match (env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        (Some(file), _) => Some(read_token_file(&file, WHAT)?),
        (None, token) => token,
    };
    let mut request = client.get(&url).timeout(Duration::from_secs(5));
    if let Some(token) = authorization {
        request = request.header("authorization", token);
    }
    let issued = issued(request, WHAT).await?;
    Ok(Some(Credentials { access_key_id: issued.access_key_id, secret_access_key: issued.secret_access_key, session_token: issued.token, source: "container" }))
}

fn container_uri_allowed(url: &reqwest::Url) -> bool {
    if url.scheme() == "https" {
        return true;
    }
    let Some(host) = url.host() else { return false };
    let loopback = match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    url.scheme() == "http" && (loopback || CONTAINER_HOSTS.contains(&host.to_string().as_str()))
}

async fn issued(request: reqwest::RequestBuilder, what: &str) -> Result<Issued, String> {
    let response = request.send().await.map_err(|e| format!("{what}: request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{what}: answered HTTP {}", response.status().as_u16()));
    }
    let issued: Issued = response.json().await.map_err(|_| format!("{what}: unexpected response shape"))?;
    if issued.code.as_deref().is_some_and(|c| c != "Success") {
        return Err(format!("{what}: the credentials were not issued (code {})", issued.code.unwrap_or_default()));
    }
    Ok(issued)
}

/// IMDSv2: a session token from `PUT /latest/api/token`, the instance role's name, its keys.
/// Short timeouts: off EC2 nothing answers at the link-local address.
async fn from_imds(env: &Env, client: &reqwest::Client) -> Result<Credentials, String> {
    const WHAT: &str = "instance metadata (IMDSv2)";
    let base = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_BASE.into());
    let base = base.trim_end_matches('/');
    let timeout = Duration::from_secs(2);
    let failed = |step: &str, e: reqwest::Error| {
        format!("no credentials: none in the environment, the shared files, web identity or container credentials, and {WHAT} {step} failed: {}", e.without_url())
    };
    let response = client
        .put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "300")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed("token request", e))?;
    if !response.status().is_success() {
        return Err(format!("{WHAT}: the token request answered HTTP {}", response.status().as_u16()));
    }
    let token = response.text().await.map_err(|e| failed("token read", e))?;
    let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let response = client.get(&roles_url).header("x-aws-ec2-metadata-token", &token).timeout(timeout).send().await.map_err(|e| failed("role lookup", e))?;
    if !response.status().is_success() {
        return Err(format!("{WHAT}: the role lookup answered HTTP {} (no instance profile?)", response.status().as_u16()));
    }
    let roles = response.text().await.map_err(|e| failed("role lookup", e))?;
    let role = roles.lines().map(str::trim).find(|l| !l.is_empty()).ok_or(format!("{WHAT}: the instance has no role"))?.to_owned();
    if role.contains('/') || role.contains("..") {
        return Err(format!("{WHAT}: unexpected role name"));
    }
    let request = client.get(format!("{roles_url}{role}")).header("x-aws-ec2-metadata-token", &token).timeout(timeout);
    let issued = issued(request, WHAT).await?;
    Ok(Credentials { access_key_id: issued.access_key_id, secret_access_key: issued.secret_access_key, session_token: issued.token, source: "imds" })
}

#[cfg(test)]
mod tests;
