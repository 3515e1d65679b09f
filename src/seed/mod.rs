//! Demo data: `calseta seed-demo-data`, `calseta seed-sandbox` and sandbox mode
//! (`SANDBOX_MODE=true`, agents-mcp-metrics.md §7–8).
//!
//! Everything is written through the services that own it: detection rules and context documents
//! through their create operations (so the fixtures pass the same validation as an API call), the
//! demo alerts through the normal ingest service (normalize, extract, fingerprint, dedup, enqueue
//! `enrich_alert`). Each step skips what already exists, so seeding twice changes nothing:
//! rules by `(source_name, source_rule_id)`, documents by title, alerts by `(source, title)`, the
//! demo workflow by name and the demo keys by key.
//!
//! The sandbox marks its rules, documents, workflow and keys `is_system`, which is what its reset
//! (`reset.rs`, a periodic job) keeps while it deletes everything else users created.

mod reset;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::activity::Actor;
use crate::auth::Principal;
use crate::context::service::ContextDocumentCreate;
use crate::error::{Error, Result};
use crate::ingest::service::{IngestOptions, Provenance, ingest_with};
use crate::rules::service::DetectionRuleCreate;
use crate::state::AppState;

pub use reset::{SandboxReset, reset_sandbox};

/// The read-only demo key (agents-mcp-metrics.md §8). Public on purpose: sandbox mode is refused
/// in production.
pub const SANDBOX_READ_ONLY_KEY: &str = "cai_sandbox_demo_key_not_for_production";
/// The full-access demo key.
pub const SANDBOX_FULL_ACCESS_KEY: &str = "cai_lab_demo_full_access_key_not_for_prod";

/// The demo keys: (name, key, scopes).
pub const DEMO_KEYS: [(&str, &str, &[&str]); 2] = [
    (
        "Sandbox Demo Key (read-only)",
        SANDBOX_READ_ONLY_KEY,
        &["alerts:read", "enrichments:read", "workflows:read", "agents:read"],
    ),
    (
        "Lab Demo Key (full access)",
        SANDBOX_FULL_ACCESS_KEY,
        &[
            "alerts:read",
            "alerts:write",
            "enrichments:read",
            "workflows:read",
            "workflows:execute",
            "approvals:write",
            "agents:read",
            "agents:write",
            "admin",
        ],
    ),
];

/// The sandbox's demo workflow: safe to run anywhere (it calls no identity provider), and gated
/// by an approval so the tour shows the approval step.
pub const DEMO_WORKFLOW_NAME: &str = "Sandbox — Flag Account for Review";

const DETECTION_RULES: &str = include_str!("fixtures/detection_rules.json");
const CONTEXT_DOCUMENTS: &str = include_str!("fixtures/context_documents.json");
const ALERTS: &str = include_str!("fixtures/alerts.json");
const DEMO_WORKFLOW_CODE: &str = include_str!("fixtures/flag_account_for_review.py");
const DEMO_WORKFLOW_DOCUMENTATION: &str = "## Description\nSandbox demo: records that an account was flagged for analyst review. \
It calls no identity provider, so it is safe to run in the sandbox.\n\n## When to Use\nTo try the approval gate: every run waits for a human decision.\n\n\
## Expected Outcome\nThe run succeeds with the account and its verdict in its result.";

/// What to seed.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    /// Ingest the demo alerts (`--skip-alerts` turns it off).
    pub alerts: bool,
    /// Enqueue their enrichment (`--skip-enrichment` turns it off: they stay `Pending`).
    pub enrich: bool,
    /// Sandbox data: rules and documents marked `is_system`, plus the demo workflow and keys.
    pub sandbox: bool,
}

/// What seeding did, counted per kind of row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub rules_created: usize,
    pub rules_skipped: usize,
    pub documents_created: usize,
    pub documents_skipped: usize,
    pub alerts_ingested: usize,
    pub alerts_skipped: usize,
    pub enrichment_queued: usize,
    pub workflows_created: usize,
    pub keys_created: usize,
}

#[derive(Deserialize)]
struct DemoAlert {
    source_name: String,
    payload: Map<String, Value>,
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Internal(anyhow::anyhow!("demo fixture {name} is malformed: {e}")))
}

