-- Metrics at a million alerts, second step (issue 13): hourly rollups under the daily ones, and
-- hourly job-queue counters. Same as migrations/postgres/0013_metrics_hourly.sql (see there).
ALTER TABLE alert_metrics_rollup_state ADD COLUMN hours_rolled_until TEXT;
ALTER TABLE alert_metrics_rollup_state ADD COLUMN jobs_rolled_until TEXT;
CREATE TABLE alert_metrics_hourly (
    hour             TEXT NOT NULL,
    status           TEXT NOT NULL,
    severity         TEXT NOT NULL,
    source_name      TEXT NOT NULL,
    alerts           INTEGER NOT NULL,
    enriched         INTEGER NOT NULL,
    false_positives  INTEGER NOT NULL,
    enrich_sum       REAL NOT NULL,
    enrich_n         INTEGER NOT NULL,
    detect_sum       REAL NOT NULL,
    detect_n         INTEGER NOT NULL,
    ack_sum          REAL NOT NULL,
    ack_n            INTEGER NOT NULL,
    triage_sum       REAL NOT NULL,
    triage_n         INTEGER NOT NULL,
    conclude_sum     REAL NOT NULL,
    conclude_n       INTEGER NOT NULL,
    PRIMARY KEY (hour, status, severity, source_name)
);
CREATE TABLE alert_rule_metrics_hourly (
    hour               TEXT NOT NULL,
    detection_rule_id  INTEGER NOT NULL,
    alerts             INTEGER NOT NULL,
    PRIMARY KEY (hour, detection_rule_id)
);
CREATE TABLE alert_metrics_dirty_hours (
    hour  TEXT PRIMARY KEY
);

-- The triggers of 0010, now listing the dirty hour beside the dirty day. Each mark has its own
-- condition: right after this migration the hourly mark is still NULL while the daily one is set.
DROP TRIGGER trg_alerts_metrics_insert;
DROP TRIGGER trg_alerts_metrics_delete;
DROP TRIGGER trg_alerts_metrics_update;
CREATE TRIGGER trg_alerts_metrics_insert AFTER INSERT ON alerts
    WHEN strftime('%Y-%m-%dT%H', NEW.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', NEW.created_at)
        WHERE strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_hours (hour) SELECT strftime('%Y-%m-%dT%H', NEW.created_at)
        WHERE strftime('%Y-%m-%dT%H', NEW.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER trg_alerts_metrics_delete AFTER DELETE ON alerts
    WHEN strftime('%Y-%m-%dT%H', OLD.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', OLD.created_at)
        WHERE strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_hours (hour) SELECT strftime('%Y-%m-%dT%H', OLD.created_at)
        WHERE strftime('%Y-%m-%dT%H', OLD.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER trg_alerts_metrics_update
    AFTER UPDATE OF status, severity, source_name, close_classification, is_enriched, enriched_at, ingested_at, occurred_at,
        acknowledged_at, triaged_at, closed_at, detection_rule_id, created_at ON alerts
    WHEN strftime('%Y-%m-%dT%H', OLD.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%dT%H', NEW.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', OLD.created_at)
        WHERE strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', NEW.created_at)
        WHERE strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_hours (hour) SELECT strftime('%Y-%m-%dT%H', OLD.created_at)
        WHERE strftime('%Y-%m-%dT%H', OLD.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_hours (hour) SELECT strftime('%Y-%m-%dT%H', NEW.created_at)
        WHERE strftime('%Y-%m-%dT%H', NEW.created_at) < (SELECT hours_rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
END;

CREATE TABLE job_metrics_hourly (
    hour          TEXT NOT NULL,
    queue         TEXT NOT NULL,
    succeeded     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    duration_sum  REAL NOT NULL,
    duration_n    INTEGER NOT NULL,
    PRIMARY KEY (hour, queue)
);
CREATE INDEX ix_jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
