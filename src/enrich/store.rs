//! SQL that spans the enrichment tables: the change stamp the registry polls, the seed of the
//! builtin providers and their system extractions, and the indicators' results written by the
//! pipeline. Each table's own reads and writes live with its resource (`providers::store`,
//! `extractions::store`).

use serde_json::Value;
use uuid::Uuid;

use crate::db::{Db, Json, Tx, now};
use crate::{with_db, with_tx};

/// A fingerprint of both tables: every row's id and `updated_at` (every write sets it), hashed.
/// It changes whenever a row is inserted, updated or deleted, whatever the writers' clocks, so a
/// process can tell whether its registry is stale without reloading and re-parsing everything.
/// The tables hold tens to a few hundred rows; the text forms keep one statement for both backends.
pub async fn change_stamp(db: &Db) -> sqlx::Result<String> {
    use sha2::{Digest, Sha256};
    const SQL: &str = "SELECT 'p' || CAST(id AS TEXT) || '@' || CAST(updated_at AS TEXT) FROM enrichment_providers \
                       UNION ALL SELECT 'e' || CAST(id AS TEXT) || '@' || CAST(updated_at AS TEXT) FROM enrichment_field_extractions";
    let mut rows: Vec<String> = with_db!(db, p => sqlx::query_scalar::<_, String>(SQL).fetch_all(p).await)?;
    rows.sort_unstable();
    let mut hasher = Sha256::new();
    for row in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

// ---------------------------------------------------------------------------------------------
// Builtin seeding
// ---------------------------------------------------------------------------------------------

/// The parts of a builtin row the seed owns: http_config, mock_responses, env_var_mapping, types.
type SeededParts = (Json<Value>, Option<Json<Value>>, Option<Json<Value>>, Json<Vec<String>>);

/// Seeds the builtin providers and their system field extractions, in one transaction and
/// idempotently. A missing builtin is inserted; an existing one gets the shipped `http_config`,
/// `mock_responses`, `env_var_mapping` and `supported_indicator_types` (the parts operators cannot
/// edit) only when they differ, so `updated_at` — and every registry — is untouched on a plain
/// restart. Operator-editable fields (is_active, auth_config, malice rules, TTLs, description)
/// are never overwritten. System extractions are inserted when their (provider, type, path) is
/// absent; existing rows (maybe deactivated by an operator) are left alone.
pub async fn seed_builtins(db: &Db) -> sqlx::Result<(usize, usize)> {
    let mut tx = db.begin().await?;
    let at = now();
    let mut providers_written = 0;
    for builtin in super::builtins::providers() {
        let existing: Option<SeededParts> = with_tx!(&mut tx, c =>
            sqlx::query_as("SELECT http_config, mock_responses, env_var_mapping, supported_indicator_types FROM enrichment_providers WHERE provider_name = $1")
                .bind(&builtin.provider_name).fetch_optional(c).await)?;
        let types = &builtin.supported_indicator_types;
        match existing {
            None => {
                with_tx!(&mut tx, c => sqlx::query(
                    "INSERT INTO enrichment_providers (uuid, provider_name, display_name, description, is_builtin, is_active, \
                     supported_indicator_types, http_config, auth_type, auth_config, env_var_mapping, default_cache_ttl_seconds, \
                     cache_ttl_by_type, malice_rules, mock_responses, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, TRUE, TRUE, $5, $6, $7, NULL, $8, $9, $10, $11, $12, $13, $13)")
                    .bind(Uuid::new_v4()).bind(&builtin.provider_name).bind(&builtin.display_name).bind(&builtin.description)
                    .bind(Json(types)).bind(Json(&builtin.http_config)).bind(&builtin.auth_type).bind(Json(&builtin.env_var_mapping))
                    .bind(builtin.default_cache_ttl_seconds).bind(Json(&builtin.cache_ttl_by_type)).bind(Json(&builtin.malice_rules))
                    .bind(Json(&builtin.mock_responses)).bind(at)
                    .execute(c).await.map(|_| ()))?;
                providers_written += 1;
            }
            Some((http_config, mock, env, stored_types)) => {
                let same = http_config.0 == builtin.http_config
                    && mock.map(|m| m.0) == Some(builtin.mock_responses.clone())
                    && env.map(|e| e.0) == Some(builtin.env_var_mapping.clone())
                    && &stored_types.0 == types;
                if !same {
                    with_tx!(&mut tx, c => sqlx::query(
                        "UPDATE enrichment_providers SET http_config = $2, mock_responses = $3, env_var_mapping = $4, \
                         supported_indicator_types = $5, is_builtin = TRUE, updated_at = $6 WHERE provider_name = $1")
                        .bind(&builtin.provider_name).bind(Json(&builtin.http_config)).bind(Json(&builtin.mock_responses))
                        .bind(Json(&builtin.env_var_mapping)).bind(Json(types)).bind(at)
                        .execute(c).await.map(|_| ()))?;
                    providers_written += 1;
                }
            }
        }
    }
    let mut extractions_written = 0;
    for extraction in super::builtins::extractions() {
        let inserted = with_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO enrichment_field_extractions (uuid, provider_name, indicator_type, source_path, target_key, value_type, \
             is_system, is_active, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, TRUE, $7, $8, $8) \
             ON CONFLICT (provider_name, indicator_type, source_path) DO NOTHING")
            .bind(Uuid::new_v4()).bind(&extraction.provider_name).bind(&extraction.indicator_type).bind(&extraction.source_path)
            .bind(&extraction.target_key).bind(&extraction.value_type).bind(&extraction.description).bind(at)
            .execute(c).await.map(|r| r.rows_affected()))?;
        extractions_written += inserted as usize;
    }
    tx.commit().await?;
    Ok((providers_written, extractions_written))
}

