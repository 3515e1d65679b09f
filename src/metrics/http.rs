//! `/v1/metrics/*`: alert and workflow metrics over a window, and the 30-day summary
//! (operations in `service`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::service::{self, GetAlertMetrics, GetMetricsSummary, GetWorkflowMetrics, WindowQuery};
use super::{AlertMetrics, MetricsSummary, WorkflowMetrics};
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::ValidQuery;
use crate::pagination::Data;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_alert_metrics))
        .routes(routes!(get_workflow_metrics))
        .routes(routes!(get_metrics_summary))
}

#[utoipa::path(get, path = "/v1/metrics/alerts", tag = "metrics",
    params(("from_time" = Option<DateTime<Utc>>, Query, description = "Window start, inclusive (with to_time; default: the last 30 days)"),
           ("to_time" = Option<DateTime<Utc>>, Query, description = "Window end, exclusive (with from_time; default: now)")),
    responses((status = 200, body = AlertMetrics)),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_alert_metrics(
    auth: Authorized<GetAlertMetrics>,
    State(state): State<AppState>,
    ValidQuery(window): ValidQuery<WindowQuery>,
) -> Result<Response> {
    Ok(Data::new(service::alerts(&state, &auth.principal, window).await?).into_response())
}

#[utoipa::path(get, path = "/v1/metrics/workflows", tag = "metrics",
    params(("from_time" = Option<DateTime<Utc>>, Query, description = "Window start, inclusive (with to_time; default: the last 30 days)"),
           ("to_time" = Option<DateTime<Utc>>, Query, description = "Window end, exclusive (with from_time; default: now)")),
    responses((status = 200, body = WorkflowMetrics)),
    security(("bearer" = ["workflows:read"])))]
pub async fn get_workflow_metrics(
    auth: Authorized<GetWorkflowMetrics>,
    State(state): State<AppState>,
    ValidQuery(window): ValidQuery<WindowQuery>,
) -> Result<Response> {
    Ok(Data::new(service::workflows(&state, &auth.principal, window).await?).into_response())
}

/// Compact SOC health snapshot, always the last 30 days.
#[utoipa::path(get, path = "/v1/metrics/summary", tag = "metrics",
    responses((status = 200, body = MetricsSummary)),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_metrics_summary(auth: Authorized<GetMetricsSummary>, State(state): State<AppState>) -> Result<Response> {
    Ok(Data::new(service::summary(&state, &auth.principal).await?).into_response())
}
