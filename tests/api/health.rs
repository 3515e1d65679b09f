use std::time::Duration;

use crate::dual;
use crate::support::{Backend, TestServer, body, eventually};

async fn health_probes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let json = body(response).await;
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
    assert_eq!(json["queue"], "ok");
    assert_eq!(json["queue_depth"], 0);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    // The seven builtins, none configured without credentials.
    let providers = json["enrichment_providers"].as_object().unwrap();
    assert_eq!(providers.len(), 7, "{json}");
    assert!(providers.values().all(|v| v == "unconfigured"), "{json}");
    assert_eq!(providers["virustotal"], "unconfigured");

    let live = server.client.get(server.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = server.client.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(body(ready).await["database"], "ok");
    server.stop().await;
}
dual!(health_probes);

/// Readiness turns 503 when the database goes away (within about a second: it answers from the
/// observation the process refreshes every second); `/health` at once; liveness stays 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_database_loss() {
    let Some(backend) = Backend::postgres("ready_reports_database_loss") else { return };
    let server = TestServer::start(backend.clone()).await;
    assert_eq!(server.client.get(server.url("/health/ready")).send().await.unwrap().status(), 200);
    // Dropping the database (FORCE terminates the server's connections) makes it unreachable.
    server.db.drop_database().await;
    let health = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(body(health).await["status"], "down");
    let not_ready = eventually(Duration::from_secs(5), || async {
        server.client.get(server.url("/health/ready")).send().await.unwrap().status() == 503
    })
    .await;
    assert!(not_ready, "readiness reports the loss within seconds");
    let ready = server.client.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(body(ready).await["status"], "not_ready");
    let health = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(body(health).await["status"], "down");
    assert_eq!(server.client.get(server.url("/health/live")).send().await.unwrap().status(), 200);
    server.stop().await;
}
