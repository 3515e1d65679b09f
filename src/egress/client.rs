//! The HTTP side of the gateway: one reqwest client per destination port (each with its own
//! vetting resolver, see [`PortResolver`]), request building, bounded response reading and error
//! classification.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::policy::Policy;
use super::resolver::{HostResolver, PortResolver, Refused};
use super::{Body, EgressError, Response};

/// Clients kept at once. Destinations use a handful of ports (443, 80, a few vendor ports); the
/// bound stops URLs that cycle through ports from growing the cache without limit.
const MAX_CLIENTS: usize = 64;

pub(crate) struct Clients {
    policy: Arc<Policy>,
    resolver: Arc<dyn HostResolver>,
    by_port: Mutex<PortClients>,
}

#[derive(Default)]
struct PortClients {
    clients: HashMap<u16, (reqwest::Client, u64)>,
    tick: u64,
}

impl Clients {
    pub(crate) fn new(policy: Arc<Policy>, resolver: Arc<dyn HostResolver>) -> Clients {
        Clients { policy, resolver, by_port: Mutex::new(PortClients::default()) }
    }

    /// The client for connections to `port`, built on first use; least recently used evicted
    /// beyond [`MAX_CLIENTS`] (its pooled connections close when in-flight requests finish).
    pub(crate) fn for_port(&self, port: u16) -> Result<reqwest::Client, EgressError> {
        let mut cache = self.by_port.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.tick += 1;
        let tick = cache.tick;
        if let Some((client, last_used)) = cache.clients.get_mut(&port) {
            *last_used = tick;
            return Ok(client.clone());
        }
        let client = self.build(port)?;
        if cache.clients.len() >= MAX_CLIENTS
            && let Some(oldest) = cache.clients.iter().min_by_key(|(_, (_, used))| *used).map(|(p, _)| *p)
        {
            cache.clients.remove(&oldest);
        }
        cache.clients.insert(port, (client.clone(), tick));
        Ok(client)
    }

    fn build(&self, port: u16) -> Result<reqwest::Client, EgressError> {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(PortResolver { policy: self.policy.clone(), resolver: self.resolver.clone(), port }))
            // A redirect is a new destination chosen by the remote side; callers get the 3xx.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, out of the policy's reach.
            .no_proxy()
            .referer(false)
            .connect_timeout(self.policy.connect_timeout)
            .user_agent(concat!("calseta/", env!("CARGO_PKG_VERSION")))
            .tls_backend_rustls()
            .build()
            .map_err(|e| EgressError::Transport(format!("building the HTTP client: {}", error_chain(&e))))
    }
}

/// A request whose URL passed the policy; the parsed URL is what gets sent (no second parse).
pub(crate) struct Outbound {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// Sends a vetted request, bounded by `total` and the size cap.
pub(crate) async fn send_vetted(
    policy: &Policy,
    client: reqwest::Client,
    request: Outbound,
    total: Duration,
) -> Result<Response, EgressError> {
    let started = Instant::now();
    let max_bytes = policy.max_response_bytes;
    let connect_timeout = policy.connect_timeout;
    let exchange = async move {
        let builder = client.request(request.method, request.url).headers(header_map(&request.headers)?);
        let builder = match request.body {
            Body::Empty => builder,
            Body::Json(value) => {
                let bytes = serde_json::to_vec(&value)
                    .map_err(|e| EgressError::Transport(format!("encoding the JSON body: {e}")))?;
                with_default_content_type(builder, &request.headers, "application/json").body(bytes)
            }
            Body::Form(pairs) => {
                let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
                with_default_content_type(builder, &request.headers, "application/x-www-form-urlencoded").body(encoded)
            }
            Body::Bytes(bytes) => builder.body(bytes),
        };
        let mut response = builder.send().await.map_err(|e| classify(e, connect_timeout))?;
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(EgressError::TooLarge(max_bytes));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, connect_timeout))? {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(EgressError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body: body.freeze(), elapsed: started.elapsed() })
    };
    // One deadline over connect, send, headers and the whole body: a server dripping a byte at a
    // time cannot keep the request alive past it.
    match tokio::time::timeout(total, exchange).await {
        Ok(result) => result,
        Err(_) => Err(EgressError::Timeout(total)),
    }
}

/// Header names and values, validated. The message names the header but never repeats its
/// value (values carry credentials).
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, EgressError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| EgressError::Transport(format!("invalid header name: {name:?}")))?;
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| EgressError::Transport(format!("invalid value for header {name}")))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn with_default_content_type(
    builder: reqwest::RequestBuilder,
    headers: &[(String, String)],
    content_type: &'static str,
) -> reqwest::RequestBuilder {
    if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE.as_str())) {
        builder
    } else {
        builder.header(CONTENT_TYPE, content_type)
    }
}

/// A reqwest failure as an `EgressError`: the policy's refusal from inside the resolver comes
/// back as `Blocked` with its reason; the URL is left out of transport messages (query strings
/// can carry API keys).
fn classify(error: reqwest::Error, connect_timeout: Duration) -> EgressError {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return EgressError::Blocked(refused.0.clone());
        }
        source = cause.source();
    }
    // The overall deadline is enforced outside reqwest, so a reqwest timeout is the connect one.
    if error.is_timeout() {
        return EgressError::Timeout(connect_timeout);
    }
    EgressError::Transport(error_chain(&error.without_url()))
}

/// An error and its causes on one line; reqwest's own message alone ("error sending request")
/// hides the reason (refused, reset, certificate).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
