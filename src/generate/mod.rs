//! Deterministic sample data: a SaaS company's customers, subscriptions,
//! usage, tickets, surveys, acquisition spend and exchange rates, written as
//! Parquet datasets that follow the input contract (`inputs.md`), with the
//! awkward cases real sources have and a small share of rows that break the
//! contract on purpose (every reason of its "Bad rows" table).
//!
//! Customers are generated one after the other, each from its own random
//! stream derived from `(seed, customer index)`, and their rows are appended
//! to per-table writers that flush a row group every 128k rows: memory stays
//! bounded whatever the number of customers, and the same options always
//! give the same bytes.

mod activity;
mod calendar;
mod customers;
mod rng;
mod spend;
mod subscriptions;
mod tables;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use chrono::NaiveDate;

use calendar::Calendar;
use customers::Profile;
use spend::NewCustomers;
use subscriptions::History;
use tables::{AcquisitionSpend, Customers, FxRates, Subscriptions, Surveys, Tickets, Usage};
use writer::{Limits, TableWriter};

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Output folder; each table goes to `<out>/<table>/part-NNNNN.parquet`.
    pub out: PathBuf,
    /// Number of customers.
    pub customers: u64,
    /// Number of months of history, ending with `last_month`.
    pub months: u32,
    /// Seed of all random choices.
    pub seed: u64,
    /// First day of the last generated month (any day of it is accepted).
    pub last_month: NaiveDate,
}

impl GenerateOptions {
    /// 1000 customers, 36 months up to December 2025, seed 42.
    pub fn new(out: PathBuf) -> Self {
        GenerateOptions {
            out,
            customers: 1000,
            months: 36,
            seed: 42,
            last_month: NaiveDate::from_ymd_opt(2025, 12, 1).expect("valid date"),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// One entry per table, in the order customers, subscriptions, usage,
    /// tickets, surveys, acquisition_spend, fx_rates.
    pub tables: Vec<TableSummary>,
}

/// Rows and files written for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub table: String,
    /// All rows written, bad rows included.
    pub rows: u64,
    /// Rows that break the input contract on purpose (each counted once).
    pub bad_rows: u64,
    /// Part files written.
    pub files: usize,
}

/// Why generating failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generate options: {0}")]
    InvalidOptions(String),
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Parquet error writing {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("Arrow error building a batch for {}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
}

/// The writers of all tables.
struct Writers {
    customers: TableWriter<Customers>,
    subscriptions: TableWriter<Subscriptions>,
    usage: TableWriter<Usage>,
    tickets: TableWriter<Tickets>,
    surveys: TableWriter<Surveys>,
    spend: TableWriter<AcquisitionSpend>,
    fx: TableWriter<FxRates>,
}

impl Writers {
    fn create(opts: &GenerateOptions, limits: Limits) -> Result<Self, GenerateError> {
        let out = opts.out.as_path();
        Ok(Writers {
            customers: TableWriter::create(out, limits)?,
            subscriptions: TableWriter::create(out, limits)?,
            usage: TableWriter::create(out, limits)?,
            tickets: TableWriter::create(out, limits)?,
            surveys: TableWriter::create(out, limits)?,
            spend: TableWriter::create(out, limits)?,
            fx: TableWriter::create(out, limits)?,
        })
    }

    fn finish(self) -> Result<GenerateSummary, GenerateError> {
        Ok(GenerateSummary {
            tables: vec![
                self.customers.finish()?,
                self.subscriptions.finish()?,
                self.usage.finish()?,
                self.tickets.finish()?,
                self.surveys.finish()?,
                self.spend.finish()?,
                self.fx.finish()?,
            ],
        })
    }
}

/// Writes all seven tables under `opts.out`, replacing the part files of a
/// previous run. The same options always produce the same bytes.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary, GenerateError> {
    generate_with(opts, Limits::default())
}

/// [`generate`] with other row-group and file sizes (for tests).
fn generate_with(opts: &GenerateOptions, limits: Limits) -> Result<GenerateSummary, GenerateError> {
    if opts.months == 0 {
        return Err(GenerateError::InvalidOptions(
            "months must be at least 1".into(),
        ));
    }
    if opts.months > 1200 {
        return Err(GenerateError::InvalidOptions(format!(
            "months must be at most 1200, got {}",
            opts.months
        )));
    }
    let cal = Calendar::new(opts.last_month, opts.months).ok_or_else(|| {
        GenerateError::InvalidOptions(format!(
            "{} months ending {} are out of the supported date range",
            opts.months, opts.last_month
        ))
    })?;
    let seed = opts.seed;
    let mut w = Writers::create(opts, limits)?;
    let mut history = History::default();
    let mut new_customers = NewCustomers::new(&cal);
    let mut id = String::with_capacity(32);
    let mut user_ids = Vec::new();

    for index in 0..opts.customers {
        let p = Profile::generate(seed, index, &cal);
        customers::write(&mut w.customers, &p, seed, &cal)?;
        subscriptions::simulate(&p, seed, &cal, &mut history);
        subscriptions::write(&mut w.subscriptions, &p, &history, seed, &cal, &mut id)?;
        new_customers.record(&cal, history.first_paid, p.tier);
        activity::write_usage(&mut w.usage, &p, &history, seed, &cal, &mut user_ids)?;
        activity::write_tickets(&mut w.tickets, &p, &history, seed, &cal, &mut id)?;
        activity::write_surveys(&mut w.surveys, &p, &history, seed, &cal, &mut id)?;
    }
    spend::write_spend(&mut w.spend, &cal, seed, &new_customers)?;
    spend::write_fx(&mut w.fx, &cal, seed)?;
    w.finish()
}
