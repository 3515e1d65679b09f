//! Field-extraction operations (enrichment.md §8): list, get, create (one or a bulk of up to
//! 100, all or nothing), update, delete. System extractions (the builtins') may only be
//! activated or deactivated. Reads need `enrichments:read`, writes `admin`; each write runs in
//! one transaction with its audit record, then refreshes this process's registry.

use http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::model::{Extraction, ExtractionBulkCreate, ExtractionCreate, ExtractionListQuery, ExtractionUpdate};
use super::store::{self, ExtractionFilter, ExtractionPatch, NewExtraction};
use crate::audit::{self, Outcome, Record};
use crate::db::Tx;
use crate::enrich::config::VALUE_TYPES;
use crate::enrich::providers::store::provider_exists;
use crate::enrich::validate::{self, field};
use crate::enrich::dotpath;
use crate::error::{Error, FieldErrors, Result};
use crate::operation;
use crate::pagination::{Page, Pagination};
use crate::service::{Operation, Principal};
use crate::state::AppState;

operation!(ListExtractions = "enrichment_field_extractions.list", scopes ["enrichments:read"]);
operation!(GetExtraction = "enrichment_field_extractions.get", scopes ["enrichments:read"]);
operation!(CreateExtraction = "enrichment_field_extractions.create", scopes ["admin"]);
operation!(CreateExtractions = "enrichment_field_extractions.bulk_create", scopes ["admin"]);
operation!(UpdateExtraction = "enrichment_field_extractions.update", scopes ["admin"]);
operation!(DeleteExtraction = "enrichment_field_extractions.delete", scopes ["admin"]);

const NOT_FOUND: &str = "Enrichment field extraction";
const TARGET: &str = "enrichment_field_extraction";
const MAX_BULK: usize = 100;
const MAX_NAME_CHARS: usize = 100;

fn not_found() -> Error {
    Error::not_found(NOT_FOUND)
}

fn system_restricted() -> Error {
    Error::Denied { code: "SYSTEM_EXTRACTION_RESTRICTED", message: "System field extractions may only be activated or deactivated.".into() }
}

/// A unique violation on (provider, type, path) is the client's duplicate: 409, never a 500.
fn duplicate(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::client(
            StatusCode::CONFLICT,
            "DUPLICATE_EXTRACTION",
            "An extraction with the same provider_name, indicator_type and source_path already exists.",
        ),
        other => other.into(),
    }
}

/// Checks of the fields an extraction defines; `prefix` locates it inside a bulk body.
fn check_definition(
    errors: &mut FieldErrors,
    prefix: &str,
    source_path: Option<&str>,
    target_key: Option<&str>,
    value_type: Option<&str>,
    description: Option<&str>,
) {
    if let Some(path) = source_path
        && let Err(reason) = dotpath::validate(path)
    {
        errors.push(field(&format!("{prefix}source_path"), "value_error", format!("Invalid source_path: {reason}")));
    }
    if let Some(key) = target_key {
        validate::text_length(errors, &format!("{prefix}target_key"), key, MAX_NAME_CHARS);
    }
    if let Some(value_type) = value_type
        && !VALUE_TYPES.contains(&value_type)
    {
        let message = format!("Invalid value_type '{value_type}'. Allowed: {}", VALUE_TYPES.join(", "));
        errors.push(field(&format!("{prefix}value_type"), "enum", message));
    }
    validate::description(errors, &format!("{prefix}description"), description);
}

fn check_create(errors: &mut FieldErrors, prefix: &str, body: &ExtractionCreate) {
    if body.provider_name.is_empty() || body.provider_name.chars().count() > MAX_NAME_CHARS {
        errors.push(field(&format!("{prefix}provider_name"), "string_length", "provider_name must be 1 to 100 characters"));
    }
    validate::indicator_type(errors, &format!("{prefix}indicator_type"), &body.indicator_type);
    let description = body.description.as_deref();
    check_definition(errors, prefix, Some(&body.source_path), Some(&body.target_key), Some(&body.value_type), description);
}

/// Extractions in creation order, one page.
pub async fn list(state: &AppState, who: &Principal, pagination: Pagination, query: ExtractionListQuery) -> Result<Page<Extraction>> {
    who.authorize::<ListExtractions>()?;
    let pagination = pagination.validate()?;
    let filter = ExtractionFilter {
        provider_name: query.provider_name,
        indicator_type: query.indicator_type,
        is_system: query.is_system,
        is_active: query.is_active,
    };
    let (rows, total) = store::list_extractions(&state.db, filter, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows, total, pagination))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Extraction> {
    who.authorize::<GetExtraction>()?;
    store::find_extraction(&state.db, uuid).await?.ok_or_else(not_found)
}

