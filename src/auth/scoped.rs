//! `Scoped<S>`: the `Auth` extractor plus the scope check, as one extractor. Placed first in a
//! handler's arguments it answers 401/403 before the path, query and body are validated (api.md
//! §1.4 order), so a key without the scope learns nothing from field-level 422s and every write
//! route answers a scope sweep with 403 whatever body it is sent.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Auth;
use crate::error::Error;

/// A set of scopes of which the caller needs any one (`admin` passes all).
pub trait ScopeSet: Send + Sync {
    const SCOPES: &'static [&'static str];
}

pub struct AlertsRead;
impl ScopeSet for AlertsRead {
    const SCOPES: &'static [&'static str] = &["alerts:read"];
}

pub struct AlertsWrite;
impl ScopeSet for AlertsWrite {
    const SCOPES: &'static [&'static str] = &["alerts:write"];
}

pub struct EnrichmentsRead;
impl ScopeSet for EnrichmentsRead {
    const SCOPES: &'static [&'static str] = &["enrichments:read"];
}

pub struct Admin;
impl ScopeSet for Admin {
    const SCOPES: &'static [&'static str] = &["admin"];
}

/// The authenticated caller, already checked for `S`.
pub struct Scoped<S: ScopeSet> {
    pub auth: Auth,
    scopes: PhantomData<S>,
}

impl<S: ScopeSet> std::ops::Deref for Scoped<S> {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.auth
    }
}

impl<S: ScopeSet, St: Send + Sync> FromRequestParts<St> for Scoped<S> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(S::SCOPES)?;
        Ok(Scoped { auth, scopes: PhantomData })
    }
}

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
