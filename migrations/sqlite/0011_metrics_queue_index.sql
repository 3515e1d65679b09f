-- Metrics summary at scale (issue 13): the queue statistics read the jobs finished in the last
-- 30 days by status; this index holds just what they need (src/metrics/store.rs `queues`), so
-- the whole job table (every finished job is kept until pruned) is not scanned.
CREATE INDEX ix_jobs_status_finished_at ON jobs (status, finished_at, queue, started_at);
