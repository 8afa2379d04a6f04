use std::path::PathBuf;

use clap::Args;

use crate::error::{Result, VitalsError};
use crate::generate::{GenerateOptions, generate};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output folder: one sub-folder per table.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub customers: u64,
    #[arg(long, default_value_t = 36)]
    pub months: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let mut options = GenerateOptions::new(args.out.clone());
    options.customers = args.customers;
    options.months = args.months;
    options.seed = args.seed;
    let summary = generate(&options).map_err(|e| VitalsError::data("generate", e))?;
    for t in &summary.tables {
        eprintln!(
            "{:<18} {:>12} rows ({} bad) in {} file(s)",
            t.table, t.rows, t.bad_rows, t.files
        );
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
