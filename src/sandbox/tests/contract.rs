//! The workflow contract as seen from Rust: ctx, results, messages (workflows.md §2, §4).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn trivial_workflow_succeeds_with_data_and_json_lines_log() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let code = r#"
from app.workflows.context import WorkflowContext, WorkflowResult

class Helper:
    def describe(self, ctx):
        return f"{ctx.indicator.type}:{ctx.indicator.value}"

async def run(ctx: WorkflowContext) -> WorkflowResult:
    ctx.log.info("started", account=ctx.indicator.value, when=ctx.indicator.first_seen)
    ctx.log("plain call")
    ctx.log.warning("no fields")
    return WorkflowResult.ok(Helper().describe(ctx), data={
        "tz": str(ctx.indicator.first_seen.tzinfo),
        "z_parsed": ctx.indicator.last_seen.year,
        "uuid_version": ctx.indicator.uuid.version,
        "alert": ctx.alert,
        "obj": object,
    })
"#;
    let outcome = run_code(&sandbox, code).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.message, "account:j.doe@example.org");
    assert_eq!(outcome.error_kind, None);
    assert!(!outcome.timed_out);
    assert_eq!(outcome.data["tz"], "UTC");
    assert_eq!(outcome.data["z_parsed"], 2026);
    assert_eq!(outcome.data["uuid_version"], 4);
    assert_eq!(outcome.data["alert"], Value::Null);
    assert_eq!(
        outcome.data["obj"], "<class 'object'>",
        "non-JSON data is stringified"
    );
    let lines: Vec<Value> = outcome
        .log_output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", outcome.log_output);
    assert_eq!(lines[0]["level"], "info");
    assert_eq!(lines[0]["message"], "started");
    assert_eq!(lines[0]["extra"]["account"], "j.doe@example.org");
    assert_eq!(
        lines[0]["extra"]["when"], "2026-03-01 12:00:00+00:00",
        "datetime stringified"
    );
    let ts = lines[0]["ts"].as_str().unwrap();
    assert!(ts.ends_with("+00:00") && ts.len() == 32, "{ts}");
    assert_eq!(lines[1]["level"], "info");
    assert!(lines[2].get("extra").is_none(), "no extra without fields");
    assert_eq!(lines[2]["level"], "warning");
}

#[tokio::test]
async fn calseta_workflows_import_path_and_fail_result() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let code = "from calseta.workflows import WorkflowResult\nimport json, re, datetime, asyncio\n\
                async def run(ctx):\n    await asyncio.sleep(0)\n    return WorkflowResult.fail('nope', data={'n': 1})\n";
    let outcome = run_code(&sandbox, code).await;
    assert!(!outcome.success);
    assert_eq!(outcome.message, "nope");
    assert_eq!(outcome.data, json!({"n": 1}));
    assert_eq!(
        outcome.error_kind, None,
        "a workflow's own failure is not an error kind"
    );
}

#[tokio::test]
async fn calseta_messages_for_broken_code() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let cases = [
        (
            "async def run(ctx)\n    pass\n",
            "Workflow code syntax error: ",
        ),
        (
            "raise ValueError('boom')\n",
            "Workflow code raised an exception during module load: boom\nTraceback",
        ),
        (
            "def run(ctx):\n    pass\n",
            "Workflow code does not define an async function named 'run'",
        ),
        (
            "x = 1\n",
            "Workflow code does not define an async function named 'run'",
        ),
        (
            "async def run(ctx):\n    return 42\n",
            "Workflow run() returned unexpected type: int. Must return a WorkflowResult instance.",
        ),
        (
            "async def run(ctx):\n    raise KeyError('k')\n",
            "Workflow run() raised an exception: 'k'\nTraceback",
        ),
        (
            "import os\nasync def run(ctx):\n    pass\n",
            "Workflow code raised an exception during module load: Import of 'os' is not allowed in workflows",
        ),
        (
            "async def run(ctx):\n    return open('/etc/hostname')\n",
            "Workflow run() raised an exception: name 'open' is not defined",
        ),
        (
            "async def run(ctx):\n    return __import__('os')\n",
            "Workflow run() raised an exception: Import of 'os' is not allowed in workflows",
        ),
        (
            "import sys\n",
            "Workflow code raised an exception during module load: Import of 'sys' is not allowed",
        ),
        (
            "raise SystemExit(0)\n",
            "Workflow code raised an exception during module load: 0",
        ),
    ];
    for (code, expected) in cases {
        let outcome = run_code(&sandbox, code).await;
        assert!(!outcome.success, "{code}");
        assert!(
            outcome.message.starts_with(expected),
            "{code:?}: {}",
            outcome.message
        );
        assert_eq!(outcome.error_kind, Some(ErrorKind::CodeError), "{code}");
        assert!(!outcome.timed_out);
    }
}

#[tokio::test]
async fn http_goes_to_the_host_and_errors_become_exceptions() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let host = Arc::new(FakeHost::default());
    let code = r#"
