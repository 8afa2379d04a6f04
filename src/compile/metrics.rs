//! The SQL of a metric table: a full grid of periods x dimension members,
//! plus total rows whose totalled dimensions are null, with a column per
//! metric.
//!
//! ```text
//! grid      periods x members  UNION ALL  periods x (NULL for totals, members)
//! s<i>      one aggregate per (model, time column, filter): by period and
//!           members, and by period and the untotalled members
//! l0        grid LEFT JOIN every s<i>; empty cells get the metric's fill
//! l1..ln    ratio and derived metrics, a layer per dependency depth
//! ```
//! Totals count every row: sums, counts, minima and maxima combine the
//! per-day aggregates of all members (GROUPING SETS over one scan), other
//! aggregates run over the rows again (UNION ALL). Ratio and derived
//! metrics are never added up from the members.
//!
//! A table with several period types (`month`, `quarter`, `trailing_12m`)
//! stacks one such pipeline per type: simple metrics are recomputed from
//! the rows of the longer period (only rows inside the range count), ratio
//! and derived metrics from those, and a metric with `rollup = "last"`
//! takes the value of the window's last base period inside the range.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{
    Catalog, Dimension, Grain, Members, Metric, MetricKind, PeriodType, Rollup, TableKind,
};
use crate::plan::metric_closure_cut;

use super::{ident, literal, rollup};

/// The engine's relation of periods of a grain (column `period`, a DATE).
pub fn periods_relation(grain: Grain) -> String {
    format!("__periods_{}", grain.name())
}

/// Value a member takes when the row has none.
pub const UNKNOWN_MEMBER: &str = "unknown";

/// What a grid holds and how it is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub metrics: &'a [String],
    pub grain: Grain,
    pub dimensions: &'a [String],
    /// Dimensions with a total (null) member.
    pub totals: &'a [String],
    pub time_column: &'a str,
    /// Empty: the grain alone.
    pub period_types: &'a [PeriodType],
    pub period_type_column: &'a str,
    /// Metrics whose input table is absent: published as typed nulls.
    pub skipped: &'a BTreeSet<String>,
}

impl<'a> Grid<'a> {
    /// The grid of a metric table; None for a model table.
    pub fn of_table(
        catalog: &'a Catalog,
        table: &str,
        skipped: &'a BTreeSet<String>,
    ) -> Option<Grid<'a>> {
        match &catalog.table(table)?.kind {
            TableKind::Metrics {
                metrics,
                grain,
                dimensions,
                totals,
                time_column,
                period_types,
                period_type_column,
            } => Some(Grid {
                metrics,
                grain: *grain,
                dimensions,
                totals,
                time_column,
                period_types,
                period_type_column,
                skipped,
            }),
            TableKind::Model { .. } => None,
        }
    }
}

/// The SQL of the members of a dimension, as a column named like it.
pub fn members_sql(dim: &Dimension) -> String {
    let d = ident(&dim.name);
    match &dim.members {
        Members::Relation(r) => format!(
            "SELECT DISTINCT coalesce(CAST({d} AS VARCHAR), '{UNKNOWN_MEMBER}') AS {d} FROM {}",
            ident(r)
        ),
        Members::List(list) => list
            .iter()
            .map(|m| format!("SELECT CAST({} AS VARCHAR) AS {d}", literal(m)))
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    }
}

/// `metrics` and what they are computed from, dependencies first; the
/// dependencies of `cut` metrics are left out.
fn closure<'c>(
    catalog: &'c Catalog,
    metrics: &'c [String],
    cut: &dyn Fn(&Metric) -> bool,
) -> Vec<&'c Metric> {
    metric_closure_cut(catalog, metrics, cut)
        .into_iter()
        .map(|m| catalog.metric(m).expect("validated metric"))
        .collect()
}

/// How the rows of a simple metric reach the periods of one period type.
#[derive(Clone, Copy)]
enum Periods {
    Grain(Grain),
    /// The `n` base periods ending with each base period.
    Trailing(u32, Grain),
}

