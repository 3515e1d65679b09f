//! Probes. `/health` keeps Calseta's shape (not enveloped); `/health/live` says only that the
//! process runs; `/health/ready` answers 503 when the database is unreachable. None of them is
//! authenticated or rate limited, and none reveals more than the configured app version.
//!
//! They must answer fast at full load and with a backlog (an orchestrator that times a probe out
//! restarts or unroutes a healthy, busy instance). So the database is probed on a connection of
//! the probe's own, outside the pool — a probe never queues behind the pool's acquirers — and a
//! probe waits at most `ANSWER_WITHIN` for it. A probe still running then (the database is busy,
//! not gone) leaves the answer to the last observation, if recent. A lost connection or an
//! unreachable database fails the probe at once, so a real outage is reported on the next call.
//! A serving process also checks every second (`Probe::watch`), and readiness answers from that
//! observation without waiting at all while it is fresh: an outage fails readiness within about
//! a second (`/health`, which checks each time, at once).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::db::{Conn, Db};
use crate::state::AppState;
use crate::with_conn;

/// The longest a probe waits for its database check before answering from the last observation
/// (which the check, still running in its own task, refreshes). 30 ms leaves the rest of a
/// 100 ms probe budget to a saturated host's scheduling: at 60 ms, readiness on a PostgreSQL
/// host with both cores busy answered in up to 105 ms.
const ANSWER_WITHIN: Duration = Duration::from_millis(30);
/// How often `watch` checks the database. A probe that waits — even 30 ms — waits on the
/// runtime's timer, which a saturated runtime fires late: on a slower 2-core host at full
/// PostgreSQL load, readiness answered in up to 117–125 ms while liveness took 25–38 ms; answering
/// from the watched observation, 29 ms.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Readiness answers from an observation younger than this without starting a check (`watch`
/// keeps it younger; a runtime too busy to run `watch` for this long falls back to waiting).
const FRESH_FOR: Duration = Duration::from_secs(3);
/// The longest one database check (connect, ping, queue count) may take; a check still running
/// then counts as a failure and its connection is dropped.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// An observation older than this does not answer for the database: a database that has not
/// answered a ping for this long is not serving.
const STALE_AFTER: Duration = Duration::from_secs(10);
/// The longest `/health` waits for the enrichment registry before reporting the last one loaded.
const PROVIDERS_WITHIN: Duration = Duration::from_millis(30);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(live)).routes(routes!(ready))
}

/// This process's database probe: its connection and its last observation.
#[derive(Default)]
pub struct Probe {
    /// Held by the one check in flight; checks never queue (a probe that finds it held answers
    /// from the last observation, which the check in flight is about to refresh).
    conn: Arc<tokio::sync::Mutex<Option<Conn>>>,
    last: Arc<Mutex<Option<Observation>>>,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    database_ok: bool,
    /// Jobs waiting to run, as last counted (`/health` counts; readiness does not).
    queue_depth: Option<i64>,
    at: Instant,
}

impl Probe {
    /// The database's state, from a check of at most `ANSWER_WITHIN` or the last observation.
    async fn observe(&self, db: &Db, count_queue: bool) -> Observation {
        // Kept fresh by `watch`: readiness answers at once. `/health` counts the queue each time.
        if !count_queue
            && let Some(observed) = self.last()
            && observed.at.elapsed() < FRESH_FOR
        {
            return observed;
        }
        self.check_now(db, count_queue).await
    }

