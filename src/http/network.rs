//! Network controls (issue 15 item 5), all off by default: a client-address allow-list
//! (`IP_ALLOWLIST`), a `Host` header allow-list (`TRUSTED_HOSTS`), and a redirect to https for
//! deployments behind a TLS proxy (`HTTPS_REDIRECT`), which believes `X-Forwarded-Proto` only
//! from a socket peer in `TRUSTED_PROXIES`. The client address is the one the request context
//! resolved through `TRUSTED_PROXY_COUNT`. Health probes are exempt: orchestrators probe by pod
//! address, over plain http, from node addresses.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::context::RequestContext;
use crate::config::Settings;
use crate::error::Error;

#[derive(Debug, Default)]
pub struct NetworkPolicy {
    allowed_clients: Vec<IpNet>,
    trusted_hosts: Vec<String>,
    https_redirect: bool,
    trusted_proxies: Vec<IpNet>,
}

impl NetworkPolicy {
    /// Parses the settings; an unreadable entry is an error naming the setting and the entry.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let hosts: Vec<String> = list(&settings.trusted_hosts).map(str::to_ascii_lowercase).collect();
        if let Some(bad) = hosts.iter().find(|h| h.contains('/') || h.contains(':') || (h.contains('*') && !h.starts_with("*.") && *h != "*")) {
            return Err(format!("TRUSTED_HOSTS: '{bad}' is not a host name or *.domain pattern"));
        }
        Ok(NetworkPolicy {
            allowed_clients: networks("IP_ALLOWLIST", &settings.ip_allowlist)?,
            trusted_hosts: hosts,
            https_redirect: settings.https_redirect,
            trusted_proxies: networks("TRUSTED_PROXIES", &settings.trusted_proxies)?,
        })
    }

    fn is_off(&self) -> bool {
        self.allowed_clients.is_empty() && self.trusted_hosts.is_empty() && !self.https_redirect
    }

    fn client_allowed(&self, client_ip: &str) -> bool {
        self.allowed_clients.is_empty() || address_in(&self.allowed_clients, client_ip)
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        if self.trusted_hosts.is_empty() {
            return true;
        }
        let Some(host) = host.map(strip_port) else { return false };
        let host = host.to_ascii_lowercase();
        self.trusted_hosts.iter().any(|pattern| match pattern.strip_prefix("*.") {
            _ if pattern == "*" => true,
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == *pattern,
        })
    }

    /// Whether the request reached the proxy over https: only a trusted peer's header counts
    /// (the last value: the one the nearest proxy wrote); this listener itself speaks plain http.
    fn is_https(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        let trusted = peer.is_some_and(|ip| address_in(&self.trusted_proxies, &ip.to_string()));
        trusted
            && headers
                .get_all("x-forwarded-proto")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|v| !v.is_empty())
                .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// CIDRs or single addresses (a bare address is a /32 or /128).
fn networks(setting: &str, text: &str) -> Result<Vec<IpNet>, String> {
    list(text)
        .map(|entry| parse_network(entry).ok_or_else(|| format!("{setting}: '{entry}' is not an IP address or CIDR")))
        .collect()
}

/// Whether the resolved client address (`RequestContext::client_ip`) lies in one of `networks`;
/// an unreadable address ("unknown") lies in none. Shared by `IP_ALLOWLIST` and the per-key
/// `allowed_cidrs`, so both read addresses the same way.
pub fn address_in(networks: &[IpNet], client_ip: &str) -> bool {
    client_ip.parse::<IpAddr>().is_ok_and(|ip| networks.iter().any(|n| n.contains(&canonical(ip))))
}

/// One allow-list entry: a CIDR or a single address (a /32 or /128), host bits cleared.
pub fn parse_network(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)).ok().map(|n| n.trunc())
}

/// An IPv4 client seen through a dual-stack socket (`::ffff:10.0.0.1`) matches IPv4 entries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn is_probe(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/")
}

