use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use clap::Args;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::build::{BuildOptions, run as run_build};
use crate::error::{Result, VitalsError};
use crate::execute::SourceLocations;
use crate::execute::calendar::month_end;
use crate::generate::{GenerateOptions, generate};
use crate::publish::Manifest;

use super::session_options;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for the sample data and the build.
    #[arg(long, default_value = "vitals-demo")]
    pub dir: PathBuf,
    /// The catalog; when the file does not exist, the built-in one is used.
    #[arg(long, default_value = "metrics.toml")]
    pub catalog: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub customers: u64,
    #[arg(long, default_value_t = 24)]
    pub months: u32,
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let data = args.dir.join("data");
    let out = args.dir.join("out");
    let mut options = GenerateOptions::new(data.clone());
    options.customers = args.customers;
    options.months = args.months;
    eprintln!(
        "generating {} customers x {} months into {}",
        args.customers,
        args.months,
        data.display()
    );
    generate(&options).map_err(|e| VitalsError::data("generate", e))?;
    let as_of = month_end(options.last_month);
    let catalog = if args.catalog.exists() {
        args.catalog.clone()
    } else {
        crate::shipped::write_to(&args.dir.join("catalog"))
            .map_err(|e| VitalsError::data("writing the built-in catalog", e))?
    };
    let manifest = run_build(&BuildOptions {
        catalog,
        locations: SourceLocations {
            data_dir: Some(data.display().to_string()),
            ..Default::default()
        },
        target: out.display().to_string(),
        as_of: Some(as_of),
        select: Vec::new(),
        session: session_options(None),
        progress: crate::progress::ProgressMode::Lines,
        wait: false,
        keep_builds: 2,
    })
    .await?;
    print_summary(&out, &manifest, as_of).await
}

async fn print_summary(out: &Path, manifest: &Manifest, as_of: NaiveDate) -> Result<()> {
    let ctx = SessionContext::new();
    for table in ["mrr_movements_monthly", "saas_kpis_monthly"] {
        let Some(entry) = manifest.tables.get(table) else {
            continue;
        };
        let files: Vec<String> = entry
            .files
            .iter()
            .map(|f| out.join(f).display().to_string())
            .collect();
        let df = ctx
            .read_parquet(files, ParquetReadOptions::default())
            .await
            .map_err(|e| VitalsError::data(table, e))?;
        ctx.register_table(table, df.into_view())
            .map_err(|e| VitalsError::data(table, e))?;
    }
    let first = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 1).expect("valid")
        - chrono::Months::new(5);
    let sql = format!(
        "SELECT m.month, round(m.mrr_end, 0) AS mrr, round(m.new_mrr, 0) AS new, round(m.expansion_mrr, 0) AS expansion, \
         round(m.reactivation_mrr, 0) AS reactivation, round(m.contraction_mrr, 0) AS contraction, round(m.churned_mrr, 0) AS churned, \
         m.customers_end AS customers, round(100 * k.customer_churn_rate, 2) AS churn_pct, round(100 * k.nrr, 1) AS nrr_pct, \
         round(100 * k.nrr_12m, 1) AS nrr_12m_pct \
         FROM mrr_movements_monthly m JOIN saas_kpis_monthly k ON m.month = k.month AND k.segment IS NULL \
         WHERE m.segment IS NULL AND m.month >= DATE '{first}' ORDER BY m.month"
    );
    let df = ctx
        .sql(&sql)
        .await
        .map_err(|e| VitalsError::data("demo summary", e))?;
    println!("\nMRR, movements, churn and NRR of the last months (all segments), as of {as_of}:");
    df.show()
        .await
        .map_err(|e| VitalsError::data("demo summary", e))?;
    println!(
        "\nAll tables are in {} (see _manifest.json).",
        out.display()
    );
    Ok(())
}
