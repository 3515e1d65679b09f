//! The conversation with one child: send the job, serve its requests through the host, collect
//! its log, and turn whatever happened (result, timeout, flood, death) into a `RunOutcome`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::child::{Child, Launcher, ReadError};
use super::{ErrorKind, HostApi, HttpCall, RunOutcome, RunRequest, SandboxSettings};

/// How the conversation ended.
enum End {
    Result(Map<String, Value>),
    /// stdout closed: the interpreter died (or closed it) without a result.
    Eof,
    LogFlood,
    OutputFlood,
    /// One protocol line over `max_message_bytes`: raw output without newlines, or an
    /// oversized result or request.
    MessageTooLarge,
    Protocol(String),
}

pub(super) fn unavailable(reason: &str, started: Instant) -> RunOutcome {
    failure(
        format!("Workflow sandbox unavailable: {reason}"),
        ErrorKind::SandboxUnavailable,
        String::new(),
        started,
    )
}

pub(super) fn timed_out(timeout: Duration, log_output: String, started: Instant) -> RunOutcome {
    failure(
        format!(
            "Workflow execution timed out after {} seconds",
            seconds(timeout)
        ),
        ErrorKind::Timeout,
        log_output,
        started,
    )
}

fn failure(message: String, kind: ErrorKind, log_output: String, started: Instant) -> RunOutcome {
    RunOutcome {
        success: false,
        message,
        data: json!({}),
        log_output,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: kind == ErrorKind::Timeout,
        error_kind: Some(kind),
    }
}

/// `60` for whole seconds (Calseta's integer setting), else `2.5`.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

pub(super) async fn execute(
    child: &mut Child,
    settings: &SandboxSettings,
    req: RunRequest,
    host: Arc<dyn HostApi>,
    started: Instant,
    deadline: tokio::time::Instant,
) -> RunOutcome {
    let job = json!({
        "op": "run",
        "code": req.code,
        "ctx": req.ctx_json,
        "timeout_seconds": req.timeout.as_secs_f64(),
        "max_memory_mb": settings.max_memory_mb,
        "integrations": {
            "okta": host.integration_available("okta"),
            "entra": host.integration_available("entra"),
        },
    });
    let mut log = String::new();
    let conversation = converse(child, settings, &req, host.as_ref(), &job, &mut log);
    let end = tokio::time::timeout_at(deadline, conversation).await;
    let end = match end {
        Ok(end) => end,
        Err(_) => {
            child.finish().await;
            return timed_out(req.timeout, log, started);
        }
    };
    let outcome = match end {
        End::Result(result) => from_result(result, log, started),
        End::Eof => {
            // Died on its own: the exit status says why.
            let status = child.exit_status(Duration::from_secs(1)).await;
            // What it printed last (a traceback, "MemoryError") explains the death.
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                while child.stderr.open && child.stderr.total <= settings.output_max_bytes {
                    if child.stderr.drain().await.is_err() {
                        break;
                    }
                }
            })
            .await;
            let tail = child.finish().await;
            died(status, &tail, settings, log, started)
        }
        End::LogFlood => failure(
            format!(
                "Workflow log output exceeded {} bytes",
                settings.log_max_bytes
            ),
            ErrorKind::LogFlood,
            log,
            started,
        ),
        End::MessageTooLarge => failure(
            format!(
                "Workflow output exceeded the {}-byte message limit (result, request or raw \
                 output too large)",
                settings.max_message_bytes
            ),
            ErrorKind::OutputFlood,
            log,
            started,
        ),
        End::OutputFlood => failure(
            format!(
                "Workflow output exceeded {} bytes",
                settings.output_max_bytes
            ),
            ErrorKind::OutputFlood,
            log,
            started,
        ),
        End::Protocol(e) => failure(
            format!("Workflow sandbox protocol error: {e}"),
            ErrorKind::Protocol,
            log,
            started,
        ),
    };
    child.finish().await;
    outcome
}

