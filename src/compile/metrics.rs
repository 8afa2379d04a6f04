//! The SQL of a metric table: a full grid of periods x dimension members,
//! plus one total row per period whose dimensions are null, with a column per
//! metric.
//!
//! ```text
//! grid      periods x members  UNION ALL  periods x (NULL, ...)
//! s<i>      one aggregate per (model, time column, filter): by period and
//!           members, UNION ALL by period alone (the total row)
//! base      grid LEFT JOIN every s<i>; empty cells get the metric's fill
//! l1..ln    ratio and derived metrics, a layer per dependency depth
//! ```
//! Totals are aggregated from the rows, never added up from the members.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, Grain, Metric, MetricKind, TableKind};
use crate::plan::metric_closure;

use super::ident;

/// The engine's relation of periods of a grain (column `period`, a DATE).
pub fn periods_relation(grain: Grain) -> String {
    format!("__periods_{}", grain.name())
}

/// Value a member takes when the row has none.
pub const UNKNOWN_MEMBER: &str = "unknown";

/// SQL of table `table_name`; `expand` resolves `${param}` placeholders.
/// Panics if the table is not a metric table (the caller matched on it).
pub fn table_sql(catalog: &Catalog, table_name: &str, expand: &dyn Fn(&str) -> String) -> String {
    let table = catalog.table(table_name).expect("validated table");
    let TableKind::Metrics {
        metrics,
        grain,
        dimensions,
        time_column,
    } = &table.kind
    else {
        panic!("table_sql on a model table");
    };
    grid_sql(catalog, metrics, *grain, dimensions, time_column, expand)
}

