-- Workflows (issue 9).
-- * The browser decide token of an approval request is stored only as a SHA-256 hash (hex); the
--   plaintext is handed to the notifier once. The old plaintext column stays unused (NULL).
-- * At most one system workflow per name, so concurrent start-ups seed each builtin once.
ALTER TABLE workflow_approval_requests ADD COLUMN decide_token_hash TEXT;
CREATE UNIQUE INDEX ux_workflows_system_name ON workflows (name) WHERE is_system;
