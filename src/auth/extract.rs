//! The `Auth` extractor: the key the auth middleware resolved, or the 401 it owes. `Authorized<O>`
//! builds on it and checks the operation's scope.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::audit::{AuthFailureReason, auth_failure};
use super::{AuthOutcome, KeyIdentity};
use crate::error::Error;
use crate::http::context::RequestContext;

pub struct Auth {
    pub key: Arc<KeyIdentity>,
    request: RequestContext,
}

impl std::ops::Deref for Auth {
    type Target = KeyIdentity;
    fn deref(&self) -> &KeyIdentity {
        &self.key
    }
}

impl Auth {
    /// The service layer's view of this caller (a key over REST).
    pub fn into_principal(self) -> super::Principal {
        super::Principal::rest(self.key, self.request)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = parts.extensions.get::<RequestContext>().cloned().unwrap_or_default();
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(principal)) => Ok(Auth { key: principal.clone(), request }),
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
