//! Reading the catalog's SQL: `${param}` placeholders, the relations a model
//! reads, and the names an expression refers to. All parsing goes through
//! the sqlparser that DataFusion itself uses, so what we accept here is what
//! DataFusion will plan.

use std::collections::BTreeSet;
use std::ops::{ControlFlow, Range};

use datafusion::sql::sqlparser::ast::{Expr, Statement, visit_expressions};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// A `${name}` placeholder found in a SQL text.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    pub name: String,
    /// Byte range of `${name}` in the text.
    pub span: Range<usize>,
}

pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(i) = sql[rest..].find("${") {
        let start = rest + i;
        match sql[start..].find('}') {
            Some(j) => {
                let end = start + j + 1;
                found.push(Placeholder {
                    name: sql[start + 2..end - 1].trim().to_string(),
                    span: start..end,
                });
                rest = end;
            }
            None => break,
        }
    }
    found
}

/// Replaces every `${name}` by `lookup(name)`; unknown names are left as
/// they are (they were reported by validation).
pub fn substitute(sql: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for p in placeholders(sql) {
        if let Some(value) = lookup(&p.name) {
            out.push_str(&sql[last..p.span.start]);
            out.push_str(&value);
            last = p.span.end;
        }
    }
    out.push_str(&sql[last..]);
    out
}

/// Byte offset of `word` as a whole word in `text` (case-insensitive).
pub fn find_word(text: &str, word: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    lower.match_indices(&word).map(|(i, _)| i).find(|&i| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

pub fn mentions_word(text: &str, word: &str) -> bool {
    find_word(text, word).is_some()
}

/// A parse error with the byte offset it points at, when sqlparser says.
#[derive(Debug)]
pub struct SqlError {
    pub message: String,
    pub offset: Option<usize>,
}

fn parse_error(sql: &str, e: impl std::fmt::Display) -> SqlError {
    let message = e.to_string();
    // sqlparser reports "... at Line: L, Column: C"
    let offset = message.rfind("Line: ").and_then(|i| {
        let tail = &message[i + 6..];
        let (line, rest) = tail.split_once(", Column: ")?;
        let line: usize = line.trim().parse().ok()?;
        let col: usize = rest
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .ok()?;
        let line_start: usize = sql
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        Some(line_start + col.saturating_sub(1))
    });
    // At the end of the text sqlparser gives no position: point at the end.
    let offset = offset.or_else(|| message.contains("EOF").then_some(sql.len()));
    SqlError { message, offset }
}

/// Parses a model's SQL: exactly one query.
pub fn parse_query(sql: &str) -> Result<Statement, SqlError> {
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| parse_error(sql, e))?;
    match statements.len() {
        1 => {
            let statement = statements.remove(0);
            if matches!(statement, Statement::Query(_)) {
                Ok(statement)
            } else {
                Err(SqlError {
                    message: "a model must be a single SELECT query".into(),
                    offset: Some(0),
                })
            }
        }
        0 => Err(SqlError {
            message: "the SQL file holds no query".into(),
            offset: Some(0),
        }),
        _ => Err(SqlError {
            message: "a model must be one query; found several statements".into(),
            offset: Some(0),
        }),
    }
}

/// The relations a query reads (CTE names excluded), lower-cased.
pub fn table_references(statement: &Statement) -> Result<Vec<String>, SqlError> {
    let (tables, _ctes) = datafusion::sql::resolve::resolve_table_references(
        &datafusion::sql::parser::Statement::Statement(Box::new(statement.clone())),
        true,
    )
    .map_err(|e| SqlError {
        message: e.to_string(),
        offset: None,
    })?;
    let mut names: Vec<String> = tables.iter().map(|t| t.table().to_string()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

pub fn parse_expr(sql: &str) -> Result<Expr, SqlError> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| {
            let expr = p.parse_expr()?;
            p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
            Ok(expr)
        })
        .map_err(|e| parse_error(sql, e))
}

/// The bare column names an expression refers to (lower-cased).
pub fn identifiers(expr: &Expr) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(id) => {
                names.insert(id.value.to_lowercase());
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    names.insert(last.value.to_lowercase());
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// Whether `sql` is a plain `max(x)` or `min(x)`: one argument, no
/// DISTINCT, FILTER, ORDER BY, IGNORE NULLS or window. Returns "max" or
/// "min" and the argument's SQL. Such an aggregate gives the same value
/// over rows as over groups of those rows already reduced by it.
pub fn plain_min_max(sql: &str) -> Option<(&'static str, String)> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Ok(Expr::Function(f)) = parse_expr(sql) else {
        return None;
    };
    let kind = match f.name.to_string().to_ascii_lowercase().as_str() {
        "max" => "max",
        "min" => "min",
        _ => return None,
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let plain = f.filter.is_none()
        && f.over.is_none()
        && f.null_treatment.is_none()
        && f.within_group.is_empty()
        && matches!(f.parameters, FunctionArguments::None)
        && list.duplicate_treatment.is_none()
        && list.clauses.is_empty();
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] if plain => {
            Some((kind, arg.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_min_and_max_are_recognised_and_nothing_else() {
        assert_eq!(
            plain_min_max("max(mrr_trend)"),
            Some(("max", "mrr_trend".to_string()))
        );
        assert_eq!(
            plain_min_max("MIN(a / b)"),
            Some(("min", "a / b".to_string()))
        );
        for other in [
            "max(DISTINCT x)",
            "max(x) FILTER (WHERE y > 0)",
            "max(x) OVER ()",
            "max(x) + 1",
            "sum(x)",
            "count(*)",
            "max(x, y)",
            "max(${p})",
            "last_value(score ORDER BY responded_at)",
        ] {
            assert_eq!(plain_min_max(other), None, "{other}");
        }
    }

    #[test]
    fn finds_and_substitutes_placeholders() {
        let sql = "SELECT ${as_of}, ${ gross_margin }";
        let names: Vec<_> = placeholders(sql).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["as_of", "gross_margin"]);
        let out = substitute(sql, |n| (n == "as_of").then(|| "DATE '2024-01-31'".into()));
        assert_eq!(out, "SELECT DATE '2024-01-31', ${ gross_margin }");
    }

    #[test]
    fn table_references_skip_ctes() {
        let q = parse_query(
            "WITH a AS (SELECT * FROM subscriptions) SELECT * FROM a JOIN customers c ON true",
        )
        .unwrap();
        assert_eq!(
            table_references(&q).unwrap(),
            ["customers", "subscriptions"]
        );
    }

    #[test]
    fn identifiers_of_an_expression() {
        let e = parse_expr("churned_mrr + coalesce(contraction_mrr, 0) > t.x").unwrap();
        let ids: Vec<_> = identifiers(&e).into_iter().collect();
        assert_eq!(ids, ["churned_mrr", "contraction_mrr", "x"]);
    }

    #[test]
    fn parse_errors_carry_an_offset() {
        let err = parse_expr("sum(mrr").unwrap_err();
        assert!(err.offset.is_some(), "{err:?}");
    }
}
