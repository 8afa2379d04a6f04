//! The catalog as written in `metrics.toml`: serde types that keep the span
//! of every value, so that later stages can point at the exact line.
//! Nothing here is validated beyond what TOML and serde check.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub project: RawProject,
    #[serde(default)]
    pub sources: BTreeMap<Name, RawSource>,
    #[serde(default)]
    pub dimensions: BTreeMap<Name, RawDimension>,
    #[serde(default)]
    pub models: BTreeMap<Name, RawModel>,
    #[serde(default)]
    pub metrics: BTreeMap<Name, RawMetric>,
    #[serde(default)]
    pub tables: BTreeMap<Name, RawTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Spanned<String>,
    /// `YYYY-MM-DD`, or absent / "today".
    pub as_of: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub reporting_currency: Option<Spanned<String>>,
    pub gross_margin: Option<Spanned<f64>>,
    /// `YYYY-MM`: reports start no earlier than this month.
    pub start_month: Option<Spanned<String>>,
    /// SQL returning one DATE: the first day of the reporting range.
    pub range_start: Option<Spanned<String>>,
    /// Further named values, usable in SQL as `${name}`.
    #[serde(default)]
    pub params: BTreeMap<Name, Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub location: Option<Spanned<String>>,
    #[serde(default)]
    pub columns: BTreeMap<Name, Spanned<String>>,
    /// Columns naming a row in `rejected_rows.row_key`.
    #[serde(default)]
    pub key: Vec<Spanned<String>>,
    #[serde(default)]
    pub lookup: Vec<RawLookup>,
    #[serde(default)]
    pub derive: Vec<RawDerive>,
    #[serde(default)]
    pub reject: Vec<RawReject>,
}

/// A LEFT JOIN of each source row to at most one row of a query, adding
/// columns (e.g. the exchange rate of a subscription's month).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLookup {
    pub alias: Spanned<String>,
    pub query: Spanned<String>,
    pub on: Spanned<String>,
    pub columns: BTreeMap<Name, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDerive {
    pub column: Spanned<String>,
    pub expr: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReject {
    pub reason: Spanned<String>,
    pub when: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDimension {
    /// A model or source with a column named like the dimension: its
    /// distinct values are the dimension's members in every grid.
    pub values: Spanned<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Path of the SQL file, relative to the catalog (default `sql/<name>.sql`).
    pub sql: Option<Spanned<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub kind: Spanned<String>,
    pub description: Option<String>,
    /// simple: the model or source aggregated.
    pub model: Option<Spanned<String>>,
    /// simple: aggregate expression; derived: expression over metrics.
    pub expr: Option<Spanned<String>>,
    /// simple: the date column placing a row in a period.
    pub time: Option<Spanned<String>>,
    /// simple: rows that count.
    pub filter: Option<Spanned<String>>,
    /// simple: value of an empty cell of the grid (default 0 for sum and count).
    pub fill: Option<Spanned<f64>>,
    /// ratio: expressions over metrics.
    pub numerator: Option<Spanned<String>>,
    pub denominator: Option<Spanned<String>>,
    /// derived: aggregate `expr` over the trailing periods.
    pub window: Option<Spanned<RawWindow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub periods: u32,
    pub agg: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub description: Option<String>,
    /// Publish a model as it is.
    pub model: Option<Spanned<String>>,
    /// Or a grid of metrics.
    #[serde(default)]
    pub metrics: Vec<Spanned<String>>,
    pub grain: Option<Spanned<String>>,
    #[serde(default)]
    pub dimensions: Vec<Spanned<String>>,
    /// Output column of the period (default: the grain's name).
    pub time_column: Option<Spanned<String>>,
    /// For model tables: the sort that makes output deterministic.
    #[serde(default)]
    pub order_by: Vec<Spanned<String>>,
}
