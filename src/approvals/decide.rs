//! The browser decide page (`GET|POST /v1/approvals/{uuid}/decide`, workflows.md §6.8): no API
//! key; the decide token is the credential. It is compared as a SHA-256 hash in constant time,
//! cannot decide twice (the decision ends `pending`), and dies with expiry and cancellation (the
//! hash is cleared). Pages are self-contained HTML (no scripts, fonts or remote images) under
//! their own strict CSP; every dynamic text is escaped. The token is never logged: request logs
//! carry the path only, and the form posts to the bare path.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::service::{self, Decider, Decision};
use super::store::{self, ApprovalRow};
use crate::db::now;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{ValidPath, unsupported_media_type};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(decide_page, decide_submit))
}

/// The page CSP: no script at all, only this page's inline style, forms back to this origin.
pub const DECIDE_PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#0f172a;color:#e2e8f0}\
main{max-width:560px;margin:48px auto;padding:32px;background:#1e293b;border-radius:12px}\
h1{font-size:20px;margin:0 0 16px}dl{display:grid;grid-template-columns:max-content 1fr;gap:8px 16px;margin:16px 0}\
dt{color:#94a3b8}dd{margin:0;word-break:break-all}.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;\
font-weight:700;text-transform:uppercase;background:#334155}.critical,.high{background:#b91c1c}.medium{background:#b45309}.low{background:#15803d}\
.reason{background:#0f172a;padding:12px;border-radius:8px;white-space:pre-wrap}form{display:flex;gap:12px;margin-top:24px}\
button{flex:1;padding:12px;border:0;border-radius:8px;font-size:16px;font-weight:600;cursor:pointer;color:#fff}\
.approve{background:#15803d}.reject{background:#b91c1c}p.msg{font-size:18px}";

const LOGO: &str = "<svg width=\"28\" height=\"28\" viewBox=\"0 0 28 28\" aria-hidden=\"true\"><rect width=\"28\" height=\"28\" rx=\"6\" fill=\"#38bdf8\"/>\
<path d=\"M8 14l4 4 8-8\" stroke=\"#0f172a\" stroke-width=\"3\" fill=\"none\"/></svg>";

fn escape(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

/// A whole page around `content` (already escaped), with its status and CSP.
fn page(status: StatusCode, title: &str, content: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{title} · Calseta</title><style>{STYLE}</style></head>\
         <body><main><div>{LOGO}</div>{content}</main></body></html>",
        title = escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DECIDE_PAGE_CSP));
    response
}

fn message(status: StatusCode, text: &str) -> Response {
    page(status, "Workflow approval", &format!("<h1>Workflow approval</h1><p class=\"msg\" id=\"message\">{}</p>", escape(text)))
}

fn missing(field: &str) -> Error {
    Error::Validation(vec![FieldError::new("missing", vec![serde_json::json!(if field == "token" { "query" } else { "body" }), serde_json::json!(field)], "Field required")])
}

/// The request and whether `token` opens it; `Err` is the page to answer with.
async fn open(state: &AppState, uuid: Uuid, token: &str) -> std::result::Result<ApprovalRow, Response> {
    let row = match store::find(&state.db, uuid).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(message(StatusCode::NOT_FOUND, "Approval request not found.")),
        Err(e) => return Err(Error::from(e).into_response()),
    };
    let given = crate::workflows::hash_decide_token(token);
    let valid = row.decide_token_hash.as_deref().is_some_and(|stored| bool::from(stored.as_bytes().ct_eq(given.as_bytes())));
    if !valid {
        return Err(message(StatusCode::FORBIDDEN, "Invalid approval token."));
    }
    Ok(row)
}

/// Persists the expiry of a pending request past its deadline (the page shows it at once).
async fn expire(state: &AppState, row: &ApprovalRow) -> Result<Response> {
    let mut tx = state.db.begin().await?;
    let expired = store::expire(&mut tx, Some(&[row.id])).await?;
    service::audit_expired(&mut tx, &expired).await?;
    tx.commit().await?;
    Ok(message(StatusCode::OK, "This approval request has expired."))
}

#[derive(Debug, Deserialize)]
pub struct DecideQuery {
    #[serde(default)]
    token: Option<String>,
}

#[utoipa::path(get, path = "/v1/approvals/{approval_uuid}/decide", tag = "approvals",
    params(("approval_uuid" = Uuid, Path), ("token" = String, Query, description = "The decide token from the notification")),
    responses((status = 200, description = "HTML decide page"), (status = 403, description = "Invalid token (HTML)"),
              (status = 404, description = "Unknown request (HTML)"), (status = 422, description = "Token missing")))]
pub async fn decide_page(State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>, query: axum::extract::RawQuery) -> Result<Response> {
    let query: DecideQuery = serde_urlencoded::from_str(query.0.as_deref().unwrap_or("")).map_err(|_| missing("token"))?;
    let token = query.token.ok_or_else(|| missing("token"))?;
    let row = match open(&state, uuid, &token).await {
        Ok(row) => row,
        Err(page) => return Ok(page),
    };
    if row.status != "pending" {
        return Ok(message(StatusCode::OK, &format!("This approval request has already been {}.", row.status)));
    }
    if row.is_expired_pending(now()) {
        return expire(&state, &row).await;
    }
    Ok(form_page(&row, &token))
}

fn form_page(row: &ApprovalRow, token: &str) -> Response {
    let context = row.trigger_context.as_ref().map(|c| c.0.clone()).unwrap_or_default();
    let text = |v: &serde_json::Value| escape(v.as_str().unwrap_or(""));
    let risk = row.risk_level.as_deref().unwrap_or("medium");
    let content = format!(
        "<h1><span class=\"pill {risk_class}\">{risk_upper} risk</span> Workflow approval</h1>\
         <dl><dt>Workflow</dt><dd id=\"workflow\">{workflow}</dd><dt>Indicator type</dt><dd>{itype}</dd>\
         <dt>Indicator</dt><dd id=\"indicator\">{ivalue}</dd><dt>Confidence</dt><dd>{confidence}%</dd><dt>Risk level</dt><dd>{risk}</dd>\
         <dt>Expires</dt><dd>{expires}</dd></dl><div>Agent reason</div><div class=\"reason\" id=\"reason\">{reason}</div>\
         <form method=\"post\" action=\"/v1/approvals/{uuid}/decide\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button class=\"approve\" id=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button class=\"reject\" id=\"reject\" type=\"submit\" name=\"decision\" value=\"reject\">Reject</button></form>",
        risk_class = escape(risk),
        risk_upper = escape(&risk.to_uppercase()),
        workflow = escape(row.workflow_name.as_deref().unwrap_or("")),
        itype = text(&context["indicator_type"]),
        ivalue = text(&context["indicator_value"]),
        confidence = (row.confidence * 100.0).round(),
        risk = escape(risk),
        expires = row.expires_at.format("%Y-%m-%d %H:%M UTC"),
        reason = escape(&row.reason),
        uuid = row.uuid,
        token = escape(token),
    );
    page(StatusCode::OK, "Workflow approval", &content)
}

#[derive(Debug, Deserialize)]
struct DecideForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    decision: Option<String>,
}

