//! Real sandboxed interpreters (child processes), a fake host on our side of the pipe.
//! Tests that need the kernel layers print `SKIP: <reason>` and return when the host lacks one.

mod contract;
mod escape;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::*;

/// Records what the child asked for; answers from fixed tables.
#[derive(Default)]
pub(super) struct FakeHost {
    pub http_calls: Mutex<Vec<HttpCall>>,
    pub secrets: HashMap<String, String>,
    pub integrations: Vec<&'static str>,
    pub integration_calls: Mutex<Vec<(String, String, Value)>>,
}

impl HostApi for FakeHost {
    fn http(&self, call: HttpCall) -> BoxFuture<'_, Result<HttpReply, String>> {
        async move {
            let blocked = call.url.contains("169.254.169.254");
            self.http_calls.lock().unwrap().push(call);
            if blocked {
                return Err("URL blocked by SSRF protection".to_string());
            }
            Ok(HttpReply {
                status: 201,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"created": true}"#.to_vec(),
            })
        }
        .boxed()
    }

    fn secret(&self, name: String) -> BoxFuture<'_, Option<String>> {
        let value = self.secrets.get(&name).cloned();
        async move { value }.boxed()
    }

    fn integration_available(&self, name: &str) -> bool {
        self.integrations.contains(&name)
    }

    fn integration(
        &self,
        name: String,
        method: String,
        args: Value,
    ) -> BoxFuture<'_, Result<Value, String>> {
        async move {
            let fail = method == "suspend_user";
            self.integration_calls
                .lock()
                .unwrap()
                .push((name, method, args));
            if fail {
                Err("Okta returned 404: user not found".into())
            } else {
                Ok(Value::Null)
            }
        }
        .boxed()
    }
}

/// A started sandbox, or `None` (after printing why) when this host lacks a required layer.
pub(super) async fn sandbox_with(settings: SandboxSettings) -> Option<Sandbox> {
    let sandbox = Sandbox::start(settings).await;
    let status = sandbox.status();
    if !status.available {
        // CI on a host known to have every layer sets this so that a skip cannot hide a bug.
        if std::env::var_os("CALSETA_REQUIRE_SANDBOX").is_some() {
            panic!(
                "sandbox unavailable but CALSETA_REQUIRE_SANDBOX is set: {:?}",
                status.reason
            );
        }
        eprintln!(
            "SKIP: workflow sandbox unavailable on this host: {:?}",
            status.reason
        );
        return None;
    }
    Some(sandbox)
}

pub(super) async fn sandbox() -> Option<Sandbox> {
    sandbox_with(SandboxSettings {
        pool_size: 1,
        ..SandboxSettings::default()
    })
    .await
}

pub(super) fn ctx() -> Value {
    json!({
        "indicator": {
            "uuid": "5b0c8a7e-2a51-4c43-9f0e-6f1f0f3b6a10",
            "type": "account",
            "value": "j.doe@example.org",
            "malice": "Pending",
            "is_enriched": false,
            "enrichment_results": {},
            "first_seen": "2026-03-01T12:00:00+00:00",
            "last_seen": "2026-03-01T12:00:00Z",
            "created_at": "2026-03-01T12:00:00+00:00",
            "updated_at": "2026-03-01T12:00:00+00:00"
        },
        "alert": null
    })
}

pub(super) fn request(code: &str, timeout: Duration) -> RunRequest {
    RunRequest {
        code: code.to_string(),
        ctx_json: ctx(),
        timeout,
        mock_http: None,
    }
}

pub(super) async fn run_code(sandbox: &Sandbox, code: &str) -> RunOutcome {
    sandbox
        .run(
            request(code, Duration::from_secs(10)),
            Arc::new(FakeHost::default()),
        )
        .await
}

#[tokio::test]
async fn status_lists_the_layers_and_names_the_interpreter() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let status = sandbox.status();
    eprintln!("sandbox status: {status:?}");
    let names: Vec<_> = status.layers.iter().map(|(name, _)| *name).collect();
    for required in ["seccomp", "landlock", "rlimits", "namespaces"] {
        assert!(names.contains(&required), "{names:?}");
    }
    for (name, on) in &status.layers {
        if ["seccomp", "landlock", "rlimits"].contains(name) {
            assert!(on, "{name} must be in force when available");
        }
    }
    let interpreter = status.interpreter.expect("interpreter");
    assert!(
        !interpreter.contains("shims"),
        "the pyenv shim must not be executed: {interpreter}"
    );
}

#[tokio::test]
async fn missing_interpreter_makes_the_sandbox_unavailable_and_runs_fail_classified() {
    let sandbox = Sandbox::start(SandboxSettings {
        python: Some("/nonexistent/python3".into()),
        ..SandboxSettings::default()
    })
    .await;
    let status = sandbox.status();
    assert!(!status.available);
    assert!(
        status
            .reason
            .as_deref()
            .unwrap()
            .contains("/nonexistent/python3"),
        "{status:?}"
    );
    let outcome = run_code(&sandbox, "async def run(ctx):\n    pass\n").await;
    assert!(!outcome.success);
    assert_eq!(outcome.error_kind, Some(ErrorKind::SandboxUnavailable));
    assert!(
        outcome
            .message
            .starts_with("Workflow sandbox unavailable: "),
        "{}",
        outcome.message
    );
    let compiled = sandbox.compile_check("x = 1").await;
    assert!(
        compiled
            .unwrap_err()
            .starts_with("Workflow sandbox unavailable")
    );
}

/// Figures for the report: `cargo test --lib sandbox::tests::bench_figures -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_figures() {
    let trivial = "from app.workflows.context import WorkflowResult\n\
                   async def run(ctx):\n    return WorkflowResult.ok('done')\n";
    let Some(warm) = sandbox_with(SandboxSettings {
        pool_size: 2,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = child_pids();
    let rss: Vec<u64> = pids.iter().filter_map(|pid| rss_kib(*pid)).collect();
    eprintln!("pooled children: {} RSS KiB each: {rss:?}", pids.len());
    let mut times = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await; // let the pool refill
        let started = std::time::Instant::now();
        let outcome = run_code(&warm, trivial).await;
        times.push(started.elapsed());
        assert!(outcome.success, "{outcome:?}");
    }
    report("warm pool, sequential", &mut times);
    let mut times = Vec::new();
    let started = std::time::Instant::now();
    let runs = 40;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let sandbox = warm.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            for _ in 0..runs / 4 {
                let t = std::time::Instant::now();
                assert!(run_code(&sandbox, trivial).await.success);
                local.push(t.elapsed());
            }
            local
        }));
    }
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    eprintln!(
        "4 concurrent: {:.1} runs/s",
        runs as f64 / started.elapsed().as_secs_f64()
    );
    report("4 concurrent, pool of 2", &mut times);
    drop(warm);
    let cold = sandbox_with(SandboxSettings {
        pool_size: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert!(run_code(&cold, trivial).await.success);
        times.push(started.elapsed());
    }
    report("cold spawn (no pool)", &mut times);
}

fn report(label: &str, times: &mut [Duration]) {
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    eprintln!(
        "{label}: p50 {:?} p99 {:?} (n={})",
        pct(0.5),
        pct(0.99),
        times.len()
    );
}

pub(super) fn child_pids() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(me.as_str()) {
            pids.push(pid);
        }
    }
    pids
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
