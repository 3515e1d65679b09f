//! One `Db` over the two native sqlx pools. SQL text is shared where it is portable (`$N`
//! placeholders work on both drivers); the few statements that differ per backend live in one
//! function each, matched on the variant. `with_db!` runs one expression against whichever pool
//! is active, so a query is written once and compiled against both drivers.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod checkpoint;
mod filter;

pub use filter::{Bind, Filter, fetch_page, fetch_page_deferred};
pub use sqlx::types::Json;

/// This process's write connection to one SQLite file. The mutex around it is the write gate:
/// it serialises the process's write transactions (see `Db::begin`).
type SqliteWriter = std::sync::Arc<tokio::sync::Mutex<Option<sqlx::SqliteConnection>>>;

/// The writer of each SQLite file this process opened, by path.
static SQLITE_WRITERS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, SqliteWriter>>> =
    std::sync::LazyLock::new(Default::default);

/// The write gate (and write connection) of the SQLite file at `path`.
fn sqlite_writer(path: &std::path::Path) -> SqliteWriter {
    let mut writers = SQLITE_WRITERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writers.entry(path.to_path_buf()).or_default().clone()
}

/// Waits for the write gate of the SQLite file at `path` and holds it.
async fn hold_sqlite_writer(path: &std::path::Path) -> WriterHeld {
    let guard = sqlite_writer(path).lock_owned().await;
    WriterHeld { guard, since: std::time::Instant::now() }
}

/// The write gate, held: by a write transaction or a checkpoint that must not overlap one. On
/// release it records how long it was held (`calseta_sqlite_writer_held_seconds`): the rate of
/// that sum is the share of time the one write connection is busy, which is what bounds a
/// SQLite server's ingest and enrichment throughput (README, "Not built yet").
struct WriterHeld {
    guard: tokio::sync::OwnedMutexGuard<Option<sqlx::SqliteConnection>>,
    since: std::time::Instant,
}

impl std::ops::Deref for WriterHeld {
    type Target = Option<sqlx::SqliteConnection>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl std::ops::DerefMut for WriterHeld {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

impl Drop for WriterHeld {
    fn drop(&mut self) {
        crate::observability::sqlite_writer_held(self.since.elapsed());
    }
}

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the active native pool (or transaction).
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

/// A connection outside the pools (`Db::connect_dedicated`).
pub enum Conn {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

/// Runs `$body` with `$conn` bound to the dedicated connection (`&mut` native connection).
#[macro_export]
macro_rules! with_conn {
    ($c:expr, $conn:ident => $body:expr) => {
        match $c {
            $crate::db::Conn::Postgres($conn) => $body,
            $crate::db::Conn::Sqlite($conn) => $body,
        }
    };
}

/// A transaction on either backend.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    /// Holds the SQLite write gate until commit or drop (see `Db::begin`).
    Sqlite(SqliteTx),
}

/// A write transaction on this process's write connection to a SQLite file, holding its gate.
pub struct SqliteTx {
    writer: WriterHeld,
    open: bool,
}

impl SqliteTx {
    async fn begin(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        use sqlx::ConnectOptions;
        let options = pool.connect_options();
        let mut writer = hold_sqlite_writer(options.get_filename()).await;
        if writer.is_none() {
            // The writer alone gets the large page cache: it touches the hot pages of the
            // ingest and queue tables on every batch.
            let options = (*options)
                .clone()
                .pragma("cache_size", WRITER_CACHE_SIZE)
                .pragma("wal_autocheckpoint", checkpoint::writer_autocheckpoint(options.get_filename()));
            *writer = Some(options.connect().await?);
        }
        let mut tx = SqliteTx { writer, open: false };
        // IMMEDIATE takes the write lock up front, so a read-then-write transaction never fails
        // half-way (other processes, e.g. the CLI, still wait on busy_timeout).
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx).await?;
        tx.open = true;
        Ok(tx)
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("COMMIT").execute(&mut *self).await?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        self.writer.as_ref().expect("connected in SqliteTx::begin")
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.writer.as_mut().expect("connected in SqliteTx::begin")
    }
}

impl Drop for SqliteTx {
    /// A transaction dropped without commit (an error, a cancelled request) closes the connection,
    /// which rolls it back; the next transaction opens a fresh one.
    fn drop(&mut self) {
        if self.open {
            *self.writer = None;
        }
    }
}

/// Runs `$body` with `$conn` bound to the transaction's connection (`&mut *tx`).
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }

    /// Rows per multi-row statement (the inserts of a group-commit or enrichment batch).
    /// SQLite: sqlx binds each value after looking its placeholder up by number, a linear search
    /// over the statement's placeholders, so binding one statement costs the square of their
    /// count (perf: 8 % of the SQLite writer's time with ~1,500-value statements); 32 rows keep
    /// that small and still write many rows per statement. PostgreSQL binds in one pass: up to
    /// 1,000 rows, far below its 65,535-value limit.
    pub fn rows_per_statement(&self) -> usize {
        match self {
            Tx::Postgres(_) => 1000,
            Tx::Sqlite(_) => 32,
        }
    }
}

