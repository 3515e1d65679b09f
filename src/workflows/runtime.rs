//! What running workflows needs per process, built once at start-up and held in `AppState`: the
//! sandbox (absent when `WORKFLOWS_ENABLED=false`), the secrets granted to workflow code, and
//! the integration credentials the parent uses on the child's behalf.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::Settings;
use crate::sandbox::{RunOutcome, RunRequest, Sandbox, SandboxSettings};

/// Okta / Entra credentials and API origins. The child only learns whether each is configured.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    pub okta: Option<Okta>,
    pub entra: Option<Entra>,
}

#[derive(Clone)]
pub struct Okta {
    /// `https://<domain>` or `OKTA_BASE_URL`; requests go to `<base>/api/v1/...`.
    pub base_url: String,
    pub api_token: String,
}

#[derive(Clone)]
pub struct Entra {
    pub login_base_url: String,
    pub graph_base_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

// Credentials never reach a log line through `?`.
impl std::fmt::Debug for Okta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Okta({})", self.base_url)
    }
}
impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entra({}, tenant {})", self.graph_base_url, self.tenant_id)
    }
}

pub struct Runtime {
    sandbox: Option<Sandbox>,
    /// Name → value of every secret granted to workflows (`WORKFLOW_SECRETS`), read once.
    secrets: Arc<BTreeMap<String, String>>,
    pub integrations: Arc<Integrations>,
}

impl Runtime {
    /// Starts the sandbox (when enabled) and resolves the grants. Errors name the setting to fix;
    /// in production an unavailable sandbox is one, unless workflows are disabled.
    pub async fn start(settings: &Settings) -> anyhow::Result<Runtime> {
        // The approval notifier checks its settings now: a misconfigured one would otherwise
        // fail every notification job later, silently to whoever waits for the message.
        crate::approvals::notify::from_settings(settings).map_err(|e| anyhow::anyhow!(e))?;
        let secrets = granted_secrets(settings)?;
        let sandbox = if settings.workflows_enabled {
            let sandbox = Sandbox::start(SandboxSettings {
                python: settings.workflow_python.as_ref().map(Into::into),
                max_memory_mb: settings.workflow_max_memory_mb.max(32),
                pool_size: settings.workflow_pool_size,
                max_concurrent_runs: settings.workflow_max_concurrent_runs.max(1),
                ..SandboxSettings::default()
            })
            .await;
            let status = sandbox.status();
            if settings.is_production() && !status.available {
                anyhow::bail!(
                    "refusing to start in production: WORKFLOWS_ENABLED: the workflow sandbox is unavailable ({}); \
                     fix the host (see README: sandbox host requirements) or set WORKFLOWS_ENABLED=false",
                    status.reason.unwrap_or_default()
                );
            }
            Some(sandbox)
        } else {
            None
        };
        Ok(Runtime { sandbox, secrets: Arc::new(secrets), integrations: Arc::new(integrations(settings)) })
    }

    /// Runs workflow code; a disabled or unavailable sandbox is a failed outcome, never a
    /// fallback to running the code unsandboxed.
    pub async fn run(&self, request: RunRequest, host: Arc<dyn crate::sandbox::HostApi>) -> RunOutcome {
        match &self.sandbox {
            Some(sandbox) => sandbox.run(request, host).await,
            None => RunOutcome {
                success: false,
                message: "Workflows are disabled on this server (WORKFLOWS_ENABLED=false)".into(),
                data: json!({}),
                log_output: String::new(),
                duration_ms: 0,
                timed_out: false,
                error_kind: Some(crate::sandbox::ErrorKind::SandboxUnavailable),
            },
        }
    }

    /// CPython `compile()` of saved code. `Ok(())` also when no sandbox can run the check (runs
    /// fail anyway then); `Err(Unavailable)` when a working sandbox could not serve it now.
    pub async fn compile_check(&self, code: &str) -> Result<(), CompileError> {
        let Some(sandbox) = self.sandbox.as_ref().filter(|s| s.status().available) else {
            return Ok(());
        };
        sandbox.compile_check(code).await.map_err(|message| {
            // CPython's verdict is `Syntax error: …`; anything else is the sandbox failing to
            // serve the check (no child, protocol), which says nothing about the code.
            if message.starts_with("Syntax error") {
                CompileError::Syntax(message)
            } else {
                CompileError::Unavailable(format!("The workflow sandbox could not check the code: {message}"))
            }
        })
    }

    pub fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    /// The `/health` line: available, why not, which layers are in force.
    pub fn health(&self) -> Value {
        match &self.sandbox {
            None => json!({"status": "disabled"}),
            Some(sandbox) => {
                let status = sandbox.status();
                let layers: serde_json::Map<String, Value> =
                    status.layers.iter().map(|(name, on)| ((*name).to_owned(), json!(on))).collect();
                json!({
                    "status": if status.available { "ok" } else { "unavailable" },
                    "reason": status.reason,
                    "layers": layers,
                })
            }
        }
    }
}

pub enum CompileError {
    Syntax(String),
    Unavailable(String),
}

/// `WORKFLOW_SECRETS` names, each read from the process environment once. A name that is one of
/// the server's own settings (database URL, encryption key, webhook secrets, provider
/// credentials, …) is refused: granting it would hand platform secrets to workflow code.
fn granted_secrets(settings: &Settings) -> anyhow::Result<BTreeMap<String, String>> {
    let own_settings: Vec<String> = serde_json::to_value(Settings::default())
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect()))
        .unwrap_or_default();
    let mut secrets = BTreeMap::new();
    for name in settings.workflow_secrets.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let upper = name.to_ascii_uppercase();
        let base = upper.strip_suffix("_FILE").unwrap_or(&upper);
        if own_settings.iter().any(|s| s == base) || base.starts_with("CALSETA_") {
            anyhow::bail!("WORKFLOW_SECRETS: '{name}' is a server setting and cannot be granted to workflows");
        }
        if let Ok(value) = std::env::var(name) {
            secrets.insert(name.to_owned(), value);
        } else if let Ok(path) = std::env::var(format!("{name}_FILE")) {
            let value = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("WORKFLOW_SECRETS: reading {name}_FILE ({path}): {e}"))?;
            secrets.insert(name.to_owned(), value.trim_end_matches(['\r', '\n']).to_owned());
        }
    }
    Ok(secrets)
}

fn integrations(settings: &Settings) -> Integrations {
    let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let okta = match (set(&settings.okta_domain), set(&settings.okta_api_token)) {
        (Some(domain), Some(api_token)) => Some(Okta {
            base_url: set(&settings.okta_base_url).unwrap_or_else(|| format!("https://{domain}")).trim_end_matches('/').to_owned(),
            api_token,
        }),
        _ => None,
    };
    let entra = match (set(&settings.entra_tenant_id), set(&settings.entra_client_id), set(&settings.entra_client_secret)) {
        (Some(tenant_id), Some(client_id), Some(client_secret)) => Some(Entra {
            login_base_url: settings.entra_login_base_url.trim_end_matches('/').to_owned(),
            graph_base_url: settings.entra_graph_base_url.trim_end_matches('/').to_owned(),
            tenant_id,
            client_id,
            client_secret,
        }),
        _ => None,
    };
    Integrations { okta, entra }
}
