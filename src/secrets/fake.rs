//! A recording HTTP server on loopback for the credential-chain tests: every request is kept,
//! and answered by the test's function of (method, path).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: String,
}

type Answer = Arc<dyn Fn(&Method, &str) -> (StatusCode, String) + Send + Sync>;

#[derive(Clone)]
pub struct Fake {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub async fn start(answer: impl Fn(&Method, &str) -> (StatusCode, String) + Send + Sync + 'static) -> Fake {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state: (Arc<Mutex<Vec<Seen>>>, Answer) = (seen.clone(), Arc::new(answer));
        let app = Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(State((seen, answer)): State<(Arc<Mutex<Vec<Seen>>>, Answer)>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let target = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let (status, text) = answer(&parts.method, parts.uri.path());
    seen.lock().unwrap().push(Seen { method: parts.method, target, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() });
    (status, text).into_response()
}