fn died(
    status: Option<std::process::ExitStatus>,
    stderr_tail: &str,
    settings: &SandboxSettings,
    log: String,
    started: Instant,
) -> RunOutcome {
    use std::os::unix::process::ExitStatusExt;
    let detail = if stderr_tail.is_empty() {
        String::new()
    } else {
        format!("\n{stderr_tail}")
    };
    match status.and_then(|s| s.signal()) {
        Some(libc::SIGXCPU) => failure(
            format!(
                "Workflow exceeded CPU time limit ({} seconds)",
                settings.cpu_seconds
            ),
            ErrorKind::Cpu,
            log,
            started,
        ),
        Some(signal) => failure(
            format!("Workflow process crashed (signal {signal}){detail}"),
            ErrorKind::Crash,
            log,
            started,
        ),
        None if stderr_tail.contains("MemoryError") => failure(
            format!(
                "Workflow exceeded memory limit ({}MB)",
                settings.max_memory_mb
            ),
            ErrorKind::Memory,
            log,
            started,
        ),
        None => failure(
            format!(
                "Workflow process exited without a result ({}){detail}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "status unknown".into())
            ),
            ErrorKind::Crash,
            log,
            started,
        ),
    }
}

fn from_result(result: Map<String, Value>, log: String, started: Instant) -> RunOutcome {
    let (Some(success), Some(message)) = (
        result.get("success").and_then(Value::as_bool),
        result.get("message").and_then(Value::as_str),
    ) else {
        return failure(
            "Workflow sandbox protocol error: malformed result".into(),
            ErrorKind::Protocol,
            log,
            started,
        );
    };
    let error_kind = match result.get("kind").and_then(Value::as_str) {
        _ if success => None,
        Some("memory") => Some(ErrorKind::Memory),
        Some("code_error") => Some(ErrorKind::CodeError),
        _ => None,
    };
    RunOutcome {
        success,
        message: message.to_string(),
        data: result.get("data").cloned().unwrap_or_else(|| json!({})),
        log_output: log,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: false,
        error_kind,
    }
}

async fn converse(
    child: &mut Child,
    settings: &SandboxSettings,
    req: &RunRequest,
    host: &dyn HostApi,
    job: &Value,
    log: &mut String,
) -> End {
    if child.send(job).await.is_err() {
        return End::Eof;
    }
    loop {
        let msg = tokio::select! {
            msg = child.lines.read_message() => msg,
            drained = child.stderr.drain(), if child.stderr.open => {
                if drained.is_err() {
                    child.stderr.open = false;
                }
                if child.stderr.total > settings.output_max_bytes {
                    return End::OutputFlood;
                }
                continue;
            }
        };
        let msg = match msg {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(ReadError::Io(_)) => return End::Eof,
            Err(ReadError::TooLong) => return End::MessageTooLarge,
            Err(e @ ReadError::Malformed(_)) => return End::Protocol(e.to_string()),
        };
        let op = msg.get("op").and_then(Value::as_str).unwrap_or_default();
        let reply = match op {
            "result" => return End::Result(msg),
            "log" => {
                let Some(entry @ Value::Object(_)) = msg.get("entry") else {
                    return End::Protocol("log entry is not an object".into());
                };
                let line = entry.to_string();
                if log.len() + line.len() + 1 > settings.log_max_bytes {
                    return End::LogFlood;
                }
                log.push_str(&line);
                log.push('\n');
                continue;
            }
            "http" => match parse_http(&msg, req.timeout) {
                Ok(call) => http(call, req, host).await,
                Err(e) => return End::Protocol(e),
            },
            "secret" => {
                let Some(name) = msg.get("name").and_then(Value::as_str) else {
                    return End::Protocol("secret request without a name".into());
                };
                guarded(host.secret(name.to_string()))
                    .await
                    .map(|secret| secret.map(Value::String).unwrap_or(Value::Null))
            }
            "integration" => {
                let (Some(name), Some(method)) = (
                    msg.get("name").and_then(Value::as_str),
                    msg.get("method").and_then(Value::as_str),
                ) else {
                    return End::Protocol("integration request without name/method".into());
                };
                let args = msg.get("args").cloned().unwrap_or(Value::Null);
                guarded(host.integration(name.to_string(), method.to_string(), args))
                    .await
                    .and_then(|reply| reply)
            }
            other => return End::Protocol(format!("unknown request '{other}'")),
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let answer = match reply {
            Ok(value) => json!({"id": id, "ok": value}),
            Err(error) => json!({"id": id, "error": error}),
        };
        if child.send(&answer).await.is_err() {
            return End::Eof;
        }
    }
}

/// A panicking host call becomes an error for the workflow: a run never panics the caller.
async fn guarded<T>(call: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(call)
        .catch_unwind()
        .await
        .map_err(|_| "internal error in the workflow host".to_string())
}

fn parse_http(msg: &Map<String, Value>, run_timeout: Duration) -> Result<HttpCall, String> {
    let text = |key: &str| msg.get(key).and_then(Value::as_str).map(str::to_string);
    let (Some(method), Some(url)) = (text("method"), text("url")) else {
        return Err("http request without method/url".into());
    };
    let mut headers = Vec::new();
    for pair in msg
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => headers.push((k.clone(), v.clone())),
            _ => return Err("http header is not a [name, value] pair".into()),
        }
    }
    let body = match msg.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(b)) => Some(B64.decode(b).map_err(|e| format!("http body: {e}"))?),
        Some(_) => return Err("http body is not base64 text".into()),
    };
    let timeout = msg
        .get("timeout")
        .and_then(Value::as_f64)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map_or(run_timeout, |t| t.min(run_timeout));
    Ok(HttpCall {
        method,
        url,
        headers,
        body,
        timeout,
    })
}

