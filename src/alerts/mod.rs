//! Alerts: the normalized alert records, their lifecycle and their API. `service` holds the
//! operations (REST, MCP and jobs call them), `http` the REST handlers, `store` the SQL, `model`
//! the response shapes and pure rules, `query` the list's query-string grammar.

pub mod http;
pub mod model;
pub mod query;
pub mod service;
pub mod store;
