//! Alerts: the normalized alert records, their lifecycle and their REST API.

pub mod store;
