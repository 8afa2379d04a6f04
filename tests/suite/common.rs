//! Test helpers: hand-made Parquet fixtures, builds of the shipped catalog,
//! and reading published tables back through the manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tempfile::TempDir;

use vitals::build::{BuildOptions, run};
use vitals::execute::{SessionOptions, SourceLocations};
use vitals::publish::Manifest;

/// Generated sample data in a folder of its own.
pub struct Sample {
    dir: TempDir,
}

impl Sample {
    /// `vitals generate --customers N`
    pub fn new(customers: usize) -> Sample {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args(["generate", "--customers", &customers.to_string(), "--out"])
            .arg(dir.path().join("data"))
            .output()
            .expect("run vitals generate");
        assert!(
            out.status.success(),
            "vitals generate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sample { dir }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shipped_catalog() -> PathBuf {
    repo().join("metrics.toml")
}

pub fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// A subscription row of a fixture.
#[derive(Debug, Clone)]
pub struct Sub {
    pub id: &'static str,
    pub customer: &'static str,
    pub start: &'static str,
    pub end: Option<&'static str>,
    pub mrr: f64,
}

pub fn sub(
    id: &'static str,
    customer: &'static str,
    start: &'static str,
    end: Option<&'static str>,
    mrr: f64,
) -> Sub {
    Sub {
        id,
        customer,
        start,
        end,
        mrr,
    }
}

/// A folder of source tables, one sub-folder per table.
pub struct Data {
    pub dir: TempDir,
}

impl Data {
    pub fn new() -> Self {
        Data {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `batch` as `<table>/part-0.parquet`.
    pub fn write(&self, table: &str, batch: &RecordBatch) {
        let dir = self.path().join(table);
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    pub fn subscriptions(&self, rows: &[Sub]) {
        self.write("subscriptions", &subscriptions_batch(rows));
    }

    /// customers(customer_id, segment)
    pub fn customers(&self, rows: &[(&str, Option<&str>)]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("segment", DataType::Utf8, true),
        ]));
        let ids: StringArray = rows.iter().map(|r| Some(r.0)).collect();
        let segments: StringArray = rows.iter().map(|r| r.1).collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(segments)]).unwrap();
        self.write("customers", &batch);
    }
}

/// A column of a hand-made fixture table; `None` is a null.
pub enum Col<'a> {
    Text(Vec<Option<&'a str>>),
    Num(Vec<Option<f64>>),
    /// `YYYY-MM-DD`
    Date(Vec<Option<&'a str>>),
    /// `YYYY-MM-DDTHH:MM:SS`, UTC
    Ts(Vec<Option<&'a str>>),
}

impl Data {
    /// Writes a table of named columns.
    pub fn table(&self, name: &str, columns: Vec<(&str, Col)>) {
        let epoch = date("1970-01-01");
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (col, values) in columns {
            let (data_type, array): (DataType, ArrayRef) = match values {
                Col::Text(v) => (DataType::Utf8, Arc::new(StringArray::from(v))),
                Col::Num(v) => (DataType::Float64, Arc::new(Float64Array::from(v))),
                Col::Date(v) => (
                    DataType::Date32,
                    Arc::new(Date32Array::from(
                        v.iter()
                            .map(|d| d.map(|d| (date(d) - epoch).num_days() as i32))
                            .collect::<Vec<_>>(),
                    )),
                ),
                Col::Ts(v) => (
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    Arc::new(
                        TimestampMicrosecondArray::from(
                            v.iter()
                                .map(|t| {
                                    t.map(|t| {
                                        chrono::NaiveDateTime::parse_from_str(
                                            t,
                                            "%Y-%m-%dT%H:%M:%S",
                                        )
                                        .unwrap_or_else(|_| panic!("bad timestamp {t}"))
                                        .and_utc()
                                        .timestamp_micros()
                                    })
                                })
                                .collect::<Vec<_>>(),
                        )
                        .with_timezone("UTC"),
                    ),
                ),
            };
            fields.push(Field::new(col, data_type, true));
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        self.write(name, &batch);
    }
}

pub fn subscriptions_batch(rows: &[Sub]) -> RecordBatch {
    subscription_rows_batch(
        rows.iter()
            .map(|r| (r.id, r.customer, date(r.start), r.end.map(date), r.mrr)),
    )
}

/// A subscriptions batch of (subscription_id, customer_id, start_date,
/// end_date, mrr) rows: the one fixture writer every test shares.
pub fn subscription_rows_batch<'a>(
    rows: impl IntoIterator<
        Item = (
            &'a str,
            &'a str,
            chrono::NaiveDate,
            Option<chrono::NaiveDate>,
            f64,
        ),
    >,
) -> RecordBatch {
    let epoch = date("1970-01-01");
    let day = |d: chrono::NaiveDate| (d - epoch).num_days() as i32;
    let rows: Vec<_> = rows.into_iter().collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscription_id", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("start_date", DataType::Date32, true),
        Field::new("end_date", DataType::Date32, true),
        Field::new("mrr", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| Some(r.0)).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(day(r.2))).collect::<Date32Array>()),
        Arc::new(rows.iter().map(|r| r.3.map(day)).collect::<Date32Array>()),
        Arc::new(rows.iter().map(|r| Some(r.4)).collect::<Float64Array>()),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `n` customer ids `<prefix><i>` zero-padded to `width`, for fixtures of
/// many customers (leaked: test fixtures live as long as the test).
pub fn many_ids(prefix: &str, n: usize, width: usize) -> Vec<&'static str> {
    (0..n)
        .map(|i| &*Box::leak(format!("{prefix}{i:0width$}").into_boxed_str()))
        .collect()
}