/// The public id of a new row of a high-volume table (alerts, jobs, activity events,
/// indicators): a UUIDv7, which starts with its creation time. Rows created together then land
/// next to each other at the end of the table's uuid index, where random (v4) ids dirtied one
/// index page per row: on SQLite a 4 KiB WAL frame per row and index at every commit. These ids
/// name rows; none is a secret or grants anything (tokens and keys stay random, see SECURITY.md).
pub fn row_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// The current time at the precision both backends store (microseconds), so a value written and
/// read back compares equal, and SQLite's text timestamps sort chronologically.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Prepared statements kept per connection. The group-commit paths use multi-row statements whose
/// text depends on the row count (up to `ingest::service::MAX_BATCH` per statement shape).
/// SQLite: its one write connection runs them all, and re-preparing a 128-row insert costs more
/// than keeping it (measured: 64 here cut sustained ingest by a quarter), so it keeps 1,024.
/// PostgreSQL: every pooled connection keeps its own copy of each shape's text and metadata
/// (~60 MiB of the peak over 16 connections at 1,024), while a re-prepare is one more
/// parse on the server, which plans those statements afresh anyway; 128 keeps the fixed-shape
/// statements cached.
const SQLITE_STATEMENT_CACHE_CAPACITY: usize = 1024;
const POSTGRES_STATEMENT_CACHE_CAPACITY: usize = 128;

/// SQLite page cache of the write connection (negative = KiB): 16 MiB, so the hot pages of the
/// ingest tables stay in memory instead of being re-read on every batch.
const WRITER_CACHE_SIZE: &str = "-16384";
/// SQLite page cache of each pooled read connection (and the health probe's): SQLite's default
/// (~2 MiB). A reader's cache is dropped whenever the writer commits, so under write load a large
/// one only costs memory: 16 MiB each, as the writer's, was up to 64 MiB more at the peak.
const READER_CACHE_SIZE: &str = "-2000";

impl Db {
    /// Connects to `url` (`sqlite:`/`postgres:`), creating the SQLite file and its directory if
    /// needed. SQLite runs in WAL mode with FULL synchronous commits: a commit is durable.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No JIT: every statement here is short, and PostgreSQL decides to compile one from
            // its estimated cost. On tables whose statistics lag (young, or autovacuum off) a
            // 50-row read was estimated at 400,000 and JIT-compiled on every enrichment batch,
            // costing more than the read itself. The URL's own `options` still apply.
            let options = PgConnectOptions::from_str(url)?
                .statement_cache_capacity(POSTGRES_STATEMENT_CACHE_CAPACITY)
                .options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                // Half the pool is kept open by the pool's background task: the first requests
                // after start-up, and those after a connection reached its lifetime, do not pay
                // for a PostgreSQL backend's start on their own path (measured: the first second
                // of the agents bench had a 66–147 ms tail, the rest ≤ 15 ms).
                .min_connections(max_connections.max(2) / 2)
                .acquire_timeout(Duration::from_secs(5))
                // The ping before each acquire costs a round trip per query; broken connections
                // surface as errors and are replaced by the pool anyway.
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .statement_cache_capacity(SQLITE_STATEMENT_CACHE_CAPACITY)
                // Readers keep SQLite's default page cache (~2 MiB each); the OS page cache holds
                // the file anyway. Only the writer gets a large one (`WRITER_CACHE_SIZE`).
                .pragma("cache_size", READER_CACHE_SIZE)
                // Statement journals (and temporary b-trees) in memory: every multi-row statement
                // of a group-commit batch keeps one, and past 64 KiB SQLite spilled it to a temp
                // file — an eighth of the ingest writer's time went to those writes (perf).
                .pragma("temp_store", "MEMORY");
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let pool = SqlitePoolOptions::new()
                // SQLite runs each connection on its own thread and writes one at a time: more
                // connections than this only add context switches (measured: 8 → 4 cut p99 by a third).
                .max_connections(max_connections.clamp(1, 4))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres://")
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Applies the pending migrations of this backend's folder.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            // SQLite admits one writer. Writers of this process queue on an async mutex first:
            // contending on the file lock instead would put them in SQLite's busy handler, which
            // sleeps in steps of milliseconds and cut ingest throughput by an order of magnitude.
            // They all write through one dedicated connection: SQLite drops a connection's page
            // cache whenever another connection wrote since its last transaction, so writes
            // rotating over the pool re-read every page they touch (measured: most of the write
            // path's kernel time), and its prepared statements stay warm too.
            Db::Sqlite(pool) => Tx::Sqlite(SqliteTx::begin(pool).await?),
        })
    }

    /// `SELECT 1` with a deadline, through the pool.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let probe = async { with_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())).is_ok() };
        tokio::time::timeout(timeout, probe).await.unwrap_or(false)
    }

    /// A connection of its own, outside the pool, with the pool's options (the health probe's):
    /// what it runs never waits behind the pool's queue of acquirers under load.
    pub async fn connect_dedicated(&self) -> Result<Conn, sqlx::Error> {
        use sqlx::ConnectOptions;
        Ok(match self {
            Db::Postgres(pool) => Conn::Postgres(pool.connect_options().connect().await?),
            Db::Sqlite(pool) => Conn::Sqlite(pool.connect_options().connect().await?),
        })
    }

    pub async fn close(&self) {
        with_db!(self, p => p.close().await)
    }
}

