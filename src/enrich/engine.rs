//! The one generic engine that runs any provider's recipe for one indicator (enrichment.md §3):
//! steps in order, templates resolved per step, every request through the egress gateway, then
//! field extraction and malice rules over the raw response. It never fails: every problem is a
//! failed result naming the step and the cause.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::registry::Provider;
use super::template::{self, Mode, TemplateContext};
use super::{extract, malice, redact};
use crate::egress::{self, Egress, EgressError};

/// Non-JSON bodies are kept as this many characters of text.
const RAW_TEXT_CHARS: usize = 2000;

/// The stored and returned shape of one provider's result (enrichment.md §1.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrichmentResult {
    pub provider_name: String,
    /// `success`, `failed` or `skipped`.
    pub status: String,
    pub success: bool,
    pub extracted: Option<Map<String, Value>>,
    pub raw: Option<Value>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub debug_steps: Option<Value>,
}

impl EnrichmentResult {
    pub fn success(provider: &str, extracted: Map<String, Value>, raw: Value) -> Self {
        EnrichmentResult {
            provider_name: provider.to_owned(),
            status: "success".into(),
            success: true,
            extracted: Some(extracted),
            raw: Some(raw),
            enriched_at: Some(crate::db::now()),
            error_message: None,
            debug_steps: None,
        }
    }

    pub fn failed(provider: &str, message: impl Into<String>) -> Self {
        EnrichmentResult {
            provider_name: provider.to_owned(),
            status: "failed".into(),
            success: false,
            extracted: None,
            raw: None,
            enriched_at: None,
            error_message: Some(message.into()),
            debug_steps: None,
        }
    }

    pub fn skipped(provider: &str, message: impl Into<String>) -> Self {
        EnrichmentResult { status: "skipped".into(), ..Self::failed(provider, message) }
    }

    pub fn malice(&self) -> Option<&str> {
        self.extracted.as_ref()?.get("malice")?.as_str()
    }
}

/// One step's request and response, captured by the provider test endpoint with secrets masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepDebug {
    pub step_name: String,
    pub step_index: usize,
    pub indicator_value: String,
    pub request_method: String,
    pub request_url: String,
    #[schema(value_type = Object)]
    pub request_headers: Map<String, Value>,
    #[schema(value_type = Option<Object>)]
    pub request_query_params: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub request_body: Option<Value>,
    pub response_status_code: Option<u16>,
    #[schema(value_type = Option<Object>)]
    pub response_headers: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub response_body: Option<Value>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub skipped: bool,
}

/// Why a provider call failed in a way the circuit breaker and rate-limit bookkeeping care about.
#[derive(Debug, Clone, PartialEq)]
pub enum Trouble {
    /// The vendor answered 429; `retry_after` when it said how long to wait.
    RateLimited { retry_after: Option<Duration> },
    /// Transport error, timeout or 5xx: counts toward opening the circuit.
    Unhealthy,
}

pub struct Run {
    pub result: EnrichmentResult,
    pub steps: Vec<StepDebug>,
    pub trouble: Option<Trouble>,
}

/// Returns the canned result of mock mode (§8): no network, no extraction, no malice rules.
pub fn mock_result(provider: &Provider, indicator_type: &str) -> EnrichmentResult {
    let name = provider.name();
    let Some(entry) = provider.mock_entry(indicator_type) else {
        return EnrichmentResult::skipped(name, format!("No mock response for type '{indicator_type}'"));
    };
    let mut extracted = entry.get("extracted").and_then(Value::as_object).cloned().unwrap_or_default();
    let verdict = entry.get("malice").and_then(Value::as_str).unwrap_or("Pending");
    extracted.insert("malice".into(), Value::String(verdict.to_owned()));
    EnrichmentResult::success(name, extracted, entry.get("raw").cloned().unwrap_or_else(|| json!({})))
}

