//! The auth-failure audit event: one function, one structured `warn` event per failure, on the
//! `calseta::audit` target. Fields are machine-parseable with `LOG_FORMAT=json`. Only the 8-char
//! display prefix of a presented key is ever logged, never the key or the header.

use crate::http::context::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailureReason {
    MissingHeader,
    InvalidFormat,
    InvalidKey,
    KeyExpired,
    InsufficientScope,
    RateLimited,
    /// A valid key used from an address outside its `allowed_cidrs`.
    IpNotAllowed,
}

impl AuthFailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::InvalidFormat => "invalid_format",
            Self::InvalidKey => "invalid_key",
            Self::KeyExpired => "key_expired",
            Self::InsufficientScope => "insufficient_scope",
            Self::RateLimited => "rate_limited",
            Self::IpNotAllowed => "ip_not_allowed",
        }
    }
}

pub fn auth_failure(
    reason: AuthFailureReason,
    request: &RequestContext,
    key_prefix: Option<&str>,
    required_scope: Option<&str>,
) {
    tracing::warn!(
        target: "calseta::audit",
        event = "auth_failure",
        reason = reason.as_str(),
        method = %request.method,
        path = %request.path,
        client_ip = %request.client_ip,
        request_id = %request.request_id,
        key_prefix = key_prefix,
        required_scope = required_scope,
        "authentication failed"
    );
}
