//! Who is calling: an API key (over REST or MCP), the system itself (background jobs, start-up
//! seeding) or the operator at the command line. Services take a `Principal`, authorize it for
//! their operation, and derive the activity actor from it.

use std::sync::Arc;

use super::KeyIdentity;
use super::audit::{AuthFailureReason, auth_failure};
use crate::activity::Actor;
use crate::error::Error;
use crate::http::context::RequestContext;
use crate::service::Operation;

/// The surface a key came in through; it becomes the activity actor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rest,
    Mcp,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Key { key: Arc<KeyIdentity>, channel: Channel, request: Option<Arc<RequestContext>> },
    /// Background jobs and start-up work: trusted, no scope check.
    System,
    /// The operator at the command line (they hold the database credentials already).
    Cli,
}

impl Principal {
    pub fn rest(key: Arc<KeyIdentity>, request: RequestContext) -> Self {
        Principal::Key { key, channel: Channel::Rest, request: Some(Arc::new(request)) }
    }
    pub fn mcp(key: Arc<KeyIdentity>, request: Option<RequestContext>) -> Self {
        Principal::Key { key, channel: Channel::Mcp, request: request.map(Arc::new) }
    }

    /// The request this call serves (REST, and MCP over HTTP), for audit records.
    pub fn request(&self) -> Option<&RequestContext> {
        match self {
            Principal::Key { request, .. } => request.as_deref(),
            _ => None,
        }
    }

    /// The API key behind the call, if any.
    pub fn key(&self) -> Option<&KeyIdentity> {
        match self {
            Principal::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The key's display prefix (`cai_xxxx`), if any.
    pub fn key_prefix(&self) -> Option<&str> {
        self.key().map(|k| k.key_prefix.as_str())
    }

    /// Agent keys (and every MCP caller) are agents for the approval gate.
    pub fn is_agent(&self) -> bool {
        match self {
            Principal::Key { key, channel, .. } => *channel == Channel::Mcp || key.key_type == super::KeyType::Agent,
            _ => false,
        }
    }

    /// Whether this caller holds any one of `scopes` (system and CLI hold all).
    pub fn has_any_scope(&self, scopes: &[&str]) -> bool {
        match self {
            Principal::Key { key, .. } => scopes.is_empty() || scopes.iter().any(|s| key.has_scope(s)),
            Principal::System | Principal::Cli => true,
        }
    }

    /// The check every operation starts with. A denial is audited (`auth_failure`,
    /// `insufficient_scope`) and answered 403 with the required scopes.
    pub fn authorize<O: Operation>(&self) -> Result<(), Error> {
        self.authorize_scopes(O::SCOPES)
    }

    pub fn authorize_scopes(&self, scopes: &[&str]) -> Result<(), Error> {
        if self.has_any_scope(scopes) {
            return Ok(());
        }
        if let Principal::Key { key, request, .. } = self {
            let fallback = RequestContext::default();
            let request = request.as_deref().unwrap_or(&fallback);
            auth_failure(AuthFailureReason::InsufficientScope, request, Some(&key.key_prefix), Some(&scopes.join(" or ")));
        }
        Err(Error::Forbidden { required: scopes.iter().map(|s| s.to_string()).collect() })
    }

    /// The actor recorded on activity events.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Key { key, channel: Channel::Rest, .. } => Actor::api(&key.key_prefix),
            Principal::Key { key, channel: Channel::Mcp, .. } => Actor::mcp(&key.key_prefix),
            Principal::System | Principal::Cli => Actor::system(),
        }
    }
}
