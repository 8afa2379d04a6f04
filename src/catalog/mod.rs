//! The catalog: `metrics.toml` plus the SQL models of `sql/`.
//!
//! `raw` holds the TOML as written (with spans); `resolve` checks it rule by
//! rule, collecting every problem, and produces the validated [`Catalog`]
//! that the later stages take. Nothing after this module needs to check a
//! name again.

pub mod contract;
pub mod diagnostic;
pub mod raw;
mod resolve;
pub mod sql_text;

use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

pub use diagnostic::{Diagnostic, Diagnostics, SourceText};
pub use resolve::load;

use contract::TableContract;

/// Relations the engine provides to every model.
pub const BUILTIN_RELATIONS: &[&str] = &["calendar_months", "rejected_rows"];

/// A piece of catalog text (an expression or a name) and where it was written.
#[derive(Debug, Clone)]
pub struct Located {
    pub text: String,
    pub source: SourceText,
    pub span: Range<usize>,
}

/// Byte offset of the first character of a TOML string's content, given
/// the span of the string literal (quotes included): `"..."`, `'...'`, and
/// `"""..."""` whose first newline TOML drops.
pub fn content_start(toml: &str, span: &Range<usize>) -> usize {
    let literal = &toml[span.clone()];
    let (quote, multi) = if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
        (3, true)
    } else {
        (1, false)
    };
    let mut at = span.start + quote.min(literal.len());
    if multi {
        if toml[at..].starts_with("\r\n") {
            at += 2;
        } else if toml[at..].starts_with('\n') {
            at += 1;
        }
    }
    at
}

impl Located {
    /// Byte offset in the TOML of the text's `i`-th byte.
    pub fn offset_of(&self, i: usize) -> usize {
        content_start(&self.source.text, &self.span) + i
    }

    /// A diagnostic pointing at this text.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(&self.source, self.span.clone())
    }
}

#[derive(Debug)]
pub struct Catalog {
    pub path: PathBuf,
    /// Folder of the catalog file: locations and SQL paths are relative to it.
    pub dir: PathBuf,
    /// Hash of the catalog file and its SQL files, for the manifest.
    pub hash: String,
    /// The TOML text, for diagnostics found after loading.
    pub source: SourceText,
    pub project: Project,
    /// How to reach object stores (`[storage]`).
    pub storage: crate::storage::StorageOptions,
    pub sources: Vec<Source>,
    pub dimensions: Vec<Dimension>,
    pub models: Vec<Model>,
    pub metrics: Vec<Metric>,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// None: today, decided when a build starts.
    pub as_of: Option<NaiveDate>,
    pub timezone: String,
    pub reporting_currency: String,
    pub gross_margin: f64,
    /// First day of the first month that reports may show.
    pub start_month: Option<NaiveDate>,
    /// SQL returning the first day of the range (one DATE, one row).
    pub range_start: Option<Located>,
    pub params: Vec<(String, ParamValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Text(String),
    Number(f64),
    Integer(i64),
    Bool(bool),
    Date(NaiveDate),
}

impl ParamValue {
    /// The value as a SQL literal.
    pub fn to_sql(&self) -> String {
        match self {
            ParamValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
            ParamValue::Number(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    format!("{x:.1}")
                } else {
                    format!("{x:?}")
                }
            }
            ParamValue::Integer(i) => i.to_string(),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Date(d) => format!("DATE '{d}'"),
        }
    }
}

#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub location: Option<Located>,
    /// canonical name -> the name in the files.
    pub columns: Vec<(String, String)>,
    pub key: Vec<String>,
    pub lookups: Vec<Lookup>,
    pub derive: Vec<Derive>,
    pub reject: Vec<RejectRule>,
    pub contract: Option<&'static TableContract>,
    /// With no files: read as empty (true) or skip what needs it (false).
    pub empty_when_absent: bool,
}

impl Source {
    /// The file's column name for a canonical column.
    pub fn file_column<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.columns
            .iter()
            .find(|(c, _)| c == canonical)
            .map_or(canonical, |(_, theirs)| theirs.as_str())
    }
}

