//! Workflows: stored Python automations. This module holds what does not need the database:
//! save-time code validation and the builtin workflows' sources. The REST surface, service and
//! store come with the rest of issue 9; execution lives in `crate::sandbox`.

pub mod builtins;
mod gate;
mod generate;
mod host;
pub mod http;
pub mod model;
pub mod runs;
pub mod runtime;
pub mod seed;
pub mod service;
mod store;
pub mod validate;

pub use gate::hash_decide_token;
pub use runtime::Runtime;

pub use validate::validate_code;
