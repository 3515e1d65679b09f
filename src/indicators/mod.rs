//! Indicators of compromise: global entities unique on `(type, value)`, linked to alerts. The
//! API shows them in two forms: `IndicatorResponse` (provider `raw` responses removed; used in
//! alert views) and the detail form of `GET /v1/indicators/{uuid}` (everything).

pub mod http;
pub mod service;
pub mod store;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Malice;
use crate::enrich::truthy;
use store::IndicatorRow;

/// Severity order of a malice string: Malicious > Suspicious > Benign > Pending; any other
/// string ranks below all of them.
pub fn malice_rank(malice: &str) -> i8 {
    malice.parse::<Malice>().map_or(-1, |verdict| verdict as i8)
}

/// The worst of `verdicts` by [`malice_rank`]; `None` when there are none.
pub fn worst_malice<'a>(verdicts: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    verdicts.into_iter().max_by_key(|m| malice_rank(m))
}

/// The malice enrichment alone would give: the worst of each provider's `extracted.verdict`
/// (or, when that is absent or empty, `extracted.malice`), counting only the four valid
/// verdicts; `Pending` when no provider gives one. Used when an analyst override is removed.
pub fn malice_from_results(results: Option<&Value>) -> Malice {
    let Some(Value::Object(providers)) = results else { return Malice::Pending };
    let verdicts = providers.values().filter_map(|entry| {
        let extracted = entry.get("extracted")?;
        let verdict = [extracted.get("verdict"), extracted.get("malice")].into_iter().flatten().find(|v| truthy(v))?;
        verdict.as_str()?.parse::<Malice>().ok()
    });
    // `Malice` orders from least to most severe.
    verdicts.max().unwrap_or(Malice::Pending)
}

/// `enrichment_results` with the `raw` key removed from every provider entry.
pub fn without_raw(results: Option<Value>) -> Option<Value> {
    results.map(|mut value| {
        if let Value::Object(providers) = &mut value {
            for entry in providers.values_mut() {
                if let Value::Object(fields) = entry {
                    fields.remove("raw");
                }
            }
        }
        value
    })
}

/// An indicator as the API returns it (EnrichedIndicator / IndicatorResponse /
/// IndicatorDetailResponse share these fields; only `enrichment_results` differs).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IndicatorResponse {
    pub uuid: Uuid,
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub malice: String,
    pub malice_source: String,
    pub malice_overridden_at: Option<DateTime<Utc>>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub is_enriched: bool,
    /// `{provider_name: result}`; provider `raw` responses only in the detail view.
    #[schema(value_type = Option<Object>)]
    pub enrichment_results: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl IndicatorResponse {
    fn build(row: IndicatorRow, enrichment_results: Option<Value>) -> Self {
        IndicatorResponse {
            uuid: row.uuid,
            indicator_type: row.indicator_type,
            value: row.value,
            malice: row.malice,
            malice_source: row.malice_source,
            malice_overridden_at: row.malice_overridden_at,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            is_enriched: row.is_enriched,
            enrichment_results,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    /// The alert-view form: provider `raw` responses removed.
    pub fn summary(row: IndicatorRow) -> Self {
        let results = without_raw(row.enrichment_results.as_ref().map(|j| j.0.clone()));
        Self::build(row, results)
    }

    /// The detail form (`GET /v1/indicators/{uuid}`): results as stored.
    pub fn detail(row: IndicatorRow) -> Self {
        let results = row.enrichment_results.as_ref().map(|j| j.0.clone());
        Self::build(row, results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranks_and_worst() {
        assert!(malice_rank("Malicious") > malice_rank("Suspicious"));
        assert!(malice_rank("Suspicious") > malice_rank("Benign"));
        assert!(malice_rank("Benign") > malice_rank("Pending"));
        assert!(malice_rank("Pending") > malice_rank("weird"));
        assert_eq!(worst_malice(["Benign", "weird", "Suspicious", "Pending"]), Some("Suspicious"));
        assert_eq!(worst_malice(["weird"]), Some("weird"));
        assert_eq!(worst_malice([]), None);
    }

    #[test]
    fn malice_recomputed_from_results() {
        assert_eq!(malice_from_results(None), Malice::Pending);
        assert_eq!(malice_from_results(Some(&json!({}))), Malice::Pending);
        let results = json!({
            "a": {"extracted": {"verdict": "Benign", "malice": "Malicious"}},
            "b": {"extracted": {"verdict": "", "malice": "Suspicious"}},
            "c": {"extracted": {"malice": "evil"}},
            "d": {"extracted": null},
            "e": "not an object",
        });
        // a's verdict wins over its malice; b falls back to malice; c's string is not a verdict.
        assert_eq!(malice_from_results(Some(&results)), Malice::Suspicious);
        assert_eq!(malice_from_results(Some(&json!({"x": {"extracted": {"verdict": "Malicious"}}}))), Malice::Malicious);
    }

    #[test]
    fn raw_is_removed_from_every_entry() {
        let results = json!({"vt": {"success": true, "raw": {"big": 1}, "extracted": {}}, "odd": 5});
        assert_eq!(without_raw(Some(results)), Some(json!({"vt": {"success": true, "extracted": {}}, "odd": 5})));
        assert_eq!(without_raw(None), None);
    }
}
