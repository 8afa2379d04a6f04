//! The SQL of the metric kinds that are relations: `cohort` and `score`.
//! Each becomes a model of the catalog (named like the metric) whose SQL
//! the engine writes, so models and tables read it like any other, and it
//! is built in dependency order with the rest.
//!
//! ```text
//! cohort   rows -> first period meeting `cohort` per entity (members, with
//!          their dimensions at that period) -> grid cohorts x periods
//!          since x members (+ total) <- sizes, measures per period
//! score    population (entity, period) <- one aggregate per group of
//!          components reading the same rows (window or period; plain
//!          max/min over periods: the rows, reduced by the pivot) -> raw
//!          (fill, missing) -> component scores -> weighted, renormalised,
//!          rounded score -> band
//! ```

use std::collections::BTreeMap;

use crate::catalog::{
    Catalog, Cohort, Component, Dimension, Grain, Metric, MetricKind, Model, Score, SourceText,
};

use super::ident;
use super::metrics::{members_sql, number, period_of, periods_relation};

/// The generated model of a cohort or score metric.
pub fn model_of(
    metric: &Metric,
    catalog_toml: &SourceText,
    dimensions: &[Dimension],
) -> Option<Model> {
    let (sql, reads) = match &metric.kind {
        MetricKind::Cohort(c) => {
            let mut reads = vec![c.model.clone()];
            reads.extend(
                c.dimensions
                    .iter()
                    .filter_map(|d| dimensions.iter().find(|x| &x.name == d))
                    .filter_map(|d| d.relation().map(str::to_string)),
            );
            (cohort_sql(c, dimensions), reads)
        }
        MetricKind::Score(s) => {
            let mut reads = vec![s.population.clone()];
            reads.extend(s.components.iter().map(|c| c.from.clone()));
            (score_sql(s), reads)
        }
        _ => return None,
    };
    let mut reads = reads;
    reads.sort();
    reads.dedup();
    Some(Model {
        name: metric.name.clone(),
        sql_path: catalog_toml.path.clone(),
        sql: SourceText::new(
            format!("{} [metrics.{}]", catalog_toml.path.display(), metric.name),
            sql,
        ),
        reads,
        metric: Some(metric.name.clone()),
    })
}

/// The engine's relation of (day, period) pairs of a trailing window of
/// `days` days ending on the last day of each period of `grain`.
pub fn window_relation(grain: Grain, days: u32) -> String {
    format!("__window_{}_{days}", grain.name())
}

