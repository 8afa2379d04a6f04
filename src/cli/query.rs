use std::path::PathBuf;

use clap::Args;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{Result, VitalsError};
use crate::publish::Target;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A SQL query over the published tables.
    pub sql: String,
    /// The folder a build published to.
    #[arg(long, default_value = "target/vitals")]
    pub target: PathBuf,
}

/// Runs SQL over the tables of the published build, reading exactly the
/// files its manifest lists.
pub async fn run(args: QueryArgs) -> Result<()> {
    let manifest = Target::read_manifest(&args.target)?.ok_or_else(|| {
        VitalsError::Usage(format!(
            "no published build in {} (no _manifest.json); run `vitals build --target {}` first",
            args.target.display(),
            args.target.display()
        ))
    })?;
    let ctx = SessionContext::new();
    for (name, entry) in &manifest.tables {
        let files: Vec<String> = entry
            .files
            .iter()
            .map(|f| args.target.join(f).display().to_string())
            .collect();
        let df = ctx
            .read_parquet(files, ParquetReadOptions::default())
            .await
            .map_err(|e| VitalsError::data(format!("table {name}"), e))?;
        ctx.register_table(name.as_str(), df.into_view())
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
