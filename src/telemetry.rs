//! Logging: `LOG_FORMAT=json` (one JSON object per line, for machines) or `text`; `LOG_LEVEL`
//! sets the default level (`RUST_LOG` may refine it per target).

use tracing_subscriber::EnvFilter;

pub fn init(format: &str, level: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},sqlx=warn,hyper=warn,tower_http=warn", level.to_ascii_lowercase()))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let result = if format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    // A second init (tests, nested commands) keeps the first subscriber.
    let _ = result;
}
