//! Test harness: runs the real `calseta` binary on an ephemeral port against a real database
//! (a fresh SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set), and
//! talks to it over HTTP. Output is captured so tests can assert on logs (and on what is absent
//! from them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_calseta");

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    /// Postgres when `TEST_DATABASE_URL` is set; otherwise prints why the test is skipped.
    pub fn postgres(test: &str) -> Option<Backend> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres { admin_url: url }),
            _ => {
                eprintln!("skipping {test} on postgres: TEST_DATABASE_URL not set");
                None
            }
        }
    }
}

pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipping {test}: TEST_REDIS_URL not set");
            None
        }
    }
}

/// Runs an async test body once per backend: `dual!(name)` makes `name::sqlite` and
/// `name::postgres` from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! dual {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::support::Backend::postgres(stringify!($name)) {
                    super::$name(backend).await
                }
            }
        }
    };
}

static RUSTLS: Once = Once::new();

pub fn client() -> Client {
    RUSTLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A database for one test: a SQLite file in the test's directory or a fresh Postgres database,
/// dropped when the last server using it is stopped or, failing that, when it is dropped (a test
/// that ends without `stop`, or panics, must not leave a database behind on a shared server).
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn create(backend: &Backend, dir: &Path) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb { url: format!("sqlite://{}/calseta.db", dir.display()), postgres: None },
            Backend::Postgres { admin_url } => {
                let name = format!("calseta_t_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(admin_url).await.expect("connect TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
                admin.close().await;
                let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
                TestDb { url: format!("{base}/{name}"), postgres: Some((admin_url.clone(), name)) }
            }
        }
    }

    /// Drops the PostgreSQL database now (idempotent; `Drop` does it again at the end).
    pub async fn drop_database(&self) {
        if let Some((admin_url, name)) = &self.postgres {
            if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
                admin.close().await;
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else { return };
        // Drop cannot await, and may run inside or outside a runtime: a thread of its own with a
        // runtime of its own does the (forced) DROP and is waited for.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
                    admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Captured output lines of a child process.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
    pub fn json_lines(&self) -> Vec<Value> {
        self.0.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    pub client: Client,
    pub stdout: Output,
    pub stderr: Output,
    pub dir: Arc<tempfile::TempDir>,
    pub db: Arc<TestDb>,
    child: Option<Child>,
}

/// Settings every test server gets unless the test overrides them: generous limits so only the
/// rate-limit tests meet 429s, JSON logs so tests can parse them.
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("LOG_FORMAT", "json"),
    ("LOG_LEVEL", "info"),
    ("RATE_LIMIT_DEFAULT_PER_MINUTE", "100000"),
    ("RATE_LIMIT_UNAUTHED_PER_MINUTE", "100000"),
    ("RATE_LIMIT_INGEST_PER_MINUTE", "100000"),
];

pub struct ServerBuilder {
    backend: Backend,
    env: Vec<(String, String)>,
    dir: Option<Arc<tempfile::TempDir>>,
    db: Option<Arc<TestDb>>,
}

impl ServerBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Shares the database (and working directory) of another server: a second replica.
    pub fn sharing(mut self, other: &TestServer) -> Self {
        self.dir = Some(other.dir.clone());
        self.db = Some(other.db.clone());
        self
    }

    pub async fn start(self) -> TestServer {
        self.start_with_args(&["serve", "--bind", "127.0.0.1:0"]).await
    }

    pub async fn start_with_args(self, args: &[&str]) -> TestServer {
        let dir = match self.dir {
            Some(d) => d,
            None => Arc::new(tempfile::tempdir().unwrap()),
        };
        let db = match self.db {
            Some(db) => db,
            None => Arc::new(TestDb::create(&self.backend, dir.path()).await),
        };
        let mut env: Vec<(String, String)> = DEFAULT_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("DATABASE_URL".into(), db.url.clone()));
        env.extend(self.env);
        let (child, stdout, stderr) = spawn(args, dir.path(), &env);
        let mut server = TestServer {
            base: String::new(),
            admin_key: String::new(),
            client: client(),
            stdout,
            stderr,
            dir,
            db,
            child: Some(child),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(base) =
                server.stderr.text().lines().find_map(|l| l.strip_prefix("calseta listening on ").map(str::to_owned))
            {
                server.base = base;
                break;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {status} before listening:\n{}\n{}", server.stdout.text(), server.stderr.text());
            }
            assert!(tokio::time::Instant::now() < deadline, "server did not start:\n{}", server.stdout.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.admin_key = bootstrap_key(&server.stderr).unwrap_or_default();
        server
    }
}

pub fn bootstrap_key(stderr: &Output) -> Option<String> {
    stderr.text().lines().find_map(|l| l.strip_prefix("CALSETA_BOOTSTRAP_ADMIN_KEY=").map(str::to_owned))
}

/// Spawns the binary with exactly `env` (plus PATH): nothing else from the test environment.
pub fn spawn(args: &[&str], dir: &Path, env: &[(String, String)]) -> (Child, Output, Output) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn calseta");
    let stdout = Output::default();
    let stderr = Output::default();
    for (pipe, sink) in [
        (Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, stdout.clone()),
        (Box::new(child.stderr.take().unwrap()), stderr.clone()),
    ] {
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(line);
            }
        });
    }
    (child, stdout, stderr)
}

