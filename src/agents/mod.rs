//! Agents (issue 11): registrations under `/v1/agents`, trigger matching, and durable, signed
//! dispatch of enriched alerts to the agents that asked for them (agents-mcp-metrics.md §1).
//!
//! For other modules: [`enqueue_dispatch_for_alerts`] (the enrichment pipeline's success path
//! calls it in its transaction), the three dispatch jobs (typed `Job`s in [`dispatch`],
//! registered in `app::job_registry`) and [`http::routes`].

pub mod dispatch;
pub mod http;
pub mod model;
pub mod service;

mod delivery;
mod matching;
mod payload;
mod redact;
mod signing;
mod store;

pub use dispatch::{DELIVER_TASK, MATCH_TASK, QUEUE as DISPATCH_QUEUE, SINGLE_TASK};
pub use signing::{SECRET_PREFIX, sign as sign_webhook};

use crate::db::Tx;
use crate::egress::Egress;
use crate::state::AppState;

/// In the transaction that marks alerts enriched (new alert, re-enrich, indicators added with
/// enrich): matches `alert_ids` against the active agents and queues one delivery per match, so
/// an enriched alert always has its dispatch. Nothing is queued while no agent is active.
/// Returns the deliveries queued.
pub async fn enqueue_dispatch_for_alerts(tx: &mut Tx, alert_ids: &[i64]) -> sqlx::Result<usize> {
    dispatch::enqueue_for_alerts(tx, alert_ids).await
}

/// The one place this module reaches the egress gateway (the process's one instance).
fn egress(state: &AppState) -> &Egress {
    &state.egress
}