async fn http(call: HttpCall, req: &RunRequest, host: &dyn HostApi) -> Result<Value, String> {
    let reply = match &req.mock_http {
        // Test endpoint: every request, any method or URL, gets 200 with the mock body.
        Some(body) => super::HttpReply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        },
        None => guarded(host.http(call)).await??,
    };
    Ok(json!({
        "status": reply.status,
        "headers": reply.headers.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>(),
        "body": B64.encode(&reply.body),
    }))
}

/// Sends one non-run job and waits (10 s) for its single reply.
async fn one_shot(child: &mut Child, job: Value) -> Result<Map<String, Value>, String> {
    child
        .send(&job)
        .await
        .map_err(|e| format!("cannot reach the interpreter: {e}"))?;
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                msg = child.lines.read_message() => return msg,
                _ = child.stderr.drain(), if child.stderr.open => {}
            }
        }
    })
    .await;
    let tail = child.finish().await;
    match reply {
        Ok(Ok(Some(map))) => Ok(map),
        Ok(Ok(None)) => Err(format!("the interpreter exited without answering: {tail}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the interpreter did not answer within 10 s".into()),
    }
}

pub(super) async fn compile(child: &mut Child, code: &str) -> Result<(), String> {
    let reply = one_shot(child, json!({"op": "compile", "code": code})).await?;
    match reply.get("error") {
        Some(Value::Null) | None => Ok(()),
        Some(Value::String(e)) => Err(format!("Syntax error: {e}")),
        Some(other) => Err(format!("Syntax error: {other}")),
    }
}

/// Start-up self-test in a fully sandboxed child.
pub(super) async fn probe(
    launcher: &Launcher,
    max_line: usize,
) -> Result<Map<String, Value>, String> {
    let mut child = launcher.spawn_ready(max_line).await?;
    let reply = one_shot(&mut child, json!({"op": "probe"})).await?;
    match reply.get("findings") {
        Some(Value::Object(findings)) => Ok(findings.clone()),
        _ => Err("malformed self-test answer".into()),
    }
}

