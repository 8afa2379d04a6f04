use std::path::PathBuf;

use clap::Args;

use crate::build::{Prepared, prepare};
use crate::catalog::diagnostic::suggestion;
use crate::catalog::{Grain, TableKind};
use crate::compile::metrics::{Grid, grid_sql};
use crate::error::{Result, VitalsError};

use super::{DataArgs, session_options};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A table, metric or model of the catalog.
    pub name: String,
    /// The catalog file [default: ./metrics.toml, else the built-in catalog]
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Also print DataFusion's optimized logical plan.
    #[arg(long)]
    pub plan: bool,
    /// Run the query on the data and print DataFusion's physical plan with
    /// each operator's rows and time (EXPLAIN ANALYZE): where a slow table
    /// spends its time. Models are computed inline, from the sources.
    #[arg(long, requires = "data")]
    pub analyze: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

pub async fn run(args: ExplainArgs) -> Result<()> {
    let mut locations = args.data.locations()?;
    locations.empty = args.data.data.is_none() && args.data.sources.is_empty();
    let catalog_path = super::catalog_path(&args.catalog)?;
    let (prepared, _) = prepare(
        &catalog_path,
        &locations,
        None,
        &[],
        &session_options(None),
        false,
    )
    .await?;
    let catalog = &prepared.catalog;
    let name = args.name.as_str();
    let sql = if let Some(table) = catalog.table(name) {
        // A table that publishes a model as it is: its own SQL only reads
        // the model, so show the model's first (a score or cohort's is
        // written by vitals, and this is where an analyst looks for it).
        if let TableKind::Model { model, .. } = &table.kind
            && catalog.model(model).is_some()
        {
            let (header, sql) = model_sql(&prepared, model);
            println!("{header}\n{sql}\n");
        }
        println!("-- table {name}");
        prepared.table_sql(name)
    } else if let Some(metric) = catalog.metric(name).filter(|m| !m.is_relation()) {
        // A metric alone, at the grain and dimensions of its first table.
        let metrics = [name.to_string()];
        let none = std::collections::BTreeSet::new();
        let home = catalog
            .tables
            .iter()
            .filter_map(|t| Grid::of_table(catalog, &t.name, &none))
            .find(|g| g.metrics.iter().any(|m| m == name));
        let grid = match home {
            Some(g) => Grid {
                metrics: &metrics,
                period_types: &[],
                ..g
            },
            None => Grid {
                metrics: &metrics,
                grain: Grain::Month,
                dimensions: &[],
                totals: &[],
                time_column: "month",
                period_types: &[],
                period_type_column: "period_type",
                skipped: &none,
            },
        };
        println!(
            "-- metric {name} ({}) by {}{}",
            metric.kind_name(),
            grid.grain.name(),
            grid.dimensions
                .iter()
                .map(|d| format!(", {d}"))
                .collect::<String>()
        );
        if let Some(d) = &metric.description {
            println!("-- {d}");
        }
        grid_sql(catalog, &grid, &|s| prepared.expand(s))
    } else if catalog.model(name).is_some() {
        let (header, sql) = model_sql(&prepared, name);
        println!("{header}");
        sql
    } else {
        let names = catalog
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .chain(catalog.metrics.iter().map(|m| m.name.as_str()))
            .chain(catalog.models.iter().map(|m| m.name.as_str()))
            .collect::<std::collections::BTreeSet<_>>();
        return Err(VitalsError::Usage(format!(
            "`{name}` is not a table, metric or model of {}; {}",
            catalog_path.display(),
            suggestion(name, "name", names)
        )));
    };
    println!("{sql}");
    if args.plan {
        let df = prepared
            .ctx
            .sql(&sql)
            .await
            .map_err(|e| VitalsError::data(format!("planning {name}"), e))?;
        let plan = df
            .into_optimized_plan()
            .map_err(|e| VitalsError::data(format!("optimizing {name}"), e))?;
        println!("\n-- optimized logical plan\n{}", plan.display_indent());
    }
    if args.analyze {
        let df = prepared
            .ctx
            .sql(&format!("EXPLAIN ANALYZE {sql}"))
            .await
            .map_err(|e| VitalsError::data(format!("planning {name}"), e))?;
        let batches = df
            .collect()
            .await
            .map_err(|e| VitalsError::data(format!("running {name}"), e))?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| VitalsError::data(format!("printing the plan of {name}"), e))?;
        println!("\n-- physical plan with metrics (EXPLAIN ANALYZE)\n{text}");
    }
    Ok(())
}

/// A comment line that says where a model comes from, and its SQL.
fn model_sql(prepared: &Prepared, name: &str) -> (String, String) {
    let catalog = &prepared.catalog;
    let model = catalog.model(name).expect("a model of the catalog");
    let header = match &model.metric {
        Some(m) => format!(
            "-- {} metric {m} (SQL written by vitals)",
            catalog.metric(m).map_or("", |m| m.kind_name())
        ),
        None => format!(
            "-- model {name} ({})",
            catalog.relative(&model.sql_path).display()
        ),
    };
    (header, prepared.expand(&model.sql.text))
}
