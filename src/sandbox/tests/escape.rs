//! Escape suite: workflow code that gets past the import hook (the two classic routes to `os`)
//! and then attacks the host. Every run must end failed with a classified error, within
//! timeout + 1 s, with the kernel's denial visible in the message (so a test cannot pass
//! because the attack code itself was broken), the canaries untouched and no file created.

use std::io::ErrorKind as IoKind;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// Reaches the real `os` module globals and the real builtins from workflow code.
const PRELUDE: &str = r#"
from app.workflows.context import WorkflowResult
OS = [c for c in object.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
B = OS["__builtins__"]
B = B if isinstance(B, dict) else vars(B)
imp = B["__import__"]

def attempt(action):
    try:
        action()
        return "ALLOWED"
    except OSError as exc:
        return f"denied({exc.errno})"
    except ValueError as exc:
        # resource.setrlimit/prlimit report EPERM this way.
        return "denied(1)" if "not allowed to raise maximum limit" in str(exc) else f"ValueError({exc})"
"#;

struct Case {
    name: &'static str,
    body: String,
    kinds: &'static [ErrorKind],
    /// The message must contain one of these.
    expect: &'static [&'static str],
}

fn case(
    name: &'static str,
    body: &str,
    kinds: &'static [ErrorKind],
    expect: &'static [&'static str],
) -> Case {
    Case {
        name,
        body: body.to_string(),
        kinds,
        expect,
    }
}

const CODE: &[ErrorKind] = &[ErrorKind::CodeError];

struct Canary {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Canary {
    fn new() -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        Canary { tcp, udp }
    }

    fn assert_untouched(&self) {
        match self.tcp.accept() {
            Err(e) if e.kind() == IoKind::WouldBlock => {}
            other => panic!("TCP canary saw a connection: {other:?}"),
        }
        let mut buf = [0u8; 64];
        match self.udp.recv_from(&mut buf) {
            Err(e) if e.kind() == IoKind::WouldBlock => {}
            other => panic!("UDP canary received a datagram: {other:?}"),
        }
    }
}

fn escape_markers() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("calseta-escape"))
        .collect()
}

async fn run_cases(sandbox: &Sandbox, cases: Vec<Case>, timeout: Duration) {
    let canary = Canary::new();
    let tcp_port = canary.tcp.local_addr().unwrap().port();
    let udp_port = canary.udp.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let markers_before = escape_markers();
    for case in cases {
        let code = format!(
            "{PRELUDE}\nTCP = {tcp_port}\nUDP = {udp_port}\nDIR = {:?}\n{}",
            dir.path().display().to_string(),
            case.body
        );
        let started = Instant::now();
        let outcome = sandbox
            .run(request(&code, timeout), Arc::new(FakeHost::default()))
            .await;
        let elapsed = started.elapsed();
        assert!(
            !outcome.success,
            "{}: the attack succeeded: {outcome:?}",
            case.name
        );
        let kind = outcome
            .error_kind
            .unwrap_or_else(|| panic!("{}: unclassified: {outcome:?}", case.name));
        assert!(
            case.kinds.contains(&kind),
            "{}: kind {kind:?}: {}",
            case.name,
            outcome.message
        );
        assert!(
            case.expect.iter().any(|e| outcome.message.contains(e)),
            "{}: expected one of {:?} in: {}",
            case.name,
            case.expect,
            outcome.message
        );
        assert_eq!(
            outcome.timed_out,
            kind == ErrorKind::Timeout,
            "{}",
            case.name
        );
        assert!(
            elapsed <= timeout + Duration::from_secs(1),
            "{}: took {elapsed:?}",
            case.name
        );
        canary.assert_untouched();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{}: wrote a file",
            case.name
        );
        assert_eq!(
            escape_markers(),
            markers_before,
            "{}: created a file in /tmp",
            case.name
        );
        assert!(Path::new("/etc/passwd").exists());
    }
}

