//! Enrichment providers as a resource (`/v1/enrichment-providers`): the operations in
//! [`service`], their input and output in [`model`], the SQL in `store`, save-time checks in
//! `validate`. Running providers is the [`Enricher`](crate::enrich::Enricher)'s job.

mod http;
pub mod model;
pub mod service;
pub(in crate::enrich) mod store;
mod validate;

pub use http::routes;