/// Serialises transactions that share `key` until they end. PostgreSQL takes a transaction-scoped
/// advisory lock; SQLite needs nothing (`BEGIN IMMEDIATE` already admits one writer at a time).
/// Used where "check then insert" must not race (ingest dedup by fingerprint).
pub async fn lock_key(tx: &mut Tx, key: &str) -> Result<(), sqlx::Error> {
    lock_keys(tx, &[key]).await
}

/// `lock_key` for many keys in one statement (a group-commit batch). The locks are taken in
/// ascending order of their ids, so two batches sharing keys wait for each other instead of
/// deadlocking.
pub async fn lock_keys(tx: &mut Tx, keys: &[&str]) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(tx) if !keys.is_empty() => {
            use sha2::Digest;
            let mut ids: Vec<i64> = keys
                .iter()
                .map(|key| {
                    let digest = sha2::Sha256::digest(key.as_bytes());
                    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            // A set-returning scan yields the array's elements in order, and the lock is taken
            // per row as the scan produces it.
            sqlx::query("SELECT pg_advisory_xact_lock(lock_id) FROM unnest($1::bigint[]) AS lock_id")
                .bind(ids)
            .execute(&mut **tx)
            .await
            .map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Placeholders in the order they appear in a statement whose values are bound in that same
/// order: `$1, $2, …` on PostgreSQL, anonymous `?` on SQLite. sqlx binds a named SQLite parameter
/// after looking its name up, and SQLite finds a name by a linear scan of the statement's names,
/// so a wide multi-row statement with `$N` costs time quadratic in its values, on the one write
/// connection (perf: `sqlite3_bind_parameter_name`, 2–3 % of the server's CPU under ingest).
/// Anonymous ones are bound by position.
pub struct Sequential {
    bound: usize,
    anonymous: bool,
}

impl Sequential {
    pub fn next(&mut self) -> std::borrow::Cow<'static, str> {
        self.bound += 1;
        if self.anonymous { "?".into() } else { format!("${}", self.bound).into() }
    }

    /// `template` with each `?` replaced by the next placeholder: a row of a multi-row statement,
    /// e.g. `(?, ?, 'Open', ?)`. The template is constant SQL with no other `?`.
    pub fn fill(&mut self, template: &str) -> String {
        let mut filled = String::with_capacity(template.len() * 2);
        for (i, part) in template.split('?').enumerate() {
            if i > 0 {
                filled.push_str(&self.next());
            }
            filled.push_str(part);
        }
        filled
    }
}

impl Tx {
    /// Placeholders for a statement of this transaction's backend bound in textual order.
    pub fn sequential_placeholders(&self) -> Sequential {
        Sequential { bound: 0, anonymous: matches!(self, Tx::Sqlite(_)) }
    }
}

/// `$first, $first+1, …` for `count` values: the placeholder list of an `IN (…)` or a multi-row
/// statement, numbered after the `first - 1` values bound before it.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// SQL for "the JSON array in `column` contains the text bound at `placeholder`" — the one
/// predicate whose text differs per backend (PostgreSQL uses jsonb containment, which the GIN
/// index on `alerts.tags` serves; SQLite scans the array with `json_each`). `column` and
/// `placeholder` must be SQL constants (a column name, `$N`), never input.
pub fn json_array_contains_sql(backend: &str, column: &str, placeholder: &str) -> String {
    match backend {
        "postgres" => format!("{column} @> jsonb_build_array(CAST({placeholder} AS TEXT))"),
        _ => format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {placeholder})"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Sequential, json_array_contains_sql};

    #[test]
    fn sequential_placeholders_number_in_textual_order_or_are_anonymous() {
        let mut numbered = Sequential { bound: 0, anonymous: false };
        let (first, second) = (numbered.next(), numbered.next());
        assert_eq!((&*first, &*second), ("$1", "$2"));
        assert_eq!(numbered.fill("(?, 'Open', ?)"), "($3, 'Open', $4)");
        assert_eq!(numbered.fill("?"), "$5");
        let mut anonymous = Sequential { bound: 0, anonymous: true };
        assert_eq!(anonymous.fill("(?, FALSE, CASE WHEN ? > 0 THEN ? END)"), "(?, FALSE, CASE WHEN ? > 0 THEN ? END)");
        assert_eq!(anonymous.fill("()"), "()");
    }

    #[test]
    fn containment_sql_per_backend() {
        assert_eq!(json_array_contains_sql("postgres", "alerts.tags", "$3"), "alerts.tags @> jsonb_build_array(CAST($3 AS TEXT))");
        assert_eq!(
            json_array_contains_sql("sqlite", "alerts.tags", "$3"),
            "EXISTS (SELECT 1 FROM json_each(alerts.tags) WHERE json_each.value = $3)"
        );
    }
}
