-- Alert list filters on enrichment (issue 14). Without an index, a rare value — the usual case:
-- few alerts fail enrichment and Pending is transient — made the list scan the whole table: at a
-- million alerts `enrichment_status=Failed` with 2 % failed took 18 ms (p99 59 ms), and a filter
-- matching nothing 670 ms. 0002 dropped the single-column index so that the worker's Enriched
-- update could stay heap-only; measured again, that did not pay: a worker draining a backlog of
-- 13,800 alerts cost the same PostgreSQL CPU with this index (0.90–0.99 ms per alert) as without
-- (0.91–0.95). The index leads with the status and ends in the default sort, so a filtered page
-- and its bounded count are both index reads. On a million alerts this migration takes ~1.5 s.
CREATE INDEX ix_alerts_enrichment_status_occurred_at_id ON alerts (enrichment_status, occurred_at, id);
-- `is_enriched` is true exactly when the status is Enriched (alerts::store writes both together);
-- the list then filters `is_enriched` through the index above. Rows written otherwise (by hand)
-- are brought in line first, so the constraint can hold.
UPDATE alerts SET is_enriched = (enrichment_status = 'Enriched') WHERE is_enriched <> (enrichment_status = 'Enriched');
ALTER TABLE alerts ADD CONSTRAINT ck_alerts_is_enriched_status CHECK (is_enriched = (enrichment_status = 'Enriched'));
