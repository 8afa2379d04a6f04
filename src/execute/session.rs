use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::config::{ConfigNonZeroUsize, ConfigOptions, SpillCompression};
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::single_phase_aggregates::SinglePhaseAggregates;
use super::spillable_joins::SpillableJoins;

use crate::error::{Result, VitalsError};

#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Bytes DataFusion may hold before spilling to disk, as given by the
    /// user (`--memory-limit`); without it, [`default_memory_limit`].
    pub memory_limit: Option<usize>,
    /// Partitions per query (default: two per core, one under a
    /// `memory_limit`; see [`new_session`]).
    pub target_partitions: Option<usize>,
    /// Bytes of model results a build keeps in memory (default: a quarter
    /// of the pool); the others go to local Parquet files.
    pub model_cache: Option<usize>,
    /// Population rows per slice of a score computed in slices of its
    /// entities (default [`super::entity_slices::ROWS_PER_SLICE`]).
    pub score_slice_rows: Option<u64>,
}

impl SessionOptions {
    /// The memory pool's size: the user's limit, or the default.
    pub fn pool_size(&self) -> usize {
        self.memory_limit.unwrap_or_else(default_memory_limit)
    }

    /// A quarter of the pool: at 100k customers every model fits (about
    /// 0.5 GB); at 1M the large ones go to files.
    pub fn model_cache_size(&self) -> usize {
        self.model_cache.unwrap_or(self.pool_size() / 4)
    }

    /// Population rows per slice of a score (see `entity_slices`).
    pub fn score_slice_rows(&self) -> u64 {
        self.score_slice_rows
            .unwrap_or(super::entity_slices::ROWS_PER_SLICE)
            .max(1)
    }
}

/// Without `--memory-limit`, DataFusion may hold an eighth of the machine's
/// memory (3 GB of 24 GB), at least 1 GB, before it spills: a build's
/// sorts and aggregates stay bounded without the user sizing anything.
/// Model results kept in memory, Parquet buffers and the allocator's slack
/// come on top: a 1M-customer build peaked at 2.3-2.5 GB.
pub fn default_memory_limit() -> usize {
    const GB: usize = 1 << 30;
    (physical_memory().unwrap_or(8 * GB) / 8).max(GB)
}

/// The memory this process may use: the machine's (`MemTotal`), or its
/// cgroup's limit when that is lower (containers).
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kb: usize = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    Some(cgroup.map_or(total_kb * 1024, |c| c.min(total_kb * 1024)))
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

const MB: usize = 1 << 20;

/// At most this many spill files are merged at once (more take several
/// passes). DataFusion's default merges as many as it can reserve a batch
/// for, and two partitions' merges then took all the memory between them:
/// at 1M customers under `--memory-limit 1GB` one held 650 MB and the
/// other could not get 10 MB. With 16, the same build succeeded, and
/// without a limit it took as long (1M, `--select customer_health`:
/// 44.0 and 45.6 s against 44.7 and 43.3 s).
const SPILL_MERGE_FAN_IN: usize = 16;

/// Rows per batch: 32768 without a limit the user gives, DataFusion's 8192
/// under one from 256 MB up, half as many below.
///
/// Without a limit, bigger batches spend less per batch in every operator
/// (hashing, casting, Parquet decoding): at 100k customers, alternating
/// runs took 4.00-4.34 s with 32768 rows against 4.55-4.87 s with 8192
/// (16384: 4.40-4.60 s, 65536: 4.28-4.78 s); at 1M 62.98-67.47 s against
/// 66.07-74.16 s, at a peak of 3.0-3.3 GB against 2.8-3.1 GB.
///
/// Under a limit, DataFusion's fair pool gives each sort and aggregate the
/// limit over all of the query's operators, busy or not, and a sort must
/// hold at least one batch. The cohort model plans about 60 of them under
/// a limit (its joins sort-merge), and at 20k customers its sorts'
/// 8192-row batches (1.3 MB) came within 20 % of their share under 128 MB:
/// the build failed 1 in 8 runs there and 2 in 7 under 96 MB. With 4096
/// rows it passed 6 of 6 under 128 MB, 4 of 4 under 96 MB and 7 of 7 under
/// 64 MB. Smaller still is not better: with 2048 rows 64 MB failed 3 of 3,
/// a sort still holding 760 KB after spilling (a sorted run waiting to be
/// written).
fn batch_size(limit: Option<usize>) -> usize {
    match limit {
        None => 32768,
        Some(limit) if limit < 256 * MB => 4096,
        Some(_) => 8192,
    }
}

