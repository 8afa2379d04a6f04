use std::path::PathBuf;

use clap::Args;

use crate::build::prepare;
use crate::catalog::diagnostic::suggestion;
use crate::catalog::{Grain, TableKind};
use crate::compile::metrics::grid_sql;
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
    let sql = if catalog.table(name).is_some() {
        println!("-- table {name}");
        prepared.table_sql(name)
    } else if let Some(metric) = catalog.metric(name) {
        // A metric alone, at the grain and dimensions of its first table.
        let home = catalog.tables.iter().find_map(|t| match &t.kind {
            TableKind::Metrics {
                metrics,
                grain,
                dimensions,
                time_column,
            } if metrics.iter().any(|m| m == name) => {
                Some((*grain, dimensions.clone(), time_column.clone()))
            }
            _ => None,
        });
        let (grain, dimensions, time_column) =
            home.unwrap_or((Grain::Month, Vec::new(), "month".into()));
        println!(
            "-- metric {name} ({}) by {}{}",
            metric.kind_name(),
            grain.name(),
            dimensions
                .iter()
                .map(|d| format!(", {d}"))
                .collect::<String>()
        );
        if let Some(d) = &metric.description {
            println!("-- {d}");
        }
        grid_sql(
            catalog,
            &[name.to_string()],
            grain,
            &dimensions,
            &time_column,
            &|s| prepared.expand(s),
        )
    } else if let Some(model) = catalog.model(name) {
        println!(
            "-- model {name} ({})",
            catalog.relative(&model.sql_path).display()
        );
        prepared.expand(&model.sql.text)
    } else {
        let names = catalog
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .chain(catalog.metrics.iter().map(|m| m.name.as_str()))
            .chain(catalog.models.iter().map(|m| m.name.as_str()));
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
    Ok(())
}
