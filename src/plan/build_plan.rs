use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::diagnostic::suggestion;
use crate::catalog::{Catalog, Metric, MetricKind, Table, TableKind};

use super::dag::topological;

/// The work of one build: which tables, and which models they need, in an
/// order where every model comes after the models it reads.
#[derive(Debug)]
pub struct BuildPlan<'c> {
    pub tables: Vec<&'c Table>,
    pub models: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("--select names `{name}`, which is not an output table; {hint}")]
pub struct SelectionError {
    pub name: String,
    pub hint: String,
}

impl<'c> BuildPlan<'c> {
    /// Plans the tables named in `select` (all when empty).
    pub fn new(catalog: &'c Catalog, select: &[String]) -> Result<Self, SelectionError> {
        let tables: Vec<&Table> = if select.is_empty() {
            catalog.tables.iter().collect()
        } else {
            let mut chosen = Vec::new();
            for name in select {
                let t = catalog.table(name).ok_or_else(|| SelectionError {
                    name: name.clone(),
                    hint: suggestion(
                        name,
                        "table",
                        catalog.tables.iter().map(|t| t.name.as_str()),
                    ),
                })?;
                if !chosen.iter().any(|c: &&Table| c.name == t.name) {
                    chosen.push(t);
                }
            }
            chosen
        };
        let wanted: BTreeSet<&str> = tables
            .iter()
            .flat_map(|t| relations_of(catalog, t))
            .collect();
        let edges = crate::catalog::model_edges(&catalog.models);
        let models = topological(
            &edges,
            wanted.into_iter().filter(|r| catalog.model(r).is_some()),
        )
        .into_iter()
        .map(str::to_string)
        .collect();
        Ok(Self { tables, models })
    }
}

/// The relations a table reads directly: its model, or its metrics' models
/// and its dimensions' member relations.
pub fn relations_of<'c>(catalog: &'c Catalog, table: &'c Table) -> Vec<&'c str> {
    match &table.kind {
        TableKind::Model { model, .. } => vec![model.as_str()],
        TableKind::Metrics {
            metrics,
            dimensions,
            ..
        } => {
            let mut out: Vec<&str> = dimensions
                .iter()
                .filter_map(|d| catalog.dimension(d))
                .filter_map(|d| d.relation())
                .collect();
            for m in metric_closure(catalog, metrics) {
                if let Some(MetricKind::Simple { model, .. }) = catalog.metric(m).map(|m| &m.kind) {
                    out.push(model.as_str());
                }
            }
            out
        }
    }
}

/// `metrics` and every metric they are computed from, dependencies first.
pub fn metric_closure<'c>(catalog: &'c Catalog, metrics: &'c [String]) -> Vec<&'c str> {
    metric_closure_cut(catalog, metrics, &|_| false)
}

/// The same, leaving out what the `cut` metrics are computed from.
pub fn metric_closure_cut<'c>(
    catalog: &'c Catalog,
    metrics: &'c [String],
    cut: &dyn Fn(&Metric) -> bool,
) -> Vec<&'c str> {
    let edges: BTreeMap<&str, Vec<&str>> = catalog
        .metrics
        .iter()
        .map(|m| {
            let deps = if cut(m) {
                Vec::new()
            } else {
                m.depends_on.iter().map(String::as_str).collect()
            };
            (m.name.as_str(), deps)
        })
        .collect();
    topological(&edges, metrics.iter().map(String::as_str))
}
