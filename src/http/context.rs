//! Per-request facts the middleware establishes once and everything downstream reads: the request
//! id, the client IP (proxy-aware), method and path (never the query string).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: String,
    pub method: String,
    pub path: String,
}

impl Default for RequestContext {
    fn default() -> Self {
        Self { request_id: String::new(), client_ip: "unknown".into(), method: String::new(), path: String::new() }
    }
}

/// A caller-supplied request id is kept only when it is short and made of safe characters, so it
/// cannot forge log lines or headers; otherwise a fresh UUID is used.
pub fn request_id_from(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The client address: with `trusted_hops` > 0 the entry that many hops from the right of
/// `X-Forwarded-For` (the address the outermost trusted proxy saw); otherwise the socket peer, so
/// a spoofed header is ignored when no proxy is declared.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_hops: usize) -> String {
    if trusted_hops > 0 {
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !hops.is_empty() {
            let index = hops.len().saturating_sub(trusted_hops);
            if let Ok(ip) = hops[index.min(hops.len() - 1)].parse::<IpAddr>() {
                return ip.to_string();
            }
        }
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_only_with_trusted_hops() {
        let peer: SocketAddr = "10.0.0.9:1234".parse().unwrap();
        assert_eq!(client_ip(&xff("1.2.3.4"), Some(peer), 0), "10.0.0.9");
        assert_eq!(client_ip(&xff("6.6.6.6, 1.2.3.4"), Some(peer), 1), "1.2.3.4");
        assert_eq!(client_ip(&xff("6.6.6.6, 1.2.3.4, 10.0.0.2"), Some(peer), 2), "1.2.3.4");
        assert_eq!(client_ip(&xff("not-an-ip"), Some(peer), 1), "10.0.0.9");
        assert_eq!(client_ip(&HeaderMap::new(), None, 1), "unknown");
    }

    #[test]
    fn request_ids_are_sanitized() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id_from(&h), "abc-123");
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_ne!(request_id_from(&h), "has space");
    }
}
