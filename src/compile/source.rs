//! The SQL of a source: the files as they are -> canonical, typed columns ->
//! derived columns -> the first reject rule that fails. Valid rows form the
//! view that models read under the source's name; rejected rows go to
//! `rejected_rows` with the row as JSON.

use datafusion::arrow::datatypes::DataType;

use crate::catalog::Source;
use crate::catalog::contract::ColumnClass;

use super::{ident, literal};

/// The type of text inside a build (SQL's VARCHAR here): string views hash
/// and compare short strings (ids) inline, which halves the time of the
/// large GROUP BYs on ids. Published tables are cast back to plain Utf8
/// (`build::plain_strings`), the string type every Parquet reader knows.
pub const TEXT: DataType = DataType::Utf8View;

/// Internal relation names of a source's stages.
pub fn raw_name(source: &str) -> String {
    format!("__raw_{source}")
}
pub fn checked_name(source: &str) -> String {
    format!("__checked_{source}")
}
pub fn rejected_name(source: &str) -> String {
    format!("__rejected_{source}")
}

/// A column of the typed stage: its canonical name and the expression
/// that produces it from the raw files.
#[derive(Debug, Clone)]
pub struct TypedColumn {
    pub name: String,
    pub expr: String,
    pub data_type: DataType,
}

/// Why a file column cannot be read as the contract asks.
#[derive(Debug)]
pub struct TypeMismatch {
    pub found: DataType,
    pub class: ColumnClass,
}

/// The expression that reads `column` (of `found` type) as `class`.
pub fn coerce(
    column: &str,
    found: &DataType,
    class: ColumnClass,
    timezone: &str,
) -> Result<(String, DataType), TypeMismatch> {
    let c = ident(column);
    let mismatch = || TypeMismatch {
        found: found.clone(),
        class,
    };
    let base = match found {
        DataType::Dictionary(_, value) => value.as_ref(),
        other => other,
    };
    let is_string = matches!(
        base,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let utc = "Timestamp(Microsecond, Some(\"UTC\"))";
    let local = format!(
        "Timestamp(Microsecond, Some(\"{}\"))",
        timezone.replace('"', "")
    );
    match class {
        ColumnClass::Text => {
            if is_string || base.is_integer() || matches!(base, DataType::Null) {
                Ok((format!("CAST({c} AS VARCHAR)"), TEXT))
            } else {
                Err(mismatch())
            }
        }
        ColumnClass::Number => {
            if base.is_numeric() || matches!(base, DataType::Null) {
                Ok((format!("CAST({c} AS DOUBLE)"), DataType::Float64))
            } else {
                Err(mismatch())
            }
        }
        ColumnClass::Date => {
            let expr = match base {
                DataType::Date32 | DataType::Date64 | DataType::Null => {
                    format!("CAST({c} AS DATE)")
                }
                // A timestamp's day is its day in the catalog's time zone.
                DataType::Timestamp(_, _) => {
                    format!("CAST(arrow_cast(arrow_cast({c}, '{utc}'), '{local}') AS DATE)")
                }
                // A date string is that date; a date-time string is an
                // instant, read in UTC unless it says otherwise.
                _ if is_string => format!(
                    "CASE WHEN length(trim({c})) <= 10 THEN TRY_CAST(trim({c}) AS DATE) \
                     ELSE CAST(arrow_cast(arrow_cast(TRY_CAST({c} AS TIMESTAMP), '{utc}'), '{local}') AS DATE) END"
                ),
                _ => return Err(mismatch()),
            };
            Ok((expr, DataType::Date32))
        }
        // The instant, shown in the catalog's zone: its day (CAST AS DATE)
        // is the local day, durations are unchanged.
        ColumnClass::Timestamp => {
            let expr = match base {
                DataType::Timestamp(_, _)
                | DataType::Date32
                | DataType::Date64
                | DataType::Null => {
                    format!("arrow_cast(arrow_cast({c}, '{utc}'), '{local}')")
                }
                _ if is_string => format!(
                    "arrow_cast(arrow_cast(TRY_CAST({c} AS TIMESTAMP), '{utc}'), '{local}')"
                ),
                _ => return Err(mismatch()),
            };
            Ok((expr, local_timestamp(timezone)))
        }
    }
}

/// The type of a contract timestamp: microseconds in the catalog's zone.
fn local_timestamp(timezone: &str) -> DataType {
    DataType::Timestamp(
        datafusion::arrow::datatypes::TimeUnit::Microsecond,
        Some(timezone.into()),
    )
}

/// The empty value of a contract column that the files do not have.
pub fn missing(class: ColumnClass, timezone: &str) -> (String, DataType) {
    match class {
        ColumnClass::Text => ("CAST(NULL AS VARCHAR)".into(), TEXT),
        ColumnClass::Number => ("CAST(NULL AS DOUBLE)".into(), DataType::Float64),
        ColumnClass::Date => ("CAST(NULL AS DATE)".into(), DataType::Date32),
        ColumnClass::Timestamp => (
            format!(
                "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"{}\"))')",
                timezone.replace('"', "")
            ),
            local_timestamp(timezone),
        ),
    }
}

/// SQL of the typed stage over the raw files.
pub fn typed_sql(source: &Source, columns: &[TypedColumn]) -> String {
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("{} AS {}", c.expr, ident(&c.name)))
        .collect();
    format!(
        "SELECT {} FROM {}",
        select.join(", "),
        ident(&raw_name(&source.name))
    )
}