/// Seeds the demo data; `progress` receives one line per step (the CLI prints them).
pub async fn seed(state: &AppState, options: SeedOptions, progress: &(dyn Fn(&str) + Sync)) -> Result<SeedReport> {
    let mut report = SeedReport::default();
    let who = Principal::System;

    let rules: Vec<DetectionRuleCreate> = fixture("detection_rules.json", DETECTION_RULES)?;
    for rule in rules {
        let (source, rule_id) = (rule.source_name.clone().unwrap_or_default(), rule.source_rule_id.clone().unwrap_or_default());
        if crate::rules::store::exists_for_source_rule(&state.db, &source, &rule_id).await? {
            report.rules_skipped += 1;
            progress(&format!("detection rule '{}': exists, skipped", rule.name));
            continue;
        }
        let created = crate::rules::service::create(state, &who, rule).await?;
        if options.sandbox {
            crate::rules::store::mark_system(&state.db, created.uuid).await?;
        }
        report.rules_created += 1;
        progress(&format!("detection rule '{}': created", created.name));
    }

    let documents: Vec<ContextDocumentCreate> = fixture("context_documents.json", CONTEXT_DOCUMENTS)?;
    for document in documents {
        if crate::context::store::exists_with_title(&state.db, &document.title).await? {
            report.documents_skipped += 1;
            progress(&format!("context document '{}': exists, skipped", document.title));
            continue;
        }
        let created = crate::context::service::create(state, &who, document).await?;
        if options.sandbox {
            crate::context::store::mark_system(&state.db, created.uuid).await?;
        }
        report.documents_created += 1;
        progress(&format!("context document '{}': created", created.title));
    }

    if options.sandbox {
        let workflow = crate::workflows::seed::SystemWorkflow {
            name: DEMO_WORKFLOW_NAME,
            code: DEMO_WORKFLOW_CODE,
            documentation: DEMO_WORKFLOW_DOCUMENTATION,
            indicator_types: &["account"],
            risk_level: "low",
            approval_mode: "always",
        };
        if crate::workflows::seed::seed_system_workflow(&state.db, &workflow).await? {
            report.workflows_created += 1;
            progress(&format!("workflow '{DEMO_WORKFLOW_NAME}': created"));
        } else {
            progress(&format!("workflow '{DEMO_WORKFLOW_NAME}': exists, skipped"));
        }
        for (name, key, scopes) in DEMO_KEYS {
            let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
            if crate::auth::service::ensure_system_key(&state.db, name, key, &scopes).await? {
                report.keys_created += 1;
                progress(&format!("API key '{name}' ({}): created", &key[..8]));
            } else {
                progress(&format!("API key '{name}' ({}): exists, skipped", &key[..8]));
            }
        }
    }

    if options.alerts {
        seed_alerts(state, options, &mut report, progress).await?;
    }
    Ok(report)
}

async fn seed_alerts(state: &AppState, options: SeedOptions, report: &mut SeedReport, progress: &(dyn Fn(&str) + Sync)) -> Result<()> {
    let alerts: Vec<DemoAlert> = fixture("alerts.json", ALERTS)?;
    let ingest_options = IngestOptions { enqueue_enrichment: options.enrich };
    for alert in alerts {
        let source = crate::ingest::sources::get(&alert.source_name)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("demo alert of unknown source {}", alert.source_name)))?;
        let title = source
            .normalize(&alert.payload)
            .map_err(|e| Error::Internal(anyhow::anyhow!("demo {} alert does not normalize: {e}", alert.source_name)))?
            .title;
        if crate::alerts::store::exists_with_title(&state.db, source.name(), &title).await? {
            report.alerts_skipped += 1;
            progress(&format!("{} alert '{title}': exists, skipped", source.name()));
            continue;
        }
        let response = ingest_with(state, source, alert.payload, &Actor::system(), Provenance::Seed, ingest_options).await?;
        if response.is_duplicate {
            report.alerts_skipped += 1;
            progress(&format!("{} alert '{title}': duplicate of {}, counted there", source.name(), response.alert_uuid));
            continue;
        }
        report.alerts_ingested += 1;
        if options.enrich {
            report.enrichment_queued += 1;
        }
        let fate = if options.enrich { "ingested, enrichment queued" } else { "ingested, not enriched (--skip-enrichment)" };
        progress(&format!("{} alert '{title}': {fate} ({})", source.name(), response.alert_uuid));
    }
    Ok(())
}

/// The sandbox seed (start-up in sandbox mode, `seed-sandbox`, and after every reset): system
/// rules, documents, the demo workflow and keys, and the demo alerts queued for enrichment.
pub async fn seed_sandbox(state: &AppState, progress: &(dyn Fn(&str) + Sync)) -> Result<SeedReport> {
    seed(state, SeedOptions { alerts: true, enrich: true, sandbox: true }, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures parse, every demo alert normalizes and links to a demo rule, and every rule
    /// has an alert: the tour's alerts all come with their rule's documentation.
    #[test]
    fn fixtures_fit_together() {
        let rules: Vec<DetectionRuleCreate> = fixture("detection_rules.json", DETECTION_RULES).unwrap();
        let documents: Vec<ContextDocumentCreate> = fixture("context_documents.json", CONTEXT_DOCUMENTS).unwrap();
        let alerts: Vec<DemoAlert> = fixture("alerts.json", ALERTS).unwrap();
        assert_eq!((rules.len(), documents.len(), alerts.len()), (5, 3, 5));
        let mut refs = Vec::new();
        for alert in &alerts {
            let source = crate::ingest::sources::get(&alert.source_name).unwrap();
            source.normalize(&alert.payload).unwrap();
            refs.push((source.name().to_owned(), source.detection_rule_ref(&alert.payload).unwrap()));
        }
        for rule in &rules {
            let key = (rule.source_name.clone().unwrap(), rule.source_rule_id.clone().unwrap());
            assert!(refs.contains(&key), "no demo alert for rule {key:?}");
        }
        for document in &documents {
            crate::context::targeting::validate(document.targeting_rules.as_ref().unwrap(), "targeting_rules").unwrap();
        }
        for (_, key, scopes) in DEMO_KEYS {
            assert!(key.starts_with(crate::auth::KEY_PREFIX));
            assert!(scopes.iter().all(|s| crate::auth::SCOPES.contains(s)));
        }
    }
}
