# The program of every sandboxed workflow interpreter, passed with `python -I -S -c`.
#
# It runs AFTER the kernel sandbox is in place (seccomp, Landlock, rlimits, namespaces): the
# import allow-list and trimmed builtins below are defence in depth and Calseta compatibility,
# not the security boundary. Everything the workflow may do outside this process (HTTP, secrets,
# integrations) is a request to the parent over stdin/stdout, one JSON object per line. The
# parent treats every line from here as untrusted.
#
# Start-up: import what workflows need (so a pooled child is warm), send {"op": "ready"},
# then wait for exactly one job: {"op": "run", ...}, {"op": "compile", ...} or {"op": "probe"}.
import asyncio
import base64
import builtins as _builtins
import dataclasses
import datetime as _dt
import inspect
import json as _json
import os
import sys
import traceback
import types
import urllib.parse
import uuid as _uuid



def _close_exec():
    """Install the parent's "execve/execveat -> EPERM" seccomp filter (argv[1], hex of
    struct sock_filter[]). Our own exec of this interpreter was the last one allowed; a
    failure here ends the process, and the parent then refuses to use the sandbox."""
    import ctypes

    program = bytes.fromhex(sys.argv[1])

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        os._exit(70)


_close_exec()
del sys.argv[1:]

_proto_in = sys.stdin.buffer
_proto_out = sys.stdout.buffer
# print() in workflow code goes to stderr (drained and capped by the parent), never into the
# protocol stream.
sys.stdout = sys.stderr
sys.stdin = None


def _send(msg):
    _proto_out.write(_json.dumps(msg, default=str).encode("utf-8") + b"\n")
    _proto_out.flush()


def _recv():
    line = _proto_in.readline()
    if not line:
        os._exit(0)  # the parent went away
    return _json.loads(line)


_next_id = 0


def _call(op, **fields):
    """One request to the parent; the reply is {"id", "ok": value} or {"id", "error": text}."""
    global _next_id
    _next_id += 1
    _send({"op": op, "id": _next_id, **fields})
    reply = _recv()
    if reply.get("id") != _next_id:
        raise RuntimeError("workflow sandbox protocol error")
    return reply


# ---------------------------------------------------------------------------------------------
# WorkflowResult / WorkflowContext (workflows.md §2)


@dataclasses.dataclass
class WorkflowResult:
    success: bool
    message: str
    data: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def ok(cls, message="OK", data=None):
        return cls(success=True, message=message, data=data if data is not None else {})

    @classmethod
    def fail(cls, message, data=None):
        return cls(success=False, message=message, data=data if data is not None else {})


def _parse_dt(value):
    if isinstance(value, str):
        try:
            return _dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _parse_uuid(value):
    try:
        return _uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return value


@dataclasses.dataclass
class IndicatorContext:
    uuid: object = None
    type: str = None
    value: str = None
    malice: str = None
    is_enriched: bool = False
    enrichment_results: dict = None
    first_seen: object = None
    last_seen: object = None
    created_at: object = None
    updated_at: object = None


@dataclasses.dataclass
class AlertContext:
    uuid: object = None
    title: str = None
    severity: str = None
    source_name: str = None
    status: str = None
    occurred_at: object = None
    tags: list = dataclasses.field(default_factory=list)
    raw_payload: dict = dataclasses.field(default_factory=dict)


def _indicator(raw):
    raw = raw or {}
    return IndicatorContext(
        uuid=_parse_uuid(raw.get("uuid")),
        type=raw.get("type"),
        value=raw.get("value"),
        malice=raw.get("malice"),
        is_enriched=bool(raw.get("is_enriched", False)),
        enrichment_results=raw.get("enrichment_results"),
        first_seen=_parse_dt(raw.get("first_seen")),
        last_seen=_parse_dt(raw.get("last_seen")),
        created_at=_parse_dt(raw.get("created_at")),
        updated_at=_parse_dt(raw.get("updated_at")),
    )