/// SQL of the checked stage: typed columns, then each derived column in
/// order (it sees the columns before it; the row is `this`, for correlated
/// subqueries; a replaced typed column keeps its original as `__raw_<name>`
/// for `row_json` and for rules), then `__reason`, the first reject rule
/// that holds.
pub fn checked_sql(
    source: &Source,
    typed: &str,
    columns: &[TypedColumn],
    expand: &dyn Fn(&str) -> String,
) -> String {
    let replaced: Vec<&TypedColumn> = columns
        .iter()
        .filter(|c| source.derive.iter().any(|d| d.column == c.name))
        .collect();
    let mut sql = if replaced.is_empty() {
        typed.to_string()
    } else {
        let raws: Vec<String> = replaced
            .iter()
            .map(|c| {
                format!(
                    "this.{} AS {}",
                    ident(&c.name),
                    ident(&format!("__raw_{}", c.name))
                )
            })
            .collect();
        format!("SELECT this.*, {} FROM ({typed}) this", raws.join(", "))
    };
    let mut present: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    for l in &source.lookups {
        let added: Vec<String> = l
            .columns
            .iter()
            .map(|(name, e)| format!("({}) AS {}", expand(&e.text), ident(name)))
            .collect();
        present.extend(l.columns.iter().map(|(n, _)| n.as_str()));
        sql = format!(
            "SELECT this.*, {} FROM ({sql}) this LEFT JOIN ({}) {} ON {}",
            added.join(", "),
            expand(&l.query.text),
            ident(&l.alias),
            expand(&l.on.text)
        );
    }
    for d in &source.derive {
        let value = format!("({}) AS {}", expand(&d.expr.text), ident(&d.column));
        sql = if present.contains(&d.column.as_str()) {
            format!(
                "SELECT * EXCLUDE ({}), {value} FROM ({sql}) this",
                ident(&d.column)
            )
        } else {
            present.push(&d.column);
            format!("SELECT *, {value} FROM ({sql}) this")
        };
    }
    let reason = if source.reject.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        let whens: Vec<String> = source
            .reject
            .iter()
            .map(|r| {
                format!(
                    "WHEN ({}) THEN {}",
                    expand(&r.when.text),
                    literal(&r.reason)
                )
            })
            .collect();
        format!("CASE {} END", whens.join(" "))
    };
    format!("SELECT *, {reason} AS \"__reason\" FROM ({sql}) this")
}

/// The columns a model sees: typed columns with derived ones applied.
pub fn output_columns(source: &Source, columns: &[TypedColumn]) -> Vec<String> {
    let mut names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    for (name, _) in source.lookups.iter().flat_map(|l| &l.columns) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    for d in &source.derive {
        if !names.contains(&d.column) {
            names.push(d.column.clone());
        }
    }
    names
}

