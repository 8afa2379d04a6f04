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
    let (prepared, _) = prepare(
        &args.catalog,
        &locations,
        None,
        &[],
        &session_options(None),
        false,
    )
    .await?;
    for t in &prepared.catalog.tables {
        prepared.plan_table(&t.name).await?;
    }
    let c = &prepared.catalog;
    println!(
        "{} is valid: {} sources, {} models, {} metrics, {} tables",
        args.catalog.display(),
        c.sources.len(),
        c.models.len(),
        c.metrics.len(),
        c.tables.len()
    );
    Ok(())
}