/// SQL of a grid of `metrics` by `grain` and `dimensions`.
pub fn grid_sql(
    catalog: &Catalog,
    metrics: &[String],
    grain: Grain,
    dimensions: &[String],
    time_column: &str,
    expand: &dyn Fn(&str) -> String,
) -> String {
    let all: Vec<&Metric> = metric_closure(catalog, metrics)
        .into_iter()
        .map(|m| catalog.metric(m).expect("validated metric"))
        .collect();
    let dims: Vec<String> = dimensions.iter().map(|d| ident(d)).collect();
    let member = |d: &str| format!("coalesce(CAST({d} AS VARCHAR), '{UNKNOWN_MEMBER}')");
    let null_dims = |with_alias: bool| -> Vec<String> {
        dims.iter()
            .map(|d| {
                if with_alias {
                    format!("CAST(NULL AS VARCHAR) AS {d}")
                } else {
                    "CAST(NULL AS VARCHAR)".into()
                }
            })
            .collect()
    };
    let periods = ident(&periods_relation(grain));

    let mut ctes = Vec::new();

    // The grid.
    let mut grid = format!(
        "SELECT p.period{} FROM {periods} p",
        prefixed(
            &dims
                .iter()
                .map(|d| format!("m_{}.{d}", strip(d)))
                .collect::<Vec<_>>()
        )
    );
    for d in dimensions {
        let dim = catalog.dimension(d).expect("validated dimension");
        grid.push_str(&format!(
            " CROSS JOIN (SELECT DISTINCT {} AS {} FROM {}) m_{d}",
            member(&ident(d)),
            ident(d),
            ident(&dim.values)
        ));
    }
    if !dims.is_empty() {
        grid.push_str(&format!(
            " UNION ALL SELECT p.period{} FROM {periods} p",
            prefixed(&null_dims(true))
        ));
    }
    ctes.push(format!("grid AS ({grid})"));

    // Simple metrics, one aggregate per (model, time, filter).
    let mut groups: BTreeMap<(String, String, String), Vec<&Metric>> = BTreeMap::new();
    for m in &all {
        if let MetricKind::Simple {
            model,
            time,
            filter,
            ..
        } = &m.kind
        {
            let filter = filter.as_ref().map(|f| expand(&f.text)).unwrap_or_default();
            groups
                .entry((model.clone(), time.clone(), filter))
                .or_default()
                .push(m);
        }
    }
    let trunc = |time: &str| period_of(grain, &ident(time));
    let mut joins = Vec::new();
    let mut base_select = vec!["g.period".to_string()];
    base_select.extend(dims.iter().map(|d| format!("g.{d}")));
    for (i, ((model, time, filter), members)) in groups.iter().enumerate() {
        let aggs: Vec<String> = members
            .iter()
            .map(|m| match &m.kind {
                MetricKind::Simple { expr, .. } => {
                    format!("{} AS {}", expand(&expr.text), ident(&m.name))
                }
                _ => unreachable!(),
            })
            .collect();
        let where_clause = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {filter}")
        };
        let by_members: Vec<String> = dims
            .iter()
            .map(|d| format!("{} AS {d}", member(d)))
            .collect();
        let group_by: Vec<String> = (1..=dims.len() + 1).map(|n| n.to_string()).collect();
        let mut sql = format!(
            "SELECT {} AS period{}, {} FROM {}{where_clause} GROUP BY {}",
            trunc(time),
            prefixed(&by_members),
            aggs.join(", "),
            ident(model),
            group_by.join(", ")
        );
        if !dims.is_empty() {
            sql.push_str(&format!(
                " UNION ALL SELECT {} AS period{}, {} FROM {}{where_clause} GROUP BY 1",
                trunc(time),
                prefixed(&null_dims(true)),
                aggs.join(", "),
                ident(model)
            ));
        }
        ctes.push(format!("s{i} AS ({sql})"));
        let on: Vec<String> = std::iter::once(format!("g.period = s{i}.period"))
            .chain(
                dims.iter()
                    .map(|d| format!("g.{d} IS NOT DISTINCT FROM s{i}.{d}")),
            )
            .collect();
        joins.push(format!(" LEFT JOIN s{i} ON {}", on.join(" AND ")));
        for m in members {
            let MetricKind::Simple { fill, .. } = &m.kind else {
                unreachable!()
            };
            base_select.push(match fill {
                Some(f) => format!(
                    "coalesce(s{i}.{name}, {}) AS {name}",
                    number(*f),
                    name = ident(&m.name)
                ),
                None => format!("s{i}.{}", ident(&m.name)),
            });
        }
    }
    ctes.push(format!(
        "l0 AS (SELECT {} FROM grid g{})",
        base_select.join(", "),
        joins.concat()
    ));

    // Ratio and derived metrics, layered by dependency depth.
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &all {
        let d = m
            .depends_on
            .iter()
            .map(|dep| depth.get(dep.as_str()).copied().unwrap_or(0) + 1)
            .max()
            .unwrap_or(0);
        let d = if matches!(m.kind, MetricKind::Simple { .. }) {
            0
        } else {
            d.max(1)
        };
        depth.insert(m.name.as_str(), d);
    }
    let max_depth = depth.values().copied().max().unwrap_or(0);
    let partition = if dims.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {} ", dims.join(", "))
    };
    for level in 1..=max_depth {
        let exprs: Vec<String> = all
            .iter()
            .filter(|m| depth[m.name.as_str()] == level)
            .map(|m| {
                let value = match &m.kind {
                    MetricKind::Ratio { numerator, denominator } => format!(
                        "CASE WHEN ({den}) = 0 THEN NULL ELSE CAST(({num}) AS DOUBLE) / ({den}) END",
                        num = expand(&numerator.text),
                        den = expand(&denominator.text)
                    ),
                    MetricKind::Derived { expr, window: None } => format!("({})", expand(&expr.text)),
                    MetricKind::Derived { expr, window: Some(w) } => format!(
                        "{}({}) OVER ({partition}ORDER BY period ROWS BETWEEN {} PRECEDING AND CURRENT ROW)",
                        w.agg,
                        expand(&expr.text),
                        w.periods - 1
                    ),
                    MetricKind::Simple { .. } => unreachable!(),
                };
                format!("{value} AS {}", ident(&m.name))
            })
            .collect();
        ctes.push(format!(
            "l{level} AS (SELECT *, {} FROM l{})",
            exprs.join(", "),
            level - 1
        ));
    }

    let mut out = vec![format!("period AS {}", ident(time_column))];
    out.extend(dims.iter().cloned());
    out.extend(metrics.iter().map(|m| ident(m)));
    let order: Vec<String> = std::iter::once("period".to_string())
        .chain(dims.iter().map(|d| format!("{d} NULLS LAST")))
        .collect();
    format!(
        "WITH {}\nSELECT {} FROM l{max_depth} ORDER BY {}",
        ctes.join(",\n"),
        out.join(", "),
        order.join(", ")
    )
}

/// The first day of the period of `grain` holding the date or timestamp `t`.
pub fn period_of(grain: Grain, t: &str) -> String {
    match grain {
        Grain::Day => format!("CAST({t} AS DATE)"),
        _ => format!(
            "CAST(date_trunc('{}', CAST({t} AS TIMESTAMP)) AS DATE)",
            grain.name()
        ),
    }
}

fn prefixed(items: &[String]) -> String {
    items.iter().map(|i| format!(", {i}")).collect()
}

fn strip(quoted: &str) -> String {
    quoted.trim_matches('"').to_string()
}

/// A number literal that keeps integers integral, so counts stay BIGINT.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}
