//! What the field-extraction operations take and return.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::query::lenient_bool;

/// One field extraction, as stored and as returned (its internal id is neither read nor sent).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Extraction {
    pub uuid: Uuid,
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    pub value_type: String,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExtractionListQuery {
    #[serde(default)]
    pub provider_name: Option<String>,
    #[serde(default)]
    pub indicator_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_system: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractionCreate {
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    #[serde(default = "default_value_type")]
    pub value_type: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_value_type() -> String {
    "string".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractionBulkCreate {
    pub extractions: Vec<ExtractionCreate>,
}

/// `null` leaves a field unchanged; system extractions accept `is_active` only.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractionUpdate {
    pub source_path: Option<String>,
    pub target_key: Option<String>,
    pub value_type: Option<String>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
}

impl ExtractionUpdate {
    /// Names of the fields this PATCH sets (non-null).
    pub fn present(&self) -> Vec<&'static str> {
        [
            (self.source_path.is_some(), "source_path"),
            (self.target_key.is_some(), "target_key"),
            (self.value_type.is_some(), "value_type"),
            (self.is_active.is_some(), "is_active"),
            (self.description.is_some(), "description"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    /// Whether it changes more than `is_active` (refused on system extractions).
    pub fn changes_definition(&self) -> bool {
        self.present().iter().any(|f| *f != "is_active")
    }
}