def _alert(raw):
    if raw is None:
        return None
    return AlertContext(
        uuid=_parse_uuid(raw.get("uuid")),
        title=raw.get("title"),
        severity=raw.get("severity"),
        source_name=raw.get("source_name"),
        status=raw.get("status"),
        occurred_at=_parse_dt(raw.get("occurred_at")),
        tags=list(raw.get("tags") or []),
        raw_payload=raw.get("raw_payload") or {},
    )


class HTTPError(Exception):
    """A ctx.http request the parent refused or could not complete (SSRF block, timeout...)."""


class HTTPStatusError(HTTPError):
    def __init__(self, message, response):
        super().__init__(message)
        self.response = response


class IntegrationError(Exception):
    """An Okta/Entra call the parent performed and that failed."""


class _Headers(dict):
    """Case-insensitive header mapping (lower-cased keys)."""

    def __init__(self, pairs):
        super().__init__()
        for key, value in pairs:
            k = str(key).lower()
            super().__setitem__(k, f"{self[k]}, {value}" if k in self else str(value))

    def __getitem__(self, key):
        return super().__getitem__(str(key).lower())

    def __contains__(self, key):
        return super().__contains__(str(key).lower())

    def get(self, key, default=None):
        return super().get(str(key).lower(), default)


class Response:
    def __init__(self, status_code, headers, content, method, url):
        self.status_code = status_code
        self.headers = _Headers(headers)
        self.content = content
        self.url = url
        self.request_method = method

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return _json.loads(self.content)

    @property
    def is_success(self):
        return 200 <= self.status_code < 300

    @property
    def is_error(self):
        return self.status_code >= 400

    def raise_for_status(self):
        if self.is_error:
            raise HTTPStatusError(
                f"HTTP {self.status_code} for {self.request_method} {self.url}", self
            )
        return self

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


