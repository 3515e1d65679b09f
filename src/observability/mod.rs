//! Prometheus metrics (issue 15 item 1). Off unless `METRICS_ENABLED` or `METRICS_BIND` is set.
//! Served either on its own listener (`METRICS_BIND`, unauthenticated: bind it to an internal
//! interface) or at `/metrics` on the API listener behind an `admin` key.
//!
//! Instrumentation is one call per choke point (the functions below), so the metric names and
//! label sets live here only. Cardinality is bounded by construction: labels carry route
//! templates, status codes, queue and task names, configured provider and source names and fixed
//! outcome words; never uuids, ids, paths with values, or anything from a payload. When metrics
//! are off the `metrics` facade has no recorder and every call is a no-op.

mod http;
pub mod otel;
pub mod redact;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use http::{ReadMetrics, api_route, serve_listener};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) shared by every histogram but the one below: 5 ms … 30 s.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Buckets of `calseta_sqlite_writer_held_seconds`: a write transaction holds the connection for
/// ~1–15 ms under load (session 15), below most of the shared buckets.
const WRITER_HELD_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Installs the process-wide recorder once. Returns whether metrics are being collected.
pub fn install() -> anyhow::Result<bool> {
    if HANDLE.get().is_some() {
        return Ok(true);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?
        .set_buckets_for_metric(Matcher::Full(WRITER_HELD.to_owned()), WRITER_HELD_BUCKETS)
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    let _ = HANDLE.set(handle);
    Ok(true)
}

/// The exposition text, after refreshing the gauges that are read at scrape time.
pub(crate) async fn render(state: &crate::state::AppState) -> Option<String> {
    let handle = HANDLE.get()?;
    match crate::jobs::queue_depths(&state.db).await {
        Ok(depths) => {
            for (queue, status, count) in depths {
                gauge!("calseta_queue_depth", "queue" => queue, "status" => status).set(count as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading queue depths for /metrics failed"),
    }
    handle.run_upkeep();
    Some(handle.render())
}

/// One HTTP request: `route` is the matched route template (`/v1/alerts/{uuid}`), or
/// `unmatched` for a 404 without a route, so unknown paths cannot mint series.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    histogram!("calseta_http_request_duration_seconds",
        "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string())
    .record(elapsed.as_secs_f64());
}

/// One alert offered to ingest by a (builtin) source: `accepted`, `deduplicated` or `refused`.
pub fn ingest(source: &'static str, outcome: &'static str) {
    counter!("calseta_ingest_alerts_total", "source" => source, "outcome" => outcome).increment(1);
}

/// One job attempt finished: `succeeded`, `retry` or `failed`.
pub fn job(queue: &str, task: &str, outcome: &'static str, elapsed: Duration) {
    let (queue, task) = (queue.to_owned(), task.to_owned());
    counter!("calseta_jobs_total", "queue" => queue.clone(), "task" => task.clone(), "outcome" => outcome).increment(1);
    histogram!("calseta_job_duration_seconds", "queue" => queue, "task" => task).record(elapsed.as_secs_f64());
}

/// One live enrichment provider call: `success`, `failed` or `timeout`.
pub fn enrichment_call(provider: &str, outcome: &'static str, elapsed: Duration) {
    let provider = provider.to_owned();
    counter!("calseta_enrichment_calls_total", "provider" => provider.clone(), "outcome" => outcome).increment(1);
    histogram!("calseta_enrichment_call_duration_seconds", "provider" => provider).record(elapsed.as_secs_f64());
}

/// A provider's circuit breaker after a call: 1 open (calls refused), 0 closed.
pub fn breaker_state(provider: &str, open: bool) {
    gauge!("calseta_enrichment_breaker_open", "provider" => provider.to_owned()).set(if open { 1.0 } else { 0.0 });
}

/// One outbound request through the egress gateway: `ok`, `blocked`, `timeout`, `error`.
pub fn egress(outcome: &'static str, elapsed: Duration) {
    counter!("calseta_egress_requests_total", "outcome" => outcome).increment(1);
    histogram!("calseta_egress_request_duration_seconds", "outcome" => outcome).record(elapsed.as_secs_f64());
}

/// The SQLite write connection was held this long (a write transaction, or a checkpoint that
/// must not overlap one). `rate(…_sum)` is the share of time it is busy: near 1, ingest and
/// enrichment wait on it. Never recorded on PostgreSQL.
pub fn sqlite_writer_held(elapsed: Duration) {
    histogram!(WRITER_HELD).record(elapsed.as_secs_f64());
}

const WRITER_HELD: &str = "calseta_sqlite_writer_held_seconds";

/// One request refused with 429, by limit family.
pub fn rate_limited(family: &'static str) {
    counter!("calseta_rate_limit_rejections_total", "family" => family).increment(1);
}

/// One request refused by the network controls: `ip`, `host`.
pub fn network_refused(control: &'static str) {
    counter!("calseta_network_refusals_total", "control" => control).increment(1);
}

/// One workflow run finished, by its final status.
pub fn workflow_run(outcome: &str) {
    counter!("calseta_workflow_runs_total", "outcome" => outcome.to_owned()).increment(1);
}

/// Pre-spawned sandbox interpreters ready now.
pub fn sandbox_pool_size(ready: usize) {
    gauge!("calseta_sandbox_pool_size").set(ready as f64);
}