/// (seccomp in force, Landlock in force, every failed expectation).
pub(super) fn judge_probe(findings: &Map<String, Value>) -> (bool, bool, Vec<String>) {
    let denied = |key: &str| {
        findings
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("denied:"))
    };
    let mut problems = Vec::new();
    for (key, what) in [
        ("socket_inet", "an AF_INET socket could be created"),
        ("fork", "fork() succeeded"),
        ("read_passwd", "/etc/passwd was readable"),
        ("write_tmp", "a file could be created in /tmp"),
        ("exec", "exec of /bin/sh succeeded"),
        ("exec_self", "the interpreter could exec itself again"),
        ("kill_parent", "the parent could be signalled"),
    ] {
        if !denied(key) {
            problems.push(what.to_string());
        }
    }
    if findings.get("environ_empty") != Some(&Value::Bool(true)) {
        problems.push("the environment was not empty".into());
    }
    let seccomp = denied("socket_inet") && denied("fork") && denied("exec_self");
    let landlock = denied("read_passwd") && denied("write_tmp");
    (seccomp, landlock, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(overrides: &[(&str, Value)]) -> Map<String, Value> {
        let mut map = Map::new();
        for key in [
            "socket_inet",
            "fork",
            "read_passwd",
            "write_tmp",
            "exec",
            "exec_self",
            "kill_parent",
        ] {
            map.insert(key.into(), json!("denied:1"));
        }
        map.insert("environ_empty".into(), json!(true));
        for (key, value) in overrides {
            map.insert(key.to_string(), value.clone());
        }
        map
    }

    #[test]
    fn a_probe_with_everything_denied_passes() {
        assert_eq!(judge_probe(&findings(&[])), (true, true, Vec::new()));
    }

    #[test]
    fn any_allowed_action_fails_the_probe_and_is_named() {
        let (seccomp, landlock, problems) =
            judge_probe(&findings(&[("socket_inet", json!("allowed"))]));
        assert!(!seccomp && landlock);
        assert_eq!(problems, vec!["an AF_INET socket could be created"]);
        let (seccomp, landlock, problems) =
            judge_probe(&findings(&[("read_passwd", json!("allowed"))]));
        assert!(seccomp && !landlock);
        assert_eq!(problems, vec!["/etc/passwd was readable"]);
        let (_, _, problems) = judge_probe(&findings(&[("environ_empty", json!(false))]));
        assert_eq!(problems, vec!["the environment was not empty"]);
        let (_, _, problems) = judge_probe(&findings(&[("kill_parent", Value::Null)]));
        assert_eq!(problems, vec!["the parent could be signalled"]);
    }

    #[test]
    fn timeout_messages_print_whole_seconds_as_integers() {
        assert_eq!(seconds(Duration::from_secs(60)), "60");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5");
    }

    #[test]
    fn http_requests_from_the_child_are_validated() {
        let ok = json!({"op": "http", "method": "GET", "url": "https://x.test/", "headers": [["a", "b"]],
                        "body": "aGk=", "timeout": 100.0});
        let call = parse_http(ok.as_object().unwrap(), Duration::from_secs(5)).unwrap();
        assert_eq!(call.body.as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            call.timeout,
            Duration::from_secs(5),
            "never longer than the run"
        );
        for bad in [
            json!({"method": "GET"}),
            json!({"method": "GET", "url": "u", "headers": [["a"]]}),
            json!({"method": "GET", "url": "u", "headers": [["a", 1]]}),
            json!({"method": "GET", "url": "u", "body": "***"}),
            json!({"method": "GET", "url": "u", "body": 5}),
        ] {
            assert!(
                parse_http(bad.as_object().unwrap(), Duration::from_secs(5)).is_err(),
                "{bad}"
            );
        }
        let negative = json!({"method": "GET", "url": "u", "timeout": -1});
        assert_eq!(
            parse_http(negative.as_object().unwrap(), Duration::from_secs(5))
                .unwrap()
                .timeout,
            Duration::from_secs(5)
        );
    }
}