class HttpClient:
    """The `httpx.AsyncClient` subset workflows use; every request is made by the parent."""

    def __init__(self, timeout):
        self._timeout = timeout

    async def request(self, method, url, *, params=None, headers=None, json=None, data=None,
                      content=None, timeout=None, **_ignored):
        url = str(url)
        if params:
            query = urllib.parse.urlencode(params, doseq=True)
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        header_pairs = [[str(k), str(v)] for k, v in dict(headers or {}).items()]
        names = {k.lower() for k, _ in header_pairs}
        body = None
        content_type = None
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            content_type = "application/json"
        elif isinstance(data, dict):
            body = urllib.parse.urlencode(data, doseq=True).encode("utf-8")
            content_type = "application/x-www-form-urlencoded"
        elif data is not None or content is not None:
            raw = content if content is not None else data
            body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        if content_type and "content-type" not in names:
            header_pairs.append(["content-type", content_type])
        wait = self._timeout if timeout is None else float(timeout)
        reply = _call(
            "http",
            method=str(method).upper(),
            url=url,
            headers=header_pairs,
            body=base64.b64encode(body).decode("ascii") if body is not None else None,
            timeout=wait,
        )
        if "error" in reply:
            raise HTTPError(reply["error"])
        answer = reply["ok"]
        return Response(
            int(answer["status"]),
            answer.get("headers") or [],
            base64.b64decode(answer.get("body") or ""),
            str(method).upper(),
            url,
        )

    async def get(self, url, **kwargs):
        return await self.request("GET", url, **kwargs)

    async def post(self, url, **kwargs):
        return await self.request("POST", url, **kwargs)

    async def put(self, url, **kwargs):
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url, **kwargs):
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url, **kwargs):
        return await self.request("DELETE", url, **kwargs)

    async def head(self, url, **kwargs):
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url, **kwargs):
        return await self.request("OPTIONS", url, **kwargs)

    async def aclose(self):
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def _jsonable(value):
    try:
        _json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class WorkflowLogger:
    """ctx.log: each entry is streamed to the parent at once, so a killed run keeps its log."""

    def _emit(self, level, message, fields):
        entry = {
            "level": level,
            "message": str(message),
            "ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        }
        if fields:
            entry["extra"] = {str(k): _jsonable(v) for k, v in fields.items()}
        _send({"op": "log", "entry": entry})

    def __call__(self, message, **fields):
        self._emit("info", message, fields)

    def debug(self, message, **fields):
        self._emit("debug", message, fields)

    def info(self, message, **fields):
        self._emit("info", message, fields)

    def warning(self, message, **fields):
        self._emit("warning", message, fields)

    warn = warning

    def error(self, message, **fields):
        self._emit("error", message, fields)


class SecretsAccessor:
    """ctx.secrets: only the secrets an operator granted to workflows (the parent decides)."""

    def get(self, name, default=None):
        value = _call("secret", name=str(name)).get("ok")
        return default if value is None else value


class IntegrationClient:
    """Okta/Entra stand-in: method calls are performed by the parent, which holds credentials."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, method):
        if method.startswith("_"):
            raise AttributeError(method)
        name = self._name

        async def call(*args, **kwargs):
            reply = _call("integration", name=name, method=method,
                          args={"args": list(args), "kwargs": kwargs})
            if "error" in reply:
                raise IntegrationError(reply["error"])
            return reply.get("ok")

        call.__name__ = method
        return call

    def __repr__(self):
        return f"<{self._name} integration>"


class Integrations:
    def __init__(self, available):
        self.okta = IntegrationClient("okta") if available.get("okta") else None
        self.entra = IntegrationClient("entra") if available.get("entra") else None


class WorkflowContext:
    def __init__(self, indicator, alert, http, log, secrets, integrations):
        self.indicator = indicator
        self.alert = alert
        self.http = http
        self.log = log
        self.secrets = secrets
        self.integrations = integrations


def _install_modules():
    """`app.workflows.context` (Calseta's path) and `calseta.workflows` expose the same names."""
    names = {
        "WorkflowContext": WorkflowContext,
        "WorkflowResult": WorkflowResult,
        "IndicatorContext": IndicatorContext,
        "AlertContext": AlertContext,
        "WorkflowLogger": WorkflowLogger,
        "SecretsAccessor": SecretsAccessor,
        "HTTPError": HTTPError,
        "HTTPStatusError": HTTPStatusError,
        "IntegrationError": IntegrationError,
    }
    for path in ("app", "app.workflows", "app.workflows.context", "calseta", "calseta.workflows"):
        module = types.ModuleType(path)
        module.__path__ = []
        sys.modules[path] = module
    for path in ("app.workflows.context", "calseta.workflows"):
        sys.modules[path].__dict__.update(names)
    sys.modules["app"].workflows = sys.modules["app.workflows"]
    sys.modules["app.workflows"].context = sys.modules["app.workflows.context"]
    sys.modules["calseta"].workflows = sys.modules["calseta.workflows"]


_install_modules()
for _cls in (WorkflowResult, IndicatorContext, AlertContext, WorkflowContext):
    _cls.__module__ = "app.workflows.context"

# ---------------------------------------------------------------------------------------------
# Restricted namespace (workflows.md §4.2), minus Calseta's `__build_class__` quirk

_RUNTIME_ALLOWED = {
    "asyncio", "base64", "collections", "copy", "datetime", "enum", "functools", "hashlib",
    "hmac", "html", "http", "inspect", "ipaddress", "itertools", "json", "logging", "math",
    "operator", "re", "statistics", "string", "textwrap", "time", "typing",
    "typing_extensions", "unicodedata", "urllib", "uuid", "calseta", "app",
}
_REMOVED = {"open", "exec", "eval", "compile", "breakpoint", "input", "memoryview"}
_KEPT_DUNDERS = {"__name__", "__doc__", "__package__", "__loader__", "__spec__",
                 "__build_class__"}
_real_import = _builtins.__import__


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.partition(".")[0] not in _RUNTIME_ALLOWED:
        raise ImportError(f"Import of '{name}' is not allowed in workflows")
    return _real_import(name, globals, locals, fromlist, level)


def _workflow_builtins():
    allowed = {
        k: v for k, v in vars(_builtins).items()
        if k not in _REMOVED and (not k.startswith("__") or k in _KEPT_DUNDERS)
    }
    allowed["__import__"] = _restricted_import
    return allowed


# ---------------------------------------------------------------------------------------------
# Jobs


def _result(success, message, data=None, kind=None):
    return {"op": "result", "success": success, "message": message,
            "data": data if data is not None else {}, "kind": kind}


def _run(job):
    memory_message = f"Workflow exceeded memory limit ({job.get('max_memory_mb')}MB)"
    try:
        code = compile(job["code"], "<workflow>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as err:
        return _result(False, f"Workflow code syntax error: {err}", kind="code_error")
    namespace = {"__builtins__": _workflow_builtins(), "__name__": "workflow"}
    try:
        exec(code, namespace)
    except MemoryError:
        return _result(False, memory_message, kind="memory")
    except BaseException as err:  # SystemExit too: the module must not end the interpreter
        return _result(False, "Workflow code raised an exception during module load: "
                       f"{err}\n{traceback.format_exc()}", kind="code_error")
    run = namespace.get("run")
    if run is None or not inspect.iscoroutinefunction(run):
        return _result(False, "Workflow code does not define an async function named 'run'",
                       kind="code_error")
    ctx_json = job.get("ctx") or {}
    ctx = WorkflowContext(
        indicator=_indicator(ctx_json.get("indicator")),
        alert=_alert(ctx_json.get("alert")),
        http=HttpClient(float(job.get("timeout_seconds") or 30)),
        log=WorkflowLogger(),
        secrets=SecretsAccessor(),
        integrations=Integrations(job.get("integrations") or {}),
    )
    try:
        outcome = asyncio.run(run(ctx))
    except MemoryError:
        return _result(False, memory_message, kind="memory")
    except BaseException as err:
        return _result(False, f"Workflow run() raised an exception: {err}\n"
                       f"{traceback.format_exc()}", kind="code_error")
    if not isinstance(outcome, WorkflowResult):
        return _result(False, f"Workflow run() returned unexpected type: "
                       f"{type(outcome).__name__}. Must return a WorkflowResult instance.",
                       kind="code_error")
    data = outcome.data if outcome.data is not None else {}
    # Not JSON-serializable values are stringified, as ctx.log does with its fields.
    data = _json.loads(_json.dumps(data, default=str))
    return _result(bool(outcome.success), str(outcome.message), data)


def _compile(job):
    try:
        compile(job["code"], "<workflow>", "exec", dont_inherit=True)
    except SyntaxError as err:
        return {"op": "compiled", "error": f"{err.msg} (line {err.lineno})"}
    except ValueError as err:
        return {"op": "compiled", "error": str(err)}
    return {"op": "compiled", "error": None}


def _probe(_job):
    """Start-up self-test: the parent checks the kernel layers really deny these."""
    import socket

    findings = {}

    def attempt(name, action):
        try:
            action()
            findings[name] = "allowed"
        except OSError as err:
            findings[name] = f"denied:{err.errno}"

    attempt("socket_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
    attempt("read_passwd", lambda: _builtins.open("/etc/passwd", "rb").close())
    attempt("write_tmp", lambda: _builtins.open("/tmp/.calseta-sandbox-probe", "wb").close())
    attempt("fork", lambda: os._exit(0) if os.fork() == 0 else None)
    attempt("exec", lambda: os.execv("/bin/sh", ["/bin/sh", "-c", "true"]))
    attempt("kill_parent", lambda: os.kill(os.getppid(), 0))
    attempt("exec_self", lambda: os.execv(sys.executable, [sys.executable, "-c", "pass"]))
    # CPython's C-locale coercion (PEP 538) sets LC_CTYPE itself; nothing else may be there.
    # MALLOC_ARENA_MAX is set by the parent.
    findings["environ_empty"] = set(os.environ) <= {"LC_CTYPE", "MALLOC_ARENA_MAX"}
    return {"op": "probed", "findings": findings}


def _main():
    _send({"op": "ready"})
    job = _recv()
    handler = {"run": _run, "compile": _compile, "probe": _probe}.get(job.get("op"))
    if handler is None:
        os._exit(3)
    try:
        reply = handler(job)
    except MemoryError:
        reply = _result(False, f"Workflow exceeded memory limit ({job.get('max_memory_mb')}MB)",
                        kind="memory")
    _send(reply)
    sys.stderr.flush()
    os._exit(0)


_main()
