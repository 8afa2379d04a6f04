//! # vitals: SaaS metrics on Apache DataFusion
//!
//! ```text
//!  metrics.toml + sql/*.sql
//!        |  catalog::load        parse (spans kept) -> validate every rule
//!        v
//!     Catalog                    sources, models, metrics, tables
//!        |  plan::BuildPlan      select tables, order models as a DAG
//!        v
//!     BuildPlan
//!        |  compile              sources -> typed + checked views,
//!        |                       metric tables -> grid SQL
//!        v
//!  DataFusion LogicalPlans       (optimizer, memory pool, spilling)
//!        |  execute              SessionContext, Parquet sources
//!        v
//!  RecordBatch streams
//!        |  publish              staged Parquet files, then _manifest.json
//!        v
//!  <target>/<table>/<build>/part-*.parquet + <target>/_manifest.json
//! ```
//!
//! **catalog** reads `metrics.toml` and the SQL files, checks names,
//! references and cycles, and reports every problem with file, line and
//! column. **plan** turns a selection of output tables into the ordered
//! list of models and tables to build. **compile** writes SQL: one view per
//! source that coerces lenient input types, derives columns and splits off
//! rejected rows; one query per metric table that builds the full grid of
//! periods and dimension members. **execute** registers sources and runs the
//! queries on DataFusion. **publish** writes the results to a fresh build
//! folder and makes them visible at once by replacing `_manifest.json`.

pub mod build;
pub mod catalog;
pub mod cli;
pub mod compile;
pub mod error;
pub mod execute;
pub mod generate;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod serve;
pub mod shipped;
pub mod storage;
