use axum::http::{Method, StatusCode};

use super::*;
use crate::secrets::fake::Fake;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::secrets::http_client().unwrap()
}

fn json_credentials(akid: &str) -> String {
    serde_json::json!({"Code": "Success", "AccessKeyId": akid, "SecretAccessKey": "issued-secret", "Token": "issued-token", "Expiration": "2099-01-01T00:00:00Z"}).to_string()
}

/// Nothing answers here: a chain that reaches IMDS by mistake fails fast instead of waiting.
const NO_IMDS: (&str, &str) = ("AWS_EC2_METADATA_DISABLED", "true");

#[tokio::test]
async fn environment_comes_first() {
    let env = Env::from_pairs(&[("AWS_ACCESS_KEY_ID", "AKENV"), ("AWS_SECRET_ACCESS_KEY", "env-secret"), ("AWS_SESSION_TOKEN", "tok"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent")]);
    let credentials = resolve(&env, &client()).await.unwrap();
    assert_eq!((credentials.source, credentials.access_key_id.as_str(), credentials.session_token.as_deref()), ("environment", "AKENV", Some("tok")));
    let half = Env::from_pairs(&[("AWS_ACCESS_KEY_ID", "AKENV")]);
    assert!(resolve(&half, &client()).await.unwrap_err().contains("AWS_SECRET_ACCESS_KEY"));
}

#[tokio::test]
async fn shared_credentials_and_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let credentials_path = dir.path().join("credentials");
    let config_path = dir.path().join("config");
    std::fs::write(&credentials_path, "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = default-secret\n\n[work]\n# comment\naws_access_key_id=AKWORK\naws_secret_access_key=work-secret\naws_session_token=work-token\n").unwrap();
    std::fs::write(&config_path, "[default]\nregion = eu-north-1\n[profile cfg]\nregion = ap-south-1\naws_access_key_id = AKCFG\naws_secret_access_key = cfg-secret\n[profile assumed]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n").unwrap();
    let (credentials_file, config_file) = (credentials_path.to_str().unwrap(), config_path.to_str().unwrap());
    let files = |profile: Option<&str>| {
        let mut pairs = vec![("AWS_SHARED_CREDENTIALS_FILE", credentials_file), ("AWS_CONFIG_FILE", config_file), NO_IMDS];
        if let Some(p) = profile {
            pairs.push(("AWS_PROFILE", p));
        }
        Env::from_pairs(&pairs)
    };
    let default = resolve(&files(None), &client()).await.unwrap();
    assert_eq!((default.source, default.access_key_id.as_str(), default.session_token), ("shared_credentials_file", "AKDEFAULT", None));
    assert_eq!(region(&files(None)).as_deref(), Some("eu-north-1"));
    let work = resolve(&files(Some("work")), &client()).await.unwrap();
    assert_eq!((work.access_key_id.as_str(), work.secret_access_key.as_str(), work.session_token.as_deref()), ("AKWORK", "work-secret", Some("work-token")));
    let from_config = resolve(&files(Some("cfg")), &client()).await.unwrap();
    assert_eq!(from_config.access_key_id, "AKCFG");
    assert_eq!(region(&files(Some("cfg"))).as_deref(), Some("ap-south-1"));
    let missing = resolve(&files(Some("nope")), &client()).await.unwrap_err();
    assert!(missing.contains("profile 'nope'"), "{missing}");
    let assumed = resolve(&files(Some("assumed")), &client()).await.unwrap_err();
    assert!(assumed.contains("not supported"), "{assumed}");
    // HOME's ~/.aws is the default location.
    std::fs::create_dir(dir.path().join(".aws")).unwrap();
    std::fs::copy(&credentials_path, dir.path().join(".aws/credentials")).unwrap();
    let home = Env::from_pairs(&[("HOME", dir.path().to_str().unwrap()), NO_IMDS]);
    assert_eq!(resolve(&home, &client()).await.unwrap().access_key_id, "AKDEFAULT");
}

#[tokio::test]
async fn web_identity_through_sts() {
    let sts = Fake::start(|method, path| {
        assert_eq!((method, path), (&Method::POST, "/"));
        let xml = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>\
                   <Credentials><AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>web/secret+1</SecretAccessKey>\
                   <SessionToken>web-session&amp;token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                   </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        (StatusCode::OK, xml.into())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig\n").unwrap();
    let env = Env::from_pairs(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/calseta"),
        ("AWS_ENDPOINT_URL_STS", sts.base.as_str()),
        NO_IMDS,
    ]);
    let credentials = resolve(&env, &client()).await.unwrap();
    assert_eq!(credentials.source, "web_identity");
    assert_eq!(credentials.access_key_id, "ASIAWEB");
    assert_eq!(credentials.secret_access_key, "web/secret+1");
    assert_eq!(credentials.session_token.as_deref(), Some("web-session&token"));
    let seen = sts.seen();
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(seen[0].body.as_bytes()).into_owned().collect();
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(form["RoleArn"], "arn:aws:iam::123456789012:role/calseta");
    assert_eq!(form["RoleSessionName"], "calseta");
    assert_eq!(form["WebIdentityToken"], "eyJhbGciOiJSUzI1NiJ9.pod-token.sig");
    assert!(seen[0].headers.get("authorization").is_none(), "the call is unsigned");

    let missing_role = Env::from_pairs(&[("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()), NO_IMDS]);
    assert!(resolve(&missing_role, &client()).await.unwrap_err().contains("AWS_ROLE_ARN"));
}

#[tokio::test]
async fn sts_refusal_names_the_source_never_the_body() {
    let sts = Fake::start(|_, _| (StatusCode::FORBIDDEN, "<Error><Message>token eyJhbGciOiJSUzI1NiJ9.pod-token.sig expired</Message></Error>".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig").unwrap();
    let env = Env::from_pairs(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/x"),
        ("AWS_ENDPOINT_URL_STS", sts.base.as_str()),
    ]);
    let error = resolve(&env, &client()).await.unwrap_err();
    assert!(error.contains("web identity") && error.contains("HTTP 403"), "{error}");
    assert!(!error.contains("pod-token"), "{error}");
}

#[tokio::test]
async fn container_credentials() {
    let agent = Fake::start(|method, path| {
        assert_eq!(method, Method::GET);
        match path {
            "/v2/credentials/abc" | "/creds" => (StatusCode::OK, json_credentials("ASIACONTAINER")),
            _ => (StatusCode::NOT_FOUND, String::new()),
        }
    })
    .await;
    let relative = Env::from_pairs(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"), ("AWS_CONTAINER_CREDENTIALS_ENDPOINT", agent.base.as_str()), NO_IMDS]);
    let credentials = resolve(&relative, &client()).await.unwrap();
    assert_eq!((credentials.source, credentials.access_key_id.as_str(), credentials.session_token.as_deref()), ("container", "ASIACONTAINER", Some("issued-token")));

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-token");
    std::fs::write(&token_file, "pod-identity-token\n").unwrap();
    let full_uri = format!("{}/creds", agent.base);
    let full = Env::from_pairs(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str()), ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.to_str().unwrap()), NO_IMDS]);
    assert_eq!(resolve(&full, &client()).await.unwrap().access_key_id, "ASIACONTAINER");
    assert_eq!(agent.seen()[1].headers["authorization"], "pod-identity-token");

    // A plain-http full URI may only name loopback or the container agent.
    let elsewhere = Env::from_pairs(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://203.0.113.5/creds"), NO_IMDS]);
    assert!(resolve(&elsewhere, &client()).await.unwrap_err().contains("must be https"));
}

#[tokio::test]
async fn instance_metadata_v2() {
    let imds = Fake::start(|method, path| match (method.as_str(), path) {
        ("PUT", "/latest/api/token") => (StatusCode::OK, "imds-session".into()),
        ("GET", "/latest/meta-data/iam/security-credentials/") => (StatusCode::OK, "calseta-role\n".into()),
        ("GET", "/latest/meta-data/iam/security-credentials/calseta-role") => (StatusCode::OK, json_credentials("ASIAIMDS")),
        _ => (StatusCode::NOT_FOUND, String::new()),
    })
    .await;
    let env = Env::from_pairs(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.base.as_str())]);
    let credentials = resolve(&env, &client()).await.unwrap();
    assert_eq!((credentials.source, credentials.access_key_id.as_str()), ("imds", "ASIAIMDS"));
    let seen = imds.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].headers["x-aws-ec2-metadata-token-ttl-seconds"], "300");
    assert!(seen[1..].iter().all(|s| s.headers["x-aws-ec2-metadata-token"] == "imds-session"), "IMDSv2: every read carries the session token");

    let disabled = Env::from_pairs(&[NO_IMDS]);
    assert!(resolve(&disabled, &client()).await.unwrap_err().contains("IMDS is disabled"));
    let no_role = Fake::start(|method, path| match (method.as_str(), path) {
        ("PUT", _) => (StatusCode::OK, "imds-session".into()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    })
    .await;
    let env = Env::from_pairs(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", no_role.base.as_str())]);
    assert!(resolve(&env, &client()).await.unwrap_err().contains("HTTP 404"));
}
