//! The `Auth` extractor: the principal the auth middleware resolved, or the 401 it owes. Handlers
//! then call `auth.require(&[...])` for their scope, which answers 403 and audits the denial.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::audit::{AuthFailureReason, auth_failure};
use super::{AuthOutcome, KeyIdentity};
use crate::error::Error;
use crate::http::context::RequestContext;

pub struct Auth {
    pub principal: Arc<KeyIdentity>,
    request: RequestContext,
}

impl std::ops::Deref for Auth {
    type Target = KeyIdentity;
    fn deref(&self) -> &KeyIdentity {
        &self.principal
    }
}

impl Auth {
    /// The service layer's view of this caller (a key over REST).
    pub fn into_principal(self) -> super::Principal {
        super::Principal::rest(self.principal, self.request)
    }

    /// Passes when the key holds `admin` or any one of `scopes`.
    pub fn require(&self, scopes: &[&str]) -> Result<(), Error> {
        if scopes.iter().any(|s| self.principal.has_scope(s)) {
            return Ok(());
        }
        let required = scopes.join(" or ");
        auth_failure(
            AuthFailureReason::InsufficientScope,
            &self.request,
            Some(&self.principal.key_prefix),
            Some(&required),
        );
        Err(Error::Forbidden { required: scopes.iter().map(|s| s.to_string()).collect() })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = parts.extensions.get::<RequestContext>().cloned().unwrap_or_default();
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(principal)) => Ok(Auth { principal: principal.clone(), request }),
            Some(AuthOutcome::Failed { reason, key_prefix }) => {
                auth_failure(*reason, &request, key_prefix.as_deref(), None);
                Err(match reason {
                    AuthFailureReason::KeyExpired => Error::KeyExpired,
                    _ => Error::Unauthorized,
                })
            }
            None => {
                auth_failure(AuthFailureReason::MissingHeader, &request, None, None);
                Err(Error::Unauthorized)
            }
        }
    }
}
