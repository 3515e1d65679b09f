-- Reads and metrics at a million alerts (issues 13 and 14), and retention.
--
-- 1. Alert list sorts. Every sort of GET /v1/alerts ends in `id`; a SQLite index ends in the rowid
--    (= id) already, so the existing single-column indexes serve those sorts. Title and the
--    severity rank had none.
CREATE INDEX ix_alerts_title_id ON alerts (title, id);
-- An equality filter on an enumerated column with the default sort: SQLite's planner prefers the
-- filter's index and then sorts every match (status=Open at 1M alerts: 4.6 s); an index on
-- (filter, occurred_at) yields the matches already in page order.
CREATE INDEX ix_alerts_status_occurred_at ON alerts (status, occurred_at);
CREATE INDEX ix_alerts_severity_occurred_at ON alerts (severity, occurred_at);
CREATE INDEX ix_alerts_source_name_occurred_at ON alerts (source_name, occurred_at);
CREATE INDEX ix_alerts_enrichment_status_occurred_at ON alerts (enrichment_status, occurred_at);
-- The severity sort orders by rank; the expression is the one alerts::store writes, verbatim.
CREATE INDEX ix_alerts_severity_rank_id ON alerts ((CASE severity WHEN 'Critical' THEN 5 WHEN 'High' THEN 4 WHEN 'Medium' THEN 3 WHEN 'Low' THEN 2 WHEN 'Informational' THEN 1 ELSE 0 END), id);

-- 2. Retention finds old agent runs by creation time (the other purged tables have the index).
CREATE INDEX ix_agent_runs_created_at ON agent_runs (created_at);

-- 3. Alert metrics rollups (src/metrics/rollup.rs); see the PostgreSQL migration for the design.
CREATE TABLE alert_metrics_daily (
    day              TEXT NOT NULL,
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
    PRIMARY KEY (day, status, severity, source_name)
);
CREATE TABLE alert_rule_metrics_daily (
    day                TEXT NOT NULL,
    detection_rule_id  INTEGER NOT NULL,
    alerts             INTEGER NOT NULL,
    PRIMARY KEY (day, detection_rule_id)
);
CREATE TABLE alert_metrics_dirty_days (
    day  TEXT PRIMARY KEY
);
CREATE TABLE alert_metrics_rollup_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_until   TEXT
);
INSERT INTO alert_metrics_rollup_state (id, rolled_until) VALUES (1, NULL);

-- SQLite has row triggers only; the WHEN clause keeps fresh alerts (today's) to one lookup.
CREATE TRIGGER trg_alerts_metrics_insert AFTER INSERT ON alerts
    WHEN strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) VALUES (strftime('%Y-%m-%d', NEW.created_at)) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER trg_alerts_metrics_delete AFTER DELETE ON alerts
    WHEN strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) VALUES (strftime('%Y-%m-%d', OLD.created_at)) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER trg_alerts_metrics_update
    AFTER UPDATE OF status, severity, source_name, close_classification, is_enriched, enriched_at, ingested_at, occurred_at,
        acknowledged_at, triaged_at, closed_at, detection_rule_id, created_at ON alerts
    WHEN strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
      OR strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state)
BEGIN
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', OLD.created_at)
        WHERE strftime('%Y-%m-%d', OLD.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
    INSERT INTO alert_metrics_dirty_days (day) SELECT strftime('%Y-%m-%d', NEW.created_at)
        WHERE strftime('%Y-%m-%d', NEW.created_at) < (SELECT rolled_until FROM alert_metrics_rollup_state) ON CONFLICT DO NOTHING;
END;