from app.workflows.context import WorkflowResult
async def run(ctx):
    r = await ctx.http.post("https://api.example.com/x", params={"q": "a b"}, json={"k": 1},
                            headers={"X-Trace": "7"}, timeout=5)
    r.raise_for_status()
    try:
        await ctx.http.get("http://169.254.169.254/latest/meta-data/")
        blocked = None
    except Exception as exc:
        blocked = f"{type(exc).__name__}: {exc}"
    return WorkflowResult.ok("ok", data={"status": r.status_code, "json": r.json(),
        "ctype": r.headers["content-type"], "text": r.text, "blocked": blocked})
"#;
    let outcome = sandbox
        .run(request(code, Duration::from_secs(10)), host.clone())
        .await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.data["status"], 201);
    assert_eq!(outcome.data["json"], json!({"created": true}));
    assert_eq!(outcome.data["ctype"], "application/json");
    assert_eq!(
        outcome.data["blocked"],
        "HTTPError: URL blocked by SSRF protection"
    );
    let calls = host.http_calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].url, "https://api.example.com/x?q=a+b");
    assert_eq!(calls[0].body.as_deref(), Some(&br#"{"k": 1}"#[..]));
    assert!(calls[0].headers.contains(&("X-Trace".into(), "7".into())));
    assert!(
        calls[0]
            .headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    assert_eq!(calls[0].timeout, Duration::from_secs(5));
    assert_eq!(
        calls[1].timeout,
        Duration::from_secs(10),
        "default = workflow timeout"
    );
}

#[tokio::test]
async fn mock_http_is_served_by_the_parent() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let host = Arc::new(FakeHost::default());
    let code = "from app.workflows.context import WorkflowResult\n\
                async def run(ctx):\n    r = await ctx.http.delete('http://10.0.0.1/anything')\n    \
                return WorkflowResult.ok('m', data=r.json())\n";
    let mut req = request(code, Duration::from_secs(10));
    req.mock_http = Some(json!({"status": "ok"}));
    let outcome = sandbox.run(req, host.clone()).await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.data, json!({"status": "ok"}));
    assert!(
        host.http_calls.lock().unwrap().is_empty(),
        "mock requests never reach the host"
    );
}

#[tokio::test]
async fn secrets_and_integrations_are_asked_of_the_parent() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let host = Arc::new(FakeHost {
        secrets: [("VT_KEY".to_string(), "s3cr3t".to_string())].into(),
        integrations: vec!["okta"],
        ..FakeHost::default()
    });
    let code = r#"
from app.workflows.context import WorkflowResult
async def run(ctx):
    okta = ctx.integrations.okta
    await okta.revoke_sessions(ctx.indicator.value, reason="test")
    try:
        await okta.suspend_user("x")
        err = None
    except Exception as exc:
        err = str(exc)
    return WorkflowResult.ok("i", data={"secret": ctx.secrets.get("VT_KEY"),
        "missing": ctx.secrets.get("DATABASE_URL"), "default": ctx.secrets.get("NOPE", "d"),
        "entra": ctx.integrations.entra, "err": err})
"#;
    let outcome = sandbox
        .run(request(code, Duration::from_secs(10)), host.clone())
        .await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        outcome.data,
        json!({"secret": "s3cr3t", "missing": null, "default": "d", "entra": null,
               "err": "Okta returned 404: user not found"})
    );
    let calls = host.integration_calls.lock().unwrap();
    assert_eq!(calls[0].0, "okta");
    assert_eq!(calls[0].1, "revoke_sessions");
    assert_eq!(
        calls[0].2,
        json!({"args": ["j.doe@example.org"], "kwargs": {"reason": "test"}})
    );
}

#[tokio::test]
async fn builtin_workflows_run_against_the_host() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let host = Arc::new(FakeHost {
        integrations: vec!["okta"],
        ..FakeHost::default()
    });
    for builtin in crate::workflows::builtins::BUILTINS {
        let outcome = sandbox
            .run(request(builtin.code, Duration::from_secs(10)), host.clone())
            .await;
        assert_eq!(outcome.error_kind, None, "{}: {outcome:?}", builtin.name);
        match (builtin.integration, builtin.name) {
            (crate::workflows::builtins::Integration::Entra, _) => {
                assert_eq!(
                    outcome.message,
                    "Microsoft Entra integration is not configured"
                );
            }
            (_, "Okta — Suspend User") => {
                assert_eq!(
                    outcome.message,
                    "Failed to suspend user: Okta returned 404: user not found"
                );
                assert!(outcome.log_output.contains("\"level\":\"error\""));
            }
            _ => {
                assert!(outcome.success, "{}: {outcome:?}", builtin.name);
                assert!(
                    outcome.message.ends_with(" j.doe@example.org"),
                    "{}",
                    outcome.message
                );
                assert_eq!(outcome.data["account"], "j.doe@example.org");
                assert_eq!(outcome.log_output.lines().count(), 1);
            }
        }
    }
}

