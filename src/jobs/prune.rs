//! `prune_finished_jobs`: the first periodic job. Finished jobs are kept a while for inspection
//! (`/health` counts, debugging a failure), then deleted. Later sweeps (approval expiry, sandbox
//! reset, retention) follow the same shape: a `Default` struct, `Context = Db` or the app
//! context, and one `register_periodic` line.

use serde::{Deserialize, Serialize};

use super::{Job, JobCtx, JobError, store};
use crate::db::{Db, now};

/// Finished jobs are kept this long, then deleted.
pub const KEEP_FINISHED_JOBS_DAYS: i64 = 7;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PruneFinishedJobs {}

impl Job for PruneFinishedJobs {
    const NAME: &'static str = "prune_finished_jobs";
    type Context = Db;

    async fn run(self, db: Db, job: JobCtx) -> Result<(), JobError> {
        let mut tx = db.begin().await?;
        let deleted = store::delete_finished_before(&mut tx, now() - chrono::Duration::days(KEEP_FINISHED_JOBS_DAYS)).await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        if deleted > 0 {
            tracing::info!(deleted, "finished jobs pruned");
        }
        Ok(())
    }
}