    /// A check now (unless one is in flight), waited on for at most `ANSWER_WITHIN`; else the
    /// last observation if recent.
    async fn check_now(&self, db: &Db, count_queue: bool) -> Observation {
        let first = self.last().is_none();
        let conn = match self.conn.clone().try_lock_owned() {
            Ok(conn) => Some(conn),
            // The first check is in flight (the watcher's, at start-up): with nothing to fall back
            // on, wait for its connection, then check as asked (it may have to count the queue).
            Err(_) if first => tokio::time::timeout(CHECK_TIMEOUT + Duration::from_millis(100), self.conn.clone().lock_owned()).await.ok(),
            Err(_) => None,
        };
        if let Some(conn) = conn {
            let (answer, answered) = tokio::sync::oneshot::channel();
            let (db, last) = (db.clone(), self.last.clone());
            // Its own task: a check cut short by our deadline would leave its connection mid-query.
            tokio::spawn(async move {
                let previous_depth = lock(&last).and_then(|o| o.queue_depth);
                let observed = check(&db, conn, count_queue, previous_depth).await;
                *last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(observed);
                let _ = answer.send(observed);
            });
            // The very first check has nothing to fall back on: it may take its whole timeout.
            let within = if first { CHECK_TIMEOUT + Duration::from_millis(100) } else { ANSWER_WITHIN };
            if let Ok(Ok(observed)) = tokio::time::timeout(within, answered).await {
                return observed;
            }
        }
        match self.last() {
            Some(observed) if observed.at.elapsed() < STALE_AFTER => observed,
            _ => Observation { database_ok: false, queue_depth: None, at: Instant::now() },
        }
    }

    fn last(&self) -> Option<Observation> {
        lock(&self.last)
    }

    /// Checks the database every `WATCH_EVERY` until `shutdown`, so that readiness answers from
    /// an observation at most about a second old (a failed check fails readiness from then on).
    pub async fn watch(&self, db: Db, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let _ = self.check_now(&db, false).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
        }
    }
}

fn lock(last: &Mutex<Option<Observation>>) -> Option<Observation> {
    *last.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One check on the probe's connection (opened if needed; dropped on any failure).
async fn check(
    db: &Db,
    mut conn: tokio::sync::OwnedMutexGuard<Option<Conn>>,
    count_queue: bool,
    previous_depth: Option<i64>,
) -> Observation {
    let run = async {
        if conn.is_none() {
            *conn = Some(db.connect_dedicated().await?);
        }
        let c = conn.as_mut().expect("connected above");
        with_conn!(c, c => sqlx::query("SELECT 1").execute(&mut *c).await.map(|_| ()))?;
        if !count_queue {
            return Ok::<_, sqlx::Error>(previous_depth);
        }
        let sql = "SELECT COUNT(*) FROM jobs WHERE status = 'todo'";
        with_conn!(c, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *c).await).map(Some)
    };
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, run).await;
    let at = Instant::now();
    match outcome {
        Ok(Ok(queue_depth)) => Observation { database_ok: true, queue_depth, at },
        failed => {
            if let Ok(Err(e)) = failed {
                tracing::warn!(error = %e, "health probe: database check failed");
            } else {
                tracing::warn!("health probe: database check timed out");
            }
            *conn = None;
            Observation { database_ok: false, queue_depth: None, at }
        }
    }
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Healthy"), (status = 503, description = "Database down")))]
pub async fn health(State(state): State<AppState>) -> Response {
    let observed = state.health.observe(&state.db, true).await;
    let database_ok = observed.database_ok;
    // Active providers of this process's registry and whether each can run (Calseta's shape).
    let mut providers = serde_json::Map::new();
    if database_ok {
        // Before the registry's first load there is nothing to fall back on: wait for it.
        let (within, fallback) = match state.enricher.latest_snapshot() {
            Some(last) => (PROVIDERS_WITHIN, Some(last)),
            None => (CHECK_TIMEOUT, None),
        };
        let snapshot = match tokio::time::timeout(within, state.enricher.snapshot(&state.db)).await {
            Ok(snapshot) => Some(snapshot),
            Err(_) => fallback,
        };
        for provider in snapshot.iter().flat_map(|snapshot| snapshot.providers.iter()) {
            let state_text = if provider.configured { "configured" } else { "unconfigured" };
            providers.insert(provider.name().to_owned(), json!(state_text));
        }
    }
    let depth = observed.queue_depth.filter(|_| database_ok);
    let body = json!({
        "status": if database_ok { "ok" } else { "down" },
        "version": state.settings.app_version,
        "database": if database_ok { "ok" } else { "error" },
        "queue": if depth.is_some() { "ok" } else { "error" },
        "queue_depth": depth.unwrap_or(0),
        "enrichment_providers": providers,
        "workflow_sandbox": state.workflows.health(),
    });
    let status = if database_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "The process is running")))]
