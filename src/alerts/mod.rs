//! Alerts: the normalized alert records, their lifecycle and their REST API.

pub mod http;
pub mod model;
pub mod query;
pub mod store;

use crate::db::Db;
use model::ContextDocumentResponse;
use store::AlertRow;

/// The context documents that apply to `alert`, in the order of agents-mcp-metrics.md §2.3
/// (global documents by `document_type`, then targeted ones whose rules match). Used by the
/// alert detail view, its `meta.context_documents_applied` and `GET /v1/alerts/{uuid}/context`.
pub async fn applicable_context_documents(db: &Db, alert: &AlertRow) -> crate::error::Result<Vec<ContextDocumentResponse>> {
    let facts = crate::context::targeting::AlertFacts {
        source_name: &alert.source_name,
        severity: &alert.severity,
        tags: &alert.tags.0,
    };
    let documents = crate::context::applicable_documents(db, &facts).await?;
    Ok(documents.into_iter().map(ContextDocumentResponse::from).collect())
}
