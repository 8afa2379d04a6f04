//! Planning time: catalog -> registered sources and models -> a DataFusion
//! plan per output table, without data, so that catalog growth cannot make
//! builds slow to start. Two catalogs: the shipped one, and the shipped one
//! grown by 100 generated metrics in one more table (150 metrics in all).
//!
//! Two measures per catalog:
//! - `plan`: catalog -> a logical plan for every table (what `vitals
//!   validate` does, and what a build does before its first query);
//! - `plan+optimize`: the same plans optimized with every model inlined as
//!   a view. A build never does this (it optimizes each model and table
//!   over the models already computed, which are small scans), but it shows
//!   what the optimizer costs on the catalog's deepest SQL.
//!
//! Run with `cargo bench --bench plan` (criterion; no timed assertions:
//! machines here are shared and noisy).

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use vitals::build::prepare;
use vitals::execute::{SessionOptions, SourceLocations};

/// Metrics added to the shipped catalog for the large case.
const EXTRA_METRICS: usize = 100;

/// Loads a catalog, registers everything and plans every table; with
/// `optimize`, also runs the optimizer on each plan.
async fn plan_all(catalog: &Path, optimize: bool) {
    let locations = SourceLocations {
        empty: true,
        ..Default::default()
    };
    let (prepared, _) = prepare(
        catalog,
        &locations,
        None,
        &[],
        &SessionOptions::default(),
        false,
    )
    .await
    .expect("the catalog prepares");
    for t in &prepared.catalog.tables {
        let df = prepared.plan_table(&t.name).await.expect("plans");
        if optimize {
            df.into_optimized_plan().expect("optimizes");
        }
    }
}

/// The shipped catalog plus `EXTRA_METRICS` simple metrics (sums, counts
/// and ratios over the MRR model) in a table by month and segment.
fn grown_catalog(dir: &Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sql = dir.join("sql");
    std::fs::create_dir_all(&sql).expect("sql folder");
    for entry in std::fs::read_dir(root.join("sql")).expect("shipped sql") {
        let entry = entry.expect("sql file");
        std::fs::copy(entry.path(), sql.join(entry.file_name())).expect("copy sql");
    }
    let mut toml = std::fs::read_to_string(root.join("metrics.toml")).expect("shipped catalog");
    let mut names = Vec::new();
    for i in 0..EXTRA_METRICS {
        let name = format!("generated_{i:03}");
        let expr = match i % 3 {
            0 => format!("sum(mrr) * {}", i + 1),
            1 => format!("count(CASE WHEN mrr > {i} THEN 1 END)"),
            _ => format!(
                "sum(CASE WHEN movement = 'expansion' THEN movement_mrr ELSE 0 END) / {}",
                i + 1
            ),
        };
        toml.push_str(&format!(
            "\n[metrics.{name}]\nkind = \"simple\"\nmodel = \"customer_mrr_monthly\"\ntime = \"month\"\nexpr = \"{expr}\"\n"
        ));
        names.push(format!("\"{name}\""));
    }
    toml.push_str(&format!(
        "\n[tables.generated_wide]\ngrain = \"month\"\ndimensions = [\"segment\"]\nmetrics = [{}]\n",
        names.join(", ")
    ));
    let path = dir.join("metrics.toml");
    std::fs::write(&path, toml).expect("grown catalog");
    path
}

fn planning(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("metrics.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let grown = grown_catalog(dir.path());
    for (label, path) in [("shipped", &shipped), ("shipped+100", &grown)] {
        let catalog = vitals::catalog::load(path).expect("catalog loads");
        for optimize in [false, true] {
            let id = format!(
                "{} {label} catalog ({} metrics, {} tables)",
                if optimize { "plan+optimize" } else { "plan" },
                catalog.metrics.len(),
                catalog.tables.len()
            );
            c.bench_function(&id, |b| {
                b.iter(|| runtime.block_on(plan_all(path, optimize)))
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = planning
}
criterion_main!(benches);
