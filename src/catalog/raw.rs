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
    pub storage: Option<RawStorage>,
}

/// How to reach object stores: `[storage]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub endpoint: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub allow_http: Option<Spanned<bool>>,
    pub retries: Option<Spanned<i64>>,
    pub retry_timeout_seconds: Option<Spanned<f64>>,
    pub connect_timeout_seconds: Option<Spanned<f64>>,
    pub request_timeout_seconds: Option<Spanned<f64>>,
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
    /// When an optional table has no files: `skip` what needs it (default)
    /// or read it as `empty` (its absence means something, e.g. no fx
    /// rates: everything is in the reporting currency).
    pub when_absent: Option<Spanned<String>>,
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
    pub values: Option<Spanned<String>>,
    /// Or a fixed list of members.
    pub members: Option<Spanned<Vec<String>>>,
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
    /// In a table with several period types: `sum` (recomputed from the
    /// rows of the longer period, the default) or `last` (the value of the
    /// window's last base period inside the range).
    pub rollup: Option<Spanned<String>>,
    /// cohort and score: the column naming an entity (e.g. customer_id).
    pub entity: Option<Spanned<String>>,
    /// cohort and score: the grain of the periods (default month).
    pub grain: Option<Spanned<String>>,
    /// cohort: a row condition; an entity's cohort is the first period in
    /// which one of its rows meets it.
    pub cohort: Option<Spanned<String>>,
    /// cohort: dimension columns, read from the entity's cohort-start row.
    #[serde(default)]
    pub dimensions: Vec<Spanned<String>>,
    /// cohort: output column names.
    pub cohort_column: Option<Spanned<String>>,
    pub since_column: Option<Spanned<String>>,
    pub size_column: Option<Spanned<String>>,
    /// cohort: aggregates over the members' rows in each period since.
    #[serde(default)]
    pub measures: Vec<RawMeasure>,
    /// score: columns of the population rows carried into the output.
    #[serde(default)]
    pub keep: Vec<Spanned<String>>,
    /// score: output column names.
    pub score_column: Option<Spanned<String>>,
    pub band_column: Option<Spanned<String>>,
    /// score: named bands, best first; the last one may have no `min`.
    #[serde(default)]
    pub bands: Vec<RawBand>,
    /// score: the weighted components.
    #[serde(default)]
    pub components: Vec<RawComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeasure {
    pub name: Spanned<String>,
    pub expr: Spanned<String>,
    /// Adds a column `measure(k) / base`.
    pub retention: Option<Spanned<String>>,
    /// `start` (the measure at the cohort start, default) or `size`.
    pub base: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBand {
    pub name: Spanned<String>,
    pub min: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub name: Spanned<String>,
    /// The model or source the raw value is aggregated from.
    pub from: Spanned<String>,
    /// Its date or timestamp column.
    pub time: Spanned<String>,
    /// Rows of the days L-(N-1)..L, L the period's last day; without it,
    /// the rows of the period.
    pub window_days: Option<Spanned<u32>>,
    /// Aggregate expression over those rows of the entity.
    pub raw: Spanned<String>,
    pub filter: Option<Spanned<String>>,
    /// `[bad, good]`, mapped to 0..100.
    pub scale: Spanned<[f64; 2]>,
    pub weight: Spanned<f64>,
    /// Raw value used when there is none (default: left out).
    pub missing: Option<Spanned<f64>>,
    /// Raw value when the entity has no rows (default 0 for count and sum).
    pub fill: Option<Spanned<f64>>,
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
    /// Dimensions that get a total row (null member); default all.
    pub totals: Option<Vec<Spanned<String>>>,
    /// Several period types stacked in one table (e.g. month, quarter,
    /// trailing_12m), told apart by `period_type_column`.
    #[serde(default)]
    pub period_types: Vec<Spanned<String>>,
    pub period_type_column: Option<Spanned<String>>,
}