/// The step of `n` periods of `grain`, as an interval literal.
fn interval(grain: Grain, n: u32) -> String {
    match grain {
        Grain::Day => format!("INTERVAL '{n} days'"),
        Grain::Week => format!("INTERVAL '{} days'", 7 * n),
        Grain::Month => format!("INTERVAL '{n} months'"),
        Grain::Quarter => format!("INTERVAL '{} months'", 3 * n),
        Grain::Year => format!("INTERVAL '{n} years'"),
    }
}

/// The CTEs of one period type; returns the name of the last one.
struct Pipeline<'g> {
    catalog: &'g Catalog,
    grid: &'g Grid<'g>,
    expand: &'g dyn Fn(&str) -> String,
    dims: Vec<String>,
    ctes: Vec<String>,
}

impl Pipeline<'_> {
    fn member(d: &str) -> String {
        format!("coalesce(CAST({d} AS VARCHAR), '{UNKNOWN_MEMBER}')")
    }

    /// For each total pattern (none, then all totals), which dimensions are
    /// kept (true) or null (false).
    fn patterns(&self) -> Vec<Vec<bool>> {
        let mut out = vec![vec![true; self.dims.len()]];
        if !self.grid.totals.is_empty() {
            out.push(
                self.grid
                    .dimensions
                    .iter()
                    .map(|d| !self.grid.totals.contains(d))
                    .collect(),
            );
        }
        out
    }

    /// The columns of the dimensions: `value(d)` for a kept one, NULL for
    /// one totalled over.
    fn dimension_columns(&self, keep: &[bool], value: &dyn Fn(&str) -> String) -> String {
        self.dims
            .iter()
            .zip(keep)
            .map(|(d, k)| {
                if *k {
                    format!(", {} AS {d}", value(d))
                } else {
                    format!(", CAST(NULL AS VARCHAR) AS {d}")
                }
            })
            .collect()
    }

    /// Simple metrics in two steps (see `rollup`): the rows aggregated per
    /// day and member of every dimension, then the days combined per
    /// `period` (an expression of `__pre.__day`, after `join`) for each
    /// total pattern at once (GROUPING SETS). Members split the rows (a
    /// row without one is `unknown`), so a total combines the same rows as
    /// its members, and the model is scanned once instead of once per
    /// pattern.
    #[allow(clippy::too_many_arguments)]
    fn two_steps(
        &self,
        time: &str,
        from: &str,
        where_clause: &str,
        patterns: &[Vec<bool>],
        members: &[&Metric],
        aggs: &[String],
        combiners: &[&str],
        period: &str,
        join: &str,
    ) -> String {
        let combined: Vec<String> = members
            .iter()
            .zip(combiners)
            .map(|(m, c)| format!("{c}(__pre.{0}) AS {0}", ident(&m.name)))
            .collect();
        let every = vec![true; self.dims.len()];
        let inner_by: Vec<String> = (1..=self.dims.len() + 1).map(|n| n.to_string()).collect();
        // One grouping per total pattern; the first keeps every dimension,
        // and GROUPING SETS leaves out each later set's missing ones (NULL).
        let sets: Vec<String> = patterns
            .iter()
            .map(|keep| {
                std::iter::once(period.to_string())
                    .chain(self.kept(keep, "__pre."))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let outer_by = match sets.as_slice() {
            [one] => one.clone(),
            _ => format!("GROUPING SETS (({}))", sets.join("), (")),
        };
        let outer_dims = self.dimension_columns(&every, &|d: &str| format!("__pre.{d}"));
        format!(
            "SELECT {period} AS period{outer_dims}, {} FROM (SELECT CAST({time} AS DATE) AS __day{}, {} \
             FROM {from}{where_clause} GROUP BY {}) __pre{join} GROUP BY {outer_by}",
            combined.join(", "),
            self.dimension_columns(&every, &|d: &str| Self::member(d)),
            aggs.join(", "),
            inner_by.join(", "),
        )
    }

    /// The dimensions `keep` keeps, each after `prefix`.
    fn kept<'a>(&'a self, keep: &'a [bool], prefix: &'a str) -> impl Iterator<Item = String> + 'a {
        self.dims
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(move |(d, _)| format!("{prefix}{d}"))
    }

    fn run(
        &mut self,
        prefix: &str,
        periods: Periods,
        all: &[&Metric],
        last_from: Option<&str>,
    ) -> String {
        let dims = self.dims.clone();
        let catalog = self.catalog;
        let expand = self.expand;
        let periods_rel = match periods {
            Periods::Grain(g) | Periods::Trailing(_, g) => ident(&periods_relation(g)),
        };

        // The grid.
        let grid: Vec<String> = self
            .patterns()
            .iter()
            .map(|keep| {
                let mut sql = format!(
                    "SELECT p.period{} FROM {periods_rel} p",
                    dims.iter()
                        .zip(keep)
                        .map(|(d, k)| if *k {
                            format!(", m_{}.{d}", d.trim_matches('"'))
                        } else {
                            format!(", CAST(NULL AS VARCHAR) AS {d}")
                        })
                        .collect::<String>()
                );
                for (name, k) in self.grid.dimensions.iter().zip(keep) {
                    if *k {
                        let dim = catalog.dimension(name).expect("validated dimension");
                        sql.push_str(&format!(" CROSS JOIN ({}) m_{name}", members_sql(dim)));
                    }
                }
                sql
            })
            .collect();
        self.ctes
            .push(format!("{prefix}grid AS ({})", grid.join(" UNION ALL ")));

        let is_last = |m: &Metric| last_from.is_some() && m.rollup == Rollup::Last;

        // Simple metrics, one aggregate per (model, time, filter).
        let mut groups: BTreeMap<(String, String, String), Vec<&Metric>> = BTreeMap::new();
        for m in all.iter().copied().filter(|m| !is_last(m)) {
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
        let mut joins = Vec::new();
        let mut base_select = vec!["g.period".to_string()];
        base_select.extend(dims.iter().map(|d| format!("g.{d}")));
        let on_dims = |a: &str, b: &str| -> String {
            dims.iter()
                .map(|d| format!(" AND ({a}.{d} IS NOT DISTINCT FROM {b}.{d})"))
                .collect()
        };
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
            let t = ident(time);
            // Only rows inside the range count, also in a period that
            // overlaps its edge (days and months never do).
            let mut conditions = Vec::new();
            if !matches!(periods, Periods::Grain(Grain::Day | Grain::Month)) {
                conditions.push(expand(&format!(
                    "CAST({t} AS DATE) >= ${{range_start}} AND CAST({t} AS DATE) <= ${{range_end_day}}"
                )));
            }
            if !filter.is_empty() {
                conditions.push(format!("({filter})"));
            }
            let where_clause = if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            };
            // A trailing window of sums, counts, minima or maxima is
            // aggregated per base period first, and the windows combine
            // those (see `rollup`): 12 copies of each month's few rows
            // rather than of every row.
            let combiners: Option<Vec<&str>> = members
                .iter()
                .map(|m| match &m.kind {
                    MetricKind::Simple { expr, .. } => rollup::combiner(&expand(&expr.text)),
                    _ => unreachable!(),
                })
                .collect();
            let window = |g: Grain, n: u32, row: &str| {
                // An equi-join on the row's period with the (small) pairs of
                // base period and window: a range join of the rows
                // themselves was a nested loop over rows x periods.
                format!(
                    " JOIN (SELECT a.period AS __row_period, b.period FROM {periods_rel} a \
                     JOIN {periods_rel} b ON a.period <= b.period \
                     AND a.period >= CAST(CAST(b.period AS TIMESTAMP) - {} AS DATE)) __w \
                     ON __w.__row_period = {row}",
                    interval(g, n - 1),
                )
            };
            let patterns = self.patterns();
            let from = ident(model);
            // Two steps: per day (a few thousand rows at most), then per
            // period or window. Besides the window's copies, this saves
            // cutting every row to its period: date_trunc goes through
            // chrono per value.
            let combined_per = match (periods, &combiners) {
                (Periods::Grain(g), Some(c)) if g != Grain::Day => {
                    Some((c, period_of(g, "__pre.__day"), String::new()))
                }
                (Periods::Trailing(n, g), Some(c)) => Some((
                    c,
                    "__w.period".to_string(),
                    window(g, n, &period_of(g, "__pre.__day")),
                )),
                _ => None,
            };
            let two_steps = combined_per.map(|(combiners, period, join)| {
                self.two_steps(
                    &t,
                    &from,
                    &where_clause,
                    &patterns,
                    members,
                    &aggs,
                    combiners,
                    &period,
                    &join,
                )
            });
            let branches: Vec<String> = match two_steps {
                Some(sql) => vec![sql],
                None => patterns
                    .iter()
                    .map(|keep| {
                        // GROUP BY positions: the period, then the kept dimensions.
                        let by: String = std::iter::once(1)
                            .chain(keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i + 2))
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        match periods {
                            Periods::Grain(g) => format!(
                                "SELECT {} AS period{}, {} FROM {from}{where_clause} GROUP BY {by}",
                                period_of(g, &t),
                                self.dimension_columns(keep, &|d: &str| Self::member(d)),
                                aggs.join(", "),
                            ),
                            Periods::Trailing(n, g) => format!(
                                "SELECT __w.period AS period{}, {} FROM {from}{}{where_clause} GROUP BY {by}",
                                self.dimension_columns(keep, &|d: &str| Self::member(d)),
                                aggs.join(", "),
                                window(g, n, &period_of(g, &t)),
                            ),
                        }
                    })
                    .collect(),
            };
            self.ctes.push(format!(
                "{prefix}s{i} AS ({})",
                branches.join(" UNION ALL ")
            ));
            joins.push(format!(
                " LEFT JOIN {prefix}s{i} ON g.period = {prefix}s{i}.period{}",
                on_dims("g", &format!("{prefix}s{i}"))
            ));
            for m in members {
                let MetricKind::Simple { fill, .. } = &m.kind else {
                    unreachable!()
                };
                base_select.push(match fill {
                    Some(f) => format!(
                        "coalesce({prefix}s{i}.{name}, {}) AS {name}",
                        number(*f),
                        name = ident(&m.name)
                    ),
                    None => format!("{prefix}s{i}.{}", ident(&m.name)),
                });
            }
        }
        // Metrics that take the value of the window's last base period.
        let lasts: Vec<&Metric> = all.iter().copied().filter(|m| is_last(m)).collect();
        if let (Some(base), false) = (last_from, lasts.is_empty()) {
            let values: Vec<String> = lasts.iter().map(|m| ident(&m.name)).collect();
            let sql = match periods {
                Periods::Grain(g) => format!(
                    "SELECT {} AS period{}, {} FROM {base} GROUP BY 1{}",
                    period_of(g, "period"),
                    dims.iter().map(|d| format!(", {d}")).collect::<String>(),
                    values
                        .iter()
                        .map(|v| format!("last_value({v} ORDER BY period) AS {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    dims.iter().map(|d| format!(", {d}")).collect::<String>(),
                ),
                Periods::Trailing(..) => format!(
                    "SELECT period{}, {} FROM {base}",
                    dims.iter().map(|d| format!(", {d}")).collect::<String>(),
                    values.join(", ")
                ),
            };
            self.ctes.push(format!("{prefix}last AS ({sql})"));
            joins.push(format!(
                " LEFT JOIN {prefix}last ON g.period = {prefix}last.period{}",
                on_dims("g", &format!("{prefix}last"))
            ));
            base_select.extend(values.iter().map(|v| format!("{prefix}last.{v}")));
        }
        self.ctes.push(format!(
            "{prefix}l0 AS (SELECT {} FROM {prefix}grid g{})",
            base_select.join(", "),
            joins.concat()
        ));

        // Ratio and derived metrics, layered by dependency depth.
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        for m in all {
            let d = if matches!(m.kind, MetricKind::Simple { .. }) || is_last(m) {
                0
            } else {
                m.depends_on
                    .iter()
                    .map(|dep| depth.get(dep.as_str()).copied().unwrap_or(0) + 1)
                    .max()
                    .unwrap_or(0)
                    .max(1)
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
                        _ => unreachable!("relation metrics are not in grids"),
                    };
                    format!("{value} AS {}", ident(&m.name))
                })
                .collect();
            self.ctes.push(format!(
                "{prefix}l{level} AS (SELECT *, {} FROM {prefix}l{})",
                exprs.join(", "),
                level - 1
            ));
        }
        format!("{prefix}l{max_depth}")
    }
}

