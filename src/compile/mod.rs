//! Catalog objects -> SQL that DataFusion plans. We generate SQL text rather
//! than building `LogicalPlan`s by hand so that `vitals explain` can show an
//! analyst exactly what runs; DataFusion parses, optimizes and plans it like
//! any other query, with only built-in functions.

pub mod metrics;
pub mod relations;
pub mod rollup;
pub mod source;

/// A SQL identifier, quoted so that any column name is safe.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
