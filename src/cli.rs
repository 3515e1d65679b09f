//! The `calseta` command line: `serve`, `migrate`, `api-key create|list|revoke`.

use std::process::ExitCode;

use chrono::{Duration as ChronoDuration, Utc};
use clap::{Parser, Subcommand};

use crate::auth::{KeyType, keys};
use crate::config::Settings;

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
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("calseta: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.log_format, &settings.log_level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calseta: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
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
    }
}

async fn serve(settings: Settings, bind: Option<String>, roles: Vec<String>) -> anyhow::Result<()> {
    let bind = bind.unwrap_or_else(|| settings.calseta_bind.clone());
    let db = crate::app::open_database(&settings).await?;
    if settings.bootstrap_admin_key && roles.iter().any(|r| r == "api") {
        crate::app::bootstrap_admin_key(&db).await?;
    }
    let state = crate::app::build_state(settings, db.clone()).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let signal = crate::http::shutdown_signal()?;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            shutdown.cancel();
        });
    }
    let workers = roles
        .iter()
        .any(|r| r == "worker")
        .then(|| tokio::spawn(crate::jobs::run_workers(state.clone(), shutdown.clone())));
    if roles.iter().any(|r| r == "api") {
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
        crate::http::serve(state, listener, shutdown.clone()).await?;
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
    match cmd {
        ApiKeyCommand::Create { name, scopes, key_type, allowed_sources, expires_in } => {
            let scopes: Vec<String> = scopes.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            crate::auth::http::validate_name(&name).map_err(|e| anyhow::anyhow!(e.msg))?;
            crate::auth::http::validate_scopes(&scopes).map_err(|e| anyhow::anyhow!(e.msg))?;
            let key_type = KeyType::parse(&key_type).expect("clap restricts the values");
            let expires_at = expires_in.map(|d| Utc::now() + d);
            let (row, plaintext) = crate::auth::http::create_key(&db, &name, &scopes, key_type, expires_at, allowed_sources.as_deref(), false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .expect("unconditional insert");
            println!("Created API key '{}' ({}), uuid {}", row.name, row.key_prefix, row.uuid);
            println!("scopes: {}", row.scopes.0.join(","));
            println!("The key is shown once; store it now:");
            println!("{plaintext}");
        }
        ApiKeyCommand::List => {
            let (rows, total) = keys::list_active(&db, 10_000, 0).await?;
            println!("{:<38} {:<10} {:<6} {:<24} {:<22} NAME", "UUID", "PREFIX", "TYPE", "SCOPES", "EXPIRES");
            for row in rows {
                let expires = row.expires_at.map(|e| e.format("%Y-%m-%dT%H:%MZ").to_string()).unwrap_or_else(|| "never".into());
                println!("{:<38} {:<10} {:<6} {:<24} {:<22} {}", row.uuid, row.key_prefix, row.key_type, row.scopes.0.join(","), expires, row.name);
            }
            println!("{total} active key(s)");
        }
        ApiKeyCommand::Revoke { key } => {
            let target = match uuid::Uuid::parse_str(&key) {
                Ok(uuid) => keys::find_by_uuid(&db, uuid).await?,
                Err(_) => {
                    let mut matches = keys::find_active_by_prefix(&db, &key).await?;
                    if matches.len() > 1 {
                        anyhow::bail!("prefix {key} matches {} active keys; revoke by UUID instead", matches.len());
                    }
                    matches.pop()
                }
            };
            let Some(row) = target else { anyhow::bail!("no API key matches {key}") };
            keys::deactivate(&db, row.uuid).await?;
            tracing::info!(target: "calseta::audit", event = "api_key_revoked", key_prefix = %row.key_prefix, key_uuid = %row.uuid, actor = "cli", "api key revoked");
            println!("Revoked API key {} ({})", row.uuid, row.key_prefix);
        }
    }
    db.close().await;
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
}
