//! The `calseta` command line: `serve`, `migrate`, `api-key create|list|revoke`,
//! `rotate-encryption-key`, `audit verify|export`, `seed-sandbox`, `seed-demo-data`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Duration as ChronoDuration, Utc};
use clap::{Parser, Subcommand};

use crate::auth::Principal;
use crate::auth::service::{ApiKeyCreate, Keys, find_for_revoke};
use crate::error::Error;
use crate::pagination::Pagination;
use crate::config::Settings;
use crate::crypto::Cipher;

#[derive(Parser, Debug)]
#[command(name = "calseta", version, about = "Calseta: SOC data platform for AI agents (alerts in, enriched context out).")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server (applies pending migrations first).
    Serve {
        /// Listen address, e.g. 127.0.0.1:8000 (port 0 picks a free port). Env: CALSETA_BIND.
        #[arg(long)]
        bind: Option<String>,
        /// Roles this process plays: `api` (HTTP), `worker` (job queue). Several replicas can
        /// share one PostgreSQL database with different roles.
        #[arg(long, value_delimiter = ',', default_value = "api,worker", value_parser = ["api", "worker"])]
        roles: Vec<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys directly in the database.
    #[command(name = "api-key", subcommand)]
    ApiKey(ApiKeyCommand),
    /// Verify or export the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Seed the sandbox: demo rules, context documents, workflow, alerts and the two well-known
    /// demo keys (needs SANDBOX_MODE=true; the demo alerts are enriched by the server's workers).
    #[command(name = "seed-sandbox")]
    SeedSandbox,
    /// Seed demo detection rules, context documents and alerts (ingested like any other alert).
    /// Safe to re-run: what exists is skipped.
    #[command(name = "seed-demo-data")]
    SeedDemoData {
        /// Seed the rules and documents only.
        #[arg(long)]
        skip_alerts: bool,
        /// Do not queue the alerts' enrichment: they stay `Pending` until `POST /v1/alerts/{uuid}/enrich`.
        #[arg(long)]
        skip_enrichment: bool,
    },
    /// Re-seal every stored secret with a new encryption key (one transaction; safe to re-run).
    ///
    /// ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS name the keys that open the stored values. The
    /// procedure around it is in SECURITY.md, "Key rotation".
    #[command(name = "rotate-encryption-key")]
    RotateEncryptionKey {
        /// The new key: 32 random bytes, base64 (`openssl rand -base64 32`). Visible in the
        /// process list and shell history; prefer --new-key-file.
        #[arg(long, value_name = "BASE64", required_unless_present = "new_key_file", conflicts_with = "new_key_file")]
        new_key: Option<String>,
        /// File holding the new key (surrounding whitespace ignored).
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain of the audit trail; exit 1 naming the first broken record.
    Verify,
    /// Write audit records as JSON lines to standard output (for a SIEM).
    Export {
        /// Only records at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or a lifetime
        /// back from now (24h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. alerts:read,alerts:write (admin grants everything).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value = "human", value_parser = ["human", "agent"])]
        key_type: String,
        /// Comma-separated source names this key may ingest from (default: all).
        #[arg(long, value_delimiter = ',')]
        allowed_sources: Option<Vec<String>>,
        /// Comma-separated CIDRs or addresses this key may be used from (default: any).
        #[arg(long, value_delimiter = ',')]
        allowed_cidrs: Option<Vec<String>>,
        /// Lifetime such as 90d, 12h, 30m or 3600s (default: no expiry).
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<ChronoDuration>,
    },
    /// List active keys (never shows key material).
    List,
    /// Revoke a key by UUID or by its 8-character prefix.
    Revoke { key: String },
}

fn parse_lifetime(text: &str) -> Result<ChronoDuration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| format!("'{text}' is not a lifetime like 90d, 12h, 30m or 3600s"))?;
    if n <= 0 {
        return Err("lifetime must be positive".into());
    }
    let lifetime = match unit {
        "" | "s" => ChronoDuration::try_seconds(n),
        "m" => ChronoDuration::try_minutes(n),
        "h" => ChronoDuration::try_hours(n),
        "d" => ChronoDuration::try_days(n),
        _ => None,
    };
    lifetime.ok_or_else(|| format!("'{text}' is not a lifetime like 90d, 12h, 30m or 3600s"))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Audit(AuditCommand::Export { .. })) {
        crate::observability::redact::LOGS_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let (settings, secrets) = match crate::secrets::load_settings() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("calseta: {e}");
            return ExitCode::from(2);
        }
    };
    // Before any TLS client is built (the OTLP exporter builds one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Traces are for the server; one-shot commands have nothing worth a trace.
    let tracer = match &cli.command {
        Command::Serve { .. } => match crate::observability::otel::provider(&settings) {
            Ok(tracer) => tracer,
            Err(e) => {
                eprintln!("calseta: {e:#}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    crate::telemetry::init(&settings.log_format, &settings.log_level, tracer.as_ref());
    secrets.log();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calseta: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command, settings));
    // The spans of the last moments (shutdown included) are flushed before the process exits.
    if let Some(tracer) = tracer {
        crate::observability::otel::shutdown(tracer);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calseta: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { bind, roles } => serve(settings, bind, roles).await,
        Command::Migrate => {
            let db = crate::app::open_database(&settings).await?;
            println!("migrations applied ({} backend)", db.backend());
            Ok(())
        }
        Command::ApiKey(cmd) => api_key(settings, cmd).await,
        Command::RotateEncryptionKey { new_key, new_key_file } => rotate_encryption_key(settings, new_key, new_key_file).await,
        Command::Audit(cmd) => audit(settings, cmd).await,
        Command::SeedSandbox => {
            if !settings.sandbox_mode {
                anyhow::bail!("seed-sandbox needs SANDBOX_MODE=true (the sandbox publishes well-known API keys)");
            }
            let options = crate::seed::SeedOptions { alerts: true, enrich: true, sandbox: true };
            seed(settings, options).await
        }
        Command::SeedDemoData { skip_alerts, skip_enrichment } => {
            if settings.is_production() {
                anyhow::bail!("seed-demo-data writes demo alerts, rules and documents; refused with ENVIRONMENT=production");
            }
            let options = crate::seed::SeedOptions { alerts: !skip_alerts, enrich: !skip_enrichment, sandbox: false };
            seed(settings, options).await
        }
    }
}

/// `seed-sandbox` and `seed-demo-data`: one line per row written or skipped, then a summary.
async fn seed(mut settings: Settings, options: crate::seed::SeedOptions) -> anyhow::Result<()> {
    // The command runs no workflow: no sandbox interpreters to start.
    settings.workflows_enabled = false;
    let db = crate::app::open_database(&settings).await?;
    println!("seeding demo data into the {} database", db.backend());
    let state = crate::app::build_state(settings, db.clone()).await?;
    let report = crate::seed::seed(&state, options, &|line| println!("  {line}")).await.map_err(cli_error);
    db.close().await;
    let report = report?;
    println!(
        "done: {} detection rules, {} context documents, {} alerts created ({} skipped as existing)",
        report.rules_created,
        report.documents_created,
        report.alerts_ingested,
        report.rules_skipped + report.documents_skipped + report.alerts_skipped
    );
    if options.sandbox {
        println!("sandbox: {} workflow(s) and {} demo key(s) created", report.workflows_created, report.keys_created);
    }
    if report.enrichment_queued > 0 {
        println!("{} alerts queued for enrichment: the workers of `calseta serve` enrich them.", report.enrichment_queued);
    }
    Ok(())
}

async fn audit(settings: Settings, cmd: AuditCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(&settings).await?;
    match cmd {
        AuditCommand::Verify => match crate::audit::verify::verify(&db).await? {
            crate::audit::verify::Verdict::Intact { records, anchored_at_genesis } => {
                let anchor = if anchored_at_genesis { "from the genesis record" } else { "from the oldest retained record" };
                println!("audit chain intact: {records} records verified {anchor}");
                Ok(())
            }
            crate::audit::verify::Verdict::Broken { uuid, id, reason } => {
                anyhow::bail!("audit chain broken at record {uuid} (id {id}): {reason}")
            }
        },
        AuditCommand::Export { since } => {
            let since = since.as_deref().map(parse_since).transpose().map_err(|e| anyhow::anyhow!(e))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let count = crate::audit::verify::export(&db, since, &mut out).await?;
            eprintln!("exported {count} audit records");
            Ok(())
        }
    }
}

fn parse_since(text: &str) -> Result<chrono::DateTime<Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    parse_lifetime(text)
        .map(|back| Utc::now() - back)
        .map_err(|_| format!("--since '{text}' is neither an RFC 3339 time nor a lifetime like 24h or 7d"))
}

