//! OpenTelemetry traces (issue 15 item 2). Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set; then
//! spans go to `<endpoint>/v1/traces` as OTLP/HTTP protobuf, batched by the SDK's own thread.
//!
//! One trace follows an alert from the ingest request through enrichment to its agents:
//! * the API request span continues an incoming W3C `traceparent` (the SIEM's trace) if any;
//! * every job enqueued under a span carries that span's `traceparent` in its JSON payload
//!   ([`PAYLOAD_KEY`]); ingest captures the request's context in the prepared alert, because
//!   the group-commit writer that enqueues `enrich_alert` runs outside the request;
//! * a worker runs each claimed batch in a span whose parent is the FIRST job's context and
//!   which links to the other jobs' contexts (the OpenTelemetry convention for batch
//!   consumers): a batch shares its transactions, so it is one unit of work. Jobs enqueued by
//!   the batch (agent dispatch, the next delivery attempt) continue the batch span's trace;
//! * every outbound request of the egress gateway is a client span whose `traceparent` header
//!   the receiver gets (provider calls, agent webhooks, notifiers, workflow `ctx.http`).
//!
//! Only this program's own spans at `info` or above are exported (the request, job and egress
//! spans): no events, so log messages never leave through the trace pipeline, and span fields
//! carry no payload data (method, route, task, host — never URLs with their paths or queries).
//!
//! When off, every function here returns after one relaxed atomic load, and no span is created.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The job payload key holding the trace context of the span that enqueued it.
pub const PAYLOAD_KEY: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are being exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The OTLP traces URL for a base endpoint, as the OpenTelemetry specification derives it from
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (the per-signal path appended).
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Builds the tracer provider when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call before the async
/// runtime starts or outside it (the exporter's blocking HTTP client is built on its own thread).
/// Headers and timeouts follow the standard `OTEL_EXPORTER_OTLP_HEADERS` / `_TIMEOUT` and the
/// batch delay `OTEL_BSP_SCHEDULE_DELAY` (ms), read from the process environment by the SDK.
pub fn provider(settings: &crate::config::Settings) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = settings.otel_exporter_otlp_endpoint.as_deref() else { return Ok(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.otel_service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(provider))
}

/// The `tracing` layer exporting this program's spans through `provider` (see [`SpansOnly`]).
pub fn layer<S>(provider: &SdkTracerProvider) -> SpansOnly<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let tracer = provider.tracer("calseta");
    SpansOnly(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false),
    )
}

/// Whether a span is one this module exports: this program's own, at `info` or above.
pub fn is_exported_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target().starts_with("calseta") && *meta.level() <= tracing::Level::INFO
}

/// Hands the inner layer this program's spans and nothing else: no events (log messages never
/// leave through traces, unscrubbed), no other crate's spans. A wrapper rather than a per-layer
/// filter: tracing-subscriber's per-layer filters lose spans after a `tracing::enabled!` check
/// (sqlx makes one per query), which dropped whole job spans on PostgreSQL.
pub struct SpansOnly<L>(L);

impl<S, L> Layer<S> for SpansOnly<L>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if is_exported_span(attrs.metadata()) {
            self.0.on_new_span(attrs, id, ctx);
        }
    }
    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if ours(id, &ctx) {
            self.0.on_record(id, values, ctx);
        }
    }
    fn on_follows_from(&self, id: &tracing::span::Id, follows: &tracing::span::Id, ctx: Context<'_, S>) {
        if ours(id, &ctx) && ours(follows, &ctx) {
            self.0.on_follows_from(id, follows, ctx);
        }
    }
    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if ours(id, &ctx) {
            self.0.on_enter(id, ctx);
        }
    }
    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if ours(id, &ctx) {
            self.0.on_exit(id, ctx);
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if ours(&id, &ctx) {
            self.0.on_close(id, ctx);
        }
    }
    fn on_id_change(&self, old: &tracing::span::Id, new: &tracing::span::Id, ctx: Context<'_, S>) {
        if ours(old, &ctx) {
            self.0.on_id_change(old, new, ctx);
        }
    }
    // `set_parent`, `context()` and `add_link` find the OpenTelemetry layer by downcasting.
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: forwarded unchanged to the wrapped layer, which upholds the contract.
        unsafe { self.0.downcast_raw(id) }
    }
}

