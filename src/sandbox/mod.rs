//! The workflow sandbox: runs untrusted workflow Python in a child CPython that cannot open
//! sockets (other than an AF_UNIX socketpair), fork or exec, read anything but the stdlib, write
//! files, signal or trace other processes, see the server's environment, or exceed its CPU,
//! memory and wall-clock caps. Everything the workflow may do outside (HTTP, secrets, Okta/Entra)
//! is a request to the parent over the child's pipes, answered through [`HostApi`].
//!
//! Layers (see `layers.rs`): seccomp, Landlock and rlimits are required; user/net/ipc/uts/mount
//! namespaces are added when the host allows them. When a required layer is missing the sandbox
//! reports `available == false` with the reason and every run fails with
//! [`ErrorKind::SandboxUnavailable`]: there is no unsandboxed fallback.
//!
//! Runs are served by a small pool of pre-spawned, single-use interpreters (each serves one run
//! and is then killed); the pool refills in the background.
//!
//! ```ignore
//! let sandbox = Sandbox::start(SandboxSettings::default()).await;
//! let outcome = sandbox.run(RunRequest { code, ctx_json, timeout, mock_http: None }, host).await;
//! ```

mod child;
mod interpreter;
mod layers;
mod run;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore, mpsc};

use child::{Child, Launcher};
use interpreter::Interpreter;
use layers::{Layers, Limits};

/// Operator settings of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Python to ask for the real interpreter (default: `python3` on PATH). Asked once.
    pub python: Option<PathBuf>,
    /// Address-space cap per child (`WORKFLOW_MAX_MEMORY_MB`).
    pub max_memory_mb: u64,
    /// CPU-time cap per child, seconds (SIGXCPU, then SIGKILL one second later).
    pub cpu_seconds: u64,
    /// Pre-spawned interpreters kept ready (0: spawn one per run).
    pub pool_size: usize,
    /// Runs executing at once; more wait for a slot.
    pub max_concurrent_runs: usize,
    /// Cap on a run's `log_output`; more fails the run (`ErrorKind::LogFlood`).
    pub log_max_bytes: usize,
    /// Cap on what a run may print to stdout/stderr; more fails it (`ErrorKind::OutputFlood`).
    pub output_max_bytes: usize,
    /// Cap on one protocol message from the child (a result, an HTTP request).
    pub max_message_bytes: usize,
    /// Whether to try user/net/ipc/uts/mount namespaces (used only when the host allows them).
    pub namespaces: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            python: None,
            max_memory_mb: 256,
            cpu_seconds: 60,
            pool_size: 2,
            max_concurrent_runs: 4,
            log_max_bytes: 1024 * 1024,
            output_max_bytes: 1024 * 1024,
            max_message_bytes: 4 * 1024 * 1024,
            namespaces: true,
        }
    }
}

/// For /health and for the production start-up refusal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SandboxStatus {
    /// Every required layer works: workflows may run.
    pub available: bool,
    /// Each layer and whether it is in force (`namespaces` is optional).
    pub layers: Vec<(&'static str, bool)>,
    /// Why the sandbox is unavailable (or which optional layer is missing).
    pub reason: Option<String>,
    /// The interpreter executed, e.g. `/usr/bin/python3.11 (3.11.2)`.
    pub interpreter: Option<String>,
}

/// One workflow execution.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The workflow's Python source.
    pub code: String,
    /// `{"indicator": {...}, "alert": {...} | null}` with the fields of workflows.md §2.1;
    /// timestamps as ISO-8601 strings (the shim turns them into aware datetimes).
    pub ctx_json: Value,
    /// Wall-clock limit of the whole run (module load included).
    pub timeout: Duration,
    /// Test endpoint without `live_http`: every `ctx.http` request gets HTTP 200 with this JSON
    /// body, answered by the parent; `None` sends requests to [`HostApi::http`].
    pub mock_http: Option<Value>,
}

/// How a run failed, from what happened (not from message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The wall-clock timeout fired; the process group was killed.
    Timeout,
    /// MemoryError inside the interpreter (address-space cap).
    Memory,
    /// The CPU-time cap (SIGXCPU/SIGKILL from RLIMIT_CPU).
    Cpu,
    /// The interpreter died without a result (signal or exit).
    Crash,
    /// Too much written to stdout/stderr.
    OutputFlood,
    /// Too much `ctx.log` output.
    LogFlood,
    /// The child broke the protocol (bad or oversized message).
    Protocol,
    /// A required kernel layer is missing, or no interpreter could be started.
    SandboxUnavailable,
    /// Syntax error, exception at load or in `run()`, wrong return type.
    CodeError,
}

