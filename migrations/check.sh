#!/usr/bin/env bash
# Applies migrations/{postgres,sqlite}/0001_initial.sql to throwaway databases and fails loudly.
#
#   1. Postgres: createdb a random database on 127.0.0.1:5432 (user postgres, trust auth), apply
#      the file with psql -v ON_ERROR_STOP=1 in a single transaction (-1, as sqlx migrate does),
#      dropdb on exit.
#   2. SQLite: apply the file with python3 sqlite3 executescript (inside BEGIN/COMMIT) on a temp
#      file with PRAGMA foreign_keys=ON.
#   3. Parity: both schemas must have the same tables, columns (same order, nullability, default
#      presence), explicitly created indexes (minus Postgres-only GIN) and named constraints.
#   4. Smoke test: the same statements run against both databases (defaults, CHECKs, unique and
#      partial unique indexes, upserts, FK CASCADE / SET NULL, audit_log append-only trigger).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_FILE="$HERE/postgres/0001_initial.sql"
SQLITE_FILE="$HERE/sqlite/0001_initial.sql"
PGARGS=(-h 127.0.0.1 -p 5432 -U postgres)
DB="calseta_check_$(date +%s)_$$_${RANDOM}"
TMP="$(mktemp -d)"
SQLITE_DB="$TMP/check.sqlite3"

