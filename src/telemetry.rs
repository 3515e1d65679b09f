//! Logging: `LOG_FORMAT=json` (one JSON object per line, for machines) or `text`; `LOG_LEVEL`
//! sets the default level (`RUST_LOG` may refine it per target).

use tracing_subscriber::EnvFilter;

/// Calseta's (Python) level names mapped to tracing's; unknown names fall back to `info` rather
/// than silencing everything.
pub fn level_directive(level: &str) -> &'static str {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "critical" | "fatal" => "error",
        _ => "info",
    }
}

/// Installs the process's subscriber: the log output, plus the OpenTelemetry layer when `otel`
/// holds a tracer provider (see `crate::observability::otel`).
pub fn init(format: &str, level: &str, otel: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sqlx=warn,hyper=warn,tower_http=warn", level_directive(level)))
    });
    let result = match otel {
        Some(provider) => tracing_subscriber::registry()
            .with(TracedSpans(filter))
            .with(log_layer(format))
            .with(crate::observability::otel::layer(provider))
            .try_init(),
        None => tracing_subscriber::registry().with(filter).with(log_layer(format)).try_init(),
    };
    // A second init (tests, nested commands) keeps the first subscriber.
    let _ = result;
}

/// The log filter, widened to the spans OpenTelemetry exports (whatever the log level, traces
/// stay on). Those spans appear in the logs only as the context of lines the filter lets through.
struct TracedSpans(EnvFilter);

impl<S> tracing_subscriber::Layer<S> for TracedSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        if crate::observability::otel::is_exported_span(meta) {
            return tracing::subscriber::Interest::always();
        }
        tracing_subscriber::Layer::<S>::register_callsite(&self.0, meta)
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) -> bool {
        crate::observability::otel::is_exported_span(meta) || tracing_subscriber::Layer::<S>::enabled(&self.0, meta, ctx)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        let hint = tracing_subscriber::Layer::<S>::max_level_hint(&self.0)?;
        Some(hint.max(tracing::level_filters::LevelFilter::INFO))
    }
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }
    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_record(id, values, ctx);
    }
    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }
    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, ctx);
    }
}

/// The log lines on standard output, JSON or text.
fn log_layer<S>(format: &str) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    let logs = tracing_subscriber::fmt::layer()
        // Every line is scrubbed of secrets and PII on its way out (crate::observability::redact).
        .with_writer(crate::observability::redact::ScrubbingStdout)
        .with_ansi(std::io::stdout().is_terminal());
    if format.eq_ignore_ascii_case("json") {
        logs.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed()
    } else {
        logs.with_target(false).boxed()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_level_names() {
        assert_eq!(super::level_directive("WARNING"), "warn");
        assert_eq!(super::level_directive("CRITICAL"), "error");
        assert_eq!(super::level_directive("INFO"), "info");
        assert_eq!(super::level_directive("nonsense"), "info");
    }
}