/// A DataFusion session set up for our workloads.
pub fn new_session(options: &SessionOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(options.target_partitions.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            // Two partitions per core: each sort and aggregate partition
            // holds half as much, so it spills smaller runs and the pool's
            // shares are finer. At 1M customers on 2 cores the peak RSS
            // went from 3.3-3.5 GB to 2.9 GB at the same speed (67.4/69.6 s
            // against 67.1/69.5 s; 100k: 0.70 against 0.71 of DuckDB).
            // Under a limit the user gives, DataFusion's fair pool divides
            // it by the operators, and twice as many left a 20k-customer
            // build under 128 MB short of one batch each (0 of 5 passed).
            if options.memory_limit.is_some() {
                cores
            } else {
                2 * cores
            }
        }));
    let opts = config.options_mut();
    // Text is Utf8View inside a build (see `compile::source::TEXT`).
    opts.execution.parquet.schema_force_view_types = true;
    opts.sql_parser.map_string_types_to_utf8view = true;
    // A partial aggregation phase pays when it reduces rows a lot. The
    // health score's usage aggregate has one group per ~10 rows, but its
    // DISTINCT sets keep every value, so a partial phase only hashes each
    // value twice and ships the sets on: at 1M customers skipping it took
    // the model from 126 s to 53 s. DataFusion skips the phase once it has
    // seen 20k rows (default 100k) with at least one group per 20 rows
    // (default 0.8).
    opts.execution.skip_partial_aggregation_probe_rows_threshold = 20_000;
    opts.execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.05;
    // Spill files in LZ4 frames: at 1M customers the health score spills
    // gigabytes, and copying them into the page cache was 8 % of the CPU
    // (perf). Full 1M builds, alternating: 64.2/63.5 s against 69.4/64.7 s
    // uncompressed, at a peak of 3.2-3.4 GB against 2.9-3.0 GB.
    opts.execution.spill_compression = SpillCompression::Lz4Frame;
    if let Some(limit) = options.memory_limit {
        // Each sort keeps this much back for merging its spill files, and
        // a plan has dozens of sorts: DataFusion's 10 MB each left nothing
        // for a first batch under 128 MB (the cohort model's sorts at 20k
        // customers). A sixty-fourth of the limit, from 1 to 10 MB.
        opts.execution.sort_spill_reservation_bytes = (limit / 64).clamp(MB, 10 * MB);
    }
    opts.execution.batch_size =
        ConfigNonZeroUsize::try_new(batch_size(options.memory_limit)).expect("more than 0 rows");
    apply_env_overrides(opts)?;
    // A fair pool: each spillable operator (sorts, aggregates) spills at
    // its share of what the unspillable ones leave. A greedy pool lets the
    // first operator take everything: at 1M customers, with a 2 GB greedy
    // pool, the health score's aggregate took 930 MB and another could not
    // get room for its first batch; with a 2 GB limit one sort took 1.1 GB
    // and the next could not place a single batch.
    //
    // DataFusion's fair pool divides by every operator of the query, busy
    // or not, so the health score's aggregates spilled with most of the
    // default pool unused; that pool shares among the operators holding
    // memory and keeps a reserve for each of the others
    // (`pool::ActiveFairPool`). A limit the user gives keeps DataFusion's
    // pool: memory the pool does not count (allocator slack, buffers
    // outside reservations) grows with what it hands out, and at 1M
    // customers `--memory-limit 2GB` peaked at 3.2 GB with the sharing
    // pool against 2.3 GB with DataFusion's (model results kept in memory,
    // a quarter of the limit, come on top of either).
    let top = NonZeroUsize::new(5).expect("not zero");
    let pool: Arc<dyn MemoryPool> = match options.memory_limit {
        Some(limit) => Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), top)),
        None => Arc::new(TrackConsumersPool::new(
            super::pool::ActiveFairPool::new(options.pool_size()),
            top,
        )),
    };
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_max_spill_merge_fan_in(SPILL_MERGE_FAN_IN),
        )
        .build_arc()
        .map_err(|e| VitalsError::data("cannot set up the query runtime", e))?;
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(Arc::clone(&runtime))
        .with_default_features();
    // Our physical optimizer rules, each after the DataFusion rule whose
    // work it builds on (were that rule ever renamed, ours would not run,
    // and the plans would be DataFusion's own).
    let mut rules = PhysicalOptimizer::new().rules;
    let mut insert_after = |after: &str, rule: Arc<dyn PhysicalOptimizerRule + Send + Sync>| {
        if let Some(at) = rules.iter().position(|r| r.name() == after) {
            rules.insert(at + 1, rule);
        }
    };
    // Aggregates that keep their values skip the partial phase.
    insert_after(
        SinglePhaseAggregates::AFTER,
        Arc::new(SinglePhaseAggregates),
    );
    if options.memory_limit.is_some() {
        // A limit the user gives must hold: joins that would hash a side of
        // any size sort-merge instead, and spill (`spillable_joins`).
        // It must run before DataFusion adds the sorts a plan needs.
        insert_after(SpillableJoins::AFTER, Arc::new(SpillableJoins));
    }
    state = state.with_physical_optimizer_rules(rules);
    let ctx = SessionContext::new_with_state(state.build());
    super::register_exceptions(&ctx);
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_big_without_a_limit_and_small_under_a_small_one() {
        let sizes: Vec<usize> = [16, 64, 96, 128, 256, 2048]
            .iter()
            .map(|mb| batch_size(Some(mb * MB)))
            .collect();
        assert_eq!(sizes, [4096, 4096, 4096, 4096, 8192, 8192]);
        assert_eq!(batch_size(None), 32768);
        let limited = new_session(&SessionOptions {
            memory_limit: Some(128 * MB),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(limited.state().config().batch_size(), 4096);
        let unlimited = new_session(&SessionOptions::default()).unwrap();
        assert_eq!(unlimited.state().config().batch_size(), 32768);
    }
}
