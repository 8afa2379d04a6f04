//! A score computed in slices of its entities (`execute::entity_slices`):
//! on generated data, whose files are laid out by customer, a build told
//! to slice the health score small publishes the tables of a build that
//! computes it in one query, with the health table in its order. Usage
//! laid out by time instead keeps the score in one query.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::properties::WriterProperties;

use super::common::{Built, Sample};
use super::memory::{CUSTOMERS, built, canonical, in_file_order, in_order, same_values};

#[tokio::test]
async fn a_score_in_slices_publishes_the_tables_of_one_query() {
    let sample = Sample::new(CUSTOMERS);
    let whole = built(&sample.data(), &[]);
    let sliced = sliced_build(&sample, "40000");
    let step = &sliced.manifest.models["customer_health"];
    let rows = whole.manifest.models["customer_health"].rows;
    assert_eq!(step.rows, rows);
    // 20k customers pay in about 200k (customer, month) rows.
    assert!(
        step.slices.is_some_and(|n| n >= 4),
        "the health score in slices of 40000 population rows: {:?}",
        step.slices
    );
    assert_eq!(whole.manifest.models["customer_health"].slices, None);
    for (name, entry) in &whole.manifest.tables {
        assert_eq!(
            entry.rows, sliced.manifest.tables[name].rows,
            "{name}: rows"
        );
        assert_eq!(
            entry.schema, sliced.manifest.tables[name].schema,
            "{name}: schema"
        );
        let (x, y) = (
            canonical(&whole, name).await,
            canonical(&sliced, name).await,
        );
        for (i, field) in x.schema().fields().iter().enumerate() {
            same_values(name, field.name(), x.column(i), y.column(i));
        }
    }
    // Slices come one after the other, each sorted: the table is in its
    // order (customer first) across them.
    in_order(
        "customer_health",
        &in_file_order(&sliced, "customer_health"),
        true,
    );
}

#[tokio::test]
async fn usage_laid_out_by_time_keeps_the_score_in_one_query() {
    let sample = Sample::new(CUSTOMERS);
    let usage = sample.data().join("usage");
    by_time(&usage);
    let build = sliced_build(&sample, "40000");
    assert_eq!(build.manifest.models["customer_health"].slices, None);
}

/// Rewrites the usage files of `dir` as one file sorted by time, in row
/// groups of 100k rows, each holding customers from all over the range.
fn by_time(dir: &Path) {
    let mut batches = Vec::new();
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for path in &files {
        let file = std::fs::File::open(path).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            batches.push(batch.unwrap());
        }
        std::fs::remove_file(path).unwrap();
    }
    let all = concat_batches(&batches[0].schema(), &batches).unwrap();
    let time = all.column_by_name("occurred_at").unwrap();
    let order = sort_to_indices(time, Some(SortOptions::default()), None).unwrap();
    let sorted = take_record_batch(&all, &order).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(100_000))
        .build();
    let out = std::fs::File::create(dir.join("by-time.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(out, Arc::clone(&sorted.schema()), Some(props)).unwrap();
    writer.write(&sorted).unwrap();
    writer.close().unwrap();
}

/// A build with `VITALS_SCORE_SLICE_ROWS=rows`.
fn sliced_build(sample: &Sample, rows: &str) -> Built {
    let target = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
        .env("VITALS_SCORE_SLICE_ROWS", rows)
        .args(["build", "--data"])
        .arg(sample.data())
        .arg("--target")
        .arg(target.path())
        .args(["--as-of", "2025-12-31", "-q"])
        .output()
        .expect("run vitals");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest =
        serde_json::from_slice(&std::fs::read(target.path().join("_manifest.json")).unwrap())
            .unwrap();
    Built { target, manifest }
}
