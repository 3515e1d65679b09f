//! One sandboxed interpreter process and the pipes to it.
//!
//! Children are spawned by one long-lived thread (`Spawner`): PR_SET_PDEATHSIG fires when the
//! *thread* that forked the child exits, so spawning from a short-lived blocking-pool thread
//! would kill idle pooled children at random. The thread lives as long as the sandbox.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use super::interpreter::Interpreter;
use super::layers::{self, Layers};

const SHIM: &str = include_str!("shim/child.py");

type SpawnJob = Box<dyn FnOnce() + Send>;

/// The thread every child is forked from.
pub(crate) struct Spawner {
    jobs: std_mpsc::Sender<SpawnJob>,
}

impl Spawner {
    pub fn new() -> io::Result<Self> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std_mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("sandbox-spawner".into())
            .spawn(move || {
                // tokio's process driver (SIGCHLD, pipes) needs the runtime context.
                let _runtime = handle.enter();
                for job in rx {
                    job();
                }
            })?;
        Ok(Spawner { jobs: tx })
    }

    async fn spawn(&self, mut cmd: Command) -> io::Result<tokio::process::Child> {
        let (tx, rx) = oneshot::channel();
        let job: SpawnJob = Box::new(move || {
            let _ = tx.send(cmd.spawn());
        });
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("sandbox spawner stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("sandbox spawner stopped"))?
    }
}

/// What spawns children: the interpreter, the prepared layers and the spawner thread.
pub(crate) struct Launcher {
    pub interpreter: Interpreter,
    pub layers: Arc<Layers>,
    spawner: Spawner,
}

impl Launcher {
    pub fn new(interpreter: Interpreter, layers: Layers) -> io::Result<Self> {
        Ok(Launcher {
            interpreter,
            layers: Arc::new(layers),
            spawner: Spawner::new()?,
        })
    }

    /// Spawns a fully sandboxed interpreter running the shim and waits for its "ready" line.
    pub async fn spawn_ready(&self, max_line: usize) -> Result<Child, String> {
        let mut cmd = Command::new(&self.interpreter.executable);
        cmd.args(["-I", "-S", "-c", SHIM])
            .arg(self.layers.no_exec_program_hex())
            .env_clear()
            // glibc reserves 64 MiB of address space per malloc arena (one per thread): with a
            // per-child RLIMIT_AS that would cap a workflow at a handful of threads.
            .env("MALLOC_ARENA_MAX", "2")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let layers = Arc::clone(&self.layers);
        // SAFETY: apply_in_child only makes syscalls on data prepared in the parent.
        unsafe {
            cmd.pre_exec(move || layers.apply_in_child());
        }
        let process = self
            .spawner
            .spawn(cmd)
            .await
            .map_err(|e| format!("cannot start the sandboxed interpreter: {e}"))?;
        let mut child = Child::new(process, max_line)?;
        match tokio::time::timeout(Duration::from_secs(20), child.lines.read_message()).await {
            Ok(Ok(Some(msg))) if msg.get("op").and_then(|v| v.as_str()) == Some("ready") => {
                Ok(child)
            }
            Ok(Ok(other)) => {
                let stderr = child.finish().await;
                Err(format!(
                    "sandboxed interpreter did not start ({other:?}): {stderr}"
                ))
            }
            Ok(Err(e)) => {
                child.finish().await;
                Err(format!("sandboxed interpreter did not start: {e}"))
            }
            Err(_) => {
                child.finish().await;
                Err("sandboxed interpreter did not start within 20 s".into())
            }
        }
    }

