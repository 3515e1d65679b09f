-- Agent webhooks signed per Standard Webhooks (issue 11). The signing secret is sealed with the
-- configured Cipher like every stored secret (envelope text, never plaintext); during a rotation
-- the previous secret keeps signing until previous_signing_secret_expires_at. The per-agent
-- redaction setting masks PII and credential-looking strings in the payload's untrusted fields.
ALTER TABLE agent_registrations ADD COLUMN signing_secret_encrypted TEXT;
ALTER TABLE agent_registrations ADD COLUMN previous_signing_secret_encrypted TEXT;
ALTER TABLE agent_registrations ADD COLUMN previous_signing_secret_expires_at TEXT;
ALTER TABLE agent_registrations ADD COLUMN redact_untrusted_fields BOOLEAN NOT NULL DEFAULT FALSE;
-- The Standard Webhooks message id of the delivery an attempt belongs to (stable across retries).
ALTER TABLE agent_runs ADD COLUMN webhook_id TEXT;
CREATE INDEX ix_agent_runs_webhook_id ON agent_runs (webhook_id);