pub async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.health.observe(&state.db, false).await.database_ok {
        Json(json!({"status": "ready", "database": "ok"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "database": "error"}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite, plus PostgreSQL when `TEST_DATABASE_URL` is set; each with its pool at its minimum.
    async fn databases() -> Vec<(Db, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/health.db", dir.path().display()), 1).await.unwrap();
        db.migrate().await.unwrap();
        let mut all = vec![(db, Some(dir))];
        if let Ok(admin_url) = std::env::var("TEST_DATABASE_URL")
            && !admin_url.is_empty()
        {
            // The probe needs no schema for readiness; the admin database serves.
            all.push((Db::connect(&admin_url, 2).await.unwrap(), None));
        }
        all
    }

    /// Readiness answers fast and "ok" while every pooled connection is taken (an ingest burst),
    /// where a ping through the pool waits for the pool's acquire timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_does_not_wait_for_the_pool() {
        for (db, _dir) in databases().await {
            let probe = Probe::default();
            assert!(probe.observe(&db, false).await.database_ok, "{}", db.backend());
            let _held = match &db {
                Db::Postgres(pool) => (vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()], Vec::new()),
                Db::Sqlite(pool) => (Vec::new(), vec![pool.acquire().await.unwrap()]),
            };
            assert!(!db.ping(Duration::from_millis(300)).await, "{}: the pool should be exhausted", db.backend());
            for _ in 0..5 {
                let started = Instant::now();
                assert!(probe.observe(&db, false).await.database_ok, "{}", db.backend());
                assert!(started.elapsed() < Duration::from_millis(100), "{}: {:?}", db.backend(), started.elapsed());
            }
        }
    }

    /// `watch` keeps an observation fresh, so readiness answers without starting a check of its
    /// own (the probe's connection stays free), and stops on shutdown.
    #[tokio::test]
    async fn watch_keeps_readiness_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/health.db", dir.path().display()), 1).await.unwrap();
        db.migrate().await.unwrap();
        let probe = std::sync::Arc::new(Probe::default());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let watcher = tokio::spawn({
            let (probe, db, shutdown) = (probe.clone(), db.clone(), shutdown.clone());
            async move { probe.watch(db, shutdown).await }
        });
        for _ in 0..100 {
            if probe.last().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(probe.last().is_some_and(|o| o.database_ok), "the watcher observed the database");
        // A fresh observation answers even while a check holds the probe's connection.
        let in_flight = probe.conn.clone().lock_owned().await;
        assert!(probe.observe(&db, false).await.database_ok);
        drop(in_flight);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(3), watcher).await.expect("watch stops on shutdown").unwrap();
    }

    /// A check still in flight (a busy database) leaves the answer to the last observation, at
    /// once; an old observation does not count.
    #[tokio::test]
    async fn a_slow_check_answers_from_the_last_observation() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/health.db", dir.path().display()), 1).await.unwrap();
        db.migrate().await.unwrap();
        let probe = Probe::default();
        let first = probe.observe(&db, true).await;
        assert!(first.database_ok);
        assert_eq!(first.queue_depth, Some(0));
        let in_flight = probe.conn.clone().lock_owned().await;
        let started = Instant::now();
        let cached = probe.observe(&db, true).await;
        assert!(cached.database_ok && cached.queue_depth == Some(0));
        assert!(started.elapsed() < Duration::from_millis(50));
        // Nothing answered for longer than STALE_AFTER: not ready.
        if let Some(last) = probe.last.lock().unwrap().as_mut() {
            last.at = Instant::now() - STALE_AFTER - Duration::from_secs(1);
        }
        assert!(!probe.observe(&db, false).await.database_ok);
        drop(in_flight);
        assert!(probe.observe(&db, false).await.database_ok);
    }
}