// ---------------------------------------------------------------------------------------------
// Indicator results (written by the pipeline)
// ---------------------------------------------------------------------------------------------

/// Rows per SQLite statement (3 bound values each; SQLite allows 32,766).
const SQLITE_ROWS_PER_STATEMENT: usize = 1000;

/// Merges each indicator's new results over its stored ones (shallow, by provider key), sets
/// `is_enriched`, and sets `malice` unless an analyst owns the verdict, in the caller's
/// transaction. Verdicts for one indicator are merged here first, in order (the later wins per
/// provider and for malice), so each row is written once.
///
/// PostgreSQL: the rows are locked in ascending id order first — concurrent batches sharing
/// indicators then wait for each other instead of deadlocking — and written by one set-based
/// `UPDATE … FROM UNNEST` that merges with `||` in the database: two round trips for a batch,
/// where a read and a write per indicator made the recording transaction the pipeline's tail.
/// SQLite (the transaction holds the write lock): one read of the stored results, a merge here,
/// one `UPDATE … FROM (VALUES …)` per chunk.
pub async fn record_indicator_results(tx: &mut Tx, verdicts: &[(i64, &super::IndicatorOutcome)]) -> sqlx::Result<()> {
    use super::enricher::ProviderResults;
    let mut merged: std::collections::BTreeMap<i64, (ProviderResults, &str)> = std::collections::BTreeMap::new();
    for (id, outcome) in verdicts {
        let entry = merged.entry(*id).or_insert_with(|| (ProviderResults::new(), outcome.malice.as_str()));
        entry.0.extend(outcome.results.iter().map(|(k, v)| (k.clone(), v.clone())));
        entry.1 = outcome.malice.as_str();
    }
    if merged.is_empty() {
        return Ok(());
    }
    let at = now();
    match tx {
        Tx::Postgres(c) => {
            let ids: Vec<i64> = merged.keys().copied().collect();
            sqlx::query("SELECT id FROM indicators WHERE id = ANY($1) ORDER BY id FOR UPDATE").bind(&ids).execute(&mut **c).await?;
            let results: Vec<Json<&ProviderResults>> = merged.values().map(|(r, _)| Json(r)).collect();
            let malice: Vec<&str> = merged.values().map(|(_, m)| *m).collect();
            sqlx::query(
                "UPDATE indicators AS i SET enrichment_results = COALESCE(i.enrichment_results, '{}'::jsonb) || v.results, \
                 is_enriched = TRUE, malice = CASE WHEN i.malice_source = 'analyst' THEN i.malice ELSE v.malice END, updated_at = $4 \
                 FROM UNNEST($1::bigint[], $2::jsonb[], $3::text[]) AS v(id, results, malice) WHERE i.id = v.id",
            )
            .bind(&ids)
            .bind(&results)
            .bind(&malice)
            .bind(at)
            .execute(&mut **c)
            .await?;
        }
        Tx::Sqlite(c) => {
            // One read and one write per chunk: sqlx runs each SQLite statement on the
            // connection's own thread, so a statement costs two thread hand-offs; a read and a
            // write per indicator made this the worker's largest cost (~500 statements a batch).
            let ids: Vec<i64> = merged.keys().copied().collect();
            for chunk in ids.chunks(SQLITE_ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT id, enrichment_results FROM indicators WHERE id IN ({})",
                    crate::db::placeholders(1, chunk.len())
                );
                let mut read = sqlx::query_as::<_, (i64, Option<String>)>(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    read = read.bind(*id);
                }
                let stored = read.fetch_all(&mut **c).await?;
                let updates: Vec<(i64, ProviderResults, &str)> = stored
                    .into_iter()
                    .filter_map(|(id, text)| {
                        let (fresh, malice) = merged.remove(&id)?;
                        // Anything but a JSON object stored there is replaced.
                        let mut row: ProviderResults = text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
                        row.extend(fresh);
                        Some((id, row, malice))
                    })
                    .collect();
                if updates.is_empty() {
                    continue;
                }
                // $1 = updated_at, then (id, results, malice) per row.
                let rows: Vec<String> =
                    (0..updates.len()).map(|i| format!("(${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4)).collect();
                let sql = format!(
                    "UPDATE indicators SET enrichment_results = v.column2, is_enriched = TRUE, \
                     malice = CASE WHEN indicators.malice_source = 'analyst' THEN indicators.malice ELSE v.column3 END, updated_at = $1 \
                     FROM (VALUES {}) AS v WHERE indicators.id = v.column1",
                    rows.join(", ")
                );
                let mut write = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
                for (id, results, malice) in updates {
                    write = write.bind(id).bind(Json(results)).bind(malice);
                }
                write.execute(&mut **c).await?;
            }
        }
    }
    Ok(())
}
