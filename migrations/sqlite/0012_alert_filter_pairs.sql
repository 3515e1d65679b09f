-- Alert list filter pairs at a million alerts (issue 14); see the PostgreSQL migration. SQLite
-- also needs the page's order in the index (its planner otherwise sorts every match, 0010), so:
-- - severity + source_name with the default sort: (severity, source_name, occurred_at); it
--   replaces the single-column severity index, a prefix of (severity, occurred_at) and unused;
-- - severity + status: status joins (severity, occurred_at) as a third column, so the count and
--   the page test it in the index instead of reading each Critical alert's row.
-- Same number of indexes as before: ingest writes no more entries.
DROP INDEX ix_alerts_severity;
CREATE INDEX ix_alerts_severity_source_name_occurred_at ON alerts (severity, source_name, occurred_at);
DROP INDEX ix_alerts_severity_occurred_at;
CREATE INDEX ix_alerts_severity_occurred_at_status ON alerts (severity, occurred_at, status);