async fn serve(settings: Settings, bind: Option<String>, roles: Vec<String>) -> anyhow::Result<()> {
    let bind = bind.unwrap_or_else(|| settings.calseta_bind.clone());
    let db = crate::app::open_database(&settings).await?;
    if settings.bootstrap_admin_key && roles.iter().any(|r| r == "api") {
        crate::app::bootstrap_admin_key(&db).await?;
    }
    let state = crate::app::build_state(settings, db.clone()).await?;
    if state.settings.sandbox_mode && roles.iter().any(|r| r == "api") {
        // Like the other start-up seeding: a failure is logged and the server still starts.
        match crate::seed::seed_sandbox(&state, &|line| tracing::debug!(target: "calseta::seed", "{line}")).await {
            Ok(report) => {
                tracing::info!(
                    rules = report.rules_created,
                    documents = report.documents_created,
                    alerts = report.alerts_ingested,
                    keys = report.keys_created,
                    "sandbox mode: demo data seeded"
                );
                // The keys are published (agents-mcp-metrics.md §8); on stderr like the bootstrap
                // key, since the log scrubber masks anything key-shaped.
                eprintln!(
                    "calseta sandbox mode: demo data seeded; reset every {} h. Demo keys:\n  {}  {}\n  {}  {}",
                    state.settings.sandbox_reset_interval_hours,
                    crate::seed::SANDBOX_READ_ONLY_KEY,
                    crate::seed::DEMO_KEYS[0].0,
                    crate::seed::SANDBOX_FULL_ACCESS_KEY,
                    crate::seed::DEMO_KEYS[1].0,
                );
            }
            Err(e) => tracing::error!(error = %e, "sandbox mode: seeding the demo data failed"),
        }
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let signal = crate::http::shutdown_signal()?;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            shutdown.cancel();
        });
    }
    if state.settings.metrics_enabled || state.settings.metrics_bind.is_some() {
        crate::observability::install()?;
        if let Some(bind) = state.settings.metrics_bind.clone() {
            crate::observability::serve_listener(state.clone(), bind, shutdown.clone()).await?;
        }
    }
    // SQLite: WAL checkpoints on a connection of their own instead of on the writer.
    tokio::spawn(crate::db::checkpoint::run(db.clone(), shutdown.clone()));
    let workers = roles
        .iter()
        .any(|r| r == "worker")
        .then(|| tokio::spawn(crate::app::run_workers(state.clone(), shutdown.clone())));
    if roles.iter().any(|r| r == "api") {
        {
            let (state, db, shutdown) = (state.clone(), db.clone(), shutdown.clone());
            tokio::spawn(async move { state.health.watch(db, shutdown).await });
        }
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        let address = listener.local_addr()?;
        tracing::info!(
            address = %address,
            backend = db.backend(),
            limiter = state.limiter.backend_name(),
            environment = %state.settings.environment,
            roles = ?roles,
            "listening on http://{address}"
        );
        // Also on stderr, whatever the log level: operators and scripts learn the port (`--bind :0`).
        eprintln!("calseta listening on http://{address}");
        let mcp = match state.settings.mcp_bind.clone() {
            Some(mcp_bind) => {
                let mcp_listener = tokio::net::TcpListener::bind(&mcp_bind)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {mcp_bind} (MCP_BIND): {e}"))?;
                eprintln!("calseta MCP listening on http://{}", mcp_listener.local_addr()?);
                Some(tokio::spawn(crate::http::serve_mcp(state.clone(), mcp_listener, shutdown.clone())))
            }
            None => None,
        };
        crate::http::serve(state, listener, shutdown.clone()).await?;
        if let Some(mcp) = mcp {
            mcp.await??;
        }
    } else {
        tracing::info!(backend = db.backend(), roles = ?roles, "running without the HTTP API");
        shutdown.cancelled().await;
    }
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    db.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn api_key(settings: Settings, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let db = crate::app::open_database(&settings).await?;
    let keys = Keys::new(&db, None);
    match cmd {
        ApiKeyCommand::Create { name, scopes, key_type, allowed_sources, allowed_cidrs, expires_in } => {
            let scopes: Vec<String> = scopes.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            let input = ApiKeyCreate { name, scopes, key_type: Some(key_type), expires_at: expires_in.map(|d| Utc::now() + d), allowed_sources, allowed_cidrs };
            let created = keys.create(&Principal::Cli, input).await.map_err(cli_error)?;
            println!("Created API key '{}' ({}), uuid {}", created.key.name, created.key.key_prefix, created.key.uuid);
            println!("scopes: {}", created.key.scopes.join(","));
            println!("The key is shown once; store it now:");
            println!("{}", created.plaintext);
        }
        ApiKeyCommand::List => {
            println!("{:<38} {:<10} {:<6} {:<24} {:<22} NAME", "UUID", "PREFIX", "TYPE", "SCOPES", "EXPIRES");
            let mut page = Pagination { page: 1, page_size: crate::pagination::MAX_PAGE_SIZE };
            loop {
                let (rows, total) = keys.list(&Principal::Cli, page).await.map_err(cli_error)?;
                for row in &rows {
                    let expires = row.expires_at.map(|e| e.format("%Y-%m-%dT%H:%MZ").to_string()).unwrap_or_else(|| "never".into());
                    println!("{:<38} {:<10} {:<6} {:<24} {:<22} {}", row.uuid, row.key_prefix, row.key_type, row.scopes.join(","), expires, row.name);
                }
                if rows.is_empty() || page.offset() + page.limit() >= total {
                    println!("{total} active key(s)");
                    break;
                }
                page.page += 1;
            }
        }
        ApiKeyCommand::Revoke { key } => {
            let Some(uuid) = find_for_revoke(&db, &key).await.map_err(cli_error)? else { anyhow::bail!("no API key matches {key}") };
            let row = keys.revoke(&Principal::Cli, uuid).await.map_err(cli_error)?;
            println!("Revoked API key {} ({})", row.uuid, row.key_prefix);
        }
    }
    db.close().await;
    Ok(())
}