#[utoipa::path(post, path = "/v1/approvals/{approval_uuid}/decide", tag = "approvals",
    params(("approval_uuid" = Uuid, Path)),
    request_body(content_type = "application/x-www-form-urlencoded", description = "Fields `token` and `decision` (approve|reject)"),
    responses((status = 200, description = "HTML outcome page"), (status = 400, description = "Invalid decision (HTML)"),
              (status = 403, description = "Invalid token (HTML)"), (status = 422, description = "Field missing")))]
pub async fn decide_submit(State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(unsupported_media_type());
    }
    let form: DecideForm = serde_urlencoded::from_bytes(&body).map_err(|_| missing("token"))?;
    let token = form.token.ok_or_else(|| missing("token"))?;
    let decision = form.decision.ok_or_else(|| missing("decision"))?;
    let row = match open(&state, uuid, &token).await {
        Ok(row) => row,
        Err(page) => return Ok(page),
    };
    let decision = match decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => return Ok(message(StatusCode::BAD_REQUEST, "Invalid decision. Must be 'approve' or 'reject'.")),
    };
    if row.status != "pending" {
        return Ok(message(StatusCode::OK, "This approval request has already been decided."));
    }
    if row.is_expired_pending(now()) {
        return expire(&state, &row).await;
    }
    match service::decide(&state, uuid, decision, Decider::Browser).await {
        Ok(_) => Ok(message(
            StatusCode::OK,
            match decision {
                Decision::Approve => "Workflow approved. Execution has been queued.",
                Decision::Reject => "Workflow rejected. No execution will occur.",
            },
        )),
        // Someone else decided (or the deadline passed) between the read and the update.
        Err(Error::Client { code: "APPROVAL_ALREADY_DECIDED", .. }) => Ok(message(StatusCode::OK, "This approval request has already been decided.")),
        Err(Error::Client { code: "APPROVAL_EXPIRED", .. }) => expire(&state, &row).await,
        Err(e) => Err(e),
    }
}
