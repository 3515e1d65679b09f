//! Calseta's MCP transport, "HTTP + SSE" (removed from rmcp): `GET /sse` opens an event stream
//! whose first event (`endpoint`) names `/messages/?session_id=<id>`; the client POSTs JSON-RPC
//! messages there (answered 202) and reads the replies as `message` events on the stream.
//! A session is bound to the key that opened it: a POST authenticated with another key is
//! refused, and since every POST is authenticated afresh, a revoked key stops at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::server::CalsetaMcp;
use crate::auth::Principal;
use crate::error::Error;
use crate::state::AppState;

/// Messages a session buffers each way before a sender waits.
const CHANNEL_DEPTH: usize = 64;
/// Largest `Host` list check input; anything longer is refused.
const MAX_HOST_LEN: usize = 255;

struct Session {
    key_uuid: Uuid,
    to_server: mpsc::Sender<ClientJsonRpcMessage>,
}

#[derive(Clone)]
struct Legacy {
    state: AppState,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    shutdown: CancellationToken,
    allowed_hosts: Arc<Vec<String>>,
}

pub fn router(
    state: AppState,
    shutdown: CancellationToken,
    allowed_hosts: Arc<Vec<String>>,
) -> Router {
    let legacy = Legacy {
        state,
        sessions: Arc::default(),
        shutdown,
        allowed_hosts,
    };
    Router::new()
        .route("/sse", get(open))
        .route("/messages/", post(message))
        .with_state(legacy)
}

/// DNS-rebinding protection, as rmcp applies it to `/mcp`: the `Host` must be one configured.
/// An entry without a port allows every port of that host.
fn host_allowed(request: &Request, allowed: &[String]) -> bool {
    let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    if host.len() > MAX_HOST_LEN {
        return false;
    }
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host.as_str(),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        entry == host || entry.trim_start_matches('[').trim_end_matches(']') == name
    })
}

fn forbidden_host() -> Response {
    Error::Denied {
        code: "FORBIDDEN_HOST",
        message: "The Host header is not allowed for MCP.".into(),
    }
    .into_response()
}

/// Removes the session when its event stream is dropped (client gone or shutdown): dropping the
/// server's inbound sender ends the rmcp service.
struct SessionGuard {
    id: String,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions
            .lock()
            .expect("session map lock")
            .remove(&self.id);
    }
}

async fn open(State(legacy): State<Legacy>, request: Request) -> Response {
    if !host_allowed(&request, &legacy.allowed_hosts) {
        return forbidden_host();
    }
    let Some(key_uuid) = request
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.key())
        .map(|k| k.key_uuid)
    else {
        return Error::Unauthorized.into_response();
    };
    let id = Uuid::new_v4().simple().to_string();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_DEPTH);
    let (to_client, replies) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_DEPTH);
    legacy.sessions.lock().expect("session map lock").insert(
        id.clone(),
        Session {
            key_uuid,
            to_server,
        },
    );

    let handler = CalsetaMcp::new(legacy.state.clone());
    let session_id = id.clone();
    tokio::spawn(async move {
        match handler.serve((to_client, from_client)).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(error) => {
                tracing::debug!(session_id = %session_id, error = %error, "legacy MCP session ended before initialize")
            }
        }
    });

    let guard = SessionGuard {
        id: id.clone(),
        sessions: legacy.sessions.clone(),
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages/?session_id={id}"));
    let messages = replies.map(move |message| {
        let _session = &guard;
        Event::default()
            .event("message")
            .data(serde_json::to_string(&message).unwrap_or_default())
    });
    let stream = futures::stream::once(async move { endpoint })
        .chain(messages)
        .take_until(legacy.shutdown.clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(super::KEEP_ALIVE))
        .into_response()
}

#[derive(Deserialize)]
struct SessionQuery {
    session_id: Option<String>,
}

async fn message(
    State(legacy): State<Legacy>,
    Query(query): Query<SessionQuery>,
    request: Request,
) -> Response {
    if !host_allowed(&request, &legacy.allowed_hosts) {
        return forbidden_host();
    }
    let Some(session_id) = query.session_id.filter(|s| !s.is_empty()) else {
        return Error::bad_request("SESSION_ID_REQUIRED", "session_id is required.")
            .into_response();
    };
    let Some(caller) = request
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.key())
        .map(|k| k.key_uuid)
    else {
        return Error::Unauthorized.into_response();
    };
    let sender = {
        let sessions = legacy.sessions.lock().expect("session map lock");
        match sessions.get(&session_id) {
            None => None,
            Some(session) if session.key_uuid != caller => {
                return Error::Denied {
                    code: "SESSION_KEY_MISMATCH",
                    message: "This MCP session was opened with another API key.".into(),
                }
                .into_response();
            }
            Some(session) => Some(session.to_server.clone()),
        }
    };
    let Some(mut sender) = sender else {
        return Error::NotFound("Could not find session".into()).into_response();
    };
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Error::bad_request("INVALID_BODY", "The request body could not be read.")
                .into_response();
        }
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(_) => {
            return Error::bad_request("INVALID_JSON", "Could not parse message").into_response();
        }
    };
    // The tools and resources find the caller in the request parts, as with streamable HTTP.
    match &mut message {
        ClientJsonRpcMessage::Request(request) => {
            request.request.extensions_mut().insert(parts);
        }
        ClientJsonRpcMessage::Notification(notification) => {
            notification.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    if sender.send(message).await.is_err() {
        return Error::NotFound("Could not find session".into()).into_response();
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
