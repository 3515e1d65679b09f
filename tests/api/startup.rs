//! The process: production fail-fast rules, the one-time bootstrap key, the CLI, configuration
//! files and graceful shutdown.

use serde_json::json;

use crate::dual;
use crate::support::{Backend, TestServer, bootstrap_key, expect_error, run_cli};

const GOOD_KEY: &str = "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8=";

fn production_env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("ENVIRONMENT".into(), "production".into()),
        ("DATABASE_URL".into(), format!("sqlite://{}/prod.db", dir.display())),
        ("ENCRYPTION_KEY".into(), GOOD_KEY.into()),
        ("HTTPS_ENABLED".into(), "true".into()),
        ("LOG_FORMAT".into(), "json".into()),
        ("SENTINEL_WEBHOOK_SECRET".into(), "sentinel-secret".into()),
        ("ELASTIC_WEBHOOK_SECRET".into(), "elastic-secret".into()),
        ("SPLUNK_WEBHOOK_SECRET".into(), "splunk-secret".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_unsafe_settings_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("ENCRYPTION_KEY", "")], "ENCRYPTION_KEY"),
        (&[("ENCRYPTION_KEY", "CHANGE_ME_32_BYTES_BASE64_ENCODED_KEY_HERE=")], "ENCRYPTION_KEY"),
        (&[("ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")], "ENCRYPTION_KEY"),
        (&[("CORS_ALLOWED_ORIGINS", "*")], "CORS_ALLOWED_ORIGINS"),
        (&[("CORS_ALLOW_ALL_ORIGINS", "true")], "CORS_ALLOWED_ORIGINS"),
        (&[("SANDBOX_MODE", "true")], "SANDBOX_MODE"),
        (&[("DOCS_ENABLED", "true")], "DOCS_ENABLED"),
        (&[("HTTPS_ENABLED", "false")], "HTTPS_ENABLED"),
        (&[("CALSETA_REPLICAS", "3")], "REDIS_URL"),
        (&[("SPLUNK_WEBHOOK_SECRET", "")], "SPLUNK_WEBHOOK_SECRET"),
        // Issue 8 h: a passphrase, base64-encoded, is 32 bytes of printable text, not a key.
        (&[("ENCRYPTION_KEY", "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZSAxMjM=")], "ENCRYPTION_KEY"),
        // Issue 8 h: allow-listing public ranges switches the SSRF protection off.
        (&[("SSRF_ALLOWED_HOSTS", "0.0.0.0/0")], "SSRF_ALLOWED_HOSTS"),
        (&[("SSRF_ALLOWED_HOSTS", "10.0.0.0/8, 8.8.8.0/24")], "SSRF_ALLOWED_HOSTS"),
    ];
    for (overrides, setting) in cases {
        let mut env = production_env(dir.path());
        for (k, v) in *overrides {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let (code, _, stderr) = run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env).await;
        assert_ne!(code, 0, "{overrides:?} must refuse to start");
        assert!(stderr.contains(setting), "{overrides:?}: stderr should name {setting}: {stderr}");
        assert!(stderr.contains("production"), "{stderr}");
    }
    assert!(!dir.path().join("prod.db").exists(), "refused before touching the database");
    // An explicit per-source waiver lets an unsigned source start.
    let mut env = production_env(dir.path());
    env.retain(|(k, _)| k != "SPLUNK_WEBHOOK_SECRET");
    env.push(("INGEST_UNSIGNED_SOURCES_ALLOWED".into(), "splunk".into()));
    let (code, _, stderr) = run_cli(&["migrate"], dir.path(), &env).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_starts_with_safe_settings_and_hides_docs() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = TestServer::builder(Backend::Sqlite);
    for (k, v) in production_env(dir.path()).into_iter().filter(|(k, _)| k != "DATABASE_URL") {
        builder = builder.env(&k, &v);
    }
    let server = builder.start().await;
    expect_error(server.client.get(server.url("/openapi.json")).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert!(server.client.get(server.url("/health")).send().await.unwrap().headers().contains_key("strict-transport-security"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    for (k, v, expect) in [
        ("ENCRYPTION_KEY", "too-short", "ENCRYPTION_KEY"),
        ("RATE_LIMIT_DEFAULT_PER_MINUTE", "lots", "RATE_LIMIT_DEFAULT_PER_MINUTE"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT"),
    ] {
        let env = vec![(k.to_owned(), v.to_owned()), ("DATABASE_URL".into(), format!("sqlite://{}/x.db", dir.path().display()))];
        let (code, _, stderr) = run_cli(&["serve"], dir.path(), &env).await;
        assert_eq!(code, 2, "{k}={v}");
        assert!(stderr.contains(expect), "{stderr}");
    }
    // `.env` in the working directory is read too, and the process environment wins over it.
    std::fs::write(dir.path().join(".env"), "ENVIRONMENT=staging\n").unwrap();
    let db = vec![("DATABASE_URL".to_owned(), format!("sqlite://{}/x.db", dir.path().display()))];
    let (code, _, stderr) = run_cli(&["migrate"], dir.path(), &db).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ENVIRONMENT"), "{stderr}");
    let mut overridden = db.clone();
    overridden.push(("ENVIRONMENT".into(), "development".into()));
    let (code, _, stderr) = run_cli(&["migrate"], dir.path(), &overridden).await;
    assert_eq!(code, 0, "{stderr}");
}

async fn bootstrap_key_is_printed_once(backend: Backend) {
    let mut server = TestServer::start(backend.clone()).await;
    let key = server.admin_key.clone();
    assert!(key.starts_with("cai_") && key.len() == 47, "{key}");
    assert!(!server.stdout.text().contains(&key), "the key is not in the logs");
    assert_eq!(server.terminate().await, Some(0), "graceful shutdown exits 0");
    assert!(server.stdout.text().contains("shutdown complete"));

    // Same database again: no new key is printed, and the first one still works.
    let again = TestServer::builder(backend).sharing(&server).start().await;
    assert!(bootstrap_key(&again.stderr).is_none(), "printed a second time: {}", again.stderr.text());
    assert_eq!(again.get("/v1/api-keys", &key).await.status(), 200);
    drop(server);
    again.stop().await;
}
dual!(bootstrap_key_is_printed_once);

async fn cli_creates_lists_and_revokes_keys(backend: Backend) {
    let server = TestServer::start(backend).await;
    let env = server.cli_env();
    let dir = server.dir();
    let (code, stdout, stderr) = run_cli(
        &["api-key", "create", "--name", "splunk-forwarder", "--scopes", "alerts:write,alerts:read", "--key-type", "agent", "--allowed-sources", "splunk", "--expires-in", "30d"],
        &dir,
        &env,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.lines().find(|l| l.starts_with("cai_")).expect("key printed").to_owned();
    assert_eq!(key.len(), 47);
    let prefix = &key[..8];

    // The key works against the running server, with its scopes.
    let response = server.get("/v1/api-keys", &key).await;
    expect_error(response, 403, "FORBIDDEN").await;
    let listing = crate::support::body(server.get("/v1/api-keys", &server.admin_key).await).await;
    let row = listing["data"].as_array().unwrap().iter().find(|k| k["key_prefix"] == prefix).unwrap().clone();
    assert_eq!(row["key_type"], "agent");
    assert_eq!(row["allowed_sources"], json!(["splunk"]));
    assert!(row["expires_at"].is_string());

    let (code, stdout, _) = run_cli(&["api-key", "list"], &dir, &env).await;
    assert_eq!(code, 0);
    assert!(stdout.contains(prefix) && stdout.contains("splunk-forwarder"));
    assert!(!stdout.contains(&key[8..]), "list never shows key material");

    let (code, stdout, stderr) = run_cli(&["api-key", "revoke", prefix], &dir, &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Revoked"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    expect_error(server.get("/v1/api-keys", &key).await, 401, "UNAUTHORIZED").await;

    // Bad CLI input: clear message, non-zero exit.
    let (code, _, stderr) = run_cli(&["api-key", "create", "--name", "x", "--scopes", "root"], &dir, &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("Unknown scope"), "{stderr}");
    let (code, _, stderr) = run_cli(&["api-key", "revoke", "cai_none"], &dir, &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("no API key matches"), "{stderr}");
    let (code, _, stderr) = run_cli(&["api-key", "create", "--name", "x", "--scopes", "admin", "--expires-in", "soon"], &dir, &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("lifetime"), "{stderr}");
    server.stop().await;
}
dual!(cli_creates_lists_and_revokes_keys);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("DATABASE_URL".to_owned(), format!("sqlite://{}/m/calseta.db", dir.path().display()))];
    let (code, stdout, stderr) = run_cli(&["migrate"], dir.path(), &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("migrations applied (sqlite backend)"));
    assert!(dir.path().join("m/calseta.db").exists(), "the SQLite file and its directory are created");
    let (code, _, _) = run_cli(&["migrate"], dir.path(), &env).await;
    assert_eq!(code, 0, "migrate is idempotent");
    let (code, stdout, _) = run_cli(&["--help"], dir.path(), &env).await;
    assert_eq!(code, 0);
    for command in ["serve", "migrate", "api-key"] {
        assert!(stdout.contains(command), "{stdout}");
    }
}

/// Settings come from `CALSETA_CONFIG`, `.env` and `<NAME>_FILE`, with the environment winning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_layers_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calseta.toml"), "rate_limit_default_per_minute = 2\n").unwrap();
    let server = TestServer::builder(Backend::Sqlite)
        .env("CALSETA_CONFIG", &dir.path().join("calseta.toml").display().to_string())
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "3")
        .start()
        .await;
    // The environment (3) beats the file (2).
    let response = server.get("/v1/api-keys", &server.admin_key).await;
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    server.stop().await;
}

/// Issue 8 g/h: every configuration check runs before the database is touched, so a refused
/// start neither migrates a database nor prints a bootstrap key; `rediss://` is supported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_checked_before_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_env = |name: &str| ("DATABASE_URL".to_owned(), format!("sqlite://{}/{name}.db", dir.path().display()));
    let cases: &[(&str, &str, &str)] = &[
        ("CORS_ALLOWED_ORIGINS", "null", "CORS_ALLOWED_ORIGINS"),
        ("CORS_ALLOWED_ORIGINS", "https://soc.example.com,null", "CORS_ALLOWED_ORIGINS"),
        ("CORS_ALLOWED_ORIGINS", "https://soc.example.com/app", "CORS_ALLOWED_ORIGINS"),
        ("CORS_ALLOWED_ORIGINS", "https://*.example.com", "CORS_ALLOWED_ORIGINS"),
        ("CORS_ALLOWED_ORIGINS", "*", "CORS_ALLOWED_ORIGINS"),
        ("REDIS_URL", "http://user:s3cret-pw@redis.example:6379", "REDIS_URL"),
        ("SSRF_ALLOWED_HOSTS", "10.0.0.0/33", "SSRF_ALLOWED_HOSTS"),
        ("ENCRYPTION_KEY_PREVIOUS", "not-a-key", "ENCRYPTION_KEY"),
    ];
    for (index, (name, value, expect)) in cases.iter().enumerate() {
        let db = format!("bad{index}");
        let mut env = vec![db_env(&db), (name.to_string(), value.to_string())];
        if *name == "ENCRYPTION_KEY_PREVIOUS" {
            env.push(("ENCRYPTION_KEY".into(), GOOD_KEY.into()));
        }
        // A process that accepted the setting would serve forever: bound the wait.
        let run = run_cli(&["serve", "--bind", "127.0.0.1:0"], dir.path(), &env);
        let (code, _, stderr) = tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| panic!("{name}={value} was accepted: the server started"));
        assert_ne!(code, 0, "{name}={value} must refuse to start");
        assert!(stderr.contains(expect), "{name}={value}: {stderr}");
        assert!(!stderr.contains("s3cret-pw"), "no credentials in the message: {stderr}");
        assert!(!stderr.contains("CALSETA_BOOTSTRAP_ADMIN_KEY"), "{name}={value}: a key was printed: {stderr}");
        assert!(!dir.path().join(format!("{db}.db")).exists(), "{name}={value}: the database was touched");
    }

    // A TLS Redis URL is accepted: the server starts (the limiter reports the store unreachable
    // and applies its failure policies until it answers).
    let server = TestServer::builder(Backend::Sqlite).env("REDIS_URL", "rediss://127.0.0.1:1/0").start().await;
    assert_eq!(server.client.get(server.url("/health")).send().await.unwrap().status(), 200);
    assert!(!server.stdout.text().contains("TLS"), "no TLS support error: {}", server.stdout.text());
    server.stop().await;
}
