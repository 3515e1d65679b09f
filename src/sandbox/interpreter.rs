//! Finding the real CPython binary and the files it needs.
//!
//! `python3` may be a pyenv shim (a bash script that execs pyenv): it cannot run once exec is
//! restricted. We ask it once, unsandboxed and at start-up, for `sys.executable` and its
//! library paths, and from then on exec only that binary, with `-I -S`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::layers::existing;

/// The resolved interpreter and the paths the Landlock ruleset grants it.
#[derive(Debug, Clone)]
pub(crate) struct Interpreter {
    pub executable: PathBuf,
    pub version: String,
    read: Vec<PathBuf>,
    exec: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Report {
    executable: String,
    version: String,
    stdlib: String,
    platstdlib: String,
    dynload: Option<String>,
    libdir: Option<String>,
}

const REPORT: &str = "import json, sys, sysconfig\n\
paths = sysconfig.get_paths()\n\
dyn = [p for p in sys.path if p.endswith('lib-dynload')]\n\
print(json.dumps({'executable': sys.executable, 'version': sys.version.split()[0],\n\
  'stdlib': paths['stdlib'], 'platstdlib': paths['platstdlib'],\n\
  'dynload': dyn[0] if dyn else None, 'libdir': sysconfig.get_config_var('LIBDIR')}))\n";

/// Dynamic loaders the kernel opens (with execute permission) for an ELF interpreter.
const LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux-riscv64-lp64d.so.1",
];

/// System library directories (libc, libm, libssl, libffi…) and data the stdlib reads.
const SYSTEM_READ: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
];

impl Interpreter {
    /// Asks `python` (default `python3` on PATH) for its real executable and paths.
    pub async fn resolve(python: Option<PathBuf>) -> Result<Self, String> {
        let program = python.unwrap_or_else(|| PathBuf::from("python3"));
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(["-I", "-c", REPORT]).kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .map_err(|_| format!("{} did not answer within 20 s", program.display()))?
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} failed: {}",
                program.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let report: Report = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("unexpected answer from {}: {e}", program.display()))?;
        if !report.version.starts_with("3.") {
            return Err(format!(
                "{} is Python {}, not 3.x",
                program.display(),
                report.version
            ));
        }
        let executable = PathBuf::from(&report.executable)
            .canonicalize()
            .map_err(|e| format!("interpreter {}: {e}", report.executable))?;
        let mut read = vec![
            PathBuf::from(&report.stdlib),
            PathBuf::from(&report.platstdlib),
        ];
        read.extend(report.dynload.map(PathBuf::from));
        read.extend(report.libdir.map(PathBuf::from));
        read.extend(SYSTEM_READ.iter().map(PathBuf::from));
        let exec =
            existing(std::iter::once(executable.clone()).chain(LOADERS.iter().map(PathBuf::from)));
        Ok(Interpreter {
            executable,
            version: report.version,
            read: existing(read),
            exec,
        })
    }

    /// Directories (and files) readable inside the sandbox.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        self.read.clone()
    }

    /// The only files the sandboxed process may execute.
    pub fn exec_paths(&self) -> Vec<PathBuf> {
        self.exec.clone()
    }
}
