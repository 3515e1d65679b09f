//! Name resolution for the egress gateway. Every outbound connection to a host name gets its
//! addresses from exactly one resolution, checked against the policy in the same step; the HTTP
//! client connects to those addresses and no others.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::policy::{Policy, normalize_name};

/// Turns a host name into addresses. The system resolver in production; tests substitute one
/// that answers what they need (e.g. a DNS-rebinding attacker).
pub trait HostResolver: Send + Sync {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` on a blocking thread, via tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let host = host.to_string();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

/// Resolves `name` once and checks every answer; one forbidden answer refuses the whole name
/// (filtering would let an attacker mix a public decoy with an internal target). DNS failure,
/// an empty answer and a slow answer all refuse: the gateway fails closed. Returns the block
/// reason on refusal.
pub(crate) async fn resolve_vetted(
    policy: &Policy,
    resolver: &dyn HostResolver,
    name: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let name = normalize_name(name);
    let allowlisted = policy.check_hostname(&name, port)?;
    let answer = tokio::time::timeout(policy.connect_timeout, resolver.resolve(&name, port)).await;
    let addrs = match answer {
        Err(_) => {
            return Err(format!("DNS resolution failed for {name}: no answer within {:?}", policy.connect_timeout));
        }
        Ok(Err(e)) => return Err(format!("DNS resolution failed for {name}: {e}")),
        Ok(Ok(addrs)) => addrs,
    };
    if addrs.is_empty() {
        return Err(format!("{name} resolved to no addresses"));
    }
    for addr in &addrs {
        policy.check_address(addr.ip(), port, allowlisted)?;
    }
    Ok(addrs.into_iter().map(|a| SocketAddr::new(a.ip(), port)).collect())
}

/// A resolution refused by the policy. Travels through reqwest/hyper as the source of the
/// connect error, where `send` finds it again to report `EgressError::Blocked` with its reason.
#[derive(Debug)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The resolver installed in the reqwest client that serves connections to one port.
///
/// reqwest hands a resolver only the host name, yet the allow-list can be port-specific
/// (`127.0.0.1:8443`), so each port gets its own client whose resolver knows that port. The
/// connector uses exactly the addresses returned here (hyper sets the URL's port on them, which is
/// this port), so what was vetted is what gets connected: no second lookup can slip in a
/// rebound address.
pub(crate) struct PortResolver {
    pub policy: Arc<Policy>,
    pub resolver: Arc<dyn HostResolver>,
    pub port: u16,
}

impl reqwest::dns::Resolve for PortResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let resolver = self.resolver.clone();
        let port = self.port;
        let name = name.as_str().to_string();
        Box::pin(async move {
            // hyper skips the resolver for IP literals; should one still arrive, it is checked
            // as an address rather than looked up.
            let vetted = match name.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => policy.check_address(ip, port, false).map(|()| vec![SocketAddr::new(ip, port)]),
                Err(_) => resolve_vetted(&policy, resolver.as_ref(), &name, port).await,
            };
            match vetted {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(reason) => Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}