#[tokio::test]
async fn escape_reach_os_then_read_write_and_environment() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let cases = vec![
        // (a) the two classic routes to `os`, then os.system / open
        case(
            "a_subclasses_system",
            "async def run(ctx):\n    rc = OS['system'](f'echo x > {DIR}/a; echo x > /tmp/calseta-escape-a')\n    raise RuntimeError(f'system returned {rc}')\n",
            CODE,
            &[
                "system returned -1",
                "system returned 32512",
                "system returned 256",
            ],
        ),
        case(
            "a_frames_inspect",
            "import inspect\nasync def run(ctx):\n    f = inspect.currentframe()\n    while f is not None and 'os' not in f.f_globals:\n        f = f.f_back\n    os = f.f_globals['os']\n    os.open('/etc/passwd', os.O_RDONLY)\n",
            CODE,
            &["[Errno 13] Permission denied: '/etc/passwd'"],
        ),
        case(
            "a_real_open",
            "async def run(ctx):\n    B['open']('/etc/passwd').read()\n",
            CODE,
            &["[Errno 13] Permission denied: '/etc/passwd'"],
        ),
        case(
            "a_write_files",
            "async def run(ctx):\n    r = [attempt(lambda: B['open'](f'{DIR}/w', 'w')), attempt(lambda: B['open']('/tmp/calseta-escape-w', 'w')), attempt(lambda: OS['mkdir'](f'{DIR}/d')), attempt(lambda: OS['open'](f'{DIR}/o', OS['O_CREAT'] | OS['O_WRONLY']))]\n    raise RuntimeError(' '.join(r))\n",
            CODE,
            &["denied(13) denied(13) denied(13) denied(13)"],
        ),
        // (b) files and environment of the server
        case(
            "b_parent_environ",
            "async def run(ctx):\n    B['open'](f\"/proc/{OS['getppid']()}/environ\", 'rb').read()\n",
            CODE,
            &["[Errno 13] Permission denied: '/proc/"],
        ),
        case(
            "b_own_environ_and_listing",
            "async def run(ctx):\n    r = [attempt(lambda: B['open']('/proc/self/environ', 'rb')), attempt(lambda: OS['listdir']('/')), attempt(lambda: OS['listdir']('/root')), attempt(lambda: B['open']('/etc/shadow'))]\n    raise RuntimeError(' '.join(r) + f\" env={sorted(k for k in OS['environ'] if k not in ('LC_CTYPE', 'MALLOC_ARENA_MAX'))}\")\n",
            CODE,
            &["denied(13) denied(13) denied(13) denied(13) env=[]"],
        ),
    ];
    run_cases(&sandbox, cases, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn escape_network() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    run_cases(&sandbox, network_cases(), Duration::from_secs(5)).await;
}

/// Metadata and host-wide changes Landlock does not cover, with and without namespaces.
#[tokio::test]
async fn escape_metadata_limits_and_host_settings() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, b"data").unwrap();
    let before = std::fs::metadata(&victim).unwrap();
    for namespaces in [true, false] {
        let settings = SandboxSettings {
            namespaces,
            pool_size: 1,
            ..SandboxSettings::default()
        };
        let Some(sandbox) = sandbox_with(settings).await else {
            return;
        };
        let body = format!(
            "async def run(ctx):\n    v = {victim:?}\n    res = imp('resource')\n    p = OS['getppid']()\n    r = [attempt(lambda: OS['chmod'](v, 0o777)), attempt(lambda: OS['chown'](v, 1, 1)), attempt(lambda: OS['utime'](v, (0, 0))), attempt(lambda: OS['setxattr'](v, 'user.x', b'1')), attempt(lambda: res.setrlimit(res.RLIMIT_AS, (-1, -1))), attempt(lambda: res.prlimit(0, res.RLIMIT_CPU, (-1, -1))), attempt(lambda: OS['setpriority'](OS['PRIO_PROCESS'], p, 19)), attempt(lambda: OS['sched_setaffinity'](p, {{0}})), attempt(lambda: imp('time').clock_settime(imp('time').CLOCK_REALTIME, 0)), attempt(lambda: imp('socket').sethostname('pwned'))]\n    raise RuntimeError('meta: ' + ' '.join(r) + f' {{res.getrlimit(res.RLIMIT_AS)}}')\n",
            victim = victim.display().to_string()
        );
        let cases = vec![Case {
            name: "metadata",
            body,
            kinds: CODE,
            expect: &[
                "meta: denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) (268435456, 268435456)",
            ],
        }];
        run_cases(&sandbox, cases, Duration::from_secs(5)).await;
    }
    let after = std::fs::metadata(&victim).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.mode(), before.uid(), before.gid(), before.mtime()),
        (after.mode(), after.uid(), after.gid(), after.mtime())
    );
}

