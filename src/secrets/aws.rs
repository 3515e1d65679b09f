//! AWS Secrets Manager: `GetSecretValue(SecretId)` in `AWS_REGION`; the `SecretString` is a JSON
//! object whose keys are setting names. Credentials: AWS's default chain (`aws_credentials`);
//! the request is signed with Signature Version 4.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Env, Fetched, aws_credentials};

const BACKEND: &str = "aws_secrets_manager";
const SERVICE: &str = "secretsmanager";
const TARGET: &str = "secretsmanager.GetSecretValue";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

#[derive(Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

pub async fn fetch(env: Env, secret_id: String) -> Result<Fetched, String> {
    let fail = |what: String| format!("{BACKEND}: secret '{secret_id}': {what}");
    let region = aws_credentials::region(&env).ok_or_else(|| fail("AWS_REGION is not set".into()))?;
    let client = super::http_client()?;
    let credentials = aws_credentials::resolve(&env, &client).await.map_err(|e| fail(format!("credentials: {e}")))?;
    let source = credentials.source;
    let access_key = credentials.access_key_id;
    let secret_key = credentials.secret_access_key;
    let endpoint = env
        .get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
    let url = reqwest::Url::parse(&endpoint).map_err(|_| fail("the endpoint URL is invalid".into()))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(fail("the endpoint URL has no host".into())),
    };
    let body = serde_json::json!({ "SecretId": secret_id }).to_string();
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let session_token = credentials.session_token;
    let request = Signed { access_key: &access_key, secret_key: &secret_key, region: &region, host: &host, amz_date: &amz_date, session_token: session_token.as_deref(), body: &body };
    let mut builder = client
        .post(url)
        .header("content-type", CONTENT_TYPE)
        .header("x-amz-date", &amz_date)
        .header("x-amz-target", TARGET)
        .header("authorization", request.authorization());
    if let Some(token) = &session_token {
        builder = builder.header("x-amz-security-token", token);
    }
    let response = builder.body(body.clone()).send().await.map_err(|e| fail(format!("request failed: {}", e.without_url())))?;
    if !response.status().is_success() {
        return Err(fail(format!("GetSecretValue answered HTTP {}", response.status().as_u16())));
    }
    // Bodies are never quoted in errors: they may hold the secret.
    let value: SecretValue = response.json().await.map_err(|_| fail("unexpected response shape".into()))?;
    let text = value.secret_string.ok_or_else(|| fail("the secret has no SecretString".into()))?;
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
        return Err(fail("the SecretString is not a JSON object".into()));
    };
    let values: BTreeMap<String, String> = map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.to_uppercase(), s)),
            Value::Null => None,
            other => Some((k.to_uppercase(), other.to_string())),
        })
        .collect();
    Ok(Fetched { values, credentials: source })
}

struct Signed<'a> {
    access_key: &'a str,
    secret_key: &'a str,
    region: &'a str,
    host: &'a str,
    amz_date: &'a str,
    session_token: Option<&'a str>,
    body: &'a str,
}

impl Signed<'_> {
    /// The SigV4 `Authorization` header of a POST to `/` with the headers this module sends.
    fn authorization(&self) -> String {
        let date = &self.amz_date[..8];
        let mut headers = vec![
            ("content-type", CONTENT_TYPE),
            ("host", self.host),
            ("x-amz-date", self.amz_date),
        ];
        if let Some(token) = self.session_token {
            headers.push(("x-amz-security-token", token));
        }
        headers.push(("x-amz-target", TARGET));
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
        let signed_headers = headers.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
        let canonical_request =
            format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}", hex::encode(Sha256::digest(self.body.as_bytes())));
        let scope = format!("{date}/{}/{SERVICE}/aws4_request", self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let key = signing_key(self.secret_key, date, self.region, SERVICE);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}", self.access_key)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret_key: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signing-key derivation example of AWS's Signature Version 4 documentation.
    #[test]
    fn signing_key_matches_the_documented_example() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }
}
