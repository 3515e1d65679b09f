//! Encryption at rest end to end: secrets sealed in the database and masked in responses,
//! `calseta rotate-encryption-key` (every sealed column, re-runs, the finishing sweep, a value no
//! key opens), a server on the new key, and the refusals without a usable key.

use calseta::crypto::{Cipher, envelope_key_id, open_json, seal_json};
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error, run_cli};

/// Bytes 0..=31, 32..=63 and 64..=95 as base64: three valid, non-weak keys.
const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const K3: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";

fn cipher(key: &str) -> Cipher {
    Cipher::from_setting(key).unwrap()
}

/// The CLI environment of `server` with the given key settings.
fn env_with(server: &TestServer, keys: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = server.cli_env();
    env.extend(keys.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn rotate(server: &TestServer, keys: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["rotate-encryption-key"];
    all.extend_from_slice(args);
    run_cli(&all, &server.dir(), &env_with(server, keys)).await
}

/// Every stored secret, in a fixed order: the sources' and providers' `auth_config` and the
/// agents' header value, as stored text.
async fn stored_secrets(server: &TestServer) -> Vec<Option<String>> {
    let mut all = server.db_texts("SELECT CAST(auth_config AS TEXT) FROM source_integrations ORDER BY id").await;
    // Builtin providers are seeded without stored credentials; only planted rows hold secrets.
    all.extend(server.db_texts("SELECT CAST(auth_config AS TEXT) FROM enrichment_providers WHERE is_builtin = FALSE ORDER BY id").await);
    all.extend(server.db_texts("SELECT auth_header_value_encrypted FROM agent_registrations ORDER BY id").await);
    all
}

/// The envelope of a stored value: the `_encrypted` member of a JSON wrapper, or the bare text.
fn envelope_of(stored: &str) -> String {
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(map)) => map.get("_encrypted").and_then(Value::as_str).unwrap_or_else(|| panic!("not sealed: {stored}")).to_owned(),
        _ => stored.to_owned(),
    }
}

fn key_ids(stored: &[Option<String>]) -> Vec<String> {
    stored.iter().flatten().map(|s| envelope_key_id(&envelope_of(s)).unwrap_or("none").to_owned()).collect()
}

async fn create_source(server: &TestServer, name: &str, auth_config: Value) -> String {
    let response = server
        .post_json("/v1/sources", &server.admin_key, &json!({"source_name": "generic", "display_name": name, "auth_config": auth_config}))
        .await;
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains("auth_config") && !text.contains("_encrypted") && !text.contains("canary"), "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["data"]["uuid"].as_str().unwrap().to_owned()
}

/// Plants the rows no route writes yet: a provider with sealed credentials, one whose credentials
/// were stored in plain (as a hand-edited database might hold them), and an agent header value.
async fn plant_provider_and_agent_secrets(server: &TestServer, sealing: &Cipher) {
    let sealed = seal_json(sealing, json!({"api_key": "canary-PROVIDER"}).as_object().unwrap());
    for (name, auth_config) in [("rot-sealed", sealed.to_string()), ("rot-plain", json!({"api_key": "canary-PLAIN"}).to_string())] {
        let sql = format!(
            "INSERT INTO enrichment_providers (uuid, provider_name, display_name, http_config, auth_config) \
             VALUES ({}, '{name}', '{name}', '{{}}', '{auth_config}')",
            server.uuid_sql(uuid::Uuid::new_v4())
        );
        assert_eq!(server.db_execute(&sql).await, 1);
    }
    let sql = format!(
        "INSERT INTO agent_registrations (uuid, name, endpoint_url, auth_header_name, auth_header_value_encrypted) \
         VALUES ({}, 'rot-agent', 'https://agent.example.com/hook', 'Authorization', '{}')",
        server.uuid_sql(uuid::Uuid::new_v4()),
        sealing.encrypt(b"Bearer canary-AGENT")
    );
    assert_eq!(server.db_execute(&sql).await, 1);
}

/// Opens every stored secret with `key` and returns the plaintexts (JSON text or header value).
fn open_all(stored: &[Option<String>], key: &Cipher) -> Vec<String> {
    stored
        .iter()
        .flatten()
        .map(|s| match serde_json::from_str::<Value>(s) {
            Ok(value @ Value::Object(_)) => Value::Object(open_json(key, &value).unwrap()).to_string(),
            _ => String::from_utf8(key.decrypt(s).unwrap()).unwrap(),
        })
        .collect()
}