/// The middleware: host, then client address, then scheme.
pub async fn enforce(State(policy): State<Arc<NetworkPolicy>>, request: Request, next: Next) -> Response {
    if policy.is_off() || is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().host());
    if !policy.host_allowed(host) {
        crate::observability::network_refused("host");
        tracing::warn!(event = "network_refused", control = "trusted_hosts", "request refused: Host header not in TRUSTED_HOSTS");
        return Error::bad_request("INVALID_HOST", "The Host header is not one this server answers to.").into_response();
    }
    let client_ip = request.extensions().get::<RequestContext>().map(|c| c.client_ip.clone()).unwrap_or_default();
    if !policy.client_allowed(&client_ip) {
        crate::observability::network_refused("ip");
        tracing::warn!(event = "network_refused", control = "ip_allowlist", client_ip = %client_ip, "request refused: client address not in IP_ALLOWLIST");
        return Error::client(StatusCode::FORBIDDEN, "IP_NOT_ALLOWED", "Requests from this address are not allowed.").into_response();
    }
    let peer = request.extensions().get::<ConnectInfo<super::listener::Peer>>().map(|c| c.0.0.ip());
    if policy.https_redirect && !policy.is_https(request.headers(), peer) {
        let target = format!("https://{}{}", host.unwrap_or_default(), request.uri().path_and_query().map_or("/", |p| p.as_str()));
        if let (Some(_), Ok(location)) = (host, HeaderValue::from_str(&target)) {
            return (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response();
        }
        return Error::bad_request("HTTPS_REQUIRED", "This server is served over https only.").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str, hosts: &str, proxies: &str) -> NetworkPolicy {
        let settings = Settings {
            ip_allowlist: allow.into(),
            trusted_hosts: hosts.into(),
            trusted_proxies: proxies.into(),
            https_redirect: true,
            ..Settings::default()
        };
        NetworkPolicy::from_settings(&settings).unwrap()
    }

    #[test]
    fn client_addresses() {
        let p = policy("10.0.0.0/8, 192.168.1.7, 2001:db8::/32", "", "");
        assert!(p.client_allowed("10.1.2.3"));
        assert!(p.client_allowed("192.168.1.7"));
        assert!(!p.client_allowed("192.168.1.8"));
        assert!(p.client_allowed("2001:db8::1"));
        assert!(p.client_allowed("::ffff:10.9.9.9"));
        assert!(!p.client_allowed("unknown"));
        assert!(policy("", "", "").client_allowed("anything"));
    }

    #[test]
    fn hosts() {
        let p = policy("", "api.example.com, *.corp.example", "");
        assert!(p.host_allowed(Some("api.example.com")));
        assert!(p.host_allowed(Some("API.example.com:8443")));
        assert!(p.host_allowed(Some("soc.corp.example")));
        assert!(!p.host_allowed(Some("corp.example")));
        assert!(!p.host_allowed(Some("evil.com")));
        assert!(!p.host_allowed(Some("api.example.com.evil.com")));
        assert!(!p.host_allowed(None));
        assert!(policy("", "*", "").host_allowed(Some("[::1]:80")));
    }

    #[test]
    fn forwarded_proto_only_from_trusted_proxies() {
        let p = policy("", "", "10.0.0.5");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(p.is_https(&h, Some("10.0.0.5".parse().unwrap())));
        assert!(!p.is_https(&h, Some("10.0.0.6".parse().unwrap())));
        assert!(!p.is_https(&HeaderMap::new(), Some("10.0.0.5".parse().unwrap())));
        h.insert("x-forwarded-proto", "https, http".parse().unwrap());
        assert!(!p.is_https(&h, Some("10.0.0.5".parse().unwrap())));
    }

    #[test]
    fn bad_entries_name_the_setting() {
        let settings = Settings { ip_allowlist: "10.0.0.0/33".into(), ..Settings::default() };
        assert!(NetworkPolicy::from_settings(&settings).unwrap_err().contains("IP_ALLOWLIST"));
        let settings = Settings { trusted_hosts: "a*.b".into(), ..Settings::default() };
        assert!(NetworkPolicy::from_settings(&settings).unwrap_err().contains("TRUSTED_HOSTS"));
    }
}