/// The result of a run. A `WorkflowResult.fail(...)` returned by the workflow is
/// `success == false` with `error_kind == None`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    pub success: bool,
    pub message: String,
    pub data: Value,
    /// One JSON object per line (workflows.md §2.1), kept even when the run was killed.
    pub log_output: String,
    pub duration_ms: u64,
    /// The real timeout fired (not inferred from the message).
    pub timed_out: bool,
    pub error_kind: Option<ErrorKind>,
}

/// An HTTP request made by workflow code through `ctx.http`.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: String,
    /// Query parameters already applied.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The workflow's per-request timeout (default: the workflow timeout).
    pub timeout: Duration,
}

/// The answer given back to the workflow.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the parent does on the child's behalf. `Err(text)` becomes an exception in the
/// workflow (`HTTPError` / `IntegrationError`) with that text.
pub trait HostApi: Send + Sync {
    /// `ctx.http`: send through the egress gateway (SSRF rules, no redirects, caps).
    fn http(&self, call: HttpCall) -> BoxFuture<'_, Result<HttpReply, String>>;
    /// `ctx.secrets.get(name)`: only secrets granted to workflows, never platform secrets.
    fn secret(&self, name: String) -> BoxFuture<'_, Option<String>>;
    /// Whether `ctx.integrations.<name>` ("okta" | "entra") is configured (else it is None).
    fn integration_available(&self, name: &str) -> bool;
    /// `await ctx.integrations.<name>.<method>(*args, **kwargs)`; `args` is
    /// `{"args": [...], "kwargs": {...}}`. Performed with credentials the child never sees.
    fn integration(
        &self,
        name: String,
        method: String,
        args: Value,
    ) -> BoxFuture<'_, Result<Value, String>>;
}

/// The sandbox: cheap to clone, shared by the workers.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SandboxSettings,
    status: SandboxStatus,
    launcher: Option<Arc<Launcher>>,
    pool: Mutex<mpsc::Receiver<Child>>,
    slots: Semaphore,
}

impl Sandbox {
    /// Resolves the interpreter, builds and probes the layers, and starts filling the pool.
    /// Never fails: problems are reported by [`Sandbox::status`].
    pub async fn start(settings: SandboxSettings) -> Sandbox {
        let (tx, rx) = mpsc::channel(settings.pool_size.max(1));
        let (status, launcher) = match prepare(&settings).await {
            Ok((status, launcher)) => (status, Some(launcher)),
            Err(status) => (status, None),
        };
        if let Some(launcher) = launcher.as_ref().filter(|_| settings.pool_size > 0) {
            tokio::spawn(fill_pool(
                Arc::clone(launcher),
                tx,
                settings.max_message_bytes,
            ));
        }
        if !status.available {
            tracing::warn!(reason = ?status.reason, "workflow sandbox unavailable");
        }
        let slots = Semaphore::new(settings.max_concurrent_runs.max(1));
        Sandbox {
            inner: Arc::new(Inner {
                settings,
                status,
                launcher,
                pool: Mutex::new(rx),
                slots,
            }),
        }
    }

    pub fn status(&self) -> SandboxStatus {
        self.inner.status.clone()
    }

    /// Runs one workflow. Never panics and never returns an error: failures are outcomes with
    /// Calseta's messages and an [`ErrorKind`].
    pub async fn run(&self, req: RunRequest, host: Arc<dyn HostApi>) -> RunOutcome {
        let started = std::time::Instant::now();
        let Ok(_slot) = self.inner.slots.acquire().await else {
            return run::unavailable("the sandbox is shutting down", started);
        };
        // The wall clock starts once a slot is ours and covers a cold spawn too, so a run ends
        // within its timeout (plus the kill) however loaded the host is.
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut child = match tokio::time::timeout_at(deadline, self.checkout()).await {
            Ok(Ok(child)) => child,
            Ok(Err(reason)) => return run::unavailable(&reason, started),
            Err(_) => return run::timed_out(req.timeout, String::new(), started),
        };
        run::execute(
            &mut child,
            &self.inner.settings,
            req,
            host,
            started,
            deadline,
        )
        .await
    }

