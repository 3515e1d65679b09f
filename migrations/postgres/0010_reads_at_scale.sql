-- Reads and metrics at a million alerts (issues 13 and 14), and retention.
--
-- 1. Alert list sorts. Every sort of GET /v1/alerts ends in `id` (stable pages), so each sortable
--    column gets an index ending in id: a page is then read off an index range instead of sorting
--    the whole filtered set. The single-column indexes they extend are dropped (a prefix).
DROP INDEX ix_alerts_status;
CREATE INDEX ix_alerts_status_id ON alerts (status, id);
DROP INDEX ix_alerts_source_name;
CREATE INDEX ix_alerts_source_name_id ON alerts (source_name, id);
DROP INDEX ix_alerts_occurred_at;
CREATE INDEX ix_alerts_occurred_at_id ON alerts (occurred_at, id);
DROP INDEX ix_alerts_created_at;
CREATE INDEX ix_alerts_created_at_id ON alerts (created_at, id);
CREATE INDEX ix_alerts_title_id ON alerts (title, id);
-- The severity sort orders by rank; the expression is the one alerts::store writes, verbatim.
CREATE INDEX ix_alerts_severity_rank_id ON alerts ((CASE severity WHEN 'Critical' THEN 5 WHEN 'High' THEN 4 WHEN 'Medium' THEN 3 WHEN 'Low' THEN 2 WHEN 'Informational' THEN 1 ELSE 0 END), id);

-- 2. Retention finds old agent runs by creation time (the other purged tables have the index).
CREATE INDEX ix_agent_runs_created_at ON agent_runs (created_at);

-- 3. Alert metrics rollups (src/metrics/rollup.rs). Per UTC day (`YYYY-MM-DD`) of created_at:
--    counts and duration sums by status/severity/source, and counts by detection rule. Days
--    before `rolled_until` are rolled up unless listed in alert_metrics_dirty_days; the rest of a
--    window is aggregated live. The triggers below list a day as dirty whenever an alert of an
--    already rolled-up day is written by any path (API, jobs, retention, manual SQL), in the
--    writer's transaction; the rollup job recomputes dirty days.
CREATE TABLE alert_metrics_daily (
    day              TEXT NOT NULL,
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
    PRIMARY KEY (day, status, severity, source_name)
);
CREATE TABLE alert_rule_metrics_daily (
    day                TEXT NOT NULL,
    detection_rule_id  BIGINT NOT NULL,
    alerts             BIGINT NOT NULL,
    PRIMARY KEY (day, detection_rule_id)
);
CREATE TABLE alert_metrics_dirty_days (
    day  TEXT PRIMARY KEY
);
-- One row: days before rolled_until (`YYYY-MM-DD`) are rolled up; NULL = nothing is yet.
CREATE TABLE alert_metrics_rollup_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_until   TEXT
);
INSERT INTO alert_metrics_rollup_state (id, rolled_until) VALUES (1, NULL);

-- New rows: one statement-level trigger per INSERT (ingest inserts a batch per statement), and
-- only days already rolled up are listed (a fresh alert is today's: aggregated live anyway).
CREATE FUNCTION alert_metrics_mark_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_metrics_dirty_days (day)
        SELECT DISTINCT to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        FROM changed_alerts n, alert_metrics_rollup_state s
        WHERE to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') < s.rolled_until
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_alerts_metrics_insert AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS changed_alerts FOR EACH STATEMENT EXECUTE FUNCTION alert_metrics_mark_new();
CREATE TRIGGER trg_alerts_metrics_delete AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS changed_alerts FOR EACH STATEMENT EXECUTE FUNCTION alert_metrics_mark_new();

-- Updates of a column the metrics read (transition tables cannot be combined with a column
-- list, so this one is per row).
CREATE FUNCTION alert_metrics_mark_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_metrics_dirty_days (day)
        SELECT DISTINCT d.day FROM (VALUES (to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
                                           (to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))) AS d(day),
                                   alert_metrics_rollup_state s
        WHERE d.day < s.rolled_until
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER trg_alerts_metrics_update
    AFTER UPDATE OF status, severity, source_name, close_classification, is_enriched, enriched_at, ingested_at, occurred_at,
        acknowledged_at, triaged_at, closed_at, detection_rule_id, created_at ON alerts
    FOR EACH ROW EXECUTE FUNCTION alert_metrics_mark_updated();
