use crate::build::prepare;
use crate::error::Result;
use crate::execute::SourceLocations;

use super::{CatalogArgs, session_options};

/// Checks the catalog and plans every model and table against empty
/// sources: catches unknown columns in SQL without any data.
pub async fn run(args: CatalogArgs) -> Result<()> {
    let locations = SourceLocations {
        empty: true,
        ..Default::default()
    };
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
    prepared
        .plan_tables(prepared.catalog.tables.iter().map(|t| t.name.as_str()))
        .await?;
    let c = &prepared.catalog;
    println!(
        "{} is valid: {}, {}, {}, {}",
        catalog_path.display(),
        count(c.sources.len(), "source"),
        count(c.models.len(), "model"),
        count(c.metrics.len(), "metric"),
        count(c.tables.len(), "table")
    );
    Ok(())
}

/// "1 table", "2 tables".
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
