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

pub fn init(format: &str, level: &str) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sqlx=warn,hyper=warn,tower_http=warn", level_directive(level)))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line is scrubbed of secrets and PII on its way out (crate::observability::redact).
        .with_writer(crate::observability::redact::ScrubbingStdout)
        .with_ansi(std::io::stdout().is_terminal());
    let result = if format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    // A second init (tests, nested commands) keeps the first subscriber.
    let _ = result;
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
