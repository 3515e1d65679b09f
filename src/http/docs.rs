//! `/openapi.json` and a docs UI at `/docs`, mounted only when docs are enabled (default:
//! development only). The document is generated from the router itself (utoipa-axum's
//! `OpenApiRouter`): a route is registered together with its `#[utoipa::path]` annotation, so no
//! route can be served without appearing in it. The UI (Scalar's standalone bundle, MIT) is
//! served from the binary: it works offline.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Calseta API", description = "SOC data platform: alerts, indicators, enrichment, agents, workflows."),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("cai_…").build()),
        );
    }
}

const SCALAR_JS: &[u8] = include_bytes!("../../assets/scalar-standalone.js");

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Calseta API</title>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json" data-configuration='{"withDefaultFonts":false,"hideClientButton":true}'></script>
  <script src="/docs/scalar.js"></script>
</body>
</html>
"#;

/// The routes serving the document built from the application router, and the UI.
pub fn routes(spec: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(move || async move { axum::Json(spec) }))
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route(
            "/docs/scalar.js",
            get(|| async {
                let mut response = SCALAR_JS.into_response();
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
                response
            }),
        )
}
