use crate::catalog::{self, Catalog, MetricKind, TableKind};
use crate::error::Result;
use crate::plan::relations_of;

use super::CatalogArgs;

pub fn run(args: CatalogArgs) -> Result<()> {
    let catalog = catalog::load(&super::catalog_path(&args.catalog)?)?;
    print!("{}", render(&catalog));
    Ok(())
}

/// The sources (transitively) behind a relation.
fn sources_of(catalog: &Catalog, relation: &str, out: &mut Vec<String>) {
    if catalog.source(relation).is_some() || relation == "rejected_rows" {
        let name = if relation == "rejected_rows" {
            "all sources".to_string()
        } else {
            relation.to_string()
        };
        if !out.contains(&name) {
            out.push(name);
        }
    } else if let Some(m) = catalog.model(relation) {
        for r in &m.reads {
            sources_of(catalog, r, out);
        }
    }
}

pub fn render(catalog: &Catalog) -> String {
    let mut s = String::from("TABLES\n");
    for t in &catalog.tables {
        let mut sources = Vec::new();
        for r in relations_of(catalog, t) {
            sources_of(catalog, r, &mut sources);
        }
        let what = match &t.kind {
            TableKind::Model { model, .. } => format!("model {model}"),
            TableKind::Metrics {
                metrics,
                grain,
                dimensions,
                ..
            } => format!(
                "{} metrics by {}{}",
                metrics.len(),
                grain.name(),
                dimensions
                    .iter()
                    .map(|d| format!(", {d}"))
                    .collect::<String>()
            ),
        };
        s.push_str(&format!(
            "  {:<26} {what}; reads {}\n",
            t.name,
            sources.join(", ")
        ));
    }
    s.push_str("\nMETRICS\n");
    for m in &catalog.metrics {
        let from = match &m.kind {
            MetricKind::Simple { model, .. } => {
                let mut sources = Vec::new();
                sources_of(catalog, model, &mut sources);
                format!("{model} ({})", sources.join(", "))
            }
            // A relation: what its generated model reads.
            MetricKind::Cohort(_) | MetricKind::Score(_) => {
                let mut sources = Vec::new();
                sources_of(catalog, &m.name, &mut sources);
                format!("relation ({})", sources.join(", "))
            }
            _ => m.depends_on.join(", "),
        };
        s.push_str(&format!("  {:<32} {:<8} {from}\n", m.name, m.kind_name()));
    }
    s
}
