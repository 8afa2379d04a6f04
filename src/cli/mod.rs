//! The command line: one file per subcommand. Arguments are parsed here,
//! checked into the options of each stage, and errors are mapped to exit
//! codes in `main.rs`.

mod build;
mod demo;
mod explain;
mod gc;
mod generate;
mod list;
mod query;
mod serve;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::error::{Result, VitalsError};
use crate::execute::{SessionOptions, SourceLocations};

#[derive(Debug, Parser)]
#[command(
    name = "vitals",
    version,
    about = "SaaS metrics from Parquet, on Apache DataFusion"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the catalog's tables and publish them to the target.
    Build(build::BuildArgs),
    /// Check the catalog (names, references, cycles, SQL) without data.
    Validate(CatalogArgs),
    /// List the tables and metrics of the catalog and what they read.
    List(CatalogArgs),
    /// Show the SQL that a table, metric or model compiles to.
    Explain(explain::ExplainArgs),
    /// Run SQL over the tables of the published build.
    Query(query::QueryArgs),
    /// Serve the published tables to BI tools over the Postgres protocol.
    Serve(serve::ServeArgs),
    /// Remove old builds from a target, keeping the newest ones.
    Gc(gc::GcArgs),
    /// Write deterministic sample data for all input tables.
    Generate(generate::GenerateArgs),
    /// Generate a small dataset, build it and print the latest months.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args, Clone)]
pub struct CatalogArgs {
    /// The catalog file [default: ./metrics.toml, else the built-in catalog]
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

/// The catalog to use: the one given, else `./metrics.toml`, else the
/// built-in catalog compiled into the binary (so that `vitals build` works
/// from any folder).
pub fn catalog_path(given: &Option<PathBuf>) -> Result<PathBuf> {
    catalog_path_noting(given, true)
}

/// [`catalog_path`], saying on stderr that the built-in catalog is used
/// only if `note` (not under `vitals build --quiet`).
pub fn catalog_path_noting(given: &Option<PathBuf>, note: bool) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let local = PathBuf::from("metrics.toml");
    if local.exists() {
        return Ok(local);
    }
    let path = crate::shipped::materialize()
        .map_err(|e| VitalsError::data("writing the built-in catalog", e))?;
    if note {
        eprintln!(
            "no metrics.toml here: using the built-in catalog ({})",
            path.display()
        );
    }
    Ok(path)
}

/// Where the data is: shared by `build` and `explain`.
#[derive(Debug, Args, Clone, Default)]
pub struct DataArgs {
    /// Folder with one sub-folder (or `.parquet` file) per source table:
    /// a path or a URL (s3://bucket/prefix, gs://, az://).
    #[arg(long)]
    pub data: Option<String>,
    /// A source's location, overriding the catalog: TABLE=PATH (repeatable).
    #[arg(long = "source", value_name = "TABLE=PATH")]
    pub sources: Vec<String>,
}

impl DataArgs {
    pub fn locations(&self) -> Result<SourceLocations> {
        let mut overrides = BTreeMap::new();
        for s in &self.sources {
            let (table, path) = s
                .split_once('=')
                .ok_or_else(|| VitalsError::Usage(format!("--source `{s}`: write TABLE=PATH")))?;
            overrides.insert(table.trim().to_string(), path.trim().to_string());
        }
        Ok(SourceLocations {
            data_dir: self.data.clone(),
            overrides,
            empty: false,
        })
    }
}

pub fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date: write YYYY-MM-DD"))
}

/// `2GB`, `512MB`, `1.5G` or a number of bytes.
pub fn parse_bytes(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write e.g. 2GB or 512MB"))?;
    let scale = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("`{s}`: unknown unit; use KB, MB, GB or TB")),
    };
    Ok((n * scale) as usize)
}

pub fn session_options(memory_limit: Option<usize>) -> SessionOptions {
    SessionOptions {
        memory_limit,
        // For measuring: a score's population rows per slice
        // (`execute::entity_slices`); a number too large to reach turns
        // slicing off; anything but a positive number keeps the default.
        score_slice_rows: std::env::var("VITALS_SCORE_SLICE_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|rows: &u64| *rows > 0),
        ..Default::default()
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build::run(args).await,
        Command::Validate(args) => validate::run(args).await,
        Command::List(args) => list::run(args),
        Command::Explain(args) => explain::run(args).await,
        Command::Query(args) => query::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Gc(args) => gc::run(args).await,
        Command::Generate(args) => generate::run(args),
        Command::Demo(args) => demo::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GB").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_bytes("512mb").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("lots").is_err());
    }
}