/// SQL of the table `table_name`, a metric table; `expand` resolves
/// `${param}` placeholders.
pub fn table_sql(
    catalog: &Catalog,
    table_name: &str,
    skipped: &BTreeSet<String>,
    expand: &dyn Fn(&str) -> String,
) -> Option<String> {
    Grid::of_table(catalog, table_name, skipped).map(|g| grid_sql(catalog, &g, expand))
}

/// SQL of a grid.
pub fn grid_sql(catalog: &Catalog, grid: &Grid, expand: &dyn Fn(&str) -> String) -> String {
    let dims: Vec<String> = grid.dimensions.iter().map(|d| ident(d)).collect();
    let mut p = Pipeline {
        catalog,
        grid,
        expand,
        dims: dims.clone(),
        ctes: Vec::new(),
    };
    let columns = |period_type: Option<&str>| -> String {
        let mut out = Vec::new();
        if let Some(t) = period_type {
            out.push(format!(
                "CAST({} AS VARCHAR) AS {}",
                literal(t),
                ident(grid.period_type_column)
            ));
        }
        out.push(format!("period AS {}", ident(grid.time_column)));
        out.extend(dims.iter().cloned());
        out.extend(grid.metrics.iter().map(|m| {
            let q = ident(m);
            if grid.skipped.contains(m) {
                // The column keeps its type; its table is absent.
                format!("CASE WHEN false THEN {q} END AS {q}")
            } else {
                q
            }
        }));
        out.join(", ")
    };
    let order_dims: String = dims.iter().map(|d| format!(", {d} NULLS LAST")).collect();
    if grid.period_types.is_empty() {
        let all = closure(catalog, grid.metrics, &|_| false);
        let last = p.run("", Periods::Grain(grid.grain), &all, None);
        return format!(
            "WITH {}
SELECT {} FROM {last} ORDER BY period{order_dims}",
            p.ctes.join(
                ",
"
            ),
            columns(None)
        );
    }
    // The base grain first: every metric, and what `last` metrics need.
    let all = closure(catalog, grid.metrics, &|_| false);
    let base = p.run("b_", Periods::Grain(grid.grain), &all, None);
    let mut selects = Vec::new();
    for (i, t) in grid.period_types.iter().enumerate() {
        let name = t.name();
        let last = if *t == PeriodType::Grain(grid.grain) {
            base.clone()
        } else {
            let cut = closure(catalog, grid.metrics, &|m| m.rollup == Rollup::Last);
            let periods = match t {
                PeriodType::Grain(g) => Periods::Grain(*g),
                PeriodType::Trailing(n, _) => Periods::Trailing(*n, grid.grain),
            };
            p.run(&format!("p{i}_"), periods, &cut, Some(&base))
        };
        selects.push(format!(
            "SELECT {}, {i} AS __type FROM {last}",
            columns(Some(&name))
        ));
    }
    let order: String = std::iter::once("__type".to_string())
        .chain(std::iter::once(ident(grid.time_column)))
        .chain(dims.iter().map(|d| format!("{d} NULLS LAST")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = vec![ident(grid.period_type_column), ident(grid.time_column)];
    out.extend(dims.iter().cloned());
    out.extend(grid.metrics.iter().map(|m| ident(m)));
    format!(
        "WITH {},
__stack AS ({})
SELECT {} FROM __stack ORDER BY {order}",
        p.ctes.join(
            ",
"
        ),
        selects.join(
            "
UNION ALL "
        ),
        out.join(", ")
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

/// A number literal that keeps integers integral, so counts stay BIGINT.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}
