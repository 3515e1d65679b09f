-- PostgreSQL gains the enrichment-status index SQLite has had since 0010 (see its 0014). The
-- constraint tying is_enriched to the status cannot be added to an existing SQLite table without
-- rebuilding it; alerts::store writes both together, and rows written otherwise (by hand) are
-- brought in line here, as on PostgreSQL.
UPDATE alerts SET is_enriched = (enrichment_status = 'Enriched') WHERE is_enriched <> (enrichment_status = 'Enriched');
