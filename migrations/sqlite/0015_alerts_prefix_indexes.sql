-- Ingest writes one entry per alert into every index of `alerts`, and on SQLite each index is a
-- b-tree of its own, written by the single writer (issue 14). Two single-column indexes are
-- prefixes of the (column, occurred_at) indexes of 0010, which serve every read they served: an
-- equality filter, its bounded count, and the default order. Dropping them leaves 12 indexes.
DROP INDEX ix_alerts_status;
DROP INDEX ix_alerts_source_name;
