//! What a build leaves out because optional input tables are absent.
//!
//! A source with `when_absent = "skip"` (the default of optional tables)
//! that has no files makes every model, metric and table that reads it,
//! directly or through other models, skipped: a metric table keeps its
//! shape with the skipped metrics as null columns, and a table with
//! nothing left, or a model table, is not published. Sources whose absence
//! has a meaning (`when_absent = "empty"`: no customers, no fx rates) are
//! read as empty and skip nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Catalog, MetricKind, TableKind};

#[derive(Debug, Default, Clone)]
pub struct Skips {
    /// Absent tables that skip what needs them.
    pub absent: BTreeSet<String>,
    /// Grid metrics that need an absent table, with the tables they need.
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    /// Output tables left out entirely, with the absent tables they need.
    pub tables: BTreeMap<String, BTreeSet<String>>,
}

impl Skips {
    /// `absent`: the optional sources that have no files.
    pub fn new(catalog: &Catalog, absent: &[String]) -> Skips {
        let absent: BTreeSet<String> = absent
            .iter()
            .filter(|a| catalog.source(a).is_some_and(|s| !s.empty_when_absent))
            .cloned()
            .collect();
        if absent.is_empty() {
            return Skips::default();
        }
        let mut relation_needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in &absent {
            relation_needs.insert(a.clone(), BTreeSet::from([a.clone()]));
        }
        // Models in dependency order, each needing what its reads need.
        let edges = crate::catalog::model_edges(&catalog.models);
        let order = super::dag::topological(&edges, catalog.models.iter().map(|m| m.name.as_str()));
        for name in order {
            let model = catalog.model(name).expect("model of the catalog");
            let needs: BTreeSet<String> = model
                .reads
                .iter()
                .filter_map(|r| relation_needs.get(r))
                .flatten()
                .cloned()
                .collect();
            relation_needs.insert(name.to_string(), needs);
        }
        let of = |r: &str| relation_needs.get(r).cloned().unwrap_or_default();

        let mut metric_needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let names: Vec<String> = catalog.metrics.iter().map(|m| m.name.clone()).collect();
        for name in super::metric_closure(catalog, &names) {
            let m = catalog.metric(name).expect("metric of the catalog");
            let needs: BTreeSet<String> = match &m.kind {
                MetricKind::Simple { model, .. } => of(model),
                MetricKind::Cohort(_) | MetricKind::Score(_) => of(&m.name),
                MetricKind::Ratio { .. } | MetricKind::Derived { .. } => m
                    .depends_on
                    .iter()
                    .filter_map(|d| metric_needs.get(d))
                    .flatten()
                    .cloned()
                    .collect(),
            };
            metric_needs.insert(name.to_string(), needs);
        }

        let mut skips = Skips {
            absent,
            ..Skips::default()
        };
        for t in &catalog.tables {
            match &t.kind {
                TableKind::Model { model, .. } => {
                    let needs = of(model);
                    if !needs.is_empty() {
                        skips.tables.insert(t.name.clone(), needs);
                    }
                }
                TableKind::Metrics {
                    metrics,
                    dimensions,
                    ..
                } => {
                    let dim_needs: BTreeSet<String> = dimensions
                        .iter()
                        .filter_map(|d| catalog.dimension(d).and_then(|d| d.relation()))
                        .flat_map(of)
                        .collect();
                    let skipped: Vec<&String> = metrics
                        .iter()
                        .filter(|m| metric_needs.get(*m).is_some_and(|n| !n.is_empty()))
                        .collect();
                    if !dim_needs.is_empty() || skipped.len() == metrics.len() {
                        let mut needs = dim_needs;
                        for m in &skipped {
                            needs.extend(metric_needs[*m].iter().cloned());
                        }
                        skips.tables.insert(t.name.clone(), needs);
                    } else {
                        for m in skipped {
                            skips.metrics.insert(m.clone(), metric_needs[m].clone());
                        }
                    }
                }
            }
        }
        skips
    }

    /// The skipped metrics, for the SQL of a grid.
    pub fn metric_names(&self) -> BTreeSet<String> {
        self.metrics.keys().cloned().collect()
    }

    /// One line per absent table: what it skipped.
    pub fn report(&self, catalog: &Catalog) -> Vec<String> {
        self.absent
            .iter()
            .map(|a| {
                let tables: Vec<&str> = self
                    .tables
                    .iter()
                    .filter(|(_, n)| n.contains(a))
                    .map(|(t, _)| t.as_str())
                    .collect();
                let columns: Vec<String> = catalog
                    .tables
                    .iter()
                    .filter(|t| !self.tables.contains_key(&t.name))
                    .flat_map(|t| match &t.kind {
                        TableKind::Metrics { metrics, .. } => metrics
                            .iter()
                            .filter(|m| self.metrics.get(*m).is_some_and(|n| n.contains(a)))
                            .map(|m| format!("{}.{m}", t.name))
                            .collect(),
                        TableKind::Model { .. } => Vec::new(),
                    })
                    .collect();
                let mut parts = Vec::new();
                if !tables.is_empty() {
                    parts.push(format!(
                        "skipped table{} {}",
                        plural(tables.len()),
                        tables.join(", ")
                    ));
                }
                if !columns.is_empty() {
                    parts.push(format!(
                        "null column{} {}",
                        plural(columns.len()),
                        columns.join(", ")
                    ));
                }
                if parts.is_empty() {
                    parts.push("nothing needs it".into());
                }
                format!("input table `{a}` is absent: {}", parts.join("; "))
            })
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