/// Runs the binary to completion (CLI commands) and returns (exit code, stdout, stderr).
pub async fn run_cli(args: &[&str], dir: &Path, env: &[(String, String)]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run calseta");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl TestServer {
    pub fn builder(backend: Backend) -> ServerBuilder {
        ServerBuilder { backend, env: Vec::new(), dir: None, db: None }
    }

    pub async fn start(backend: Backend) -> TestServer {
        Self::builder(backend).start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match key {
            Some(k) => builder.bearer_auth(k),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(Method::GET, path, Some(key)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(key)).json(body).send().await.unwrap()
    }

    pub async fn patch_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(key)).json(body).send().await.unwrap()
    }

    /// Creates a key through the API with the admin key; returns (plaintext, uuid).
    pub async fn create_key(&self, scopes: &[&str], extra: Value) -> (String, String) {
        let mut body = serde_json::json!({"name": "test-key", "scopes": scopes});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let response = self.post_json("/v1/api-keys", &self.admin_key, &body).await;
        assert_eq!(response.status(), 201, "create key: {}", response.text().await.unwrap());
        let json: Value = response.json().await.unwrap();
        (json["data"]["key"].as_str().unwrap().to_owned(), json["data"]["uuid"].as_str().unwrap().to_owned())
    }

    /// The server's environment, for running the CLI against the same database.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![("DATABASE_URL".into(), self.db.url.clone()), ("LOG_FORMAT".into(), "json".into())]
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.ok()?.ok()?;
        status.code()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }

    /// Stops the server and drops a Postgres test database (unless another replica still uses it).
    pub async fn stop(mut self) {
        self.terminate().await;
        if Arc::strong_count(&self.db) == 1 {
            self.db.drop_database().await;
        }
    }
}

pub async fn body(response: Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts the error envelope and its code; returns the body.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let json = body(response).await;
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(json["error"]["message"].is_string(), "{json}");
    assert!(json["error"]["details"].is_object(), "{json}");
    json
}

impl TestServer {
    /// Reads one integer straight from the server's database: for durability checks ("no row
    /// was written", "every accepted alert exists") that must not trust the API under test.
    pub async fn db_count(&self, sql: &str) -> i64 {
        db_count(&self.db.url, sql).await
    }
}

impl TestServer {
    /// One text column of every row of `sql`, straight from the database (`CAST(x AS TEXT)`
    /// reads a JSON column the same way on both backends).
    pub async fn db_texts(&self, sql: &str) -> Vec<Option<String>> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let url = &self.db.url;
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let rows: Vec<Option<String>> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let rows: Vec<Option<String>> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }

    /// Runs one statement straight against the database, behind the API's back (to plant rows no
    /// route writes yet, or to corrupt one); returns the number of rows it affected.
    pub async fn db_execute(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let url = &self.db.url;
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let affected = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
            pool.close().await;
            affected
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let affected = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
            pool.close().await;
            affected
        }
    }

    /// A UUID as an SQL literal of this server's backend (SQLite stores UUIDs as 16-byte blobs).
    pub fn uuid_sql(&self, uuid: uuid::Uuid) -> String {
        if self.db.url.starts_with("sqlite:") { format!("X'{}'", uuid.simple()) } else { format!("'{uuid}'") }
    }
}

pub async fn db_count(url: &str, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/payloads/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Polls until `check` holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API contract (a copy of the reference OpenAPI document).
pub fn contract_path() -> String {
    format!("{}/tests/fixtures/calseta-openapi.json", env!("CARGO_MANIFEST_DIR"))
}