/// Docker's default profile refuses user namespaces: the required layers alone must hold.
#[tokio::test]
async fn escape_network_and_signals_without_namespaces() {
    let settings = SandboxSettings {
        namespaces: false,
        pool_size: 1,
        ..SandboxSettings::default()
    };
    let Some(sandbox) = sandbox_with(settings).await else {
        return;
    };
    let status = sandbox.status();
    assert!(status.layers.contains(&("namespaces", false)), "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some("optional namespaces layer not in force: disabled by settings")
    );
    let mut cases = network_cases();
    cases.push(case("i_kill_parent_no_ns",
        "async def run(ctx):\n    p = OS['getppid']()\n    r = [attempt(lambda: OS['kill'](p, 0)), attempt(lambda: OS['kill'](-1, 9))]\n    raise RuntimeError('kill: ' + ' '.join(r))\n",
        CODE, &["kill: denied(1) denied(1)"]));
    run_cases(&sandbox, cases, Duration::from_secs(5)).await;
}

fn network_cases() -> Vec<Case> {
    vec![
        // (c) sockets of every kind, toward the canary and the metadata address
        case(
            "c_tcp_canary",
            "async def run(ctx):\n    s = imp('socket')\n    c = s.socket(s.AF_INET, s.SOCK_STREAM)\n    c.connect(('127.0.0.1', TCP))\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "c_udp_canary",
            "async def run(ctx):\n    s = imp('socket')\n    c = s.socket(s.AF_INET, s.SOCK_DGRAM)\n    c.sendto(b'x', ('127.0.0.1', UDP))\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "c_every_family",
            "async def run(ctx):\n    s = imp('socket')\n    fams = [(s.AF_INET, s.SOCK_RAW, 1), (s.AF_INET6, s.SOCK_STREAM, 0), (s.AF_UNIX, s.SOCK_STREAM, 0), (s.AF_NETLINK, s.SOCK_RAW, 0), (s.AF_PACKET, s.SOCK_RAW, 0), (s.AF_INET, s.SOCK_DGRAM, 0)]\n    r = [attempt(lambda f=f: s.socket(*f)) for f in fams]\n    r.append(attempt(lambda: s.socketpair(s.AF_INET, s.SOCK_STREAM)))\n    raise RuntimeError(' '.join(r))\n",
            CODE,
            &["denied(1) denied(1) denied(1) denied(1) denied(1) denied(1) denied("],
        ),
        case(
            "c_urllib_metadata",
            "import urllib.request\nasync def run(ctx):\n    urllib.request.urlopen('http://169.254.169.254/latest/meta-data/', timeout=2)\n",
            CODE,
            &["Operation not permitted"],
        ),
        case(
            "c_http_client_canary",
            "import http.client\nasync def run(ctx):\n    c = http.client.HTTPConnection('127.0.0.1', TCP, timeout=2)\n    c.request('GET', '/')\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "c_asyncio_connection",
            "import asyncio\nasync def run(ctx):\n    await asyncio.open_connection('127.0.0.1', TCP)\n",
            CODE,
            &["Operation not permitted"],
        ),
        case(
            "c_resolve_names",
            "async def run(ctx):\n    s = imp('socket')\n    r = []\n    for name in ('localhost', 'metadata.google.internal', 'example.com'):\n        try:\n            s.getaddrinfo(name, 80)\n            r.append('RESOLVED')\n        except OSError as exc:\n            r.append('failed')\n    raise RuntimeError('resolve: ' + ' '.join(r))\n",
            CODE,
            &["resolve: failed failed failed"],
        ),
    ]
}

