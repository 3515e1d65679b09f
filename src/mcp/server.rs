//! The MCP server handler: what `initialize`, `tools/*` and `resources/*` answer. Each request
//! carries the HTTP request it came in (rmcp copies its `Parts` into the context), and the auth
//! layer in `super` has already put the caller's [`Principal`] there: no request reaches this
//! handler unauthenticated. Tools and resources call the service layer with that principal.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::Error;
use crate::state::AppState;

const INSTRUCTIONS: &str = "Calseta SOC data platform. Use resources to read alerts, detection rules, context \
documents, workflows and metrics; use tools to post findings, update alert status and malice, search alerts and \
detection rules, execute workflows and enrich indicators.";

#[derive(Clone)]
pub struct CalsetaMcp {
    state: AppState,
}

impl CalsetaMcp {
    pub fn new(state: AppState) -> Self {
        CalsetaMcp { state }
    }
}

/// The caller of this MCP message, as the auth layer resolved it for the HTTP request that
/// carried the message.
fn principal(ctx: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| ErrorData::invalid_request("Authentication required.", None))
}

/// The text an MCP client sees for an error: the message of the REST envelope, with field-level
/// validation messages spelled out (an MCP client has no `details` to read).
pub fn error_text(error: &Error) -> String {
    match error {
        Error::Validation(errors) => errors
            .iter()
            .map(|e| e.msg.clone())
            .collect::<Vec<_>>()
            .join("; "),
        Error::Database(_) | Error::Internal(_) => {
            tracing::error!(error = %error, "mcp request failed");
            error.client_message()
        }
        other => other.client_message(),
    }
}

/// A JSON text result (every MCP result of Calseta's is JSON text).
pub fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// `{"error": "..."}` as a normal result: how Calseta reports scope failures and tool
/// validation failures.
pub fn error_value(error: &Error) -> Value {
    json!({ "error": error_text(error) })
}

impl ServerHandler for CalsetaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("Calseta", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        principal(&context)?;
        Ok(ListToolsResult::with_all_items(super::tools::definitions()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = principal(&context)?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let value = super::tools::call(&self.state, &who, &request.name, arguments).await?;
        Ok(CallToolResult::success(vec![ContentBlock::text(json_text(&value))]).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        principal(&context)?;
        Ok(ListResourcesResult::with_all_items(
            super::resources::fixed(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        principal(&context)?;
        Ok(ListResourceTemplatesResult::with_all_items(
            super::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let who = principal(&context)?;
        let value = super::resources::read(&self.state, &who, &request.uri).await?;
        let contents = ResourceContents::text(json_text(&value), request.uri.clone())
            .with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}