/// SQL of the valid rows: those no reject rule holds for. A rule holds
/// when its condition is true (as in `__reason`'s CASE, a null condition
/// does not reject), so a row is valid when the rules ORed are not true.
/// That is boolean work over the columns, where `__reason IS NULL` built
/// the reason's text for every row of every scan of the source.
pub fn valid_sql(
    source: &Source,
    columns: &[TypedColumn],
    expand: &dyn Fn(&str) -> String,
) -> String {
    let names: Vec<String> = output_columns(source, columns)
        .iter()
        .map(|c| format!("this.{}", ident(c)))
        .collect();
    let filter = if source.reject.is_empty() {
        String::new()
    } else {
        format!(" WHERE ({}) IS NOT TRUE", any_rule_holds(source, expand))
    };
    format!(
        "SELECT {} FROM {} this{filter}",
        names.join(", "),
        ident(&checked_name(&source.name))
    )
}

/// The reject rules of the row `this`, ORed: true exactly when some rule
/// is true (SQL's OR is true when any side is, whatever the others).
fn any_rule_holds(source: &Source, expand: &dyn Fn(&str) -> String) -> String {
    let rules: Vec<String> = source
        .reject
        .iter()
        .map(|r| format!("({})", expand(&r.when.text)))
        .collect();
    rules.join(" OR ")
}

/// Rejected rows as (source_table, reason, row_key, row_json); the JSON
/// holds the row as read, before derived columns replaced anything. The
/// rows are chosen by the rules themselves (a WHERE keeps a row when they
/// are true) rather than `__reason IS NOT NULL`, so the reason and the
/// JSON are built for rejected rows only.
pub fn rejected_sql(
    source: &Source,
    columns: &[TypedColumn],
    expand: &dyn Fn(&str) -> String,
) -> String {
    let original = |name: &str| {
        if source.derive.iter().any(|d| d.column == name) {
            ident(&format!("__raw_{name}"))
        } else {
            ident(name)
        }
    };
    let fields: Vec<String> = columns
        .iter()
        .map(|c| {
            let value = json_value(&original(&c.name), &c.data_type);
            format!(
                "'\"{}\":' || coalesce({value}, 'null')",
                c.name.replace(['"', '\\', '\''], "_")
            )
        })
        .collect();
    let row_json = if fields.is_empty() {
        "'{}'".to_string()
    } else {
        format!("'{{' || {} || '}}'", fields.join(" || ',' || "))
    };
    let key_columns: Vec<&str> = if source.key.is_empty() {
        columns
            .first()
            .map(|c| c.name.as_str())
            .into_iter()
            .collect()
    } else {
        source.key.iter().map(String::as_str).collect()
    };
    let key_parts: Vec<String> = key_columns
        .iter()
        .map(|k| format!("coalesce(CAST({} AS VARCHAR), '')", original(k)))
        .collect();
    let row_key = if key_parts.len() == 1 {
        format!("CAST({} AS VARCHAR)", original(key_columns[0]))
    } else {
        format!("concat_ws('|', {})", key_parts.join(", "))
    };
    format!(
        "SELECT {} AS source_table, \"__reason\" AS reason, {row_key} AS row_key, {row_json} AS row_json FROM {} this WHERE {}",
        literal(&source.name),
        ident(&checked_name(&source.name)),
        any_rule_holds(source, expand),
    )
}

/// A JSON value of a column, as SQL (null when the column is null).
fn json_value(column: &str, data_type: &DataType) -> String {
    match data_type {
        DataType::Float64 => format!(
            "CASE WHEN isnan({column}) OR {column} IN ('Infinity'::double, '-Infinity'::double) THEN 'null' ELSE CAST({column} AS VARCHAR) END"
        ),
        d if d.is_numeric() || matches!(d, DataType::Boolean) => {
            format!("CAST({column} AS VARCHAR)")
        }
        _ => format!(
            "'\"' || replace(replace(replace(replace(replace(CAST({column} AS VARCHAR), '\\', '\\\\'), '\"', '\\\"'), chr(10), '\\n'), chr(13), '\\r'), chr(9), '\\t') || '\"'"
        ),
    }
}