/// A finished build of the shipped catalog and where it was published.
pub struct Built {
    pub target: TempDir,
    pub manifest: Manifest,
}

pub async fn build(data: &Data, as_of: &str) -> Built {
    build_with(&shipped_catalog(), data, as_of).await
}

pub async fn build_with(catalog: &Path, data: &Data, as_of: &str) -> Built {
    build_selected(catalog, data, as_of, &[]).await
}

/// A build of only the `select`ed tables (all when empty).
pub async fn build_selected(catalog: &Path, data: &Data, as_of: &str, select: &[&str]) -> Built {
    let target = tempfile::tempdir().unwrap();
    let manifest = run(&BuildOptions {
        catalog: catalog.to_path_buf(),
        locations: SourceLocations {
            data_dir: Some(data.path().display().to_string()),
            ..Default::default()
        },
        target: target.path().display().to_string(),
        as_of: Some(date(as_of)),
        select: select.iter().map(|s| s.to_string()).collect(),
        session: SessionOptions::default(),
        progress: vitals::progress::ProgressMode::Quiet,
        wait: false,
        keep_builds: 2,
    })
    .await
    .unwrap_or_else(|e| panic!("build failed: {e}"));
    Built { target, manifest }
}

impl Built {
    /// A session where every published table is registered by name, read
    /// from exactly the files the manifest lists.
    pub async fn session(&self) -> SessionContext {
        let ctx = SessionContext::new();
        for (name, entry) in &self.manifest.tables {
            let files: Vec<String> = entry
                .files
                .iter()
                .map(|f| self.target.path().join(f).display().to_string())
                .collect();
            let df = ctx
                .read_parquet(files, ParquetReadOptions::default())
                .await
                .unwrap();
            ctx.register_table(name.as_str(), df.into_view()).unwrap();
        }
        ctx
    }

    /// Rows of a query as strings, for compact assertions.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let ctx = self.session().await;
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                out.push(
                    b.columns()
                        .iter()
                        .map(|c| {
                            datafusion::arrow::util::display::array_value_to_string(c, r).unwrap()
                        })
                        .collect(),
                );
            }
        }
        out
    }

    /// The names of the published tables.
    pub fn tables(&self) -> Vec<&str> {
        self.manifest.tables.keys().map(String::as_str).collect()
    }

    /// A single f64 (None for NULL).
    pub async fn value(&self, sql: &str) -> Option<f64> {
        let rows = self.rows(sql).await;
        assert_eq!(rows.len(), 1, "expected one row from {sql}: {rows:?}");
        let v = &rows[0][0];
        if v.is_empty() {
            None
        } else {
            Some(v.parse().unwrap_or_else(|_| panic!("not a number: {v}")))
        }
    }
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// A copy of the shipped catalog (TOML edited by `edit`, SQL as is) in `dir`.
pub fn catalog_variant(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = edit(std::fs::read_to_string(shipped_catalog()).unwrap());
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    for f in std::fs::read_dir(repo().join("sql")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join("sql").join(f.file_name().unwrap())).unwrap();
    }
    let path = dir.join("metrics.toml");
    std::fs::write(&path, text).unwrap();
    path
}
