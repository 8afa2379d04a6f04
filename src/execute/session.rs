use std::sync::Arc;

use datafusion::execution::disk_manager::DiskManagerBuilder;
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
    // Plain Utf8 rather than Utf8View, so that the output files carry the
    // string type every Parquet reader knows.
    opts.execution.parquet.schema_force_view_types = false;
    opts.sql_parser.map_string_types_to_utf8view = false;
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        runtime = runtime
            .with_memory_limit(limit, 1.0)
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
