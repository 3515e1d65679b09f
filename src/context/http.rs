//! `/v1/context-documents`: list (summaries), create (JSON, or a multipart upload converted to
//! text), get, patch, delete (operations in `service`).

use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::service::{
    self, ContextDocumentCreate, ContextDocumentUpdate, CreateContextDocument, DeleteContextDocument, DocumentListQuery,
    GetContextDocument, ListContextDocuments, PatchContextDocument,
};
pub use super::service::{ContextDocumentResponse, ContextDocumentSummary};
use super::upload::{self, ContextDocumentUploadForm};
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_context_documents, create_context_document))
        .routes(routes!(get_context_document, update_context_document, delete_context_document))
}

#[utoipa::path(get, path = "/v1/context-documents", tag = "context-documents",
    params(("document_type" = Option<String>, Query, description = "Comma-separated document types"),
           ("is_global" = Option<bool>, Query),
           ("sort_by" = Option<String>, Query, description = "title, document_type, updated_at or created_at (default)"),
           ("sort_order" = Option<String>, Query, description = "asc or desc (default)"),
           ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of document summaries (no content)"),
              (status = 400, description = "Invalid sort_by / sort_order")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_context_documents(
    auth: Authorized<ListContextDocuments>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<DocumentListQuery>,
) -> Result<Response> {
    let (data, total) = service::list(&state, &auth.principal, pagination, query).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/context-documents", tag = "context-documents", request_body(content((ContextDocumentCreate = "application/json"), (ContextDocumentUploadForm = "multipart/form-data"))),
    responses((status = 201, body = ContextDocumentResponse), (status = 413, description = "Body over the request limit, or converted text over it"),
              (status = 422, description = "VALIDATION_ERROR, or UNSUPPORTED_FORMAT for a file that cannot be converted")), security(("bearer" = ["alerts:write"])))]
pub async fn create_context_document(
    auth: Authorized<CreateContextDocument>,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response> {
    let document = if upload::is_multipart(&request) {
        let form = upload::read_form(request, state.settings.max_json_depth).await?;
        service::create_from_upload(&state, &auth.principal, form).await?
    } else {
        let JsonBody(body) = JsonBody::<ContextDocumentCreate>::from_request(request, &state).await?;
        service::create(&state, &auth.principal, body).await?
    };
    Ok((StatusCode::CREATED, Data::new(document)).into_response())
}

#[utoipa::path(get, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    responses((status = 200, body = ContextDocumentResponse), (status = 404, description = "Context document not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_context_document(
    auth: Authorized<GetContextDocument>,
    State(state): State<AppState>,
    ValidPath(doc_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, doc_uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    request_body = ContextDocumentUpdate,
    responses((status = 200, body = ContextDocumentResponse), (status = 404, description = "Context document not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn update_context_document(
    auth: Authorized<PatchContextDocument>,
    State(state): State<AppState>,
    ValidPath(doc_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ContextDocumentUpdate>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, doc_uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/context-documents/{doc_uuid}", tag = "context-documents", params(("doc_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Context document not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn delete_context_document(
    auth: Authorized<DeleteContextDocument>,
    State(state): State<AppState>,
    ValidPath(doc_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    service::delete(&state, &auth.principal, doc_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
