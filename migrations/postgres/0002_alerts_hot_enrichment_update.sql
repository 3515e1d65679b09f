-- The worker marks every alert Enriched once, right after ingest. With `enrichment_status`
-- indexed, that UPDATE could never be a heap-only (HOT) update, so it rewrote an entry in every
-- one of the table's eleven indexes (the GIN index on tags included) for each alert: about as
-- much index work as the insert itself. The index served only a three-valued filter, which the
-- list query answers from the created_at order anyway. Without it, and with free space left in
-- each page, the enrichment update stays on the page and touches no index.
DROP INDEX IF EXISTS ix_alerts_enrichment_status;
ALTER TABLE alerts SET (fillfactor = 85);
