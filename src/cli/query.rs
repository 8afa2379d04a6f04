use clap::Args;
use datafusion::prelude::SessionContext;

use crate::error::{Result, VitalsError};
use crate::publish::{Target, published_tables};
use crate::storage::{Location, StorageOptions};

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A SQL query over the published tables.
    pub sql: String,
    /// Where a build published: a path or a URL (s3://bucket/prefix, ...).
    #[arg(long, default_value = "target/vitals")]
    pub target: String,
}

/// Runs SQL over the tables of the published build, reading exactly the
/// files its manifest lists.
pub async fn run(args: QueryArgs) -> Result<()> {
    // A reader has no catalog: the store's settings come from the
    // environment (AWS_ENDPOINT_URL, ...).
    let target = Location::parse(
        &args.target,
        std::path::Path::new("."),
        &StorageOptions::default(),
    )?;
    let manifest = Target::read_manifest(&target).await?.ok_or_else(|| {
        VitalsError::Usage(format!(
            "no published build in {0} (no _manifest.json); run `vitals build --target {0}` first",
            args.target,
        ))
    })?;
    let ctx = SessionContext::new();
    crate::execute::register_exceptions(&ctx);
    target.register(&ctx);
    for (name, table) in published_tables(&ctx, &target, &manifest).await? {
        ctx.register_table(name.as_str(), table)
            .map_err(|e| VitalsError::data(format!("table {name}"), e))?;
    }
    let df = ctx
        .sql(&args.sql)
        .await
        .map_err(|e| VitalsError::Usage(format!("query: {e}")))?;
    let batches = df
        .collect()
        .await
        .map_err(|e| VitalsError::data("query", e))?;
    let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map_err(|e| VitalsError::data("query", e))?;
    // A reader that stops early (`| head`) is not an error.
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{table}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(VitalsError::Data(format!("writing the result: {e}")))
        }
        _ => Ok(()),
    }
}