    /// Runs `python -I -S -c pass` with only unshare() applied: does the host allow namespaces?
    pub async fn namespaces_work(interpreter: &Interpreter) -> Result<(), String> {
        let spawner = Spawner::new().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&interpreter.executable);
        cmd.args(["-I", "-S", "-c", "pass"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: a single syscall.
        unsafe {
            cmd.pre_exec(|| layers::namespaces_only_in_child());
        }
        let mut child = spawner
            .spawn(cmd)
            .await
            .map_err(|e| format!("unshare: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("interpreter in namespaces exited with {status}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("interpreter in namespaces did not exit".into()),
        }
    }
}

/// Why reading from a child stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A line longer than the protocol allows: flood or garbage.
    TooLong,
    /// Not a JSON object.
    Malformed(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLong => f.write_str("message exceeds the size limit"),
            ReadError::Malformed(e) => write!(f, "malformed message: {e}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Last bytes of stderr kept for crash diagnostics.
const STDERR_TAIL: usize = 4096;

/// Reads bounded JSON lines from the child's stdout.
pub(crate) struct LineReader {
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    max_line: usize,
}

impl LineReader {
    /// Next JSON object from stdout; `None` at end of stream. Cancel-safe: a partial line
    /// stays in `self.line` between calls.
    pub async fn read_message(
        &mut self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ReadError> {
        loop {
            let chunk = self.stdout.fill_buf().await.map_err(ReadError::Io)?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if self.line.len() + take > self.max_line {
                return Err(ReadError::TooLong);
            }
            self.line.extend_from_slice(&chunk[..take]);
            self.stdout.consume(take);
            if done {
                let line = std::mem::take(&mut self.line);
                return match serde_json::from_slice::<serde_json::Value>(&line) {
                    Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
                    Ok(_) => Err(ReadError::Malformed("not an object".into())),
                    Err(e) => Err(ReadError::Malformed(e.to_string())),
                };
            }
        }
    }
}

/// Drains the child's stderr (where `print` goes), counting bytes and keeping a short tail.
pub(crate) struct StderrTail {
    stderr: ChildStderr,
    pub open: bool,
    pub total: usize,
    tail: Vec<u8>,
}

impl StderrTail {
    /// Reads one chunk; returns the bytes read (0 = closed).
    pub async fn drain(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 8192];
        let n = self.stderr.read(&mut buf).await?;
        if n == 0 {
            self.open = false;
        }
        self.total += n;
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > STDERR_TAIL {
            let cut = self.tail.len() - STDERR_TAIL;
            self.tail.drain(..cut);
        }
        Ok(n)
    }

    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail).trim().to_string()
    }
}

/// A live sandboxed interpreter (single use).
pub(crate) struct Child {
    process: tokio::process::Child,
    pgid: Option<libc::pid_t>,
    stdin: ChildStdin,
    pub lines: LineReader,
    pub stderr: StderrTail,
}

impl Child {
    fn new(mut process: tokio::process::Child, max_line: usize) -> Result<Self, String> {
        let pgid = process.id().map(|id| id as libc::pid_t);
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err("sandboxed interpreter has no pipes".into());
        };
        Ok(Child {
            process,
            pgid,
            stdin,
            lines: LineReader {
                stdout: BufReader::with_capacity(64 * 1024, stdout),
                line: Vec::new(),
                max_line,
            },
            stderr: StderrTail {
                stderr,
                open: true,
                total: 0,
                tail: Vec::new(),
            },
        })
    }

    /// Has the process already exited (e.g. killed while idle in the pool)?
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.process.try_wait(), Ok(None))
    }

    /// Sends one JSON line.
    pub async fn send(&mut self, msg: &serde_json::Value) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(msg)?;
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await?;
        self.stdin.flush().await
    }

    /// Kills the whole process group and reaps the child; returns its stderr tail.
    pub async fn finish(&mut self) -> String {
        self.kill();
        let _ = self.process.wait().await;
        self.stderr.tail()
    }

    /// SIGKILL to the process group (the child cannot leave it: setpgid/setsid are denied).
    pub fn kill(&mut self) {
        // Only while not reaped, so the pid cannot have been reused.
        if let (Some(pgid), Ok(None)) = (self.pgid, self.process.try_wait()) {
            // SAFETY: plain syscall.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.process.start_kill();
    }

    /// Waits for the exit status after the conversation ended, killing after `grace`.
    pub async fn exit_status(&mut self, grace: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(grace, self.process.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill();
                self.process.wait().await.ok()
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}