fn ours<S: tracing::Subscriber + for<'a> LookupSpan<'a>>(id: &tracing::span::Id, ctx: &Context<'_, S>) -> bool {
    ctx.span(id).is_some_and(|span| is_exported_span(span.metadata()))
}

/// Flushes the spans still buffered and stops the exporter (at exit).
pub fn shutdown(provider: SdkTracerProvider) {
    if let Err(e) = provider.shutdown() {
        eprintln!("calseta: flushing OpenTelemetry spans failed: {e}");
    }
}

/// The W3C `traceparent` of the current span, if traces are on and a span is current.
pub fn traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove(PAYLOAD_KEY)
}

fn extract(traceparent: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([(PAYLOAD_KEY.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` (not yet entered) continue the trace of `traceparent`; an invalid value is
/// ignored (the span starts a trace of its own).
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(cx) = traceparent.filter(|_| enabled()).and_then(extract) {
        let _ = span.set_parent(cx);
    }
}

/// The API request span's parent: the caller's `traceparent` header, if any.
pub fn continue_request(span: &Span, headers: &http::HeaderMap, method: &str, route: &str) {
    if !enabled() {
        return;
    }
    span.record("otel.name", format!("{method} {route}"));
    span.record("otel.kind", "server");
    continue_trace(span, headers.get(PAYLOAD_KEY).and_then(|v| v.to_str().ok()));
}

/// Stamps a job payload about to be enqueued with the current span's context, unless it already
/// carries one (ingest sets the request's explicitly).
pub fn stamp_job(payload: &mut Value) {
    if !enabled() {
        return;
    }
    if let Value::Object(map) = payload
        && !map.contains_key(PAYLOAD_KEY)
        && let Some(traceparent) = traceparent()
    {
        map.insert(PAYLOAD_KEY.to_owned(), Value::String(traceparent));
    }
}

/// The span a claimed batch runs in: parent = the first job's context, links to the others'.
/// `Span::none()` when traces are off.
pub fn job_span<'a>(task: &'static str, queue: &'static str, payloads: impl Iterator<Item = &'a Value>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let mut batch_size = 0usize;
    let contexts: Vec<opentelemetry::Context> = payloads
        .inspect(|_| batch_size += 1)
        .filter_map(|p| p.get(PAYLOAD_KEY).and_then(Value::as_str))
        .filter_map(extract)
        .collect();
    let span = tracing::info_span!("job", otel.name = task, otel.kind = "consumer", job.task = task, job.queue = queue,
        job.batch_size = batch_size);
    let mut contexts = contexts.into_iter();
    if let Some(first) = contexts.next() {
        let _ = span.set_parent(first);
    }
    for other in contexts {
        span.add_link(other.span().span_context().clone());
    }
    span
}

/// The client span of one outbound request, with its `traceparent` added to `headers` (unless the
/// caller set one). `Span::none()` when traces are off. Only the method and the host are recorded:
/// paths and query strings can carry indicator values and API keys.
pub fn outbound_span(method: &http::Method, url: &url::Url, headers: &mut Vec<(String, String)>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let host = url.host_str().unwrap_or_default();
    let span = tracing::info_span!("egress", otel.name = %format_args!("{method} {host}"), otel.kind = "client",
        http.request.method = %method, server.address = host, server.port = url.port_or_known_default(),
        http.response.status_code = tracing::field::Empty, otel.status_code = tracing::field::Empty);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(PAYLOAD_KEY)) {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        headers.extend(carrier);
    }
    span
}

/// Records how an outbound request ended on its span.
pub fn outbound_result(span: &Span, status: Option<u16>) {
    if span.is_none() {
        return;
    }
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            if status >= 500 {
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("otel.status_code", "error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        assert!(extract("garbage").is_none());
        assert!(extract("00-00000000000000000000000000000000-0000000000000000-01").is_none());
        assert!(extract("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
    }

    #[test]
    fn off_means_nothing_is_stamped_or_created() {
        // ENABLED is never set in unit tests (no provider is built).
        let mut payload = serde_json::json!({"alert_id": 1});
        stamp_job(&mut payload);
        assert_eq!(payload, serde_json::json!({"alert_id": 1}));
        assert!(job_span("t", "q", [&payload].into_iter()).is_none());
        let mut headers = Vec::new();
        assert!(outbound_span(&http::Method::GET, &"http://x.example/a".parse().unwrap(), &mut headers).is_none());
        assert!(headers.is_empty());
        assert!(traceparent().is_none());
    }
}
