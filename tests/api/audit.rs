//! The tamper-evident audit trail: mutations through the API append hash-chained records;
//! `calseta audit verify` recomputes the chain and names the first broken record after a stored
//! record is edited or deleted; `calseta audit export` writes JSON lines.

use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, run_cli};

async fn chain_verifies_and_tampering_is_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    // Three audited mutations: two key creations and a revocation.
    let (_, first) = server.create_key(&["alerts:read"], json!({})).await;
    server.create_key(&["alerts:write"], json!({})).await;
    let revoke = server.request(reqwest::Method::DELETE, &format!("/v1/api-keys/{first}"), Some(&server.admin_key)).send().await.unwrap();
    assert!(revoke.status().is_success(), "{}", revoke.status());
    let records = server.db_count("SELECT COUNT(*) FROM audit_log").await;
    assert!(records >= 3, "{records} audit records");

    let env = server.cli_env();
    let (code, stdout, stderr) = run_cli(&["audit", "verify"], &server.dir(), &env).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{records} records verified")), "{stdout}");

    let (code, stdout, stderr) = run_cli(&["audit", "export", "--since", "1h"], &server.dir(), &env).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len() as i64, records);
    // The bootstrap key's creation is the system's; the keys created over REST are the admin key's.
    assert!(lines.iter().any(|l| l["actor_type"] == "system" && l["action"].as_str().is_some_and(|a| a.contains("create"))), "{stdout}");
    let create = lines
        .iter()
        .find(|l| l["actor_type"] == "api" && l["action"].as_str().is_some_and(|a| a.contains("create")))
        .expect("a create record by the admin key");
    assert_eq!(create["outcome"], "success");
    assert!(create["actor_key_prefix"].as_str().unwrap().starts_with("cai_"));
    assert!(!stdout.contains("\"key\":\"cai_"), "no key material is exported");
    let (code, stdout, _) = run_cli(&["audit", "export", "--since", "2999-01-01T00:00:00Z"], &server.dir(), &env).await;
    assert_eq!((code, stdout.trim()), (0, ""));
    let (code, _, stderr) = run_cli(&["audit", "export", "--since", "yesterday"], &server.dir(), &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("--since"), "{stderr}");

    // Edit the second record behind the application's back (the append-only trigger has to go
    // first, as an attacker with database access would do): verify names that record.
    let ids = server.db_texts("SELECT CAST(id AS TEXT) FROM audit_log ORDER BY id").await;
    let second: i64 = ids[1].as_deref().unwrap().parse().unwrap();
    if server.db.url.starts_with("sqlite:") {
        server.db_execute("DROP TRIGGER trg_audit_log_no_update").await;
    } else {
        server.db_execute("DROP TRIGGER trg_audit_log_no_update ON audit_log").await;
    }
    assert_eq!(server.db_execute(&format!("UPDATE audit_log SET outcome = 'denied' WHERE id = {second}")).await, 1);
    let (code, _, stderr) = run_cli(&["audit", "verify"], &server.dir(), &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("broken") && stderr.contains(&format!("(id {second})")) && stderr.contains("altered"), "{stderr}");
    assert_eq!(server.db_execute(&format!("UPDATE audit_log SET outcome = 'success' WHERE id = {second}")).await, 1);
    let (code, stdout, stderr) = run_cli(&["audit", "verify"], &server.dir(), &env).await;
    assert_eq!(code, 0, "restored: {stdout}{stderr}");

    // Delete it: the record after it no longer links, and verify names that one.
    assert_eq!(server.db_execute(&format!("DELETE FROM audit_log WHERE id = {second}")).await, 1);
    let third: i64 = ids[2].as_deref().unwrap().parse().unwrap();
    let (code, _, stderr) = run_cli(&["audit", "verify"], &server.dir(), &env).await;
    assert_ne!(code, 0);
    assert!(stderr.contains(&format!("(id {third})")) && stderr.contains("removed"), "{stderr}");
    server.stop().await;
}
dual!(chain_verifies_and_tampering_is_found);
