-- calseta — initial schema (SQLite 3.38+, JSON functions built in)
--
-- Mirror file: migrations/postgres/0001_initial.sql. Both files define the same tables, columns,
-- constraint semantics and indexes, in the same order, so they can be diffed side by side and
-- the Rust code can issue identical SQL text ($1 placeholders) against either backend.
-- Foreign keys are only enforced when the connection sets PRAGMA foreign_keys = ON (sqlx's
-- SqliteConnectOptions does so by default); the pragma cannot be set inside a migration.
--
-- Conventions (Postgres type in brackets)
--   * id          INTEGER PRIMARY KEY AUTOINCREMENT [BIGINT identity]; internal, used by FKs.
--   * uuid        BLOB NOT NULL UNIQUE [UUID] holding the 16 raw bytes, which is how sqlx encodes
--                 uuid::Uuid for SQLite; a CHECK rejects anything else (e.g. a bound string).
--                 No DB default: the application always binds a v4 UUID.
--   * timestamps  TEXT [TIMESTAMPTZ], RFC 3339 strings bound by the application (sqlx encodes
--                 chrono DateTime<Utc> as e.g. 2026-03-01T12:00:00.123456+00:00). Only
--                 created_at / updated_at carry a default, strftime('%Y-%m-%dT%H:%M:%fZ','now'),
--                 as a safety net; bind them explicitly so that every value in a column has the
--                 same format and compares correctly as text. updated_at is refreshed by the
--                 application on every UPDATE (no triggers).
--   * JSON        TEXT + CHECK json_valid [JSONB]. Spec TEXT[] columns are JSON arrays of
--                 strings (NOT NULL DEFAULT '[]', CHECK json_type = 'array').
--   * booleans    BOOLEAN [BOOLEAN], stored as 0/1. Floats REAL [DOUBLE PRECISION].
--   * enums       TEXT + CHECK (col IN (...)) with the exact strings of data-model.md, but only for
--                 closed enums the application controls. Columns the spec says are NOT validated
--                 on write (detection_rules.severity, indicator_field_mappings.indicator_type /
--                 extraction_target, enrichment_providers.auth_type, activity_events.event_type)
--                 stay free TEXT. Defaults are the clean values (no quoted-quote QUIRK).
--   * FKs         reference internal id; ON DELETE CASCADE / SET NULL per the spec's
--                 "Delete semantics summary". Every FK column is indexed.
--   * No GIN indexes (Postgres only); tag filters use json_each() here.
--
-- Deviations from data-model.md
--   * activity_events.references is named event_references ("references" is an SQL reserved
--     word); the API layer maps it back to "references".
--   * api_keys: key_prefix is NOT unique (display/audit only, indexed); lookup_hash (hex SHA-256
--     of the full key) is the unique lookup id; key_hash holds an argon2id PHC string; added
--     revoked_at.
--   * workflow_runs.started_at/completed_at and agent_runs.started_at/completed_at are TEXT
--     (ISO-8601 strings) exactly as in the spec, in both backends.
--   * Extra tables at the end: jobs, audit_log, webhook_replay, idempotency_keys.
--   * No seed rows (seeding is done in Rust at startup).

-- ---------------------------------------------------------------------------------------------
-- detection_rules
-- ---------------------------------------------------------------------------------------------
CREATE TABLE detection_rules (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    name                 TEXT NOT NULL,
    source_rule_id       TEXT,
    source_name          TEXT,
    severity             TEXT,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    mitre_tactics        TEXT NOT NULL DEFAULT '[]',
    mitre_techniques     TEXT NOT NULL DEFAULT '[]',
    mitre_subtechniques  TEXT NOT NULL DEFAULT '[]',
    data_sources         TEXT NOT NULL DEFAULT '[]',
    run_frequency        TEXT,
    created_by           TEXT,
    documentation        TEXT,
    is_system            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_detection_rules_mitre_tactics CHECK (json_valid(mitre_tactics) AND json_type(mitre_tactics) = 'array'),
    CONSTRAINT ck_detection_rules_mitre_techniques CHECK (json_valid(mitre_techniques) AND json_type(mitre_techniques) = 'array'),
    CONSTRAINT ck_detection_rules_mitre_subtechniques CHECK (json_valid(mitre_subtechniques) AND json_type(mitre_subtechniques) = 'array'),
    CONSTRAINT ck_detection_rules_data_sources CHECK (json_valid(data_sources) AND json_type(data_sources) = 'array')
);
CREATE INDEX ix_detection_rules_source ON detection_rules (source_name, source_rule_id);
CREATE INDEX ix_detection_rules_name_is_system ON detection_rules (name, is_system);
CREATE INDEX ix_detection_rules_is_active ON detection_rules (is_active);
CREATE INDEX ix_detection_rules_created_at ON detection_rules (created_at);