#[tokio::test]
async fn escape_processes_signals_and_raw_syscalls() {
    let Some(sandbox) = sandbox().await else {
        return;
    };
    let mut sibling = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let sibling_pid = sibling.id();
    let mut cases = vec![
        // (d) fork bomb, exec, subprocess
        case(
            "d_fork_bomb",
            "async def run(ctx):\n    while True:\n        OS['fork']()\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "d_exec_sh",
            "async def run(ctx):\n    OS['execv']('/bin/sh', ['sh', '-c', f'echo x > {DIR}/d'])\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "d_exec_interpreter_again",
            "async def run(ctx):\n    sys = OS['sys']\n    OS['execv'](sys.executable, [sys.executable, '-c', 'pass'])\n",
            CODE,
            &["[Errno 1] Operation not permitted"],
        ),
        case(
            "d_subprocess",
            "async def run(ctx):\n    imp('subprocess').run(['/bin/sh', '-c', f'echo x > {DIR}/s'])\n",
            CODE,
            &["Operation not permitted", "Permission denied"],
        ),
        // (i) signal the parent, any route; and an unrelated process
        case(
            "i_kill_parent",
            "async def run(ctx):\n    p = OS['getppid']()\n    r = [attempt(lambda: OS['kill'](p, 9)), attempt(lambda: OS['killpg'](OS['getpgid'](p), 9)), attempt(lambda: OS['kill'](-1, 9)), attempt(lambda: OS['pidfd_open'](p))]\n    raise RuntimeError('kill: ' + ' '.join(r))\n",
            CODE,
            &["kill: denied(1) denied(1) denied(1) denied("],
        ),
    ];
    cases.push(Case {
        name: "i_kill_sibling",
        body: format!("async def run(ctx):\n    r = [attempt(lambda: OS['kill']({sibling_pid}, 9)), attempt(lambda: OS['kill'](-{sibling_pid}, 9))]\n    raise RuntimeError('kill: ' + ' '.join(r))\n"),
        kinds: CODE,
        expect: &["kill: denied(1) denied(1)"],
    });
    #[cfg(target_arch = "x86_64")]
    {
        // (h) ctypes: the same calls as raw syscalls, below any Python-level check.
        // x86_64 numbers: socket 41, fork 57, kill 62, clone 56, tgkill 234, pidfd_open 434,
        // unshare 272, ptrace 101.
        cases.push(Case {
            name: "h_ctypes_raw_syscalls",
            body: format!("async def run(ctx):\n    ctypes = imp('ctypes')\n    libc = ctypes.CDLL(None, use_errno=True)\n    libc.syscall.restype = ctypes.c_long\n    p = OS['getppid']()\n    r = [libc.syscall(41, 2, 1, 0), libc.syscall(57), libc.syscall(62, p, 9), libc.syscall(56, 17, 0, 0, 0, 0), libc.syscall(234, p, p, 9), libc.syscall(234, {sibling_pid}, {sibling_pid}, 9), libc.syscall(62, {sibling_pid}, 9), libc.syscall(434, p, 0), libc.syscall(272, 0x10000000), libc.syscall(101, 16, p, 0, 0)]\n    raise RuntimeError(f'raw={{r}}')\n"),
            kinds: CODE,
            expect: &["raw=[-1, -1, -1, -1, -1, -1, -1, -1, -1, -1]"],
        });
    }
    run_cases(&sandbox, cases, Duration::from_secs(5)).await;
    assert!(
        sibling.try_wait().unwrap().is_none(),
        "the unrelated process was killed"
    );
    sibling.kill().unwrap();
    sibling.wait().unwrap();
}