#[tokio::test]
async fn compile_check_uses_the_runtime_grammar() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    assert_eq!(
        sandbox
            .compile_check("async def run(ctx):\n    return 1\n")
            .await,
        Ok(())
    );
    // Python 3.12 syntax that rustpython-parser accepts but CPython 3.11 rejects.
    let err = sandbox.compile_check("type X = int\n").await.unwrap_err();
    assert!(
        err.starts_with("Syntax error: ") && err.ends_with("(line 1)"),
        "{err}"
    );
    let err = sandbox
        .compile_check("x = 1\nreturn 5\n")
        .await
        .unwrap_err();
    assert_eq!(err, "Syntax error: 'return' outside function (line 2)");
}

#[tokio::test]
async fn each_interpreter_serves_one_run_only() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let code = "from app.workflows.context import WorkflowResult\nSTATE = []\n\
                async def run(ctx):\n    import json\n    \
                marker = [c for c in object.__subclasses__() if c.__name__ == 'Marker']\n    \
                class Marker: pass\n    return WorkflowResult.ok(str(len(marker)))\n";
    for _ in 0..3 {
        let outcome = run_code(&sandbox, code).await;
        assert_eq!(
            outcome.message, "0",
            "state leaked between runs: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn timed_out_comes_from_the_real_timeout_and_the_log_survives_the_kill() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let own = "from app.workflows.context import WorkflowResult\n\
               async def run(ctx):\n    return WorkflowResult.fail('upstream timed out')\n";
    let outcome = run_code(&sandbox, own).await;
    assert_eq!(outcome.message, "upstream timed out");
    assert!(!outcome.timed_out, "a message is not a timeout");
    assert_eq!(outcome.error_kind, None);

    let slow = "import asyncio\nasync def run(ctx):\n    ctx.log.info('before sleep', step=1)\n    \
                await asyncio.sleep(30)\n";
    let started = std::time::Instant::now();
    let outcome = sandbox
        .run(
            request(slow, Duration::from_millis(1500)),
            Arc::new(FakeHost::default()),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(outcome.timed_out);
    assert_eq!(outcome.error_kind, Some(ErrorKind::Timeout));
    assert_eq!(
        outcome.message,
        "Workflow execution timed out after 1.5 seconds"
    );
    assert!(
        outcome.log_output.contains("\"message\":\"before sleep\""),
        "{}",
        outcome.log_output
    );
    assert!(outcome.duration_ms >= 1500);
}

#[tokio::test]
async fn an_oversized_result_fails_classified() {
    let Some(sandbox) = sandbox_with(SandboxSettings {
        pool_size: 1,
        max_message_bytes: 64 * 1024,
        ..SandboxSettings::default()
    })
    .await
    else {
        return;
    };
    let code = "from app.workflows.context import WorkflowResult\n\
                async def run(ctx):\n    return WorkflowResult.ok('big', data={'x': 'y' * 100000})\n";
    let outcome = run_code(&sandbox, code).await;
    assert!(!outcome.success);
    assert_eq!(outcome.error_kind, Some(ErrorKind::OutputFlood));
    assert!(
        outcome
            .message
            .starts_with("Workflow output exceeded the 65536-byte message limit"),
        "{}",
        outcome.message
    );
}

/// A host whose every call panics: the run still ends with an outcome.
struct PanickingHost;

impl HostApi for PanickingHost {
    fn http(&self, _call: HttpCall) -> futures::future::BoxFuture<'_, Result<HttpReply, String>> {
        Box::pin(async { panic!("host bug") })
    }
    fn secret(&self, _name: String) -> futures::future::BoxFuture<'_, Option<String>> {
        Box::pin(async { panic!("host bug") })
    }
    fn integration_available(&self, _name: &str) -> bool {
        true
    }
    fn integration(
        &self,
        _name: String,
        _method: String,
        _args: Value,
    ) -> futures::future::BoxFuture<'_, Result<Value, String>> {
        Box::pin(async { panic!("host bug") })
    }
}

#[tokio::test]
async fn a_panicking_host_is_an_exception_in_the_workflow() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let code = r#"
from app.workflows.context import WorkflowResult
async def run(ctx):
    errors = []
    for call in (lambda: ctx.http.get("https://x.test/"), lambda: ctx.integrations.okta.revoke_sessions("a")):
        try:
            await call()
        except Exception as exc:
            errors.append(str(exc))
    try:
        ctx.secrets.get("X")
    except Exception as exc:
        errors.append(str(exc))
    return WorkflowResult.ok("survived", data={"errors": errors})
"#;
    let outcome = sandbox
        .run(
            request(code, Duration::from_secs(10)),
            Arc::new(PanickingHost),
        )
        .await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        outcome.data["errors"],
        json!([
            "internal error in the workflow host",
            "internal error in the workflow host"
        ]),
        "a failed secret lookup is None, as an unknown secret"
    );
}