/// A service error as the CLI shows it: validation errors by their messages.
fn cli_error(e: Error) -> anyhow::Error {
    match e {
        Error::Validation(errors) => anyhow::anyhow!(errors.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>().join("; ")),
        other => anyhow::anyhow!("{other}"),
    }
}

/// The new key from `--new-key` or `--new-key-file`, refused when malformed or weak.
fn read_new_key(new_key: Option<String>, new_key_file: Option<PathBuf>) -> anyhow::Result<[u8; 32]> {
    let text = match (new_key, new_key_file) {
        (Some(text), _) => text,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read --new-key-file {}: {e}", path.display()))?,
        (None, None) => anyhow::bail!("give the new key with --new-key or --new-key-file"),
    };
    let key = crate::crypto::parse_key(&text)
        .map_err(|reason| anyhow::anyhow!("the new key is malformed ({reason}); generate one with `openssl rand -base64 32`"))?;
    if crate::crypto::is_weak_key(&text) {
        anyhow::bail!("the new key is a known example or low-entropy value; generate one with `openssl rand -base64 32`");
    }
    Ok(key)
}

async fn rotate_encryption_key(settings: Settings, new_key: Option<String>, new_key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let new_key = read_new_key(new_key, new_key_file)?;
    let old = Cipher::from_settings(&settings)?;
    let keyring = Cipher::rotating_to(new_key, old.as_ref());
    // Rotating to the current key only makes sense while older keys are configured: it then
    // finishes a rotation by re-sealing what replicas still on the old key wrote meanwhile.
    let finishing = old.as_ref().is_some_and(|old| old.key_id() == keyring.key_id());
    if finishing && keyring.previous_key_ids().is_empty() {
        anyhow::bail!(
            "the new key is the current ENCRYPTION_KEY and no ENCRYPTION_KEY_PREVIOUS is set: nothing to rotate; \
             generate a new key with `openssl rand -base64 32`"
        );
    }
    let db = crate::app::open_database(&settings).await?;
    let outcome = crate::crypto::rotate::rotate(&db, &keyring).await;
    db.close().await;
    let report = outcome.map_err(|e| anyhow::anyhow!("{e}; the rotation was rolled back, nothing was changed"))?;
    tracing::info!(
        target: "calseta::audit",
        event = "encryption_key_rotated",
        actor = "cli",
        new_key_id = %keyring.key_id(),
        rotated = report.rotated,
        already_current = report.already_current,
        sealed_plain = report.sealed_plain,
        "stored secrets re-sealed with a new encryption key"
    );
    println!(
        "rotated {} values ({} already on the new key {})",
        report.rotated,
        report.already_current,
        keyring.key_id()
    );
    if report.sealed_plain > 0 {
        println!("sealed {} values that were stored unencrypted", report.sealed_plain);
    }
    if finishing {
        if report.rotated == 0 {
            println!("Nothing is sealed with an older key any more: ENCRYPTION_KEY_PREVIOUS can be removed.");
        } else {
            println!("Run this again after every replica runs with ENCRYPTION_KEY set to the new key; once it rotates 0 values, remove ENCRYPTION_KEY_PREVIOUS.");
        }
    } else if let Some(old) = &old {
        println!(
            "Next: on every replica set ENCRYPTION_KEY to the new key and put the old key (id {}) in \
             ENCRYPTION_KEY_PREVIOUS, then restart them all. Then run this command again with those \
             settings to re-seal what replicas still on the old key wrote meanwhile; once it rotates 0 \
             values, remove the old key from ENCRYPTION_KEY_PREVIOUS.",
            old.key_id()
        );
    } else {
        println!("Next: set ENCRYPTION_KEY to the new key on every replica and restart them all.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("90d").unwrap(), ChronoDuration::days(90));
        assert_eq!(parse_lifetime("12h").unwrap(), ChronoDuration::hours(12));
        assert_eq!(parse_lifetime("3600").unwrap(), ChronoDuration::seconds(3600));
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("5y").is_err());
        assert!(parse_lifetime("abc").is_err());
    }

    #[test]
    fn new_key_is_checked() {
        let good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert!(read_new_key(Some(good.into()), None).is_ok());
        let malformed = read_new_key(Some("short".into()), None).unwrap_err().to_string();
        assert!(malformed.contains("malformed"), "{malformed}");
        let weak = read_new_key(Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()), None).unwrap_err().to_string();
        assert!(weak.contains("low-entropy"), "{weak}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.key");
        std::fs::write(&path, format!("{good}\n")).unwrap();
        assert_eq!(read_new_key(None, Some(path)).unwrap(), crate::crypto::parse_key(good).unwrap());
        let missing = read_new_key(None, Some(dir.path().join("absent"))).unwrap_err().to_string();
        assert!(missing.contains("--new-key-file"), "{missing}");
    }
}
