-- Metrics at a million alerts, second step (issue 13): hourly rollups under the daily ones, and
-- hourly job-queue counters.
--
-- 1. Alerts. A window's whole days come from alert_metrics_daily (0010); what is left (the partial
--    first and last day, dirty days) now comes from whole hours of alert_metrics_hourly, so only
--    the partial first and last hour and dirty hours are aggregated live from `alerts`. Same
--    columns and the same dirty-marking as the daily tables, per UTC hour (`YYYY-MM-DDTHH`).
ALTER TABLE alert_metrics_rollup_state ADD COLUMN hours_rolled_until TEXT;
ALTER TABLE alert_metrics_rollup_state ADD COLUMN jobs_rolled_until TEXT;
CREATE TABLE alert_metrics_hourly (
    hour             TEXT NOT NULL,
    status           TEXT NOT NULL,
    severity         TEXT NOT NULL,
    source_name      TEXT NOT NULL,
    alerts           BIGINT NOT NULL,
    enriched         BIGINT NOT NULL,
    false_positives  BIGINT NOT NULL,
    enrich_sum       DOUBLE PRECISION NOT NULL,
    enrich_n         BIGINT NOT NULL,
    detect_sum       DOUBLE PRECISION NOT NULL,
    detect_n         BIGINT NOT NULL,
    ack_sum          DOUBLE PRECISION NOT NULL,
    ack_n            BIGINT NOT NULL,
    triage_sum       DOUBLE PRECISION NOT NULL,
    triage_n         BIGINT NOT NULL,
    conclude_sum     DOUBLE PRECISION NOT NULL,
    conclude_n       BIGINT NOT NULL,
    PRIMARY KEY (hour, status, severity, source_name)
);
CREATE TABLE alert_rule_metrics_hourly (
    hour               TEXT NOT NULL,
    detection_rule_id  BIGINT NOT NULL,
    alerts             BIGINT NOT NULL,
    PRIMARY KEY (hour, detection_rule_id)
);
CREATE TABLE alert_metrics_dirty_hours (
    hour  TEXT PRIMARY KEY
);

-- The trigger functions of 0010, now listing the dirty hour beside the dirty day. A conflict now
-- updates the existing dirty row instead of doing nothing: the row lock orders this write against
-- a rollup run recomputing the same bucket (which deletes the row first). With DO NOTHING, a
-- write whose bucket was already dirty could commit after the run had deleted the mark and read
-- the alerts without it, and the change would never be rolled up.
CREATE OR REPLACE FUNCTION alert_metrics_mark_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_metrics_dirty_days (day)
        SELECT DISTINCT to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        FROM changed_alerts n, alert_metrics_rollup_state s
        WHERE to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') < s.rolled_until
    ON CONFLICT (day) DO UPDATE SET day = excluded.day;
    INSERT INTO alert_metrics_dirty_hours (hour)
        SELECT DISTINCT to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')
        FROM changed_alerts n, alert_metrics_rollup_state s
        WHERE to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') < s.hours_rolled_until
    ON CONFLICT (hour) DO UPDATE SET hour = excluded.hour;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION alert_metrics_mark_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_metrics_dirty_days (day)
        SELECT DISTINCT d.day FROM (VALUES (to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                                           (to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))) AS d(day),
                                   alert_metrics_rollup_state s
        WHERE d.day < s.rolled_until
    ON CONFLICT (day) DO UPDATE SET day = excluded.day;
    INSERT INTO alert_metrics_dirty_hours (hour)
        SELECT DISTINCT h.hour FROM (VALUES (to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')),
                                            (to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24'))) AS h(hour),
                                    alert_metrics_rollup_state s
        WHERE h.hour < s.hours_rolled_until
    ON CONFLICT (hour) DO UPDATE SET hour = excluded.hour;
    RETURN NULL;
END $$;

-- 2. Job queues. The summary's succeeded/failed counts and mean run time over 30 days come from
--    per-queue hourly counters of finished jobs (rolled up ten minutes after each hour ends, so
--    they outlive the 7-day pruning of finished jobs) plus the jobs finished since, read by this
--    index; pending and running jobs are counted by ix_jobs_status_queue_run_at.
CREATE TABLE job_metrics_hourly (
    hour          TEXT NOT NULL,
    queue         TEXT NOT NULL,
    succeeded     BIGINT NOT NULL,
    failed        BIGINT NOT NULL,
    duration_sum  DOUBLE PRECISION NOT NULL,
    duration_n    BIGINT NOT NULL,
    PRIMARY KEY (hour, queue)
);
CREATE INDEX ix_jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