pub async fn create(state: &AppState, who: &Principal, body: ExtractionCreate) -> Result<Extraction> {
    who.authorize::<CreateExtraction>()?;
    let mut errors = FieldErrors::default();
    check_create(&mut errors, "", &body);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let row = insert_all(&mut tx, std::slice::from_ref(&body)).await?.remove(0);
    let details = json!({
        "provider_name": row.provider_name,
        "indicator_type": row.indicator_type,
        "source_path": row.source_path,
        "target_key": row.target_key,
    });
    audit::record(&mut tx, who, Record::success(CreateExtraction::NAME, TARGET, row.uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(row)
}

/// Creates every extraction or none (a duplicate anywhere is a 409 and leaves nothing behind).
pub async fn create_bulk(state: &AppState, who: &Principal, body: ExtractionBulkCreate) -> Result<Vec<Extraction>> {
    who.authorize::<CreateExtractions>()?;
    let mut errors = FieldErrors::default();
    if body.extractions.is_empty() || body.extractions.len() > MAX_BULK {
        errors.push(field("extractions", "length", format!("extractions must hold 1 to {MAX_BULK} items")));
    }
    for (i, extraction) in body.extractions.iter().enumerate() {
        check_create(&mut errors, &format!("extractions.{i}."), extraction);
    }
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let rows = insert_all(&mut tx, &body.extractions).await?;
    let uuids: Vec<Uuid> = rows.iter().map(|r| r.uuid).collect();
    let record = Record {
        action: CreateExtractions::NAME,
        target_type: TARGET,
        target_id: None,
        outcome: Outcome::Success,
        details: json!({ "count": rows.len(), "uuids": uuids }),
    };
    audit::record(&mut tx, who, record).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(rows)
}

async fn insert_all(tx: &mut Tx, bodies: &[ExtractionCreate]) -> Result<Vec<Extraction>> {
    for body in bodies {
        if !provider_exists(tx, &body.provider_name).await? {
            return Err(Error::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PROVIDER_NOT_FOUND",
                format!("Enrichment provider '{}' does not exist.", body.provider_name),
            ));
        }
    }
    let mut created = Vec::with_capacity(bodies.len());
    for body in bodies {
        let new = NewExtraction {
            provider_name: &body.provider_name,
            indicator_type: &body.indicator_type,
            source_path: &body.source_path,
            target_key: &body.target_key,
            value_type: &body.value_type,
            description: body.description.as_deref(),
            is_system: false,
        };
        created.push(store::insert_extraction(tx, &new).await.map_err(duplicate)?);
    }
    Ok(created)
}

pub async fn update(state: &AppState, who: &Principal, uuid: Uuid, body: ExtractionUpdate) -> Result<Extraction> {
    who.authorize::<UpdateExtraction>()?;
    let mut errors = FieldErrors::default();
    let (path, key, value_type) = (body.source_path.as_deref(), body.target_key.as_deref(), body.value_type.as_deref());
    check_definition(&mut errors, "", path, key, value_type, body.description.as_deref());
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let existing = store::find_extraction_for_update(&mut tx, uuid).await?.ok_or_else(not_found)?;
    if existing.is_system && body.changes_definition() {
        return Err(system_restricted());
    }
    let patch = ExtractionPatch {
        source_path: body.source_path.as_deref(),
        target_key: body.target_key.as_deref(),
        value_type: body.value_type.as_deref(),
        is_active: body.is_active,
        description: body.description.as_deref(),
    };
    // A duplicate triple after the change is a 409 (Calseta answered 500).
    let row = store::update_extraction(&mut tx, uuid, patch).await.map_err(duplicate)?.ok_or_else(not_found)?;
    let details = json!({ "provider_name": row.provider_name, "fields": body.present() });
    audit::record(&mut tx, who, Record::success(UpdateExtraction::NAME, TARGET, row.uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(row)
}

pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteExtraction>()?;
    let mut tx = state.db.begin().await?;
    let existing = store::find_extraction_for_update(&mut tx, uuid).await?.ok_or_else(not_found)?;
    if existing.is_system {
        return Err(system_restricted());
    }
    if !store::delete_extraction(&mut tx, uuid).await? {
        return Err(not_found());
    }
    let details = json!({ "provider_name": existing.provider_name, "indicator_type": existing.indicator_type, "source_path": existing.source_path });
    audit::record(&mut tx, who, Record::success(DeleteExtraction::NAME, TARGET, uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(())
}
