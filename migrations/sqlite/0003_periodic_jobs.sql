-- periodic_jobs: one row per periodic job type (src/jobs/periodic.rs). Every process's scheduler
-- reads next_run_at; when it is due, one conditional UPDATE (compare-and-swap on next_run_at)
-- advances it and, in the same transaction, the winner enqueues the job. So each due period is
-- enqueued exactly once across all replicas.
CREATE TABLE periodic_jobs (
    name                 TEXT PRIMARY KEY,
    every_seconds        INTEGER NOT NULL,
    next_run_at          TEXT NOT NULL,
    last_enqueued_at     TEXT,
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_periodic_jobs_every_seconds CHECK (every_seconds > 0)
);