async fn rotation_reseals_every_secret(backend: Backend) {
    let mut server = TestServer::builder(backend.clone()).env("ENCRYPTION_KEY", K1).start().await;
    let (k1, k2) = (cipher(K1), cipher(K2));
    let uuid = create_source(&server, "rot-source", json!({"api_key": "canary-SOURCE"})).await;
    for path in ["/v1/sources".to_owned(), format!("/v1/sources/{uuid}")] {
        let text = server.get(&path, &server.admin_key).await.text().await.unwrap();
        assert!(!text.contains("canary") && !text.contains("auth_config") && !text.contains("_encrypted"), "{text}");
    }
    plant_provider_and_agent_secrets(&server, &k1).await;

    // At rest: sealed with K1, except the planted plain provider config.
    let before = stored_secrets(&server).await;
    assert_eq!(before.len(), 4);
    assert_eq!(envelope_key_id(&envelope_of(before[0].as_deref().unwrap())), Some(k1.key_id()));
    assert!(!before[0].as_deref().unwrap().contains("canary"));
    assert_eq!(open_json(&k1, &serde_json::from_str(before[0].as_deref().unwrap()).unwrap()).unwrap()["api_key"], "canary-SOURCE");
    assert!(before[2].as_deref().unwrap().contains("canary-PLAIN"));

    // Rotation to K2 while the server runs: everything ends up on K2 and opens with K2 alone.
    let (code, stdout, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1)], &["--new-key", K2]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("rotated 3 values (0 already on the new key {})", k2.key_id())), "{stdout}");
    assert!(stdout.contains("sealed 1 values that were stored unencrypted"), "{stdout}");
    assert!(stdout.contains("ENCRYPTION_KEY_PREVIOUS") && stdout.contains(k1.key_id()), "the next step is printed: {stdout}");
    assert!(!stdout.contains(K1) && !stdout.contains(K2) && !stderr.contains(K2), "keys are never printed");
    let after = stored_secrets(&server).await;
    assert_eq!(key_ids(&after), vec![k2.key_id(); 4]);
    let opened = open_all(&after, &k2);
    assert_eq!(
        opened,
        vec![
            json!({"api_key": "canary-SOURCE"}).to_string(),
            json!({"api_key": "canary-PROVIDER"}).to_string(),
            json!({"api_key": "canary-PLAIN"}).to_string(),
            "Bearer canary-AGENT".to_owned(),
        ]
    );
    assert!(after.iter().flatten().all(|s| !s.contains("canary")), "nothing stays in plain: {after:?}");

    // Again, now from a key file: nothing left to do, nothing changed.
    let key_file = server.dir().join("new.key");
    std::fs::write(&key_file, format!("{K2}\n")).unwrap();
    let (code, stdout, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1)], &["--new-key-file", key_file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rotated 0 values (4 already on the new key"), "{stdout}");
    assert!(!stdout.contains("unencrypted"), "{stdout}");
    assert_eq!(stored_secrets(&server).await, after, "a re-run leaves values on the new key as they are");

    // A replica still on K1 writes meanwhile; then the server restarts on K2 with K1 as previous.
    let lagging = create_source(&server, "written-by-old-replica", json!({"api_key": "canary-LATE"})).await;
    server.terminate().await;
    let admin = server.admin_key.clone();
    let server2 = TestServer::builder(backend)
        .sharing(&server)
        .env("ENCRYPTION_KEY", K2)
        .env("ENCRYPTION_KEY_PREVIOUS", K1)
        .start()
        .await;
    drop(server);
    let patched = server2.patch_json(&format!("/v1/sources/{uuid}"), &admin, &json!({"auth_config": {"api_key": "canary-PATCHED"}})).await;
    assert_eq!(patched.status(), 200);
    let secrets = stored_secrets(&server2).await;
    assert_eq!(key_ids(&secrets), vec![k2.key_id(), k1.key_id(), k2.key_id(), k2.key_id(), k2.key_id()]);
    assert_eq!(open_json(&k2, &serde_json::from_str(secrets[0].as_deref().unwrap()).unwrap()).unwrap()["api_key"], "canary-PATCHED");

    // Finishing sweep with the new settings: the value the old replica wrote moves to K2.
    let new_settings = [("ENCRYPTION_KEY", K2), ("ENCRYPTION_KEY_PREVIOUS", K1)];
    let (code, stdout, stderr) = rotate(&server2, &new_settings, &["--new-key", K2]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rotated 1 values (4 already on the new key"), "{stdout}");
    let (code, stdout, _) = rotate(&server2, &new_settings, &["--new-key", K2]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("rotated 0 values (5 already on the new key"), "{stdout}");
    assert!(stdout.contains("ENCRYPTION_KEY_PREVIOUS can be removed"), "{stdout}");
    let swept = stored_secrets(&server2).await;
    assert_eq!(key_ids(&swept), vec![k2.key_id(); 5]);
    assert_eq!(open_all(&swept, &k2)[1], json!({"api_key": "canary-LATE"}).to_string(), "row {lagging}");
    server2.stop().await;
}
dual!(rotation_reseals_every_secret);

async fn rotation_refuses_bad_new_keys(backend: Backend) {
    let server = TestServer::builder(backend).env("ENCRYPTION_KEY", K1).start().await;
    create_source(&server, "src", json!({"token": "canary-1"})).await;
    let before = stored_secrets(&server).await;
    let current = [("ENCRYPTION_KEY", K1)];
    let cases: &[(&[&str], &str)] = &[
        (&["--new-key", K1], "nothing to rotate"),
        (&["--new-key", "not-a-key"], "malformed"),
        (&["--new-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="], "low-entropy"),
        (&["--new-key", "CHANGE_ME_32_BYTES_BASE64_ENCODED_KEY_HERE="], "new key"),
        (&["--new-key-file", "/nonexistent/new.key"], "cannot read --new-key-file"),
        (&["--new-key", K2, "--new-key-file", "/tmp/x"], "cannot be used with"),
        (&[], "--new-key"),
    ];
    for (args, message) in cases {
        let (code, stdout, stderr) = rotate(&server, &current, args).await;
        assert_ne!(code, 0, "{args:?}: {stdout}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Older keys that do not parse stop it too, naming the setting.
    let (code, _, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1), ("ENCRYPTION_KEY_PREVIOUS", "short")], &["--new-key", K2]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("ENCRYPTION_KEY_PREVIOUS entry 1 is invalid"), "{stderr}");
    assert_eq!(stored_secrets(&server).await, before, "no refused run changed anything");
    server.stop().await;
}
dual!(rotation_refuses_bad_new_keys);

async fn unopenable_value_rolls_the_rotation_back(backend: Backend) {
    let server = TestServer::builder(backend).env("ENCRYPTION_KEY", K1).start().await;
    let (k1, k3) = (cipher(K1), cipher(K3));
    create_source(&server, "first", json!({"token": "canary-A"})).await;
    let second = create_source(&server, "second", json!({"token": "canary-B"})).await;

    // The second row was sealed with a key nobody configured (K3). The first row would rotate
    // before the second fails: the failure must undo it.
    let foreign = seal_json(&k3, json!({"token": "canary-B"}).as_object().unwrap());
    let planted = server.db_execute(&format!("UPDATE source_integrations SET auth_config = '{foreign}' WHERE display_name = 'second'")).await;
    assert_eq!(planted, 1);
    let before = stored_secrets(&server).await;
    let (code, stdout, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1)], &["--new-key", K2]).await;
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains(&format!("source_integrations.auth_config of row {second} cannot be opened")), "{stderr}");
    assert!(stderr.contains(&format!("key id {}", k3.key_id())) && stderr.contains("ENCRYPTION_KEY_PREVIOUS"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(stored_secrets(&server).await, before, "rolled back");
    assert_eq!(key_ids(&before)[0], k1.key_id());

    // A bit flipped in a value on the old key: refused the same way.
    let good = seal_json(&k1, json!({"token": "canary-B"}).as_object().unwrap());
    // A character well inside the body carries six full bits (the last may be partly padding).
    let mut envelope: Vec<char> = good["_encrypted"].as_str().unwrap().chars().collect();
    let inner = envelope.len() - 10;
    envelope[inner] = if envelope[inner] == 'A' { 'B' } else { 'A' };
    let tampered = json!({"_encrypted": envelope.into_iter().collect::<String>()});
    server.db_execute(&format!("UPDATE source_integrations SET auth_config = '{tampered}' WHERE display_name = 'second'")).await;
    let before = stored_secrets(&server).await;
    let (code, _, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1)], &["--new-key", K2]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains(&second.to_string()) && stderr.contains("tampered"), "{stderr}");
    assert_eq!(stored_secrets(&server).await, before, "rolled back");

    // Once the key that sealed it is configured as an older key, the rotation goes through.
    server.db_execute(&format!("UPDATE source_integrations SET auth_config = '{foreign}' WHERE display_name = 'second'")).await;
    let (code, stdout, stderr) = rotate(&server, &[("ENCRYPTION_KEY", K1), ("ENCRYPTION_KEY_PREVIOUS", K3)], &["--new-key", K2]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rotated 2 values (0 already"), "{stdout}");
    assert_eq!(key_ids(&stored_secrets(&server).await), vec![cipher(K2).key_id(); 2]);
    server.stop().await;
}
dual!(unopenable_value_rolls_the_rotation_back);

async fn secrets_need_a_usable_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    let refused = server
        .post_json("/v1/sources", &server.admin_key, &json!({"source_name": "generic", "display_name": "x", "auth_config": {"token": "canary"}}))
        .await;
    let json = expect_error(refused, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    assert!(json["error"]["message"].as_str().unwrap().contains("ENCRYPTION_KEY must be set"), "{json}");
    assert_eq!(body(server.get("/v1/sources", &server.admin_key).await).await["meta"]["total"], 0);

    // Older keys that do not parse, or older keys without a current one, stop the server.
    let dir = server.dir();
    for (keys, message) in [
        (vec![("ENCRYPTION_KEY", K1), ("ENCRYPTION_KEY_PREVIOUS", "nope")], "ENCRYPTION_KEY_PREVIOUS entry 1 is invalid"),
        (vec![("ENCRYPTION_KEY_PREVIOUS", K1)], "ENCRYPTION_KEY_PREVIOUS is set but ENCRYPTION_KEY is not"),
    ] {
        let (code, _, stderr) = run_cli(&["serve", "--bind", "127.0.0.1:0"], &dir, &env_with(&server, &keys)).await;
        assert_ne!(code, 0);
        assert!(stderr.contains(message), "{stderr}");
    }
    server.stop().await;
}
dual!(secrets_need_a_usable_key);
