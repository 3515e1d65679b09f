-- The approval gate's decisions (issue 10).
-- * trigger_key_uuid: the API key that triggered the request (key prefixes are not unique), so
--   the four-eyes rule compares keys, not prefixes. NULL when the system triggered it.
-- * decided_by_*: who decided, from the authenticated principal: decided_by_type is
--   api|mcp|slack|browser|system; decided_by_id the key uuid, the Slack user id or "browser";
--   the key's prefix and name when a key decided. responder_id stays a client-supplied label.
-- * The sweep finds expired pending requests by (status, expires_at).
ALTER TABLE workflow_approval_requests ADD COLUMN trigger_key_uuid BLOB CHECK (trigger_key_uuid IS NULL OR (typeof(trigger_key_uuid) = 'blob' AND length(trigger_key_uuid) = 16));
ALTER TABLE workflow_approval_requests ADD COLUMN decided_by_type TEXT;
ALTER TABLE workflow_approval_requests ADD COLUMN decided_by_id TEXT;
ALTER TABLE workflow_approval_requests ADD COLUMN decided_by_key_prefix TEXT;
ALTER TABLE workflow_approval_requests ADD COLUMN decided_by_key_name TEXT;
CREATE INDEX ix_workflow_approval_requests_status_expires_at ON workflow_approval_requests (status, expires_at);
