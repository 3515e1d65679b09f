-- Per-key client-address allow-list (issue 15): a JSON array of normalized CIDRs; NULL = any
-- address (within the global IP_ALLOWLIST).
ALTER TABLE api_keys ADD COLUMN allowed_cidrs JSONB
    CONSTRAINT ck_api_keys_allowed_cidrs CHECK (allowed_cidrs IS NULL OR jsonb_typeof(allowed_cidrs) = 'array');
