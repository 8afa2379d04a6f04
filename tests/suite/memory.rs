//! Builds under `--memory-limit`: on generated data large enough that the
//! limit binds, a build spills and publishes the tables an unlimited build
//! publishes, in their order; a limit too small for a step fails the build
//! with a hint, and publishes nothing.

use std::path::Path;
use std::process::{Command, Output};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use vitals::publish::Manifest;

use super::common::{Built, Sample};

fn vitals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(args)
        .output()
        .expect("run vitals")
}

/// 20k generated customers: about 2M usage rows, and tables of over 200k
/// rows, so that a 128 MB limit makes sorts and aggregates spill.
pub(super) const CUSTOMERS: usize = 20_000;

pub(super) fn build(data: &Path, target: &Path, more: &[&str]) -> Output {
    let mut args = vec![
        "build".to_string(),
        "--data".into(),
        data.display().to_string(),
        "--target".into(),
        target.display().to_string(),
        "--as-of".into(),
        "2025-12-31".into(),
        "-q".into(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    vitals(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A build that must succeed, with where it published.
pub(super) fn built(data: &Path, more: &[&str]) -> Built {
    let target = tempfile::tempdir().unwrap();
    let out = build(data, target.path(), more);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(target.path().join("_manifest.json")).unwrap())
            .unwrap();
    Built { target, manifest }
}

/// A published table, read with its files in the manifest's order.
pub(super) fn in_file_order(built: &Built, table: &str) -> RecordBatch {
    let mut batches = Vec::new();
    for f in &built.manifest.tables[table].files {
        let file = std::fs::File::open(built.target.path().join(f)).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            batches.push(batch.unwrap());
        }
    }
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A published table sorted on every column, text and dates before
/// numbers: two builds that differ only in the last bits of a sum still
/// line up row by row.
pub(super) async fn canonical(built: &Built, table: &str) -> RecordBatch {
    let df = built.session().await.table(table).await.unwrap();
    let (exact, floats): (Vec<_>, Vec<_>) = df
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type() == &DataType::Float64))
        .partition(|(_, float)| !float);
    let order: Vec<_> = exact
        .iter()
        .chain(&floats)
        .map(|(name, _)| datafusion::prelude::col(format!("\"{name}\"")).sort(true, false))
        .collect();
    let batches = df.sort(order).unwrap().collect().await.unwrap();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub(super) fn same_values(table: &str, column: &str, a: &ArrayRef, b: &ArrayRef) {
    assert_eq!(a.data_type(), b.data_type(), "{table}.{column}");
    if a.data_type() == &DataType::Float64 {
        let (a, b) = (
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
        );
        for i in 0..a.len() {
            assert_eq!(a.is_null(i), b.is_null(i), "{table}.{column} row {i}");
            let (x, y) = (a.value(i), b.value(i));
            assert!(
                a.is_null(i) || (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{table}.{column} row {i}: {x} vs {y}"
            );
        }
    } else {
        assert_eq!(a.as_ref(), b.as_ref(), "{table}.{column}");
    }
}

/// The rows of `table` are in (month, customer_id) order, file after file.
fn in_month_customer_order(table: &str, batch: &RecordBatch) {
    in_order(table, batch, false);
}

/// The rows of `table` are in (customer_id, month) order, file after file
/// (`customer_first`), else in (month, customer_id) order.
pub(super) fn in_order(table: &str, batch: &RecordBatch, customer_first: bool) {
    let month = batch
        .column_by_name("month")
        .unwrap()
        .as_primitive::<Date32Type>();
    let customer = batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>();
    for i in 1..batch.num_rows() {
        let (before, row) = (
            (month.value(i - 1), customer.value(i - 1)),
            (month.value(i), customer.value(i)),
        );
        let ordered = match customer_first {
            true => (before.1, before.0) <= (row.1, row.0),
            false => before <= row,
        };
        assert!(ordered, "{table} row {i}: {before:?} before {row:?}");
    }
}

#[tokio::test]
async fn under_a_tight_memory_limit_a_build_spills_and_publishes_the_same_tables() {
    let sample = Sample::new(CUSTOMERS);
    let free = built(&sample.data(), &[]);
    // Before joins were chosen by size under a limit, and before sorts
    // reserved less for merging, this failed ("Not enough memory to
    // continue external sort") in every one of three runs.
    let limited = built(&sample.data(), &["--memory-limit", "128MB"]);
    let (a, b) = (&free.manifest, &limited.manifest);
    assert_eq!(
        a.tables.keys().collect::<Vec<_>>(),
        b.tables.keys().collect::<Vec<_>>()
    );
    for (name, entry) in &a.tables {
        assert_eq!(entry.rows, b.tables[name].rows, "{name}: rows");
        assert_eq!(entry.schema, b.tables[name].schema, "{name}: schema");
        let (x, y) = (
            canonical(&free, name).await,
            canonical(&limited, name).await,
        );
        for (i, field) in x.schema().fields().iter().enumerate() {
            same_values(name, field.name(), x.column(i), y.column(i));
        }
    }
    // The two largest tables span many batches and both partitions: each
    // is published in its order, with or without the limit.
    for table in ["customer_mrr_monthly", "customer_health"] {
        assert!(a.tables[table].rows > 200_000, "{table} is large enough");
    }
    in_month_customer_order(
        "customer_mrr_monthly",
        &in_file_order(&free, "customer_mrr_monthly"),
    );
    in_month_customer_order(
        "customer_mrr_monthly",
        &in_file_order(&limited, "customer_mrr_monthly"),
    );
    in_order(
        "customer_health",
        &in_file_order(&free, "customer_health"),
        true,
    );
    in_order(
        "customer_health",
        &in_file_order(&limited, "customer_health"),
        true,
    );
}

#[tokio::test]
async fn a_limit_too_small_for_a_step_fails_with_a_hint_and_publishes_nothing() {
    let sample = Sample::new(CUSTOMERS);
    let target = tempfile::tempdir().unwrap();
    let out = build(&sample.data(), target.path(), &["--memory-limit", "16MB"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Resources exhausted"), "{stderr}");
    assert!(
        stderr.contains("hint: this step needs more memory than `--memory-limit` (16 MB)"),
        "{stderr}"
    );
    assert!(!target.path().join("_manifest.json").exists());
}