/// The trailing windows the score metrics of a catalog read.
pub fn windows(catalog: &Catalog) -> Vec<(Grain, u32)> {
    let mut out: Vec<(Grain, u32)> = catalog
        .metrics
        .iter()
        .filter_map(|m| match &m.kind {
            MetricKind::Score(s) => Some(s),
            _ => None,
        })
        .flat_map(|s| {
            s.components
                .iter()
                .filter_map(|c| c.window_days.map(|d| (s.grain, d)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn cohort_sql(c: &Cohort, dimensions: &[Dimension]) -> String {
    let dims: Vec<String> = c.dimensions.iter().map(|d| ident(d)).collect();
    let with = |prefix: &str| -> String { dims.iter().map(|d| format!(", {prefix}{d}")).collect() };
    let nulls: String = dims
        .iter()
        .map(|d| format!(", CAST(NULL AS VARCHAR) AS {d}"))
        .collect();
    let filter = c
        .filter
        .as_ref()
        .map(|f| format!(" WHERE ({})", f.text))
        .unwrap_or_default();
    let starts = &c.starts_when.text;
    let periods = ident(&periods_relation(c.grain));
    let member_cols: String = dims
        .iter()
        .map(|d| format!(", max(coalesce(CAST(r.{d} AS VARCHAR), 'unknown')) AS {d}"))
        .collect();
    let member_joins: String = c
        .dimensions
        .iter()
        .map(|d| {
            let dim = dimensions
                .iter()
                .find(|x| &x.name == d)
                .expect("validated dimension");
            format!(" CROSS JOIN ({}) m_{d}", members_sql(dim))
        })
        .collect();
    let grid_dims: String = dims
        .iter()
        .zip(&c.dimensions)
        .map(|(q, d)| format!(", m_{d}.{q}"))
        .collect();
    let measures: Vec<String> = c
        .measures
        .iter()
        .map(|m| format!("{} AS {}", m.expr.text, ident(&m.name)))
        .collect();
    let on_dims = |a: &str, b: &str| -> String {
        dims.iter()
            .map(|d| format!(" AND ({a}.{d} IS NOT DISTINCT FROM {b}.{d})"))
            .collect()
    };
    let total_branch = |body: String, tail: String| -> String {
        if dims.is_empty() {
            String::new()
        } else {
            format!(" UNION ALL {body}{tail}")
        }
    };
    let grid_total = total_branch(
        format!(
            "SELECT c.__period AS __cohort, a.__period AS __at, CAST(a.__n - c.__n AS BIGINT) AS __k{nulls}"
        ),
        " FROM __numbered c JOIN __numbered a ON a.__n >= c.__n".into(),
    );
    // The total rows come from the same scan as the members' rows
    // (GROUPING SETS): each UNION ALL branch computed `__members` and its
    // join with the rows again, ten scans of the model in all at 1M
    // customers. Members never have a null value, so totals stay apart.
    let grouping = |keys: &str, with_dims: String| -> String {
        if dims.is_empty() {
            keys.to_string()
        } else {
            format!("GROUPING SETS (({keys}{with_dims}), ({keys}))")
        }
    };
    let cells: Vec<String> = c
        .measures
        .iter()
        .map(|m| {
            let q = ident(&m.name);
            match m.fill {
                Some(f) => format!("coalesce(a.{q}, {}) AS {q}", number(f)),
                None => format!("a.{q}"),
            }
        })
        .collect();
    let partition = std::iter::once("__cohort".to_string())
        .chain(dims.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = vec![format!("__cohort AS {}", ident(&c.cohort_column))];
    out.extend(dims.iter().cloned());
    out.push(format!("__k AS {}", ident(&c.since_column)));
    out.push(format!("__size AS {}", ident(&c.size_column)));
    for m in &c.measures {
        let q = ident(&m.name);
        out.push(q.clone());
        if let Some(r) = &m.retention {
            let base = if m.over_size {
                "__size".to_string()
            } else {
                format!("first_value({q}) OVER (PARTITION BY {partition} ORDER BY __k)")
            };
            out.push(format!(
                "CASE WHEN ({base}) = 0 THEN NULL ELSE CAST({q} AS DOUBLE) / ({base}) END AS {}",
                ident(r)
            ));
        }
    }
    let order: Vec<String> = std::iter::once("__cohort".to_string())
        .chain(dims.iter().map(|d| format!("{d} NULLS LAST")))
        .chain(std::iter::once("__k".to_string()))
        .collect();
    format!(
        "WITH __rows AS (SELECT *, {entity} AS __entity, {period} AS __period FROM {model}{filter}),\n\
         __starts AS (SELECT __entity, min(__period) AS __cohort FROM __rows WHERE ({starts}) GROUP BY __entity),\n\
         __members AS (SELECT s.__entity, s.__cohort{member_cols} FROM __starts s JOIN __rows r \
           ON r.__entity = s.__entity AND r.__period = s.__cohort GROUP BY s.__entity, s.__cohort),\n\
         __numbered AS (SELECT period AS __period, row_number() OVER (ORDER BY period) AS __n FROM {periods}),\n\
         __grid AS (SELECT c.__period AS __cohort, a.__period AS __at, CAST(a.__n - c.__n AS BIGINT) AS __k{grid_dims} \
           FROM __numbered c JOIN __numbered a ON a.__n >= c.__n{member_joins}{grid_total}),\n\
         __sizes AS (SELECT __cohort{dims_plain}, count(*) AS __size FROM __members GROUP BY {gb_sizes}),\n\
         __activity AS (SELECT m.__cohort, r.__period AS __at{m_dims}, {measures} FROM __members m JOIN __rows r \
           ON r.__entity = m.__entity AND r.__period >= m.__cohort GROUP BY {gb_activity}),\n\
         __cells AS (SELECT g.__cohort, g.__k{g_dims}, coalesce(z.__size, 0) AS __size{cells} FROM __grid g \
           LEFT JOIN __sizes z ON z.__cohort = g.__cohort{on_sizes} \
           LEFT JOIN __activity a ON a.__cohort = g.__cohort AND a.__at = g.__at{on_activity})\n\
         SELECT {out} FROM __cells ORDER BY {order}",
        entity = ident(&c.entity),
        period = period_of(c.grain, &ident(&c.time)),
        model = ident(&c.model),
        dims_plain = with(""),
        gb_sizes = grouping("__cohort", with("")),
        m_dims = with("m."),
        measures = measures.join(", "),
        gb_activity = grouping("m.__cohort, r.__period", with("m.")),
        g_dims = with("g."),
        cells = cells.iter().map(|c| format!(", {c}")).collect::<String>(),
        on_sizes = on_dims("z", "g"),
        on_activity = on_dims("a", "g"),
        out = out.join(", "),
        order = order.join(", "),
    )
}

/// Components that read the same rows share one aggregate, DISTINCT ones
/// included: the session's `count` counts DISTINCT text and dates with a
/// groups accumulator (`execute::distinct_count`), so the health score's
/// three usage components are one pass over usage, not three.
type RowsKey = (String, String, Option<u32>, String);

fn rows_key(c: &Component) -> RowsKey {
    (
        c.from.clone(),
        c.time.clone(),
        c.window_days,
        c.filter
            .as_ref()
            .map(|f| f.text.clone())
            .unwrap_or_default(),
    )
}

fn score_sql(s: &Score) -> String {
    let entity = ident(&s.entity);
    let periods = ident(&periods_relation(s.grain));
    let filter = s
        .filter
        .as_ref()
        .map(|f| format!(" WHERE ({})", f.text))
        .unwrap_or_default();
    let keep: String = s.keep.iter().map(|k| format!(", {}", ident(k))).collect();
    // The population, in the periods of the range.
    let mut ctes = vec![format!(
        "__pop AS (SELECT {entity} AS __entity, {period} AS __period{keep} FROM {pop}{filter})",
        period = period_of(s.grain, &ident(&s.time)),
        pop = ident(&s.population),
    )];
    let mut groups: BTreeMap<RowsKey, Vec<&Component>> = BTreeMap::new();
    for c in &s.components {
        groups.entry(rows_key(c)).or_default().push(c);
    }
    // Each group of components is one aggregate by (entity, period). They
    // meet the population in one UNION ALL + GROUP BY (a pivot) rather than
    // a chain of LEFT JOINs: at 100k customers six hash joins of a million
    // rows each took longer than all the aggregates together.
    let mut parts = Vec::new();
    let all_columns: Vec<String> = s
        .keep
        .iter()
        .map(|k| ident(k))
        .chain(s.components.iter().map(component_column))
        .collect();
    let branch = |columns: &[String], marker: &str, from: &str| -> String {
        let cols: String = columns.iter().map(|c| format!(", {c}")).collect();
        format!("SELECT __entity, __period, {marker} AS __member{cols} FROM {from}")
    };
    let keep_cols: Vec<String> = s.keep.iter().map(|k| ident(k)).collect();
    parts.push(branch(
        &keep_cols,
        "1",
        &format!(
            "__pop p JOIN {periods} cal ON {}",
            day_key_eq("cal.period", "p.__period")
        ),
    ));
    // The pivot's aggregate of each column: max, unless a component's rows
    // come as they are with a min.
    let mut pivot_fn: BTreeMap<String, &str> = BTreeMap::new();
    for (i, ((from, time, window, filter), comps)) in groups.iter().enumerate() {
        let (periods_of_row, on) = match window {
            Some(n) => (
                ident(&window_relation(s.grain, *n)),
                day_key_eq("pe.day", &format!("CAST(r.{} AS DATE)", ident(time))),
            ),
            None => (
                periods.clone(),
                day_key_eq(
                    "pe.period",
                    &period_of(s.grain, &format!("r.{}", ident(time))),
                ),
            ),
        };
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE ({filter})")
        };
        // Rows that fall in one period each (no window) whose components
        // are all a plain max or min go to the pivot as they are: the
        // pivot's own max (or min) reduces them per (entity, period), and
        // an aggregate of its own would only group the same keys twice (at
        // 1M customers, mrr_trend's 15.6M rows: 4.7 s of CPU).
        let direct: Option<Vec<(&str, String)>> = if window.is_none() {
            comps
                .iter()
                .map(|c| crate::catalog::sql_text::plain_min_max(&c.raw.text))
                .collect()
        } else {
            None
        };
        let (aggs, group_by): (Vec<String>, &str) = match &direct {
            Some(plain) => (
                comps
                    .iter()
                    .zip(plain)
                    .map(|(c, (kind, arg))| {
                        pivot_fn.insert(component_column(c), kind);
                        format!("({arg}) AS {}", component_column(c))
                    })
                    .collect(),
                "",
            ),
            None => (
                comps
                    .iter()
                    .map(|c| format!("{} AS {}", c.raw.text, component_column(c)))
                    .collect(),
                " GROUP BY 1, 2",
            ),
        };
        ctes.push(format!(
            "__c{i} AS (SELECT r.{entity} AS __entity, pe.period AS __period, {} FROM {} r JOIN {periods_of_row} pe ON {on}{filter}{group_by})",
            aggs.join(", "),
            ident(from)
        ));
        let names: Vec<String> = comps.iter().map(|c| component_column(c)).collect();
        parts.push(branch(&names, "0", &format!("__c{i}")));
    }
    // BY NAME: each branch has its own columns, the others are NULLs of
    // the right type (a bare NULL in a branch would type the column NULL).
    ctes.push(format!(
        "__parts AS ({})",
        parts.join(" UNION ALL BY NAME ")
    ));
    // One member per entity and period of the population; several
    // population rows of one (a daily population scored by month) are one
    // member, their `keep` columns the greatest value.
    let pivot: Vec<String> = all_columns
        .iter()
        .map(|c| {
            let f = pivot_fn.get(c).copied().unwrap_or("max");
            format!("{f}({c}) AS {c}")
        })
        .collect();
    ctes.push(format!(
        "__members AS (SELECT __entity, __period, {} FROM __parts GROUP BY __entity, __period HAVING max(__member) = 1)",
        pivot.join(", ")
    ));
    let raws: Vec<String> = s
        .components
        .iter()
        .map(|c| {
            let mut parts = vec![component_column(c)];
            parts.extend(c.fill.map(number));
            parts.extend(c.missing.map(number));
            let value = if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!("coalesce({})", parts.join(", "))
            };
            format!("{value} AS {}", ident(&format!("{}_raw", c.name)))
        })
        .collect();
    let keep_out: String = keep_cols.iter().map(|k| format!(", {k}")).collect();
    ctes.push(format!(
        "__raw AS (SELECT __entity, __period{keep_out}, {} FROM __members)",
        raws.join(", ")
    ));
    // The arithmetic of the rows is `execute::score_arithmetic`: the same
    // numbers as CASEs of `greatest`/`least`, `coalesce` and thresholds,
    // in one pass over each column.
    let scores: Vec<String> = s
        .components
        .iter()
        .map(|c| {
            format!(
                "vitals_score_scale(CAST({} AS DOUBLE), {}, {}) AS {}",
                ident(&format!("{}_raw", c.name)),
                float(c.bad),
                float(c.good),
                ident(&format!("{}_score", c.name)),
            )
        })
        .collect();
    ctes.push(format!(
        "__scored AS (SELECT *, {} FROM __raw)",
        scores.join(", ")
    ));
    let weighted: Vec<String> = s
        .components
        .iter()
        .map(|c| {
            format!(
                "{}, {}",
                ident(&format!("{}_score", c.name)),
                float(c.weight)
            )
        })
        .collect();
    ctes.push(format!(
        "__total AS (SELECT *, round(vitals_weighted_mean({}), 6) AS __score FROM __scored)",
        weighted.join(", "),
    ));
    let mut band_args = vec!["__score".to_string()];
    for b in &s.bands {
        if let Some(min) = b.min {
            band_args.push(float(min));
        }
        band_args.push(super::literal(&b.name));
    }
    let band = format!("vitals_band({})", band_args.join(", "));
    let mut out = vec![
        format!("__entity AS {entity}"),
        format!("__period AS {}", ident(&s.time)),
    ];
    out.extend(s.keep.iter().map(|k| ident(k)));
    out.push(format!("__score AS {}", ident(&s.score_column)));
    out.push(format!("{band} AS {}", ident(&s.band_column)));
    for c in &s.components {
        out.push(ident(&format!("{}_raw", c.name)));
        out.push(ident(&format!("{}_score", c.name)));
    }
    // Unordered: the table that publishes it sorts once.
    format!(
        "WITH {}\nSELECT {} FROM __total",
        ctes.join(",\n"),
        out.join(", ")
    )
}

/// `a = b` of two DATEs, compared as their day numbers. The calendar side
/// of these joins is a few hundred days: DataFusion's hash join indexes an
/// integer key in that range by an array (its "perfect hash join") instead
/// of hashing every row, and it takes no DATE key that way. At 100k
/// customers the probe of usage rows into the window was 3-4 % of a build.
fn day_key_eq(a: &str, b: &str) -> String {
    format!("CAST({a} AS INT) = CAST({b} AS INT)")
}

/// A component's aggregate inside the score's SQL (apart from `keep`).
fn component_column(c: &Component) -> String {
    ident(&format!("__comp_{}", c.name))
}

/// A number literal that is always DOUBLE.
fn float(x: f64) -> String {
    format!("{x:?}")
}
