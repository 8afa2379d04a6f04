use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Result, VitalsError};

#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Bytes DataFusion may hold before spilling to disk.
    pub memory_limit: Option<usize>,
    /// Partitions per query (default: the number of cores).
    pub target_partitions: Option<usize>,
}

/// `DATAFUSION_*` environment variables (as DataFusion names them, e.g.
/// `DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`) override our settings: for
/// tuning and profiling without a rebuild.
pub fn apply_env_overrides(opts: &mut ConfigOptions) -> Result<()> {
    let keys: Vec<String> = opts.entries().into_iter().map(|e| e.key).collect();
    for key in keys {
        let var = key.to_uppercase().replace('.', "_");
        if let Ok(value) = std::env::var(&var) {
            opts.set(&key, &value).map_err(|e| {
                VitalsError::Usage(format!("environment variable {var}={value}: {e}"))
            })?;
        }
    }
    Ok(())
}

/// A DataFusion session set up for our workloads.
pub fn new_session(options: &SessionOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(
            options
                .target_partitions
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        );
    let opts = config.options_mut();
    // Text is Utf8View inside a build (see `compile::source::TEXT`).
    opts.execution.parquet.schema_force_view_types = true;
    opts.sql_parser.map_string_types_to_utf8view = true;
    if options.memory_limit.is_some() {
        // A hash join holds its whole build side and cannot spill; under a
        // limit, a large one (the health score's joins at 1M customers)
        // starves the sorts that can. Sort-merge joins spill.
        opts.optimizer.prefer_hash_join = false;
    }
    // Aggregates whose groups are nearly as many as their rows (the
    // GROUP BY (customer, period, value) of a count(DISTINCT)) are not
    // worth a partial phase: DataFusion can skip it once it has seen
    // enough rows with a poor ratio. The defaults (100k rows, 0.8) keep it
    // for the health score's usage aggregates, whose ratio is ~0.4.
    opts.execution.skip_partial_aggregation_probe_rows_threshold = 20_000;
    opts.execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.3;
    apply_env_overrides(opts)?;
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        // A fair pool: each spillable operator (sorts, aggregates) spills at
        // its share of what the unspillable ones leave. With the greedy
        // default one sort took 1.1 GB of 2 GB at 1M customers and the
        // next could not get room for a single batch.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(limit),
            NonZeroUsize::new(5).expect("not zero"),
        );
        runtime = runtime
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(DiskManagerBuilder::default());
    }
    let runtime = runtime
        .build_arc()
        .map_err(|e| VitalsError::data("cannot set up the query runtime", e))?;
    Ok(SessionContext::new_with_config_rt(
        config,
        Arc::clone(&runtime),
    ))
}