-- ---------------------------------------------------------------------------------------------
-- source_integrations
-- ---------------------------------------------------------------------------------------------
CREATE TABLE source_integrations (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    source_name          TEXT NOT NULL,
    display_name         TEXT NOT NULL,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    auth_type            TEXT,
    auth_config          TEXT CHECK (auth_config IS NULL OR json_valid(auth_config)),
    documentation        TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX ix_source_integrations_source_name ON source_integrations (source_name);
CREATE INDEX ix_source_integrations_created_at ON source_integrations (created_at);

-- ---------------------------------------------------------------------------------------------
-- context_documents
-- ---------------------------------------------------------------------------------------------
CREATE TABLE context_documents (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    title                TEXT NOT NULL,
    document_type        TEXT NOT NULL,
    is_global            BOOLEAN NOT NULL DEFAULT FALSE,
    targeting_rules      TEXT CHECK (targeting_rules IS NULL OR json_valid(targeting_rules)),
    description          TEXT,
    content              TEXT NOT NULL,
    tags                 TEXT NOT NULL DEFAULT '[]',
    version              INTEGER NOT NULL DEFAULT 1,
    is_system            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_context_documents_document_type CHECK (document_type IN ('runbook', 'ir_plan', 'sop', 'playbook', 'detection_guide', 'other')),
    CONSTRAINT ck_context_documents_tags CHECK (json_valid(tags) AND json_type(tags) = 'array')
);
CREATE INDEX ix_context_documents_document_type ON context_documents (document_type);
CREATE INDEX ix_context_documents_is_global ON context_documents (is_global);
CREATE INDEX ix_context_documents_created_at ON context_documents (created_at);
-- (no SQLite equivalent of the Postgres GIN index on context_documents.tags)

-- ---------------------------------------------------------------------------------------------
-- api_keys (deviation: lookup_hash unique, key_prefix non-unique, argon2id key_hash, revoked_at)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE api_keys (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    name                 TEXT NOT NULL,
    key_prefix           TEXT NOT NULL,
    lookup_hash          TEXT NOT NULL,
    key_hash             TEXT NOT NULL,
    scopes               TEXT NOT NULL DEFAULT '[]',
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at           TEXT,
    last_used_at         TEXT,
    revoked_at           TEXT,
    allowed_sources      TEXT,
    key_type             TEXT NOT NULL DEFAULT 'human',
    is_system            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_api_keys_lookup_hash UNIQUE (lookup_hash),
    CONSTRAINT ck_api_keys_key_type CHECK (key_type IN ('human', 'agent')),
    CONSTRAINT ck_api_keys_scopes CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    CONSTRAINT ck_api_keys_allowed_sources CHECK (allowed_sources IS NULL OR (json_valid(allowed_sources) AND json_type(allowed_sources) = 'array'))
);
CREATE INDEX ix_api_keys_key_prefix ON api_keys (key_prefix);
CREATE INDEX ix_api_keys_is_active_created_at ON api_keys (is_active, created_at);

-- ---------------------------------------------------------------------------------------------
-- indicator_field_mappings (indicator_type / extraction_target deliberately unchecked: the spec
-- says the API does not validate them)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE indicator_field_mappings (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    source_name          TEXT,
    field_path           TEXT NOT NULL,
    indicator_type       TEXT NOT NULL,
    extraction_target    TEXT NOT NULL DEFAULT 'normalized',
    is_system            BOOLEAN NOT NULL DEFAULT TRUE,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    description          TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX ix_indicator_field_mappings_target_active ON indicator_field_mappings (extraction_target, is_active);
CREATE INDEX ix_indicator_field_mappings_field_path ON indicator_field_mappings (field_path, extraction_target);
CREATE INDEX ix_indicator_field_mappings_source_name ON indicator_field_mappings (source_name);
CREATE INDEX ix_indicator_field_mappings_created_at ON indicator_field_mappings (created_at);

-- ---------------------------------------------------------------------------------------------
-- enrichment_providers
-- ---------------------------------------------------------------------------------------------
CREATE TABLE enrichment_providers (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                       BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    provider_name              TEXT NOT NULL,
    display_name               TEXT NOT NULL,
    description                TEXT,
    is_builtin                 BOOLEAN NOT NULL DEFAULT FALSE,
    is_active                  BOOLEAN NOT NULL DEFAULT TRUE,
    supported_indicator_types  TEXT NOT NULL DEFAULT '[]',
    http_config                TEXT NOT NULL CHECK (json_valid(http_config)),
    auth_type                  TEXT NOT NULL DEFAULT 'no_auth',
    auth_config                TEXT CHECK (auth_config IS NULL OR json_valid(auth_config)),
    env_var_mapping            TEXT CHECK (env_var_mapping IS NULL OR json_valid(env_var_mapping)),
    default_cache_ttl_seconds  INTEGER NOT NULL DEFAULT 3600,
    cache_ttl_by_type          TEXT CHECK (cache_ttl_by_type IS NULL OR json_valid(cache_ttl_by_type)),
    malice_rules               TEXT CHECK (malice_rules IS NULL OR json_valid(malice_rules)),
    mock_responses             TEXT CHECK (mock_responses IS NULL OR json_valid(mock_responses)),
    created_at                 TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at                 TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_enrichment_provider_name UNIQUE (provider_name),
    CONSTRAINT ck_enrichment_providers_supported_indicator_types CHECK (json_valid(supported_indicator_types) AND json_type(supported_indicator_types) = 'array')
);
CREATE INDEX ix_enrichment_providers_is_active ON enrichment_providers (is_active);
CREATE INDEX ix_enrichment_providers_created_at ON enrichment_providers (created_at);

-- ---------------------------------------------------------------------------------------------
-- enrichment_field_extractions (provider_name: no FK, by spec)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE enrichment_field_extractions (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    provider_name        TEXT NOT NULL,
    indicator_type       TEXT NOT NULL,
    source_path          TEXT NOT NULL,
    target_key           TEXT NOT NULL,
    value_type           TEXT NOT NULL DEFAULT 'string',
    is_system            BOOLEAN NOT NULL DEFAULT TRUE,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    description          TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_enrichment_extraction_provider_type_path UNIQUE (provider_name, indicator_type, source_path),
    CONSTRAINT ck_enrichment_field_extractions_indicator_type CHECK (indicator_type IN ('ip', 'domain', 'hash_md5', 'hash_sha1', 'hash_sha256', 'url', 'email', 'account')),
    CONSTRAINT ck_enrichment_field_extractions_value_type CHECK (value_type IN ('string', 'int', 'float', 'bool', 'list', 'dict', 'any', 'number'))
);
CREATE INDEX ix_enrichment_field_extractions_indicator_type ON enrichment_field_extractions (indicator_type);
CREATE INDEX ix_enrichment_field_extractions_created_at ON enrichment_field_extractions (created_at);

-- ---------------------------------------------------------------------------------------------
-- alerts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE alerts (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                    BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    title                   TEXT NOT NULL,
    description             TEXT,
    severity                TEXT NOT NULL DEFAULT 'Pending',
    source_name             TEXT NOT NULL,
    occurred_at             TEXT NOT NULL,
    source_time             TEXT,
    ingested_at             TEXT NOT NULL,
    enriched_at             TEXT,
    is_enriched             BOOLEAN NOT NULL DEFAULT FALSE,
    fingerprint             TEXT,
    duplicate_count         INTEGER NOT NULL DEFAULT 0,
    last_seen_at            TEXT,
    status                  TEXT NOT NULL DEFAULT 'Open',
    enrichment_status       TEXT NOT NULL DEFAULT 'Pending',
    close_classification    TEXT,
    acknowledged_at         TEXT,
    triaged_at              TEXT,
    closed_at               TEXT,
    malice_override         TEXT,
    malice_override_source  TEXT,
    malice_override_at      TEXT,
    raw_payload             TEXT NOT NULL DEFAULT '{}',
    agent_findings          TEXT CHECK (agent_findings IS NULL OR json_valid(agent_findings)),
    tags                    TEXT NOT NULL DEFAULT '[]',
    is_system               BOOLEAN NOT NULL DEFAULT FALSE,
    detection_rule_id       INTEGER REFERENCES detection_rules (id) ON DELETE SET NULL,
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_alerts_severity CHECK (severity IN ('Pending', 'Informational', 'Low', 'Medium', 'High', 'Critical')),
    CONSTRAINT ck_alerts_status CHECK (status IN ('Open', 'Triaging', 'Escalated', 'Closed')),
    CONSTRAINT ck_alerts_enrichment_status CHECK (enrichment_status IN ('Pending', 'Enriched', 'Failed')),
    CONSTRAINT ck_alerts_close_classification CHECK (close_classification IS NULL OR close_classification IN (
        'True Positive - Suspicious Activity',
        'Benign Positive - Suspicious but Expected',
        'False Positive - Incorrect Detection Logic',
        'False Positive - Inaccurate Data',
        'Undetermined',
        'Duplicate',
        'Not Applicable')),
    CONSTRAINT ck_alerts_malice_override CHECK (malice_override IS NULL OR malice_override IN ('Pending', 'Benign', 'Suspicious', 'Malicious')),
    CONSTRAINT ck_alerts_malice_override_source CHECK (malice_override_source IS NULL OR malice_override_source IN ('analyst')),
    CONSTRAINT ck_alerts_raw_payload CHECK (json_valid(raw_payload) AND json_type(raw_payload) = 'object'),
    CONSTRAINT ck_alerts_tags CHECK (json_valid(tags) AND json_type(tags) = 'array')
);
CREATE INDEX ix_alerts_status ON alerts (status);
CREATE INDEX ix_alerts_severity ON alerts (severity);
CREATE INDEX ix_alerts_source_name ON alerts (source_name);
CREATE INDEX ix_alerts_enrichment_status ON alerts (enrichment_status);
CREATE INDEX ix_alerts_occurred_at ON alerts (occurred_at);
CREATE INDEX ix_alerts_created_at ON alerts (created_at);
CREATE INDEX ix_alerts_fingerprint_created_at ON alerts (fingerprint, created_at DESC);
CREATE INDEX ix_alerts_detection_rule_id ON alerts (detection_rule_id);
-- (no SQLite equivalent of the Postgres GIN index on alerts.tags)

-- ---------------------------------------------------------------------------------------------
-- indicators
-- ---------------------------------------------------------------------------------------------
CREATE TABLE indicators (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                  BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    type                  TEXT NOT NULL,
    value                 TEXT NOT NULL,
    first_seen            TEXT NOT NULL,
    last_seen             TEXT NOT NULL,
    is_enriched           BOOLEAN NOT NULL DEFAULT FALSE,
    malice                TEXT NOT NULL DEFAULT 'Pending',
    malice_source         TEXT NOT NULL DEFAULT 'enrichment',
    malice_overridden_at  TEXT,
    enrichment_results    TEXT CHECK (enrichment_results IS NULL OR json_valid(enrichment_results)),
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_indicator_type_value UNIQUE (type, value),
    CONSTRAINT ck_indicators_type CHECK (type IN ('ip', 'domain', 'hash_md5', 'hash_sha1', 'hash_sha256', 'url', 'email', 'account')),
    CONSTRAINT ck_indicators_malice CHECK (malice IN ('Pending', 'Benign', 'Suspicious', 'Malicious')),
    CONSTRAINT ck_indicators_malice_source CHECK (malice_source IN ('enrichment', 'analyst'))
);

-- ---------------------------------------------------------------------------------------------
-- alert_indicators (join table; no uuid)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE alert_indicators (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id             INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    indicator_id         INTEGER NOT NULL REFERENCES indicators (id) ON DELETE CASCADE,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_alert_indicator UNIQUE (alert_id, indicator_id)
);
CREATE INDEX ix_alert_indicators_indicator_id ON alert_indicators (indicator_id);

-- ---------------------------------------------------------------------------------------------
-- workflows
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workflows (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                      BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    name                      TEXT NOT NULL,
    workflow_type             TEXT,
    indicator_types           TEXT NOT NULL DEFAULT '[]',
    code                      TEXT NOT NULL,
    code_version              INTEGER NOT NULL DEFAULT 1,
    state                     TEXT NOT NULL DEFAULT 'draft',
    timeout_seconds           INTEGER NOT NULL DEFAULT 300,
    retry_count               INTEGER NOT NULL DEFAULT 0,
    is_active                 BOOLEAN NOT NULL DEFAULT TRUE,
    is_system                 BOOLEAN NOT NULL DEFAULT FALSE,
    tags                      TEXT NOT NULL DEFAULT '[]',
    time_saved_minutes        INTEGER,
    approval_mode             TEXT NOT NULL DEFAULT 'always',
    approval_channel          TEXT,
    approval_timeout_seconds  INTEGER NOT NULL DEFAULT 3600,
    risk_level                TEXT NOT NULL DEFAULT 'medium',
    documentation             TEXT,
    created_at                TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at                TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_workflows_workflow_type CHECK (workflow_type IS NULL OR workflow_type IN ('indicator', 'alert')),
    CONSTRAINT ck_workflows_state CHECK (state IN ('draft', 'active', 'inactive')),
    CONSTRAINT ck_workflows_approval_mode CHECK (approval_mode IN ('always', 'agent_only', 'never')),
    CONSTRAINT ck_workflows_risk_level CHECK (risk_level IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT ck_workflows_indicator_types CHECK (json_valid(indicator_types) AND json_type(indicator_types) = 'array'),
    CONSTRAINT ck_workflows_tags CHECK (json_valid(tags) AND json_type(tags) = 'array')
);
CREATE INDEX ix_workflows_name_is_system ON workflows (name, is_system);
CREATE INDEX ix_workflows_state ON workflows (state);
CREATE INDEX ix_workflows_created_at ON workflows (created_at);
-- (no SQLite equivalent of the Postgres GIN index on workflows.tags)

-- ---------------------------------------------------------------------------------------------
-- workflow_code_versions (no uuid / created_at / updated_at; saved_at instead)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workflow_code_versions (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id          INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version              INTEGER NOT NULL,
    code                 TEXT NOT NULL,
    saved_at             TEXT NOT NULL
);
CREATE INDEX ix_workflow_code_versions_workflow_id ON workflow_code_versions (workflow_id, version);

-- ---------------------------------------------------------------------------------------------
-- workflow_runs (started_at / completed_at are ISO-8601 TEXT, as in the spec)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workflow_runs (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                   BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    workflow_id            INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    trigger_type           TEXT NOT NULL,
    trigger_context        TEXT CHECK (trigger_context IS NULL OR json_valid(trigger_context)),
    code_version_executed  INTEGER NOT NULL,
    log_output             TEXT,
    result                 TEXT CHECK (result IS NULL OR json_valid(result)),
    status                 TEXT NOT NULL DEFAULT 'queued',
    attempt_count          INTEGER NOT NULL DEFAULT 0,
    duration_ms            INTEGER,
    started_at             TEXT,
    completed_at           TEXT,
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_workflow_runs_trigger_type CHECK (trigger_type IN ('human', 'agent', 'system')),
    CONSTRAINT ck_workflow_runs_status CHECK (status IN ('queued', 'success', 'failed', 'timed_out'))
);
CREATE INDEX ix_workflow_runs_workflow_id_created_at ON workflow_runs (workflow_id, created_at);
CREATE INDEX ix_workflow_runs_status ON workflow_runs (status);
CREATE INDEX ix_workflow_runs_created_at ON workflow_runs (created_at);

-- ---------------------------------------------------------------------------------------------
-- workflow_approval_requests
-- ---------------------------------------------------------------------------------------------
CREATE TABLE workflow_approval_requests (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                      BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    workflow_id               INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    workflow_run_id           INTEGER REFERENCES workflow_runs (id) ON DELETE SET NULL,
    trigger_type              TEXT NOT NULL,
    trigger_agent_key_prefix  TEXT NOT NULL,
    trigger_context           TEXT CHECK (trigger_context IS NULL OR json_valid(trigger_context)),
    reason                    TEXT NOT NULL,
    confidence                REAL NOT NULL,
    notifier_type             TEXT NOT NULL DEFAULT 'none',
    notifier_channel          TEXT,
    external_message_id       TEXT,
    status                    TEXT NOT NULL DEFAULT 'pending',
    responder_id              TEXT,
    responded_at              TEXT,
    expires_at                TEXT NOT NULL,
    execution_result          TEXT CHECK (execution_result IS NULL OR json_valid(execution_result)),
    decide_token              TEXT,
    created_at                TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at                TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_workflow_approval_requests_trigger_type CHECK (trigger_type IN ('human', 'agent', 'system')),
    CONSTRAINT ck_workflow_approval_requests_notifier_type CHECK (notifier_type IN ('none', 'slack', 'teams')),
    CONSTRAINT ck_workflow_approval_requests_status CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled'))
);
CREATE INDEX ix_workflow_approval_requests_workflow_id_created_at ON workflow_approval_requests (workflow_id, created_at);
CREATE INDEX ix_workflow_approval_requests_workflow_run_id ON workflow_approval_requests (workflow_run_id);
CREATE INDEX ix_workflow_approval_requests_status_created_at ON workflow_approval_requests (status, created_at);
CREATE INDEX ix_workflow_approval_requests_created_at ON workflow_approval_requests (created_at);

-- ---------------------------------------------------------------------------------------------
-- agent_registrations
-- ---------------------------------------------------------------------------------------------
CREATE TABLE agent_registrations (
    id                           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                         BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    name                         TEXT NOT NULL,
    description                  TEXT,
    endpoint_url                 TEXT NOT NULL,
    auth_header_name             TEXT,
    auth_header_value_encrypted  TEXT,
    trigger_on_sources           TEXT NOT NULL DEFAULT '[]',
    trigger_on_severities        TEXT NOT NULL DEFAULT '[]',
    trigger_filter               TEXT CHECK (trigger_filter IS NULL OR json_valid(trigger_filter)),
    timeout_seconds              INTEGER NOT NULL DEFAULT 30,
    retry_count                  INTEGER NOT NULL DEFAULT 3,
    is_active                    BOOLEAN NOT NULL DEFAULT TRUE,
    documentation                TEXT,
    created_at                   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at                   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_agent_auth_header_pair CHECK ((auth_header_name IS NULL) = (auth_header_value_encrypted IS NULL)),
    CONSTRAINT ck_agent_registrations_trigger_on_sources CHECK (json_valid(trigger_on_sources) AND json_type(trigger_on_sources) = 'array'),
    CONSTRAINT ck_agent_registrations_trigger_on_severities CHECK (json_valid(trigger_on_severities) AND json_type(trigger_on_severities) = 'array')
);
CREATE INDEX ix_agent_registrations_is_active ON agent_registrations (is_active);
CREATE INDEX ix_agent_registrations_created_at ON agent_registrations (created_at);

-- ---------------------------------------------------------------------------------------------
-- agent_runs (one row per delivery attempt; started_at / completed_at are ISO-8601 TEXT)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE agent_runs (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                   BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    agent_registration_id  INTEGER NOT NULL REFERENCES agent_registrations (id) ON DELETE CASCADE,
    alert_id               INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    request_payload        TEXT CHECK (request_payload IS NULL OR json_valid(request_payload)),
    response_status_code   INTEGER,
    response_body          TEXT CHECK (response_body IS NULL OR json_valid(response_body)),
    status                 TEXT NOT NULL,
    attempt_count          INTEGER NOT NULL DEFAULT 0,
    started_at             TEXT,
    completed_at           TEXT,
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_agent_runs_status CHECK (status IN ('success', 'failed', 'timeout'))
);
CREATE INDEX ix_agent_runs_agent_registration_id ON agent_runs (agent_registration_id);
CREATE INDEX ix_agent_runs_alert_id ON agent_runs (alert_id);

-- ---------------------------------------------------------------------------------------------
-- activity_events (append-only; no updated_at; spec column "references" => event_references;
-- event_type is free TEXT: writes are fire-and-forget, a CHECK would silently drop events)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE activity_events (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    event_type           TEXT NOT NULL,
    actor_type           TEXT NOT NULL,
    actor_key_prefix     TEXT,
    alert_id             INTEGER REFERENCES alerts (id) ON DELETE SET NULL,
    workflow_id          INTEGER REFERENCES workflows (id) ON DELETE SET NULL,
    detection_rule_id    INTEGER REFERENCES detection_rules (id) ON DELETE SET NULL,
    event_references     TEXT CHECK (event_references IS NULL OR json_valid(event_references)),
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_activity_events_actor_type CHECK (actor_type IN ('system', 'api', 'mcp'))
);
CREATE INDEX ix_activity_events_alert_id_created_at ON activity_events (alert_id, created_at);
CREATE INDEX ix_activity_events_workflow_id ON activity_events (workflow_id);
CREATE INDEX ix_activity_events_detection_rule_id ON activity_events (detection_rule_id);
CREATE INDEX ix_activity_events_created_at ON activity_events (created_at);

-- =============================================================================================
-- Extra tables (not in data-model.md)
-- =============================================================================================

-- jobs: our own durable task queue, replacing procrastinate_jobs (README "Task queue").
-- Workers claim with SELECT ... FOR UPDATE SKIP LOCKED (Postgres) / a single-writer UPDATE
-- (SQLite), set status='doing', locked_by, locked_until, started_at; a job whose locked_until
-- has passed while still 'doing' is reclaimable. /health counts status='todo'; metrics use
-- started_at/finished_at for durations and run_at for the oldest-pending age.
-- dedupe_key is unique only among live jobs (todo/doing); use
--   ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('todo', 'doing') DO NOTHING
CREATE TABLE jobs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    queue                TEXT NOT NULL,
    task                 TEXT NOT NULL,
    payload              TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'todo',
    attempts             INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL DEFAULT 3,
    backoff_seconds      INTEGER NOT NULL DEFAULT 60,
    run_at               TEXT NOT NULL,
    locked_by            TEXT,
    locked_until         TEXT,
    started_at           TEXT,
    finished_at          TEXT,
    last_error           TEXT,
    dedupe_key           TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT ck_jobs_status CHECK (status IN ('todo', 'doing', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT ck_jobs_payload CHECK (json_valid(payload) AND json_type(payload) = 'object')
);
CREATE INDEX ix_jobs_status_queue_run_at ON jobs (status, queue, run_at);
CREATE INDEX ix_jobs_status_locked_until ON jobs (status, locked_until);
CREATE UNIQUE INDEX uq_jobs_dedupe_key_live ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('todo', 'doing');

-- audit_log: tamper-evident security audit trail (auth failures, admin changes, approvals...).
-- Each row's hash = SHA-256 over (prev_hash || canonical row content); prev_hash of the first
-- row is the genesis value chosen by the application. Append-only: UPDATE is rejected by a
-- trigger (DELETE stays possible for retention pruning from the oldest end).
CREATE TABLE audit_log (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 BLOB NOT NULL UNIQUE CHECK (typeof(uuid) = 'blob' AND length(uuid) = 16),
    occurred_at          TEXT NOT NULL,
    actor_type           TEXT NOT NULL,
    actor_key_prefix     TEXT,
    actor_key_uuid       BLOB CHECK (actor_key_uuid IS NULL OR (typeof(actor_key_uuid) = 'blob' AND length(actor_key_uuid) = 16)),
    action               TEXT NOT NULL,
    target_type          TEXT,
    target_id            TEXT,
    request_id           TEXT,
    outcome              TEXT NOT NULL,
    details              TEXT NOT NULL DEFAULT '{}',
    prev_hash            TEXT NOT NULL,
    hash                 TEXT NOT NULL,
    CONSTRAINT uq_audit_log_hash UNIQUE (hash),
    CONSTRAINT ck_audit_log_details CHECK (json_valid(details) AND json_type(details) = 'object')
);
CREATE INDEX ix_audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX ix_audit_log_action ON audit_log (action);
CREATE INDEX ix_audit_log_actor_key_uuid ON audit_log (actor_key_uuid);

CREATE TRIGGER trg_audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- webhook_replay: replay cache for inbound webhooks. A (source_name, event_id) pair already
-- seen is rejected/deduplicated before ingest; rows older than the replay window are pruned
-- by seen_at.
CREATE TABLE webhook_replay (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    source_name          TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    seen_at              TEXT NOT NULL,
    alert_uuid           BLOB CHECK (alert_uuid IS NULL OR (typeof(alert_uuid) = 'blob' AND length(alert_uuid) = 16)),
    CONSTRAINT uq_webhook_replay_source_event UNIQUE (source_name, event_id)
);
CREATE INDEX ix_webhook_replay_seen_at ON webhook_replay (seen_at);

-- idempotency_keys: stored responses for requests carrying an Idempotency-Key header, scoped
-- per API key, so client retries of POSTs return the original response instead of acting
-- twice. request_hash detects key reuse with a different body. Pruned by created_at.
CREATE TABLE idempotency_keys (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key_uuid         BLOB NOT NULL CHECK (typeof(api_key_uuid) = 'blob' AND length(api_key_uuid) = 16),
    idempotency_key      TEXT NOT NULL,
    request_hash         TEXT NOT NULL,
    response_status      INTEGER NOT NULL,
    response_body        TEXT NOT NULL,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    CONSTRAINT uq_idempotency_keys_key UNIQUE (api_key_uuid, idempotency_key)
);
CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at);
