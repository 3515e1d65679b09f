//! On-demand enrichment (`/v1/enrichments`): look one indicator up with every configured
//! provider (cache first), and list the providers of the registry. Operations in [`service`].

mod http;
pub mod service;

pub use http::routes;