    /// CPython `compile()` of `code` inside a sandboxed interpreter (the save-time check that
    /// catches syntax the runtime rejects). `Err` carries `Syntax error: <msg> (line N)`, or
    /// the reason the sandbox could not run the check.
    pub async fn compile_check(&self, code: &str) -> Result<(), String> {
        let Ok(_slot) = self.inner.slots.acquire().await else {
            return Err("Workflow sandbox unavailable: shutting down".into());
        };
        let mut child = self
            .checkout()
            .await
            .map_err(|r| format!("Workflow sandbox unavailable: {r}"))?;
        run::compile(&mut child, code).await
    }

    /// A warm pooled child, or a freshly spawned one when the pool is empty.
    async fn checkout(&self) -> Result<Child, String> {
        let Some(launcher) = &self.inner.launcher else {
            return Err(self.inner.status.reason.clone().unwrap_or_default());
        };
        if !self.inner.status.available {
            return Err(self.inner.status.reason.clone().unwrap_or_default());
        }
        {
            let mut pool = self.inner.pool.lock().await;
            while let Ok(mut child) = pool.try_recv() {
                crate::observability::sandbox_pool_size(pool.len());
                if !child.has_exited() {
                    return Ok(child);
                }
            }
        }
        launcher
            .spawn_ready(self.inner.settings.max_message_bytes)
            .await
    }
}

/// Keeps `pool_size` ready children; exits when the sandbox is dropped.
async fn fill_pool(launcher: Arc<Launcher>, tx: mpsc::Sender<Child>, max_line: usize) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Ok(permit) = tx.reserve().await else {
            return;
        };
        match launcher.spawn_ready(max_line).await {
            Ok(child) => {
                permit.send(child);
                crate::observability::sandbox_pool_size(tx.max_capacity() - tx.capacity());
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "workflow sandbox: pooled interpreter failed to start");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Resolves the interpreter, builds the layers and proves them with a probe child.
async fn prepare(
    settings: &SandboxSettings,
) -> Result<(SandboxStatus, Arc<Launcher>), SandboxStatus> {
    let unavailable =
        |reason: String, layers: Vec<(&'static str, bool)>, interp: Option<String>| SandboxStatus {
            available: false,
            layers,
            reason: Some(reason),
            interpreter: interp,
        };
    let interpreter = Interpreter::resolve(settings.python.clone())
        .await
        .map_err(|e| {
            unavailable(
                format!("no usable Python interpreter: {e}"),
                Vec::new(),
                None,
            )
        })?;
    let label = Some(format!(
        "{} ({})",
        interpreter.executable.display(),
        interpreter.version
    ));
    let namespaces_error = if settings.namespaces {
        Launcher::namespaces_work(&interpreter).await.err()
    } else {
        Some("disabled by settings".to_string())
    };
    let namespaces = namespaces_error.is_none();
    let limits = Limits {
        address_space_bytes: settings.max_memory_mb.saturating_mul(1024 * 1024),
        cpu_seconds: settings.cpu_seconds.max(1),
        open_files: 64,
    };
    let abi = layers::landlock_abi();
    let base_layers = |seccomp: bool, landlock: bool, rlimits: bool| {
        vec![
            ("seccomp", seccomp),
            ("landlock", landlock),
            ("landlock_signal_scope", landlock && abi >= 6),
            ("landlock_network", landlock && abi >= 4),
            ("rlimits", rlimits),
            ("namespaces", namespaces),
        ]
    };
    let built = Layers::build(&interpreter, limits, namespaces)
        .map_err(|e| unavailable(e, base_layers(false, abi >= 1, false), label.clone()))?;
    let launcher = Arc::new(Launcher::new(interpreter, built).map_err(|e| {
        unavailable(
            e.to_string(),
            base_layers(false, false, false),
            label.clone(),
        )
    })?);
    let findings = run::probe(&launcher, settings.max_message_bytes)
        .await
        .map_err(|e| {
            unavailable(
                format!(
                    "a sandboxed interpreter could not start (a required layer may be refused \
                     by this host): {e}"
                ),
                base_layers(false, false, false),
                label.clone(),
            )
        })?;
    let (seccomp, landlock, problems) = run::judge_probe(&findings);
    let available = seccomp && landlock && problems.is_empty();
    let reason = if !available {
        Some(format!("sandbox self-test failed: {}", problems.join("; ")))
    } else {
        namespaces_error.map(|e| format!("optional namespaces layer not in force: {e}"))
    };
    let status = SandboxStatus {
        available,
        layers: base_layers(seccomp, landlock, true),
        reason,
        interpreter: label,
    };
    if available {
        Ok((status, launcher))
    } else {
        Err(status)
    }
}
