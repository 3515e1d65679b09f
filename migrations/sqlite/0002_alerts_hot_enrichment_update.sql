-- Same index set as PostgreSQL (see its 0002): the three-valued enrichment_status index is
-- dropped, so the worker's Enriched update does not rewrite an index entry per alert.
DROP INDEX IF EXISTS ix_alerts_enrichment_status;