#[tokio::test]
async fn escape_resource_exhaustion() {
    let Some(sandbox) = sandbox_with(SandboxSettings {
        pool_size: 1,
        cpu_seconds: 2,
        log_max_bytes: 64 * 1024,
        output_max_bytes: 256 * 1024,
        max_message_bytes: 1024 * 1024,
        ..SandboxSettings::default()
    })
    .await
    else {
        return;
    };
    let timeout = Duration::from_secs(3);
    let cases = vec![
        // (e) spin and sleep: the wall clock (or the CPU cap, whichever first) ends them
        case(
            "e_while_true",
            "async def run(ctx):\n    while True:\n        pass\n",
            &[ErrorKind::Timeout, ErrorKind::Cpu],
            &[
                "Workflow execution timed out after 3 seconds",
                "Workflow exceeded CPU time limit (2 seconds)",
            ],
        ),
        case(
            "e_while_true_at_load",
            "while True:\n    pass\n",
            &[ErrorKind::Timeout, ErrorKind::Cpu],
            &["timed out after 3 seconds", "CPU time limit"],
        ),
        case(
            "e_sleep",
            "async def run(ctx):\n    OS['sys'].modules['time'].sleep(60)\n",
            &[ErrorKind::Timeout],
            &["Workflow execution timed out after 3 seconds"],
        ),
        case(
            "e_threads_spin",
            "async def run(ctx):\n    t = imp('threading')\n    for _ in range(4):\n        t.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n    OS['sys'].modules['time'].sleep(60)\n",
            &[ErrorKind::Timeout, ErrorKind::Cpu],
            &["timed out after 3 seconds", "CPU time limit"],
        ),
        // (f) memory
        case(
            "f_8_gib",
            "async def run(ctx):\n    b = bytearray(8 * 1024 ** 3)\n",
            &[ErrorKind::Memory],
            &["Workflow exceeded memory limit (256MB)"],
        ),
        case(
            "f_grow",
            "async def run(ctx):\n    keep = []\n    while True:\n        keep.append(bytearray(16 * 1024 * 1024))\n",
            &[ErrorKind::Memory],
            &["Workflow exceeded memory limit (256MB)"],
        ),
        // (g) floods of the pipe and the log
        case(
            "g_print_flood",
            "async def run(ctx):\n    while True:\n        print('x' * 10000)\n",
            &[ErrorKind::OutputFlood],
            &["Workflow output exceeded 262144 bytes"],
        ),
        case(
            "g_log_flood",
            "async def run(ctx):\n    while True:\n        ctx.log.info('x' * 1000, n=1)\n",
            &[ErrorKind::LogFlood],
            &["Workflow log output exceeded 65536 bytes"],
        ),
        case(
            "g_raw_stdout_flood",
            "async def run(ctx):\n    OS['write'](1, b'x' * (8 * 1024 * 1024))\n",
            &[ErrorKind::OutputFlood],
            &["Workflow output exceeded the 1048576-byte message limit"],
        ),
        case(
            "g_raw_stderr_flood",
            "async def run(ctx):\n    while True:\n        OS['write'](2, b'x' * 65536)\n",
            &[ErrorKind::OutputFlood],
            &["Workflow output exceeded 262144 bytes"],
        ),
        case(
            "g_protocol_garbage",
            "async def run(ctx):\n    OS['write'](1, b'not json\\n')\n    OS['sys'].modules['time'].sleep(60)\n",
            &[ErrorKind::Protocol],
            &["Workflow sandbox protocol error: malformed message"],
        ),
        case(
            "g_crash",
            "async def run(ctx):\n    OS['abort']()\n",
            &[ErrorKind::Crash],
            &["Workflow process crashed (signal 6)"],
        ),
    ];
    run_cases(&sandbox, cases, timeout).await;
}