cleanup() {
    dropdb "${PGARGS[@]}" --if-exists "$DB" >/dev/null 2>&1 || echo "WARNING: could not drop database $DB" >&2
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "== postgres: createdb $DB"
createdb "${PGARGS[@]}" "$DB"
echo "== postgres: applying $PG_FILE"
psql "${PGARGS[@]}" -d "$DB" -v ON_ERROR_STOP=1 -X -q -1 -f "$PG_FILE"
echo "   ok"

echo "== sqlite: applying $SQLITE_FILE to $SQLITE_DB"
python3 -c '
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA foreign_keys=ON")
assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1, "foreign_keys not enabled"
con.executescript("BEGIN;\n" + open(sys.argv[2], encoding="utf-8").read() + "\nCOMMIT;")
problems = con.execute("PRAGMA foreign_key_check").fetchall()
assert not problems, problems
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
print("   ok (sqlite %s)" % sqlite3.sqlite_version)
' "$SQLITE_DB" "$SQLITE_FILE"

echo "== parity + smoke tests"
python3 - "$DB" "$SQLITE_DB" "${PGARGS[@]}" <<'PY'
import os, re, sqlite3, subprocess, sys

pg_db, sqlite_path, pgargs = sys.argv[1], sys.argv[2], sys.argv[3:]
failures = []

def pg(sql):
    """Run one statement with psql; return (ok, stdout, stderr)."""
    p = subprocess.run(["psql", *pgargs, "-d", pg_db, "-X", "-q", "-t", "-A", "-F", "|",
                        "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True)
    return p.returncode == 0, p.stdout.strip(), p.stderr.strip()

lite = sqlite3.connect(sqlite_path, isolation_level=None)
lite.execute("PRAGMA foreign_keys=ON")

def sq(sql):
    try:
        rows = lite.execute(sql).fetchall()
        return True, "\n".join("|".join("" if v is None else str(v) for v in r) for r in rows), ""
    except sqlite3.Error as e:
        return False, "", str(e)

def pg_rows(sql):
    ok, out, err = pg(sql)
    if not ok:
        sys.exit("psql failed: %s\n%s" % (sql, err))
    return [tuple(l.split("|")) for l in out.splitlines() if l]

# ---------------------------------------------------------------- parity: columns
pg_cols = pg_rows("""SELECT table_name, column_name,
                            CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END,
                            CASE WHEN column_default IS NOT NULL THEN 1 ELSE 0 END
                     FROM information_schema.columns WHERE table_schema = 'public'
                     ORDER BY table_name, ordinal_position""")
lite_cols = [(t, c, str(1 if (nn or pk) else 0), str(1 if d is not None else 0))
             for t, c, nn, pk, d in lite.execute(
                 """SELECT m.name, p.name, p."notnull", p.pk, p.dflt_value
                    FROM sqlite_master m, pragma_table_info(m.name) p
                    WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                    ORDER BY m.name, p.cid""")]
if pg_cols != lite_cols:
    a, b = set(pg_cols), set(lite_cols)
    failures.append("column mismatch:\n  only postgres: %s\n  only sqlite: %s"
                    % (sorted(a - b), sorted(b - a)))
tables = sorted({t for t, *_ in pg_cols})

# ---------------------------------------------------------------- parity: indexes
pg_idx = {r[0] for r in pg_rows("""SELECT i.relname FROM pg_index x
                                   JOIN pg_class i ON i.oid = x.indexrelid
                                   JOIN pg_class t ON t.oid = x.indrelid
                                   JOIN pg_namespace n ON n.oid = t.relnamespace
                                   JOIN pg_am am ON am.oid = i.relam
                                   WHERE n.nspname = 'public' AND am.amname <> 'gin'
                                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                                     WHERE c.conindid = x.indexrelid)""")}
pg_gin = {r[0] for r in pg_rows("""SELECT indexname FROM pg_indexes
                                   WHERE schemaname = 'public' AND indexdef LIKE '%USING gin%'""")}
lite_idx = {r[0] for r in lite.execute(
    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
if pg_idx != lite_idx:
    failures.append("index mismatch: only postgres %s, only sqlite %s"
                    % (sorted(pg_idx - lite_idx), sorted(lite_idx - pg_idx)))

# ---------------------------------------------------------------- parity: named constraints
pg_con = {r[0] for r in pg_rows("""SELECT c.conname FROM pg_constraint c
                                   JOIN pg_namespace n ON n.oid = c.connamespace
                                   WHERE n.nspname = 'public' AND c.contype IN ('c', 'u')
                                     AND c.conname <> c.conrelid::regclass::text || '_uuid_key'""")}
lite_con = set()
for (sql,) in lite.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"):
    lite_con |= set(re.findall(r"CONSTRAINT (\w+)", sql or ""))
if pg_con != lite_con:
    failures.append("named constraint mismatch: only postgres %s, only sqlite %s"
                    % (sorted(pg_con - lite_con), sorted(lite_con - pg_con)))

# ---------------------------------------------------------------- parity: foreign keys
pg_fk = set(pg_rows("""SELECT tc.table_name, kcu.column_name, ccu.table_name, rc.delete_rule
                       FROM information_schema.table_constraints tc
                       JOIN information_schema.key_column_usage kcu
                         ON kcu.constraint_name = tc.constraint_name
                       JOIN information_schema.constraint_column_usage ccu
                         ON ccu.constraint_name = tc.constraint_name
                       JOIN information_schema.referential_constraints rc
                         ON rc.constraint_name = tc.constraint_name
                       WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'"""))
lite_fk = set()
for t in tables:
    for row in lite.execute("SELECT \"table\", \"from\", on_delete FROM pragma_foreign_key_list(?)", (t,)):
        lite_fk.add((t, row[1], row[0], row[2]))
if pg_fk != lite_fk:
    failures.append("foreign key mismatch: only postgres %s, only sqlite %s"
                    % (sorted(pg_fk - lite_fk), sorted(lite_fk - pg_fk)))

print("   tables (%d): %s" % (len(tables), ", ".join(tables)))
print("   columns: %d, indexes: %d (+%d postgres-only GIN), named constraints: %d, foreign keys: %d"
      % (len(pg_cols), len(pg_idx), len(pg_gin), len(pg_con), len(pg_fk)))

# ---------------------------------------------------------------- smoke tests
T1 = "'2026-03-01T12:00:00+00:00'"
T2 = "'2026-03-02T12:00:00+00:00'"
# (kind, sql[, expected]); kind: ok | fail | eq | fail_sqlite (Postgres accepts via its UUID type)
STEPS = [
    ("ok", "INSERT INTO detection_rules (uuid, name, source_name, source_rule_id, mitre_tactics) VALUES ({U}, 'r1', 'sentinel', 'abc', '[\"TA0001\"]')"),
    ("ok", "INSERT INTO alerts (uuid, title, source_name, occurred_at, ingested_at, raw_payload, tags, fingerprint, detection_rule_id) VALUES ({U}, 'a1', 'sentinel', %s, %s, '{\"k\": \"v\"}', '[\"x\", \"y\"]', 'f00', (SELECT id FROM detection_rules WHERE name = 'r1'))" % (T1, T1)),
    ("eq", "SELECT severity || '/' || status || '/' || enrichment_status || '/' || duplicate_count FROM alerts WHERE title = 'a1'", "Pending/Open/Pending/0"),
    ("ok", "UPDATE alerts SET status = 'Closed', close_classification = 'Benign Positive - Suspicious but Expected', closed_at = %s, malice_override = 'Benign', malice_override_source = 'analyst' WHERE title = 'a1'" % T2),
    ("fail", "UPDATE alerts SET status = 'open' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET severity = 'Severe' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET close_classification = 'Bogus' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET tags = '{\"a\": 1}' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET raw_payload = '[1]' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET raw_payload = '{' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET agent_findings = 'not json' WHERE title = 'a1'"),
    ("fail", "UPDATE alerts SET detection_rule_id = 999999 WHERE title = 'a1'"),
    ("fail", "INSERT INTO alerts (uuid, title, source_name, occurred_at) VALUES ({U}, 'no-ingested-at', 'x', %s)" % T1),
    ("fail_sqlite", "INSERT INTO alerts (uuid, title, source_name, occurred_at, ingested_at) VALUES ('123e4567-e89b-12d3-a456-426614174000', 'text-uuid', 'x', %s, %s)" % (T1, T1)),
    ("ok", "INSERT INTO indicators (uuid, type, value, first_seen, last_seen) VALUES ({U}, 'ip', '1.2.3.4', %s, %s)" % (T1, T1)),
    ("ok", "INSERT INTO indicators (uuid, type, value, first_seen, last_seen) VALUES ({U}, 'ip', '1.2.3.4', %s, %s) ON CONFLICT (type, value) DO UPDATE SET last_seen = excluded.last_seen" % (T2, T2)),
    ("eq", "SELECT count(*) || '/' || malice || '/' || malice_source FROM indicators GROUP BY malice, malice_source", "1/Pending/enrichment"),
    ("fail", "INSERT INTO indicators (uuid, type, value, first_seen, last_seen) VALUES ({U}, 'ipv4', '1.2.3.5', %s, %s)" % (T1, T1)),
    ("ok", "INSERT INTO alert_indicators (alert_id, indicator_id) VALUES ((SELECT id FROM alerts WHERE title = 'a1'), (SELECT id FROM indicators WHERE value = '1.2.3.4'))"),
    ("ok", "INSERT INTO alert_indicators (alert_id, indicator_id) VALUES ((SELECT id FROM alerts WHERE title = 'a1'), (SELECT id FROM indicators WHERE value = '1.2.3.4')) ON CONFLICT DO NOTHING"),
    ("eq", "SELECT count(*) FROM alert_indicators", "1"),
    ("ok", "INSERT INTO agent_registrations (uuid, name, endpoint_url, trigger_on_severities) VALUES ({U}, 'ag', 'https://example.com/hook', '[\"High\"]')"),
    ("ok", "INSERT INTO agent_registrations (uuid, name, endpoint_url, auth_header_name, auth_header_value_encrypted) VALUES ({U}, 'ag2', 'https://example.com/hook', 'X-Key', 'gAAAA')"),
    ("fail", "INSERT INTO agent_registrations (uuid, name, endpoint_url, auth_header_name) VALUES ({U}, 'ag3', 'https://example.com/hook', 'X-Key')"),
    ("ok", "INSERT INTO agent_runs (uuid, agent_registration_id, alert_id, status, attempt_count, request_payload, started_at) VALUES ({U}, (SELECT id FROM agent_registrations WHERE name = 'ag'), (SELECT id FROM alerts WHERE title = 'a1'), 'success', 1, '{\"endpoint_url\": \"https://example.com/hook\"}', '2026-03-01T12:00:00.123456+00:00')"),
    ("fail", "INSERT INTO agent_runs (uuid, agent_registration_id, alert_id, status) VALUES ({U}, (SELECT id FROM agent_registrations WHERE name = 'ag'), (SELECT id FROM alerts WHERE title = 'a1'), 'ok')"),
    ("ok", "INSERT INTO workflows (uuid, name, code, indicator_types) VALUES ({U}, 'w1', 'async def run(ctx): pass', '[\"ip\"]')"),
    ("eq", "SELECT state || '/' || risk_level || '/' || approval_mode || '/' || timeout_seconds || '/' || approval_timeout_seconds FROM workflows", "draft/medium/always/300/3600"),
    ("fail", "UPDATE workflows SET state = 'enabled'"),
    ("fail", "UPDATE workflows SET workflow_type = 'host'"),
    ("ok", "INSERT INTO workflow_code_versions (workflow_id, version, code, saved_at) VALUES ((SELECT id FROM workflows WHERE name = 'w1'), 1, 'old', %s)" % T1),
    ("ok", "INSERT INTO workflow_runs (uuid, workflow_id, trigger_type, code_version_executed, trigger_context) VALUES ({U}, (SELECT id FROM workflows WHERE name = 'w1'), 'agent', 1, '{\"indicator_type\": \"ip\", \"alert_id\": null}')"),
    ("eq", "SELECT status || '/' || attempt_count FROM workflow_runs", "queued/0"),
    ("ok", "INSERT INTO workflow_approval_requests (uuid, workflow_id, workflow_run_id, trigger_type, trigger_agent_key_prefix, reason, confidence, expires_at) VALUES ({U}, (SELECT id FROM workflows WHERE name = 'w1'), (SELECT id FROM workflow_runs), 'agent', 'cai_abcd', '', 0.5, %s)" % T2),
    ("eq", "SELECT status || '/' || notifier_type FROM workflow_approval_requests", "pending/none"),
    ("fail", "UPDATE workflow_approval_requests SET status = 'approved_'"),
    ("ok", "INSERT INTO activity_events (uuid, event_type, actor_type, actor_key_prefix, alert_id, workflow_id, detection_rule_id, event_references) VALUES ({U}, 'workflow_executed', 'system', NULL, (SELECT id FROM alerts WHERE title = 'a1'), (SELECT id FROM workflows WHERE name = 'w1'), (SELECT id FROM detection_rules WHERE name = 'r1'), '{\"status\": \"success\"}')"),
    ("fail", "INSERT INTO activity_events (uuid, event_type, actor_type) VALUES ({U}, 'alert_ingested', 'worker')"),
    ("ok", "INSERT INTO context_documents (uuid, title, document_type, content, tags) VALUES ({U}, 'doc', 'runbook', '# hi', '[\"t\"]')"),
    ("fail", "INSERT INTO context_documents (uuid, title, document_type, content) VALUES ({U}, 'doc2', 'wiki', '# hi')"),
    ("ok", "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash, scopes) VALUES ({U}, 'k1', 'cai_abcd', 'h1', '$argon2id$v=19$m=19456,t=2,p=1$x$y', '[\"admin\"]')"),
    ("ok", "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash, allowed_sources, key_type) VALUES ({U}, 'k2', 'cai_abcd', 'h2', 'x', '[]', 'agent')"),
    ("fail", "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash) VALUES ({U}, 'k3', 'cai_efgh', 'h1', 'x')"),
    ("fail", "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash, key_type) VALUES ({U}, 'k4', 'cai_efgh', 'h4', 'x', 'robot')"),
    ("fail", "INSERT INTO api_keys (uuid, name, key_prefix, lookup_hash, key_hash, allowed_sources) VALUES ({U}, 'k5', 'cai_efgh', 'h5', 'x', '\"sentinel\"')"),
    ("eq", "SELECT count(*) FROM api_keys WHERE allowed_sources IS NULL AND key_type = 'human' AND is_active AND NOT is_system", "1"),
    ("ok", "INSERT INTO source_integrations (uuid, source_name, display_name, auth_config) VALUES ({U}, 'sentinel', 'Sentinel', '{\"_encrypted\": \"gAAAA\"}')"),
    ("ok", "INSERT INTO indicator_field_mappings (uuid, field_path, indicator_type, is_system) VALUES ({U}, 'src_ip', 'anything-goes', FALSE)"),
    ("eq", "SELECT extraction_target FROM indicator_field_mappings", "normalized"),
    ("ok", "INSERT INTO enrichment_providers (uuid, provider_name, display_name, http_config, supported_indicator_types) VALUES ({U}, 'virustotal', 'VirusTotal', '{\"steps\": []}', '[\"ip\"]')"),
    ("fail", "INSERT INTO enrichment_providers (uuid, provider_name, display_name, http_config) VALUES ({U}, 'virustotal', 'Dup', '{}')"),
    ("ok", "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type) VALUES ({U}, 'virustotal', 'ip', 'data.attributes.reputation', 'reputation', 'number')"),
    ("fail", "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key) VALUES ({U}, 'virustotal', 'ip', 'data.attributes.reputation', 'dup')"),
    ("fail", "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type) VALUES ({U}, 'virustotal', 'ip', 'x', 'x', 'decimal')"),
    # jobs: dedupe only among live jobs
    ("ok", "INSERT INTO jobs (uuid, queue, task, payload, run_at, dedupe_key) VALUES ({U}, 'enrichment', 'enrich_alert', '{\"alert_id\": 1}', %s, 'enrich:1')" % T1),
    ("eq", "SELECT status || '/' || attempts || '/' || max_attempts || '/' || backoff_seconds FROM jobs", "todo/0/3/60"),
    ("fail", "INSERT INTO jobs (uuid, queue, task, payload, run_at, dedupe_key) VALUES ({U}, 'enrichment', 'enrich_alert', '{\"alert_id\": 1}', %s, 'enrich:1')" % T1),
    ("ok", "INSERT INTO jobs (uuid, queue, task, payload, run_at, dedupe_key) VALUES ({U}, 'enrichment', 'enrich_alert', '{\"alert_id\": 1}', %s, 'enrich:1') ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('todo', 'doing') DO NOTHING" % T1),
    ("eq", "SELECT count(*) FROM jobs", "1"),
    ("ok", "UPDATE jobs SET status = 'succeeded', finished_at = %s WHERE dedupe_key = 'enrich:1'" % T2),
    ("ok", "INSERT INTO jobs (uuid, queue, task, payload, run_at, dedupe_key) VALUES ({U}, 'enrichment', 'enrich_alert', '{\"alert_id\": 1}', %s, 'enrich:1')" % T2),
    ("ok", "INSERT INTO jobs (uuid, queue, task, payload, run_at) VALUES ({U}, 'dispatch', 'dispatch_agent_webhooks', '{\"alert_id\": 1}', %s)" % T2),
    ("ok", "INSERT INTO jobs (uuid, queue, task, payload, run_at) VALUES ({U}, 'dispatch', 'dispatch_agent_webhooks', '{\"alert_id\": 1}', %s)" % T2),
    ("eq", "SELECT count(*) FROM jobs WHERE status = 'todo'", "3"),
    ("fail", "INSERT INTO jobs (uuid, queue, task, payload, run_at) VALUES ({U}, 'q', 't', '[]', %s)" % T1),
    ("fail", "UPDATE jobs SET status = 'running'"),
    # audit_log: append-only
    ("ok", "INSERT INTO audit_log (uuid, occurred_at, actor_type, action, outcome, prev_hash, hash) VALUES ({U}, %s, 'api_key', 'auth_failure', 'denied', '0000', 'aaaa')" % T1),
    ("eq", "SELECT details FROM audit_log", "{}"),
    ("fail", "INSERT INTO audit_log (uuid, occurred_at, actor_type, action, outcome, prev_hash, hash) VALUES ({U}, %s, 'api_key', 'x', 'ok', 'aaaa', 'aaaa')" % T1),
    ("fail", "UPDATE audit_log SET outcome = 'allowed'"),
    ("ok", "INSERT INTO webhook_replay (source_name, event_id, seen_at, alert_uuid) VALUES ('sentinel', 'e1', %s, {U})" % T1),
    ("fail", "INSERT INTO webhook_replay (source_name, event_id, seen_at) VALUES ('sentinel', 'e1', %s)" % T2),
    ("ok", "INSERT INTO webhook_replay (source_name, event_id, seen_at) VALUES ('elastic', 'e1', %s)" % T2),
    ("ok", "INSERT INTO idempotency_keys (api_key_uuid, idempotency_key, request_hash, response_status, response_body) VALUES ((SELECT uuid FROM api_keys WHERE name = 'k1'), 'idem-1', 'rh', 202, '{}')"),
    ("fail", "INSERT INTO idempotency_keys (api_key_uuid, idempotency_key, request_hash, response_status, response_body) VALUES ((SELECT uuid FROM api_keys WHERE name = 'k1'), 'idem-1', 'rh2', 202, '{}')"),
    # delete semantics
    ("ok", "DELETE FROM workflow_runs"),
    ("eq", "SELECT count(*) FROM workflow_approval_requests WHERE workflow_run_id IS NULL", "1"),
    ("ok", "DELETE FROM detection_rules WHERE name = 'r1'"),
    ("eq", "SELECT count(*) FROM alerts WHERE title = 'a1' AND detection_rule_id IS NULL", "1"),
    ("eq", "SELECT count(*) FROM activity_events WHERE detection_rule_id IS NULL AND alert_id IS NOT NULL", "1"),
    ("ok", "DELETE FROM alerts WHERE title = 'a1'"),
    ("eq", "SELECT (SELECT count(*) FROM alert_indicators) || '/' || (SELECT count(*) FROM agent_runs) || '/' || (SELECT count(*) FROM indicators) || '/' || (SELECT count(*) FROM activity_events WHERE alert_id IS NULL)", "0/0/1/1"),
    ("ok", "DELETE FROM workflows WHERE name = 'w1'"),
    ("eq", "SELECT (SELECT count(*) FROM workflow_approval_requests) || '/' || (SELECT count(*) FROM workflow_code_versions) || '/' || (SELECT count(*) FROM activity_events WHERE workflow_id IS NULL)", "0/0/1"),
    ("ok", "INSERT INTO alerts (uuid, title, source_name, occurred_at, ingested_at) VALUES ({U}, 'a2', 'elastic', %s, %s)" % (T1, T1)),
    ("ok", "INSERT INTO agent_runs (uuid, agent_registration_id, alert_id, status) VALUES ({U}, (SELECT id FROM agent_registrations WHERE name = 'ag'), (SELECT id FROM alerts WHERE title = 'a2'), 'timeout')"),
    ("ok", "DELETE FROM agent_registrations WHERE name = 'ag'"),
    ("eq", "SELECT count(*) FROM agent_runs", "0"),
    ("ok", "DELETE FROM audit_log"),
]

VERBOSE = os.environ.get("VERBOSE") == "1"
UUID = {"pg": "gen_random_uuid()", "sqlite": "randomblob(16)"}
for i, step in enumerate(STEPS, 1):
    kind, sql = step[0], step[1]
    for backend, run in (("pg", pg), ("sqlite", sq)):
        stmt = sql.replace("{U}", UUID[backend])
        ok, out, err = run(stmt)
        want_fail = kind == "fail" or (kind == "fail_sqlite" and backend == "sqlite")
        if want_fail and ok:
            failures.append("[%s] step %d should have FAILED but succeeded: %s" % (backend, i, stmt))
        elif not want_fail and not ok:
            failures.append("[%s] step %d failed: %s\n    %s" % (backend, i, stmt, err))
        elif kind == "eq" and out != step[2]:
            failures.append("[%s] step %d: expected %r, got %r: %s" % (backend, i, step[2], out, stmt))
        if want_fail and not ok and VERBOSE:
            print("   [%s] step %d failed as expected: %s" % (backend, i, err.splitlines()[0]))
        if kind == "fail_sqlite" and backend == "pg" and ok:
            pg("DELETE FROM alerts WHERE title = 'text-uuid'")

print("   smoke steps: %d x 2 backends" % len(STEPS))
if failures:
    print("\nFAILED:", file=sys.stderr)
    for f in failures:
        print("  - " + f, file=sys.stderr)
    sys.exit(1)
print("   ok")
PY

echo "ALL CHECKS PASSED"