/// Joins each row of a source to at most one row of `query` (as `alias`,
/// the row being `this`), adding `columns` (name, expression).
#[derive(Debug)]
pub struct Lookup {
    pub alias: String,
    pub query: Located,
    pub on: Located,
    pub columns: Vec<(String, Located)>,
}

impl Source {
    /// Every SQL text of the source's stages.
    pub fn texts(&self) -> impl Iterator<Item = &Located> {
        self.lookups
            .iter()
            .flat_map(|l| {
                std::iter::once(&l.query)
                    .chain(std::iter::once(&l.on))
                    .chain(l.columns.iter().map(|(_, e)| e))
            })
            .chain(self.derive.iter().map(|d| &d.expr))
            .chain(self.reject.iter().map(|r| &r.when))
    }
}

#[derive(Debug)]
pub struct Derive {
    pub column: String,
    pub expr: Located,
}

#[derive(Debug)]
pub struct RejectRule {
    pub reason: String,
    pub when: Located,
}

#[derive(Debug)]
pub struct Dimension {
    pub name: String,
    pub members: Members,
}

#[derive(Debug)]
pub enum Members {
    /// Relation whose distinct values of column `name` are the members.
    Relation(String),
    /// A fixed list.
    List(Vec<String>),
}

impl Dimension {
    /// The relation the members come from, if any.
    pub fn relation(&self) -> Option<&str> {
        match &self.members {
            Members::Relation(r) => Some(r),
            Members::List(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub sql_path: PathBuf,
    pub sql: SourceText,
    /// Relations the SQL reads.
    pub reads: Vec<String>,
    /// For the relation of a cohort or score metric: the metric, whose
    /// TOML texts errors point at (the SQL is generated).
    pub metric: Option<String>,
}

/// Model -> the models it reads (sources and built-ins left out).
pub fn model_edges(models: &[Model]) -> std::collections::BTreeMap<&str, Vec<&str>> {
    models
        .iter()
        .map(|m| {
            let reads = m
                .reads
                .iter()
                .map(String::as_str)
                .filter(|r| models.iter().any(|o| o.name == *r));
            (m.name.as_str(), reads.collect())
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grain {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub const ALL: [(&'static str, Grain); 5] = [
        ("day", Grain::Day),
        ("week", Grain::Week),
        ("month", Grain::Month),
        ("quarter", Grain::Quarter),
        ("year", Grain::Year),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map(|(n, _)| *n)
            .unwrap_or("month")
    }

    pub fn parse(s: &str) -> Option<Grain> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, g)| *g)
    }
}

#[derive(Debug)]
pub enum MetricKind {
    Simple {
        model: String,
        expr: Located,
        time: String,
        filter: Option<Located>,
        fill: Option<f64>,
    },
    Ratio {
        numerator: Located,
        denominator: Located,
    },
    Derived {
        expr: Located,
        window: Option<Window>,
    },
    /// A relation: retention of cohorts by period since their start.
    Cohort(Cohort),
    /// A relation: a weighted composite per entity and period.
    Score(Score),
}

#[derive(Debug)]
pub struct Cohort {
    pub model: String,
    pub entity: String,
    pub time: String,
    pub grain: Grain,
    pub filter: Option<Located>,
    /// Row condition: the cohort is the first period in which it holds.
    pub starts_when: Located,
    pub dimensions: Vec<String>,
    pub cohort_column: String,
    pub since_column: String,
    pub size_column: String,
    pub measures: Vec<Measure>,
}

#[derive(Debug)]
pub struct Measure {
    pub name: String,
    pub expr: Located,
    pub fill: Option<f64>,
    pub retention: Option<String>,
    /// Retention over the cohort size rather than the measure at k = 0.
    pub over_size: bool,
}

#[derive(Debug)]
pub struct Score {
    pub population: String,
    pub entity: String,
    pub time: String,
    pub grain: Grain,
    pub filter: Option<Located>,
    pub keep: Vec<String>,
    pub score_column: String,
    pub band_column: String,
    pub bands: Vec<Band>,
    pub components: Vec<Component>,
}

#[derive(Debug)]
pub struct Band {
    pub name: String,
    /// None: every score below the bands before.
    pub min: Option<f64>,
}

#[derive(Debug)]
pub struct Component {
    pub name: String,
    pub from: String,
    pub time: String,
    pub window_days: Option<u32>,
    pub raw: Located,
    pub filter: Option<Located>,
    pub bad: f64,
    pub good: f64,
    pub weight: f64,
    pub missing: Option<f64>,
    pub fill: Option<f64>,
}

/// How a metric of a table with several period types gets the value of a
/// longer period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    /// Recomputed from the rows (simple) or the recomputed metrics.
    Recompute,
    /// The value of the window's last base period inside the range.
    Last,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub periods: u32,
    pub agg: String,
}

#[derive(Debug)]
pub struct Metric {
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    /// Other metrics this one is computed from (ratio and derived).
    pub depends_on: Vec<String>,
    pub rollup: Rollup,
    pub span: Range<usize>,
}

impl Metric {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MetricKind::Simple { .. } => "simple",
            MetricKind::Ratio { .. } => "ratio",
            MetricKind::Derived { .. } => "derived",
            MetricKind::Cohort(_) => "cohort",
            MetricKind::Score(_) => "score",
        }
    }

    /// Cohort and score metrics are relations, not cells of a grid.
    pub fn is_relation(&self) -> bool {
        matches!(self.kind, MetricKind::Cohort(_) | MetricKind::Score(_))
    }

    /// Every TOML text of the metric.
    pub fn texts(&self) -> Vec<&Located> {
        match &self.kind {
            MetricKind::Simple { expr, filter, .. } => {
                std::iter::once(expr).chain(filter).collect()
            }
            MetricKind::Ratio {
                numerator,
                denominator,
            } => vec![numerator, denominator],
            MetricKind::Derived { expr, .. } => vec![expr],
            MetricKind::Cohort(c) => std::iter::once(&c.starts_when)
                .chain(&c.filter)
                .chain(c.measures.iter().map(|m| &m.expr))
                .collect(),
            MetricKind::Score(s) => s
                .filter
                .iter()
                .chain(
                    s.components
                        .iter()
                        .flat_map(|c| std::iter::once(&c.raw).chain(&c.filter)),
                )
                .collect(),
        }
    }
}

#[derive(Debug)]
pub enum TableKind {
    /// A model published as it is, sorted by `order_by`.
    Model {
        model: String,
        order_by: Vec<String>,
    },
    /// A full grid of periods x dimension members (plus a total row) with
    /// one column per metric.
    Metrics {
        metrics: Vec<String>,
        grain: Grain,
        dimensions: Vec<String>,
        /// Dimensions with a total (null) member.
        totals: Vec<String>,
        time_column: String,
        /// Empty: one period type, the grain.
        period_types: Vec<PeriodType>,
        period_type_column: String,
    },
}

/// A period type of a table with several: a coarser grain, or a trailing
/// window of N base periods.
#[derive(Debug, Clone, PartialEq)]
pub enum PeriodType {
    Grain(Grain),
    /// N base periods ending with each one, and the name written.
    Trailing(u32, String),
}

impl PeriodType {
    /// The value of the period-type column.
    pub fn name(&self) -> String {
        match self {
            PeriodType::Grain(g) => g.name().to_string(),
            PeriodType::Trailing(_, name) => name.clone(),
        }
    }

    pub fn parse(s: &str) -> Option<PeriodType> {
        if let Some(g) = Grain::parse(s) {
            return Some(PeriodType::Grain(g));
        }
        let digits: String = s
            .strip_prefix("trailing_")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| PeriodType::Trailing(n, s.to_string()))
    }
}

#[derive(Debug)]
pub struct Table {
    pub name: String,
    /// Where `[tables.<name>]` is written.
    pub span: Range<usize>,
    pub description: Option<String>,
    pub kind: TableKind,
}

impl Catalog {
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    /// A path of the catalog, as written relative to its folder.
    pub fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.dir).unwrap_or(path).to_path_buf()
    }
}
