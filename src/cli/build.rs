use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use crate::build::{BuildOptions, run as run_build};
use crate::error::Result;
use crate::progress::ProgressMode;

use super::{DataArgs, parse_bytes, parse_date, session_options};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The catalog file [default: ./metrics.toml, else the built-in catalog]
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder: a path or a URL (s3://bucket/prefix, gs://, az://).
    #[arg(long, default_value = "target/vitals")]
    pub target: String,
    /// The date the build reports up to (default: the catalog's, else today).
    #[arg(long, value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    /// Build only these tables (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub select: Vec<String>,
    /// Memory DataFusion may use before spilling, e.g. 2GB.
    #[arg(long, value_parser = parse_bytes)]
    pub memory_limit: Option<usize>,
    /// Print no progress lines.
    #[arg(long, short, conflicts_with = "progress")]
    pub quiet: bool,
    /// On a terminal, keep a status line with the step running, its time
    /// and how far the build is (default: a line per step, for logs).
    #[arg(long)]
    pub progress: bool,
    /// If another build is writing the target, wait for it to end instead
    /// of failing at once (exit code 3).
    #[arg(long)]
    pub wait: bool,
    /// Builds kept on the target after publishing: this one and those
    /// before it (readers of an older manifest may still read its files).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_builds: u32,
}

pub async fn run(args: BuildArgs) -> Result<()> {
    let options = BuildOptions {
        catalog: super::catalog_path_noting(&args.catalog, !args.quiet)?,
        locations: args.data.locations()?,
        target: args.target.clone(),
        as_of: args.as_of,
        select: args.select,
        session: session_options(args.memory_limit),
        progress: match (args.quiet, args.progress) {
            (true, _) => ProgressMode::Quiet,
            (false, true) => ProgressMode::Live,
            (false, false) => ProgressMode::Lines,
        },
        wait: args.wait,
        keep_builds: args.keep_builds as usize,
    };
    let manifest = run_build(&options).await?;
    let rows: u64 = manifest.tables.values().map(|t| t.rows).sum();
    eprintln!(
        "published build {} to {}: {}, {} (as of {})",
        manifest.build_id,
        args.target,
        super::validate::count(manifest.tables.len(), "table"),
        super::validate::count(rows as usize, "row"),
        manifest.as_of
    );
    Ok(())
}
