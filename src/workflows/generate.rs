//! `POST /v1/workflows/generate` (workflows.md §8): asks the Anthropic Messages API for a
//! workflow through the egress gateway, then holds the answer to the same AST rules as saved
//! code. Nothing is saved.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::model::{WorkflowGenerateRequest, WorkflowGenerateResponse};
use crate::egress::{Body, Request};
use crate::error::{Error, Result};
use crate::state::AppState;

const ANTHROPIC_VERSION: &str = "2023-06-01";
const MAX_TOKENS: u32 = 4096;
const TIMEOUT: Duration = Duration::from_secs(60);

const SYSTEM_PROMPT: &str = r#"You write Calseta workflows: Python 3.11 modules run in a sandbox.
Rules:
- Define `async def run(ctx: WorkflowContext) -> WorkflowResult` at top level.
- Import only: from app.workflows.context import WorkflowContext, WorkflowResult; plus the stdlib
  modules asyncio, base64, collections, copy, datetime, enum, functools, hashlib, hmac, html, http,
  inspect, ipaddress, itertools, json, logging, math, operator, re, statistics, string, textwrap,
  time, typing, unicodedata, urllib, uuid. Never os, sys, subprocess, socket, io, pathlib, open,
  exec, eval, compile or __import__.
- ctx.indicator has uuid, type, value, malice, is_enriched, enrichment_results, first_seen,
  last_seen; ctx.alert is None or has uuid, title, severity, source_name, status, occurred_at,
  tags, raw_payload.
- ctx.http is an async httpx-like client (await ctx.http.get/post/put/patch/delete(url, ...));
  responses have status_code, json(), text.
- ctx.log.info/warning/error/debug(message, **fields); ctx.secrets.get(name) returns a granted
  secret or None; ctx.integrations.okta / ctx.integrations.entra may be None.
- Return WorkflowResult.ok(message, data={...}) or WorkflowResult.fail(message); catch exceptions.
Answer with ONE JSON object only: {"code": "...", "suggested_name": "...",
"suggested_documentation": "Markdown: Description / When to Use / Required Secrets / Expected
Outcome / Error Cases", "warnings": ["..."]}"#;

fn failed(message: impl Into<String>) -> Error {
    Error::bad_request("WORKFLOW_GENERATION_FAILED", message)
}

pub async fn generate(state: &AppState, input: &WorkflowGenerateRequest) -> Result<WorkflowGenerateResponse> {
    let Some(api_key) = state.settings.anthropic_api_key.as_deref().filter(|k| !k.trim().is_empty()) else {
        return Err(failed("Workflow generation is not configured: ANTHROPIC_API_KEY is not set"));
    };
    let indicator_types = if input.indicator_types.is_empty() { "any".to_owned() } else { input.indicator_types.join(", ") };
    let user_prompt = format!(
        "Description: {}\nWorkflow type: {}\nIndicator types: {indicator_types}",
        input.description,
        input.workflow_type.as_deref().unwrap_or("indicator"),
    );
    let body = json!({
        "model": state.settings.workflow_generate_model,
        "max_tokens": MAX_TOKENS,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": user_prompt}],
    });
    let request = Request {
        method: http::Method::POST,
        url: format!("{}/v1/messages", state.settings.anthropic_base_url.trim_end_matches('/')),
        headers: vec![("x-api-key".into(), api_key.to_owned()), ("anthropic-version".into(), ANTHROPIC_VERSION.into())],
        body: Body::Json(body),
        timeout: TIMEOUT,
    };
    // A transport failure is the upstream's, not the client's: 502 with the same code.
    let response = state.egress.send(request).await.map_err(|e| Error::Client {
        status: StatusCode::BAD_GATEWAY,
        code: "WORKFLOW_GENERATION_FAILED",
        message: format!("Anthropic API request failed: {e}"),
        details: json!({}),
    })?;
    if response.status != 200 {
        let text: String = String::from_utf8_lossy(&response.body).chars().take(500).collect();
        return Err(failed(format!("Anthropic API returned {}: {text}", response.status)));
    }
    let reply: Value = serde_json::from_slice(&response.body).map_err(|_| failed("Anthropic API returned a non-JSON body"))?;
    let text: String = reply["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "text")
        .filter_map(|block| block["text"].as_str())
        .collect();
    if text.trim().is_empty() {
        return Err(failed("Anthropic API returned empty content"));
    }
    parse_answer(&text)
}

/// The model's JSON answer, a surrounding Markdown fence stripped, its code AST-validated.
fn parse_answer(text: &str) -> Result<WorkflowGenerateResponse> {
    let answer: Value = serde_json::from_str(strip_fence(text)).map_err(|e| failed(format!("Could not parse the generated JSON: {e}")))?;
    let code = answer["code"].as_str().filter(|c| !c.trim().is_empty()).ok_or_else(|| failed("The generated answer has no code"))?;
    let errors = super::validate::validate_code(code);
    if !errors.is_empty() {
        return Err(failed(format!("Generated code failed AST validation: {}", errors.join("; "))));
    }
    Ok(WorkflowGenerateResponse {
        generated_code: code.to_owned(),
        suggested_name: answer["suggested_name"].as_str().unwrap_or("Generated Workflow").to_owned(),
        suggested_documentation: answer["suggested_documentation"].as_str().unwrap_or("").to_owned(),
        warnings: answer["warnings"].as_array().into_iter().flatten().filter_map(|w| w.as_str().map(str::to_owned)).collect(),
    })
}

fn strip_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else { return trimmed };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_stripped_and_code_validated() {
        assert_eq!(strip_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_fence(" {\"a\": 1} "), "{\"a\": 1}");
        let ok = json!({"code": "from app.workflows.context import WorkflowResult\nasync def run(ctx):\n    return WorkflowResult.ok()\n"});
        let parsed = parse_answer(&format!("```\n{ok}\n```")).map_err(|e| e.to_string()).unwrap();
        assert_eq!(parsed.suggested_name, "Generated Workflow");
        let bad = json!({"code": "import os\nasync def run(ctx):\n    pass\n"});
        let message = parse_answer(&bad.to_string()).unwrap_err().to_string();
        assert!(message.starts_with("Generated code failed AST validation: Line 1: import of 'os'"), "{message}");
        assert!(parse_answer("not json").is_err());
    }
}
