//! Planning time: catalog -> registered sources and models -> a DataFusion
//! plan per output table, without data. Catalog growth must not make builds
//! slow to start. Run with `cargo bench --bench plan`; prints the median of
//! several runs (no timed assertions: machines here are shared and noisy).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vitals::build::prepare;
use vitals::execute::{SessionOptions, SourceLocations};
use vitals::progress::Progress;

const RUNS: usize = 15;

fn main() {
    let catalog = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("metrics.toml");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let locations = SourceLocations {
        empty: true,
        ..Default::default()
    };
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            runtime.block_on(async {
                let start = Instant::now();
                let (prepared, _) = prepare(
                    &catalog,
                    &locations,
                    None,
                    &[],
                    &SessionOptions::default(),
                    false,
                    &Progress::quiet(),
                )
                .await
                .expect("the shipped catalog prepares");
                for t in &prepared.catalog.tables {
                    let df = prepared.plan_table(&t.name).await.expect("plans");
                    df.into_optimized_plan().expect("optimizes");
                }
                start.elapsed()
            })
        })
        .collect();
    times.sort();
    println!(
        "plan shipped catalog ({} metrics, {} tables): median {:.1} ms, min {:.1} ms over {RUNS} runs",
        vitals::catalog::load(&catalog)
            .map(|c| c.metrics.len())
            .unwrap_or(0),
        vitals::catalog::load(&catalog)
            .map(|c| c.tables.len())
            .unwrap_or(0),
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}
