//! The service layer's shared vocabulary. Every operation a caller can perform (REST handler, MCP
//! tool, background job, CLI command) is a plain async function in its domain's `service` module
//! that takes the caller's [`Principal`] and typed input, and returns typed output or the one
//! [`Error`](crate::error::Error). Activity and audit events are written there, so every caller
//! produces them.
//!
//! The scope an operation needs is declared **once**, beside the operation, as a type
//! implementing [`Operation`] (use [`operation!`](crate::operation)):
//!
//! ```ignore
//! operation!(PatchAlert = "alerts.patch", scopes ["alerts:write"]);
//!
//! pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: AlertPatch) -> Result<Alert> {
//!     who.authorize::<PatchAlert>()?;
//!     …
//! }
//! ```
//!
//! REST handlers take `Authorized<PatchAlert>` as their first argument: it answers 401/403 before
//! the path, query or body is read (api.md §1.4), then the service checks again — so MCP tools,
//! jobs and the CLI, which have no extractor, are held to the same declaration.

pub use crate::auth::principal::{Channel, Principal};

/// An operation's name (for audit events and logs) and the scopes of which the caller needs any
/// one (`admin` satisfies all; an empty list means any authenticated caller).
pub trait Operation: Send + Sync + 'static {
    const NAME: &'static str;
    const SCOPES: &'static [&'static str];
}

/// Declares an operation type: `operation!(Name = "domain.verb", scopes ["scope:x"]);`
#[macro_export]
macro_rules! operation {
    ($(#[$meta:meta])* $ty:ident = $name:literal, scopes [$($scope:literal),* $(,)?]) => {
        $(#[$meta])*
        pub struct $ty;
        impl $crate::service::Operation for $ty {
            const NAME: &'static str = $name;
            const SCOPES: &'static [&'static str] = &[$($scope),*];
        }
    };
}
