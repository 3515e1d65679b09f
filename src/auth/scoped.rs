//! `Authorized<O>`: the REST face of an operation's scope declaration (`crate::service`). Placed
//! first in a handler's arguments it answers 401/403 before the path, query and body are
//! validated (api.md §1.4 order), so a key without the scope learns nothing from field-level 422s
//! and every route answers a scope sweep with 403 whatever it is sent.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Auth;
use crate::error::Error;

/// The REST face of an operation's scope declaration: the caller, authenticated and already
/// authorized for `O` (403 before any path, query or body validation). Hand `principal` to the
/// service function, which checks `O` again for callers without an extractor.
pub struct Authorized<O: crate::service::Operation> {
    pub principal: super::Principal,
    operation: PhantomData<O>,
}

impl<O: crate::service::Operation> std::ops::Deref for Authorized<O> {
    type Target = super::Principal;
    fn deref(&self) -> &super::Principal {
        &self.principal
    }
}

impl<O: crate::service::Operation, St: Send + Sync> FromRequestParts<St> for Authorized<O> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let principal = auth.into_principal();
        principal.authorize::<O>()?;
        Ok(Authorized { principal, operation: PhantomData })
    }
}
