//! SOC metrics (agents-mcp-metrics.md §5): `GET /v1/metrics/alerts`, `/workflows` and
//! `/summary`. Aggregation happens in SQL (`store`), shaping in `fold`.
//!
//! For other modules: `service` (the operations, for REST and MCP; MCP's summary sets
//! `queue` to null itself).

mod fold;
pub mod http;
pub mod service;
mod store;

pub use fold::{AlertMetrics, MetricsSummary, WorkflowMetrics};
