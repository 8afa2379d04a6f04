//! Which metric aggregates can be computed in two steps: per base period
//! first, then over a trailing window of base periods.
//!
//! A trailing-12-month metric joins each row to the 12 windows that hold
//! its month, then aggregates: 12 copies of every row. When the aggregate
//! is a sum, count, min or max, the rows are first aggregated per month
//! (dozens of rows instead of millions) and the windows combine those:
//! sums and counts add up, minima and maxima stay minima and maxima.
//! Anything else (avg, DISTINCT, an expression around the call) keeps the
//! one-step plan, which is always right.

use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArguments, ObjectNamePart,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

/// The aggregate that combines partial results of `expr`, if `expr` is
/// exactly one call of sum, count, min or max over one argument, without
/// DISTINCT, FILTER, ORDER BY or OVER.
pub fn combiner(expr: &str) -> Option<&'static str> {
    let mut parser = Parser::new(&GenericDialect {}).try_with_sql(expr).ok()?;
    let parsed = parser.parse_expr().ok()?;
    if parser.peek_token().token != Token::EOF {
        return None;
    }
    let Expr::Function(f) = parsed else {
        return None;
    };
    if f.filter.is_some()
        || f.over.is_some()
        || f.null_treatment.is_some()
        || f.uses_odbc_syntax
        || !f.within_group.is_empty()
        || !matches!(f.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct))
        || !list.clauses.is_empty()
        || list.args.len() != 1
    {
        return None;
    }
    let [ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else {
        return None;
    };
    match name.value.to_ascii_lowercase().as_str() {
        "sum" | "count" => Some("sum"),
        "min" => Some("min"),
        "max" => Some("max"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::combiner;

    #[test]
    fn sums_counts_minima_and_maxima_combine() {
        assert_eq!(combiner("sum(prev_mrr)"), Some("sum"));
        assert_eq!(
            combiner("sum(CASE WHEN movement = 'new' THEN movement_mrr ELSE 0 END)"),
            Some("sum")
        );
        assert_eq!(combiner("count(CASE WHEN mrr > 0 THEN 1 END)"), Some("sum"));
        assert_eq!(combiner("COUNT(*)"), Some("sum"));
        assert_eq!(combiner("min(started_at)"), Some("min"));
        assert_eq!(combiner(" max(x) "), Some("max"));
    }

    #[test]
    fn everything_else_keeps_one_step() {
        for expr in [
            "avg(x)",
            "count(DISTINCT customer_id)",
            "sum(x) / 12",
            "sum(x) FILTER (WHERE y > 0)",
            "sum(x) OVER ()",
            "array_agg(x ORDER BY y)",
            "last_value(score ORDER BY responded_at)",
            "coalesce(sum(x), 0)",
            "sum(x) sum(y)",
            "approx_percentile_cont(x, 0.5)",
            "",
            "sum(",
        ] {
            assert_eq!(combiner(expr), None, "{expr}");
        }
    }
}
