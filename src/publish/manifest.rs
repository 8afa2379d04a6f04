//! `_manifest.json`: what a build published. Readers that know no table
//! format read the files listed here and nothing else.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::Schema;
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "_manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub build_id: String,
    pub project: String,
    pub as_of: String,
    pub catalog_hash: String,
    pub started_at: String,
    pub finished_at: String,
    /// First and last month reported.
    pub range: RangeEntry,
    pub tables: BTreeMap<String, TableEntry>,
    /// The intermediate models computed on the way, with their rows and
    /// seconds: where a slow build spends its time.
    #[serde(default)]
    pub models: BTreeMap<String, StepEntry>,
    /// Optional source tables that were absent, by name.
    #[serde(default)]
    pub absent_sources: Vec<String>,
    /// What was left out because an input table was absent.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
}

/// A table left out (`columns` empty), or its columns published as nulls,
/// because it needs absent input tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SkippedEntry {
    pub table: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RangeEntry {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub rows: u64,
    pub schema: Vec<ColumnEntry>,
    /// Paths relative to the target.
    pub files: Vec<String>,
    pub seconds: f64,
}

/// Rows and seconds of a step that is not published (a model).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepEntry {
    pub rows: u64,
    pub seconds: f64,
    /// A score computed in slices of its entities, one query each
    /// (`execute::entity_slices`): how many. Absent: one query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slices: Option<usize>,
}

impl StepEntry {
    pub fn new(rows: u64, seconds: f64) -> StepEntry {
        StepEntry {
            rows,
            seconds: StepEntry::round(seconds),
            slices: None,
        }
    }

    /// This step with the number of its slices, if it had more than one.
    pub fn in_slices(self, slices: usize) -> StepEntry {
        StepEntry {
            slices: (slices > 1).then_some(slices),
            ..self
        }
    }

    /// Milliseconds are enough, and keep the manifest readable.
    pub fn round(seconds: f64) -> f64 {
        (seconds * 1000.0).round() / 1000.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

impl ColumnEntry {
    pub fn of(schema: &Schema) -> Vec<ColumnEntry> {
        schema
            .fields()
            .iter()
            .map(|f| ColumnEntry {
                name: f.name().clone(),
                data_type: sql_type(f.data_type()),
                nullable: f.is_nullable(),
            })
            .collect()
    }
}

/// The SQL name of an output type, as BI tools know it.
fn sql_type(t: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR".into(),
        Int64 => "BIGINT".into(),
        Int32 => "INTEGER".into(),
        Float64 => "DOUBLE".into(),
        Boolean => "BOOLEAN".into(),
        Date32 => "DATE".into(),
        Timestamp(_, _) => "TIMESTAMP".into(),
        other => other.to_string(),
    }
}