/// Runs `provider` live for one indicator. `capture` records masked per-step debug details.
pub async fn run(
    egress: &Egress,
    provider: &Provider,
    credentials: &Map<String, Value>,
    indicator_type: &str,
    indicator_value: &str,
    capture: bool,
) -> Run {
    let name = provider.name();
    let config = match &provider.http_config {
        Ok(config) => config,
        Err(reason) => return Run { result: EnrichmentResult::failed(name, reason.clone()), steps: Vec::new(), trouble: None },
    };
    if config.steps.is_empty() {
        return Run { result: EnrichmentResult::failed(name, "No steps defined in http_config"), steps: Vec::new(), trouble: None };
    }
    let secrets: Vec<String> = credentials.values().filter_map(Value::as_str).map(str::to_owned).collect();
    let mut recorded = Map::new();
    let mut debug = Vec::new();
    let mut not_found = false;

    for (index, step) in config.steps.iter().enumerate() {
        let ctx = TemplateContext { indicator_type, indicator_value, auth: credentials, steps: &recorded };
        let url_template = if index == 0 { config.url_templates_by_type.get(indicator_type).unwrap_or(&step.url) } else { &step.url };
        // Every template is rendered once; the debug copy (test endpoint only) masks the results.
        let query = step.query_params.as_ref().map(|params| render_pairs(params, &ctx));
        let url = with_query(template::render(url_template, &ctx, Mode::Url), query.as_deref());
        let headers = render_pairs(&step.headers, &ctx);
        let body = if let Some(json_body) = &step.json_body {
            egress::Body::Json(template::render_value(json_body, &ctx, Mode::Text))
        } else if let Some(form) = &step.form_body {
            egress::Body::Form(render_pairs(form, &ctx))
        } else {
            egress::Body::Empty
        };
        let mut entry = capture.then(|| StepDebug {
            step_name: step.name.clone(),
            step_index: index,
            indicator_value: indicator_value.to_owned(),
            request_method: step.method.to_string(),
            request_url: redact::mask_credentials_in(url.split('?').next().unwrap_or(&url), &secrets),
            request_headers: redact::mask_headers(&headers, &secrets),
            request_query_params: query.as_ref().map(|pairs| {
                pairs.iter().map(|(k, v)| (k.clone(), Value::String(redact::mask_credentials_in(v, &secrets)))).collect()
            }),
            request_body: match &body {
                egress::Body::Json(v) => Some(redact::mask_value(v, &secrets)),
                egress::Body::Form(pairs) => {
                    let form = pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                    Some(redact::mask_value(&Value::Object(form), &secrets))
                }
                // Providers never send raw bytes (only workflows' ctx.http does).
                egress::Body::Empty | egress::Body::Bytes(_) => None,
            },
            response_status_code: None,
            response_headers: None,
            response_body: None,
            duration_ms: 0,
            error: None,
            skipped: false,
        });
        let started = Instant::now();
        let request = egress::Request { method: step.method.clone(), url, headers, body, timeout: step.timeout };
        let response = egress.send(request).await;
        let elapsed = started.elapsed().as_millis() as u64;
        let response = match response {
            Ok(response) => response,
            Err(EgressError::Blocked(reason)) => {
                // SSRF-blocked steps produce no debug entry (§10).
                if step.optional {
                    continue;
                }
                let message = format!("Step '{}' SSRF blocked: URL blocked by SSRF protection: {reason}", step.name);
                return finish(EnrichmentResult::failed(name, message), debug, None);
            }
            Err(error) => {
                if let Some(entry) = entry.as_mut() {
                    entry.error = Some(error.to_string());
                    entry.duration_ms = elapsed;
                    entry.skipped = step.optional;
                }
                debug.extend(entry);
                if step.optional {
                    continue;
                }
                return finish(EnrichmentResult::failed(name, format!("Step '{}' failed: {error}", step.name)), debug, Some(Trouble::Unhealthy));
            }
        };
        let status = response.status;
        let parsed = parse_body(&response.body);
        if let Some(entry) = entry.as_mut() {
            entry.response_status_code = Some(status);
            entry.response_headers = Some(redact::mask_headers(&response.headers, &secrets));
            entry.response_body = Some(redact::truncate_body(parsed.clone()));
            entry.duration_ms = elapsed;
        }
        if step.not_found_status.contains(&status) {
            if step.optional {
                // A missing optional detail (e.g. a user without a manager) is not "indicator
                // unknown" — Calseta turned the whole result into not-found here.
                if let Some(entry) = entry.as_mut() {
                    entry.skipped = true;
                }
                debug.extend(entry);
                continue;
            }
            recorded.insert(step.name.clone(), json!({"status_code": status}));
            debug.extend(entry);
            not_found = true;
            break;
        }
        if !step.expected_status.contains(&status) {
            if step.optional {
                if let Some(entry) = entry.as_mut() {
                    entry.skipped = true;
                }
                debug.extend(entry);
                continue;
            }
            debug.extend(entry);
            let trouble = match status {
                429 => Some(Trouble::RateLimited { retry_after: retry_after(&response.headers) }),
                500..=599 => Some(Trouble::Unhealthy),
                _ => None,
            };
            return finish(EnrichmentResult::failed(name, format!("Step '{}' returned HTTP {status}", step.name)), debug, trouble);
        }
        debug.extend(entry);
        recorded.insert(step.name.clone(), parsed);
    }

    let raw = if config.steps.len() == 1 {
        recorded.values().next().cloned().unwrap_or_else(|| json!({}))
    } else {
        Value::Object(recorded)
    };
    let extracted = if not_found {
        let mut extracted = Map::new();
        extracted.insert("found".into(), Value::Bool(false));
        extracted.insert("malice".into(), Value::String(provider.malice_rules.not_found_verdict.clone()));
        extracted
    } else {
        let mut extracted = extract::extract(&raw, &provider.extractions, indicator_type);
        extracted.insert("malice".into(), Value::String(malice::evaluate(&raw, &provider.malice_rules, false)));
        extracted
    };
    // Stored results never keep secrets a vendor handed back (an OAuth step's access_token) or
    // echoed credentials; extraction and malice rules above saw the unmasked response.
    let raw = redact::mask_value(&raw, &secrets);
    finish(EnrichmentResult::success(name, extracted, raw), debug, None)
}

fn finish(result: EnrichmentResult, steps: Vec<StepDebug>, trouble: Option<Trouble>) -> Run {
    Run { result, steps, trouble }
}

/// Appends rendered query parameters to the URL (values form-encoded).
fn with_query(url: String, query: Option<&[(String, String)]>) -> String {
    let Some(pairs) = query.filter(|pairs| !pairs.is_empty()) else { return url };
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{encoded}")
}

/// Headers, query parameters or form fields with their templates rendered as text.
fn render_pairs(map: &Map<String, Value>, ctx: &TemplateContext<'_>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), text_of(&template::render_value(v, ctx, Mode::Text)))).collect()
}

/// A rendered template value as header/query/form text.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_body(body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            json!({"_raw_text": text.chars().take(RAW_TEXT_CHARS).collect::<String>()})
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?.1.trim().to_owned();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(&value).ok()?.with_timezone(&Utc);
    (at - Utc::now()).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&[("Retry-After".into(), "7".into())]), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&[("x".into(), "7".into())]), None);
        let later = (Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let parsed = retry_after(&[("retry-after".into(), later)]).unwrap();
        assert!(parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(25));
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_body(b"<html>"), json!({"_raw_text": "<html>"}));
        let long = "x".repeat(5000);
        assert_eq!(parse_body(long.as_bytes())["_raw_text"].as_str().unwrap().len(), RAW_TEXT_CHARS);
    }
}
