//! SQLite WAL checkpoints off the write path. By default the connection that commits a
//! transaction pushing the WAL past 1,000 pages copies the WAL into the database file and fsyncs
//! it before its next transaction can start. Here that connection is the process's one writer,
//! which every ingest batch, job claim and enrichment batch queues behind: perf put a tenth of
//! the writer's time in those checkpoints, plus the wait on their fsync.
//!
//! A serving process instead checkpoints from a connection of its own every `EVERY`, in
//! PASSIVE mode (it copies what no reader still needs and never blocks the writer), and turns the
//! writer's automatic checkpoints off while those succeed. A failing checkpoint turns them back
//! on, so the WAL never grows without bound because this task cannot reach the file.
//!
//! SQLite rewinds the WAL to its start only when a write transaction begins with every frame
//! copied. A busy writer appends frames while a concurrent checkpoint runs, so that never happened
//! and the WAL grew by gigabytes (measured: 760 MB in 18 s of load). So once the WAL holds more
//! than `REWIND_AFTER_FRAMES`, a second checkpoint runs holding the write gate: it copies only
//! what the first could not (what was written meanwhile), and the next transaction rewinds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use tokio_util::sync::CancellationToken;

use super::{Db, hold_sqlite_writer};

/// How often the background checkpoint runs.
const EVERY: Duration = Duration::from_millis(200);

/// WAL frames (pages) past which the checkpoint also runs under the write gate, so the WAL
/// rewinds: SQLite's own automatic threshold.
const REWIND_AFTER_FRAMES: i64 = 1000;

/// SQLite's default `wal_autocheckpoint` (pages), restored when this task stops or fails.
const DEFAULT_AUTOCHECKPOINT: &str = "1000";

/// The files whose writer leaves checkpoints to [`run`].
static CHECKPOINTED_IN_BACKGROUND: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// The `wal_autocheckpoint` a new writer connection to `path` gets.
pub(super) fn writer_autocheckpoint(path: &Path) -> &'static str {
    if checkpointed_in_background().contains(path) { "0" } else { DEFAULT_AUTOCHECKPOINT }
}

fn checkpointed_in_background() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    CHECKPOINTED_IN_BACKGROUND.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checkpoints `db` (SQLite; nothing on PostgreSQL) until `shutdown`, then gives checkpoints back
/// to the writer.
pub async fn run(db: Db, shutdown: CancellationToken) {
    let Db::Sqlite(pool) = db else { return };
    let options = pool.connect_options();
    let path = options.get_filename().to_path_buf();
    let mut conn: Option<sqlx::SqliteConnection> = None;
    let mut in_background = false;
    loop {
        let result = async {
            if conn.is_none() {
                conn = Some((*options).clone().connect().await?);
            }
            let c = conn.as_mut().expect("connected above");
            let frames = checkpoint(c).await?;
            if in_background && frames > REWIND_AFTER_FRAMES {
                let _writers_wait = hold_sqlite_writer(&path).await;
                checkpoint(c).await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match result {
            Ok(()) if !in_background => in_background = hand_over(&path, true).await,
            Ok(()) => {}
            Err(e) => {
                conn = None;
                if in_background {
                    tracing::warn!(error = %e, "background WAL checkpoint failed; the writer checkpoints again");
                    in_background = hand_over(&path, false).await;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
    if in_background {
        hand_over(&path, false).await;
    }
}

/// One PASSIVE checkpoint; returns the frames the WAL holds.
async fn checkpoint(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<i64> {
    // (busy, frames in the WAL, frames copied): -1s when the file is not in WAL mode.
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
    Ok(frames)
}

/// Moves checkpoints to this task (`background`) or back to the writer, and sets the writer's
/// connection (if open) to match. Returns whether checkpoints are now in the background.
async fn hand_over(path: &Path, to_background: bool) -> bool {
    if to_background {
        checkpointed_in_background().insert(path.to_path_buf());
    } else {
        checkpointed_in_background().remove(path);
    }
    // Holding the gate, no write transaction is open on the writer.
    let mut writer = hold_sqlite_writer(path).await;
    if let Some(conn) = writer.as_mut() {
        let pages = if to_background { "0" } else { DEFAULT_AUTOCHECKPOINT };
        let set = format!("PRAGMA wal_autocheckpoint = {pages}");
        if sqlx::query(sqlx::AssertSqlSafe(set)).execute(&mut *conn).await.is_err() {
            // The next transaction opens a new writer, which reads the setting above.
            *writer = None;
        }
    }
    to_background
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer_setting(db: &Db) -> i64 {
        let mut tx = db.begin().await.unwrap();
        let pages = crate::with_tx!(&mut tx, c => sqlx::query_scalar::<_, i64>("PRAGMA wal_autocheckpoint").fetch_one(c).await).unwrap();
        tx.commit().await.unwrap();
        pages
    }

    #[tokio::test]
    async fn checkpoints_move_off_the_writer_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpoint.db");
        let db = Db::connect(&format!("sqlite://{}", file.display()), 2).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        crate::with_tx!(&mut tx, c => sqlx::query("CREATE TABLE blobs (data BLOB)").execute(c).await.map(|_| ())).unwrap();
        tx.commit().await.unwrap();
        assert_eq!(writer_setting(&db).await, 1000);

        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(db.clone(), shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while writer_setting(&db).await != 0 {
            assert!(tokio::time::Instant::now() < deadline, "the writer kept its automatic checkpoints");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // 8 MiB in the WAL (2,000 pages: past the writer's default threshold, so only the
        // background task can have copied them into the database file).
        let mut tx = db.begin().await.unwrap();
        crate::with_tx!(&mut tx, c => sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO blobs SELECT randomblob(4096) FROM n")
            .execute(c).await.map(|_| ()))
        .unwrap();
        tx.commit().await.unwrap();
        while std::fs::metadata(&file).unwrap().len() < 8 << 20 {
            assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(5), "the WAL was never checkpointed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(writer_setting(&db).await, 1000, "the writer checkpoints again once the task stops");
        db.close().await;
    }
}
