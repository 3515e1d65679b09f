//! The egress gateway: the only way this program makes outbound HTTP.
//!
//! Every outbound request (enrichment providers, agent webhooks, notifiers, workflow `ctx.http`)
//! goes through [`Egress::send`], which
//! * accepts only `http`/`https` URLs without credentials (`https` only when required),
//! * refuses internal names (`localhost`, `.internal`, `.local`, ...) and cloud metadata names,
//! * resolves a host name once, refuses it when any answer is not globally routable (loopback,
//!   private, link-local, CGNAT, benchmarking, documentation, multicast, reserved, IPv6 ULA/
//!   site-local, and IPv6 forms that embed such an IPv4: mapped, compatible, NAT64, 6to4, Teredo)
//!   or when resolution fails, and connects to exactly the addresses it checked,
//! * never follows redirects (a 3xx comes back as the response),
//! * bounds connect time, total time and response size.
//!
//! The operator's allow-list (`SSRF_ALLOWED_HOSTS`) opens chosen internal hosts, addresses,
//! networks and ports. Cloud metadata names and addresses are never reachable, allow-listed or
//! not: Calseta let an allow-listed name skip the metadata rule ([QUIRK], security-and-config.md
//! §10); this gateway does not.

mod client;
mod policy;
mod resolver;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use policy::{AllowEntry, AllowList, AllowTarget, Policy, Target, TargetHost, is_metadata_ip, non_global_reason};
pub use resolver::{HostResolver, SystemResolver};

/// Handle on the gateway; cheap to clone.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Arc<Policy>,
    resolver: Arc<dyn HostResolver>,
    clients: client::Clients,
}

/// An outbound request. `timeout` is the caller's bound on the whole exchange; the policy's
/// maximum caps it (zero means "the policy's maximum").
#[derive(Clone, Debug)]
pub struct Request {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub timeout: Duration,
}

/// A request body. `Json` and `Form` set `Content-Type` unless the request's headers already do.
#[derive(Clone, Debug)]
pub enum Body {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    /// Sent as given (workflow `ctx.http` bodies); the caller's headers say what it is.
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// In received order; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    /// From the start of `send` to the last body byte.
    pub elapsed: Duration,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// Refused by the policy; the text says which rule, e.g. `Blocked loopback IP: 127.0.0.1`.
    #[error("URL blocked by SSRF protection: {0}")]
    Blocked(String),
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("response body exceeds {0} bytes")]
    TooLarge(u64),
    /// Connection refused or reset, TLS failure, malformed header, ...
    #[error("{0}")]
    Transport(String),
    /// The gateway's settings are unusable (e.g. an unreadable `SSRF_ALLOWED_HOSTS` entry).
    #[error("invalid egress configuration: {0}")]
    Config(String),
}

impl Egress {
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Egress, EgressError> {
        Egress::with_resolver(Policy::from_settings(settings)?, Arc::new(SystemResolver))
    }

    /// A gateway resolving names through `resolver` (tests: DNS rebinding, failing DNS).
    pub fn with_resolver(policy: Policy, resolver: Arc<dyn HostResolver>) -> Result<Egress, EgressError> {
        // reqwest is built without a bundled crypto provider; ring is the one this program uses
        // (the binary installs it at start-up too). An already installed provider is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let clients = client::Clients::new(policy.clone(), resolver.clone());
        Ok(Egress { inner: Arc::new(Inner { policy, resolver, clients }) })
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Save-time vetting of a URL template (it may contain `{{ ... }}` placeholders). Checks what
    /// is knowable now: the scheme, credentials, and, when scheme and host are literal, the host
    /// rules including a DNS lookup (failing closed). A templated scheme or host
    /// (`{{auth.base_url}}/x`, `https://{{auth.domain}}/x`) defers the host checks to send time.
    pub async fn vet_for_save(&self, url_template: &str) -> Result<(), EgressError> {
        let Some(literal) = policy::url_to_vet_at_save(&self.inner.policy, url_template)? else {
            return Ok(());
        };
        let target = self.inner.policy.check_url(&literal)?;
        if let TargetHost::Name { name, .. } = &target.host {
            resolver::resolve_vetted(&self.inner.policy, self.inner.resolver.as_ref(), name, target.port)
                .await
                .map_err(EgressError::Blocked)?;
        }
        Ok(())
    }

    /// Sends a request: checks the URL again, then connects only to checked addresses (an IP
    /// literal is checked here; a host name is resolved once, and checked, inside the connection
    /// setup, see `resolver::PortResolver`).
    pub async fn send(&self, request: Request) -> Result<Response, EgressError> {
        let policy = &self.inner.policy;
        let Request { method, url, mut headers, body, timeout } = request;
        let target = policy.check_url(&url)?;
        let client = self.inner.clients.for_port(target.port)?;
        // With traces on: a client span, and its `traceparent` for the receiver.
        let span = crate::observability::otel::outbound_span(&method, &target.url, &mut headers);
        let outbound = client::Outbound { method, url: target.url, headers, body };
        let started = std::time::Instant::now();
        let exchange = client::send_vetted(policy, client, outbound, policy.effective_timeout(timeout));
        let sent = tracing::Instrument::instrument(exchange, span.clone()).await;
        crate::observability::otel::outbound_result(&span, sent.as_ref().ok().map(|response| response.status));
        crate::observability::egress(match &sent {
            Ok(_) => "ok",
            Err(EgressError::Blocked(_)) => "blocked",
            Err(EgressError::Timeout(_)) => "timeout",
            Err(_) => "error",
        }, started.elapsed());
        sent
    }
}
