//! SOC metrics (agents-mcp-metrics.md §5): `GET /v1/metrics/alerts`, `/workflows` and
//! `/summary`. Aggregation happens in SQL (`store`), shaping in `fold`.
//!
//! For other modules: `service` (the operations, for REST and MCP; MCP's summary sets
//! `queue` to null itself).
//!
//! Scale: the alert figures read daily rollups for whole days, hourly rollups for whole hours
//! and aggregate only the rest of the window live (`rollup`, kept current by the
//! `rollup_alert_metrics` periodic job and by triggers that mark rewritten buckets dirty); the
//! summary's queue statistics read hourly per-queue counters plus the jobs finished since.
//! Before, each figure scanned the window's alerts (1.4–2.9 s at 1,000,000 alerts on PostgreSQL)
//! and the whole job table.

mod fold;
pub mod http;
pub mod rollup;
pub mod service;
mod store;

pub use fold::{AlertMetrics, MetricsSummary, WorkflowMetrics};
pub use rollup::RollupAlertMetrics;
