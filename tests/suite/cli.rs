//! The command line through the real binary: exit codes and what a user
//! reads, pinned with insta snapshots (tests/suite/snapshots/).
//!
//! Each test works in its own temporary folder (`[TMP]` in the snapshots):
//! `catalog/` holds a catalog, `data/` the input tables, `out/` the target.
//! Most catalog errors are shown on the small catalog below, whose line
//! numbers this file controls; the shipped catalog is copied where the test
//! is about it, and its line numbers are checked and then masked, so that
//! editing metrics.toml does not break these snapshots.
//!
//! After changing a message: `INSTA_UPDATE=always cargo test --test tests cli`,
//! then read every changed `.snap` file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use tempfile::TempDir;

use super::common::repo;

/// A valid catalog: MRR and paying customers per month. The tests break
/// it one edit at a time.
const MINIMAL_CATALOG: &str = r#"# A minimal catalog: MRR and paying customers per month.
[project]
name = "mini"
range_start = "SELECT min(start_date) FROM subscriptions"

[sources.subscriptions]
location = "data/subscriptions"

[models.paying]

[metrics.mrr]
kind = "simple"
model = "paying"
time = "month"
expr = "sum(mrr)"

[metrics.customers]
kind = "simple"
model = "paying"
time = "month"
expr = "count(*)"

[metrics.arpa]
kind = "ratio"
numerator = "mrr"
denominator = "customers"

[metrics.mrr_thousands]
kind = "derived"
expr = "mrr / 1000"

[tables.monthly]
grain = "month"
metrics = ["mrr", "customers", "arpa", "mrr_thousands"]
"#;

const MINIMAL_PAYING_SQL: &str = "-- mrr(c, M): the rows of c active on the last day of M.
SELECT s.customer_id, m.month, sum(s.mrr) AS mrr
FROM subscriptions s
JOIN calendar_months m
  ON s.start_date <= m.month_end
 AND (s.end_date IS NULL OR s.end_date > m.month_end)
GROUP BY s.customer_id, m.month
";

/// A temporary folder with a catalog, data and a target.
struct Sandbox {
    root: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// `catalog/metrics.toml`, as an argument.
    fn catalog(&self) -> String {
        self.path("catalog/metrics.toml").display().to_string()
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    /// Replaces the only occurrence of `from` in a file by `to`.
    fn edit(&self, relative: &str, from: &str, to: &str) {
        let text = self.read(relative);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{relative} should hold `{from}` exactly once: update this test"
        );
        self.write(relative, &text.replacen(from, to, 1));
    }

    fn append(&self, relative: &str, more: &str) {
        let text = self.read(relative);
        self.write(relative, &format!("{text}{more}"));
    }

    fn minimal(self) -> Self {
        self.write("catalog/metrics.toml", MINIMAL_CATALOG);
        self.write("catalog/sql/paying.sql", MINIMAL_PAYING_SQL);
        self
    }

    /// A copy of the shipped metrics.toml and sql/.
    fn shipped(self) -> Self {
        self.write(
            "catalog/metrics.toml",
            &std::fs::read_to_string(repo().join("metrics.toml")).unwrap(),
        );
        for entry in std::fs::read_dir(repo().join("sql")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            self.write(
                &format!("catalog/sql/{name}"),
                &std::fs::read_to_string(&path).unwrap(),
            );
        }
        self
    }

    /// Writes `batch` as `data/<table>/<file>`.
    fn parquet(&self, table: &str, file: &str, batch: &RecordBatch) {
        let dir = self.path(&format!("data/{table}"));
        std::fs::create_dir_all(&dir).unwrap();
        let f = std::fs::File::create(dir.join(file)).unwrap();
        let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    /// `vitals build` of this sandbox's catalog and data into `out/`.
    fn build(&self, more: &[&str]) -> Run {
        let mut args = vec![
            "build".to_string(),
            "--catalog".to_string(),
            self.catalog(),
            "--data".to_string(),
            self.path("data").display().to_string(),
            "--target".to_string(),
            self.path("out").display().to_string(),
        ];
        args.extend(more.iter().map(|s| s.to_string()));
        self.vitals(&args)
    }

    fn validate(&self) -> Run {
        self.vitals(&[
            "validate".to_string(),
            "--catalog".to_string(),
            self.catalog(),
        ])
    }

    fn explain(&self, name: &str) -> Run {
        self.vitals(&[
            "explain".to_string(),
            name.to_string(),
            "--catalog".to_string(),
            self.catalog(),
        ])
    }

    /// Runs the binary in the sandbox.
    fn vitals(&self, args: &[String]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_vitals"))
            .args(args)
            .current_dir(self.root.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run vitals");
        let root = self.root.path();
        let redact = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            redact_timings(&redact_paths(&text, root))
        };
        Run {
            code: output.status.code(),
            stdout: redact(&output.stdout),
            stderr: redact(&output.stderr),
        }
    }
}

/// What a run printed, with the temporary folder as `[TMP]`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The text a snapshot pins: exit code, stdout and stderr.
    fn snapshot(&self) -> String {
        format!(
            "exit code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code
                .map_or("killed by a signal".to_string(), |c| c.to_string()),
            self.stdout,
            self.stderr
        )
    }
}

fn redact_paths(text: &str, root: &Path) -> String {
    let mut text = text.to_string();
    if let Ok(canonical) = root.canonicalize() {
        text = text.replace(&canonical.display().to_string(), "[TMP]");
    }
    text.replace(&root.display().to_string(), "[TMP]")
}

/// Build ids (`published build <id> to`) and durations (`rows in 0.03s`).
fn redact_timings(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut line = line.to_string();
            if let Some(rest) = line.strip_prefix("published build ")
                && let Some(end) = rest.find(' ')
            {
                line = format!("published build [BUILD_ID]{}", &rest[end..]);
            }
            if let Some(at) = line.find(" rows in ")
                && line.ends_with('s')
            {
                line = format!("{} rows in [SECONDS]s", &line[..at]);
            }
            line + "\n"
        })
        .collect()
}

/// 1-based line and column of a byte offset of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// A subscriptions table; `start` is the name and type of the start column,
/// or None to leave it out.
fn subscriptions(start: Option<(&str, DataType)>) -> RecordBatch {
    let mut fields = vec![
        Field::new("subscription_id", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["s1", "s2", "s3"])),
        Arc::new(StringArray::from(vec!["A", "B", "B"])),
    ];
    // 2024-01-01, 2024-01-15 and 2024-02-01 as days since 1970-01-01
    let starts = vec![19723, 19737, 19754];
    match start {
        Some((name, DataType::Date32)) => {
            fields.push(Field::new(name, DataType::Date32, true));
            columns.push(Arc::new(Date32Array::from(starts)));
        }
        Some((name, DataType::Boolean)) => {
            fields.push(Field::new(name, DataType::Boolean, true));
            columns.push(Arc::new(BooleanArray::from(vec![true, false, true])));
        }
        Some((_, other)) => unimplemented!("{other}"),
        None => {}
    }
    fields.push(Field::new("end_date", DataType::Date32, true));
    columns.push(Arc::new(Date32Array::from(vec![None, Some(19754), None])));
    fields.push(Field::new("mrr", DataType::Float64, true));
    columns.push(Arc::new(Float64Array::from(vec![100.0, 50.0, 80.0])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn valid_subscriptions() -> RecordBatch {
    subscriptions(Some(("start_date", DataType::Date32)))
}

// ------------------------------------------------------------- validate

/// The catalog the error tests break is valid as it is.
#[test]
fn validate_minimal_catalog() {
    let s = Sandbox::new().minimal();
    let run = s.validate();
    assert_eq!(run.code, Some(0));
    insta::assert_snapshot!(run.snapshot());
}

#[test]
fn validate_shipped_catalog() {
    let s = Sandbox::new().shipped();
    let run = s.validate();
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    assert!(
        run.stdout
            .starts_with("[TMP]/catalog/metrics.toml is valid: "),
        "{}",
        run.snapshot()
    );
}

/// A misspelled metric in a table's `metrics = [...]`.
#[test]
fn misspelled_metric_in_table_list() {
    let s = Sandbox::new().minimal();
    s.edit(
        "catalog/metrics.toml",
        r#"metrics = ["mrr", "customers","#,
        r#"metrics = ["mrr", "customer","#,
    );
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// The same typo in the shipped catalog: `churned_mrr` -> `churn_mrr` in
/// the list of `mrr_movements_monthly`. The location is checked against
/// the edited file, then masked as `[LINE]`.
#[test]
fn misspelled_metric_in_shipped_table_list() {
    let s = Sandbox::new().shipped();
    let text = s.read("catalog/metrics.toml");
    let table = text
        .find("[tables.mrr_movements_monthly]")
        .expect("the shipped catalog has mrr_movements_monthly");
    let at = table
        + text[table..]
            .find("\"churned_mrr\"")
            .expect("mrr_movements_monthly lists churned_mrr");
    let edited = format!("{}\"churn_mrr\"{}", &text[..at], &text[at + 13..]);
    s.write("catalog/metrics.toml", &edited);
    // the caret underlines the string, quotes included
    let (line, col) = line_col(&edited, at);
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    let place = format!("[TMP]/catalog/metrics.toml:{line}:{col}");
    assert!(
        run.stderr.contains(&place),
        "expected {place} in\n{}",
        run.stderr
    );
    let masked = run
        .snapshot()
        .replace(&format!(":{line}:"), ":[LINE]:")
        .replace(&format!("\n{line} | "), "\n[LINE] | ");
    insta::assert_snapshot!(masked);
}

/// A misspelled metric in a derived expression and in a ratio.
#[test]
fn misspelled_metric_in_expressions() {
    let s = Sandbox::new().minimal();
    s.edit(
        "catalog/metrics.toml",
        r#"expr = "mrr / 1000""#,
        r#"expr = "mmr / 1000""#,
    );
    s.edit(
        "catalog/metrics.toml",
        r#"denominator = "customers""#,
        r#"denominator = "customer""#,
    );
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// An unknown name that is no near miss lists the valid metrics.
#[test]
fn unknown_metric_lists_the_valid_ones() {
    let s = Sandbox::new().minimal();
    s.edit(
        "catalog/metrics.toml",
        r#"expr = "mrr / 1000""#,
        r#"expr = "revenue / 1000""#,
    );
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// Two derived metrics computed from each other.
#[test]
fn metric_cycle() {
    let s = Sandbox::new().minimal();
    s.append(
        "catalog/metrics.toml",
        r#"
[metrics.a]
kind = "derived"
expr = "b + 1"

[metrics.b]
kind = "derived"
expr = "a * 2"
"#,
    );
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// Two SQL models that read each other.
#[test]
fn model_cycle() {
    let s = Sandbox::new().minimal();
    s.append(
        "catalog/metrics.toml",
        "\n[models.first]\n[models.second]\n",
    );
    s.write(
        "catalog/sql/first.sql",
        "SELECT customer_id, month, mrr FROM second\n",
    );
    s.write(
        "catalog/sql/second.sql",
        "SELECT customer_id, month, mrr\nFROM first\nWHERE mrr > 0\n",
    );
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// Every problem is reported in one run, not only the first.
#[test]
fn several_errors_are_reported_together() {
    let s = Sandbox::new().minimal();
    s.edit(
        "catalog/metrics.toml",
        r#"metrics = ["mrr", "customers","#,
        r#"metrics = ["mrr", "customer","#,
    );
    s.edit(
        "catalog/metrics.toml",
        r#"expr = "mrr / 1000""#,
        r#"expr = "mmr / 1000""#,
    );
    s.edit(
        "catalog/metrics.toml",
        r#"kind = "ratio""#,
        r#"kind = "ration""#,
    );
    s.append(
        "catalog/metrics.toml",
        r#"
[metrics.a]
kind = "derived"
expr = "b + 1"

[metrics.b]
kind = "derived"
expr = "a * 2"

[models.first]
[models.second]
"#,
    );
    s.write("catalog/sql/first.sql", "SELECT * FROM second\n");
    s.write("catalog/sql/second.sql", "SELECT * FROM first\n");
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("catalog has 5 errors"),
        "{}",
        run.stderr
    );
    insta::assert_snapshot!(run.snapshot());
}

/// `build` checks the catalog first, with the same exit code.
#[test]
fn build_stops_on_a_catalog_error() {
    let s = Sandbox::new().minimal();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    s.edit(
        "catalog/metrics.toml",
        r#"metrics = ["mrr", "customers","#,
        r#"metrics = ["mrr", "customer","#,
    );
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(2));
    assert!(!s.path("out/_manifest.json").exists());
    insta::assert_snapshot!(run.snapshot());
}

// ---------------------------------------------------------------- build

/// A build that works: progress on stderr, build id and durations masked.
#[test]
fn build_minimal_catalog() {
    let s = Sandbox::new().minimal();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    assert!(s.path("out/_manifest.json").exists());
    insta::assert_snapshot!(run.snapshot());
}

/// The progress lines count every step once: a model that a table
/// publishes as it is shares that table's step, and the last step is
/// `[n/n]`.
#[test]
fn build_progress_counts_each_step_once() {
    let s = Sandbox::new().shipped();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    let counts: Vec<(usize, usize)> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('[') && !l.contains("] building "))
        .filter_map(|l| {
            let (k, n) = l.strip_prefix('[')?.split_once(']')?.0.split_once('/')?;
            Some((k.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    let total = counts.last().expect("finished steps").1;
    assert_eq!(
        counts,
        (1..=total).map(|k| (k, total)).collect::<Vec<_>>(),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("table customer_mrr_monthly: ")
            && !run.stderr.contains("model customer_mrr_monthly: "),
        "{}",
        run.stderr
    );
}

/// A subscriptions file without `start_date`: exit 1, and the message
/// names the table, the file and the column. Nothing is published.
#[test]
fn build_missing_required_column() {
    let s = Sandbox::new().shipped();
    s.parquet("subscriptions", "part-0.parquet", &subscriptions(None));
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(1));
    for part in [
        "subscriptions",
        "[TMP]/data/subscriptions/part-0.parquet",
        "`start_date`",
    ] {
        assert!(run.stderr.contains(part), "{part} in {}", run.stderr);
    }
    assert!(!s.path("out/_manifest.json").exists());
    insta::assert_snapshot!(run.snapshot());
}

/// The column is there under a near name: the message says how to map it.
#[test]
fn build_missing_column_with_a_near_name() {
    let s = Sandbox::new().shipped();
    let batch = subscriptions(Some(("start_dt", DataType::Date32)));
    s.parquet("subscriptions", "part-0.parquet", &batch);
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!(run.snapshot());
}

/// A required column must be in every file: the message names the one
/// that lacks it, not the first.
#[test]
fn build_missing_column_in_one_of_two_files() {
    let s = Sandbox::new().shipped();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    s.parquet("subscriptions", "part-1.parquet", &subscriptions(None));
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("part-1.parquet") && !run.stderr.contains("part-0.parquet"),
        "{}",
        run.stderr
    );
    insta::assert_snapshot!(run.snapshot());
}

/// A column of a type that cannot be a date.
#[test]
fn build_column_of_the_wrong_type() {
    let s = Sandbox::new().shipped();
    let batch = subscriptions(Some(("start_date", DataType::Boolean)));
    s.parquet("subscriptions", "part-0.parquet", &batch);
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!(run.snapshot());
}

/// The required table is not there at all.
#[test]
fn build_without_subscriptions() {
    let s = Sandbox::new().shipped();
    std::fs::create_dir_all(s.path("data")).unwrap();
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!(run.snapshot());
}

// ---------------------------------------------------------------- usage

#[test]
fn usage_as_of_is_not_a_date() {
    let s = Sandbox::new().minimal();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let run = s.build(&["--as-of", "2024-13-01"]);
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

#[test]
fn usage_select_unknown_table() {
    let s = Sandbox::new().shipped();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let run = s.build(&["--as-of", "2024-03-31", "--select", "mrr_movement_monthly"]);
    assert_eq!(run.code, Some(2));
    assert!(!s.path("out/_manifest.json").exists());
    insta::assert_snapshot!(run.snapshot());
}

#[test]
fn usage_source_without_a_path() {
    let s = Sandbox::new().minimal();
    let run = s.build(&["--as-of", "2024-03-31", "--source", "subscriptions"]);
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

#[test]
fn usage_catalog_not_found() {
    let s = Sandbox::new();
    let run = s.validate();
    assert_eq!(run.code, Some(2));
    insta::assert_snapshot!(run.snapshot());
}

/// The SQL a metric compiles to, pinned: a change to the grid compiler shows
/// up here as a reviewable diff.
#[test]
fn explain_pins_the_sql_of_a_metric() {
    let s = Sandbox::new().shipped();
    let run = s.explain("ltv");
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    insta::assert_snapshot!(run.snapshot());
}

/// A table that publishes a model as it is shows the model's SQL too: the
/// health score's, written by vitals, is what an analyst comes to see.
#[test]
fn explain_of_a_table_publishing_a_model_shows_the_model() {
    let s = Sandbox::new().shipped();
    let run = s.explain("customer_health");
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    let score = run
        .stdout
        .find("-- score metric customer_health (SQL written by vitals)\nWITH __pop AS")
        .expect("the score's SQL");
    let table = run
        .stdout
        .find("-- table customer_health\nSELECT * FROM \"customer_health\" ORDER BY")
        .expect("the table's SQL");
    assert!(score < table, "{}", run.stdout);
}

/// A broken model is reported once, with its dependents skipped, together
/// with the errors of the metric tables.
#[test]
fn validate_reports_model_and_table_errors_together() {
    let s = Sandbox::new().shipped();
    let sql = s.path("catalog/sql/customer_segments.sql");
    let text = std::fs::read_to_string(&sql).unwrap().replace(
        "coalesce(segment_of.segment,",
        "coalesce(segment_of.segmnt,",
    );
    std::fs::write(&sql, text).unwrap();
    let run = s.validate();
    assert_eq!(run.code, Some(2), "{}", run.snapshot());
    assert_eq!(
        run.stderr.matches("error: model").count(),
        1,
        "{}",
        run.snapshot()
    );
    assert!(
        run.stderr.contains("customer_segments.sql:15:45"),
        "{}",
        run.snapshot()
    );
}

/// The README's first command: generates, builds and prints the summary.
#[test]
fn demo_generates_builds_and_prints_the_latest_months() {
    let s = Sandbox::new();
    let run = s.vitals(&[
        "demo".to_string(),
        "--dir".to_string(),
        s.path("demo").display().to_string(),
        "--customers".to_string(),
        "200".to_string(),
        "--months".to_string(),
        "14".to_string(),
        // no metrics.toml in the sandbox: the built-in catalog is used
        "--catalog".to_string(),
        s.path("absent.toml").display().to_string(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    assert!(
        run.stdout.contains("as of 2025-12-31"),
        "{}",
        run.snapshot()
    );
    for month in ["2025-07-01", "2025-12-01"] {
        assert!(
            run.stdout.contains(month),
            "{month} missing: {}",
            run.snapshot()
        );
    }
    assert!(s.path("demo/out/_manifest.json").exists());
    assert!(s.path("demo/catalog/sql/customer_mrr_monthly.sql").exists());
}

/// Outside a catalog folder, `vitals build` uses the built-in catalog.
#[test]
fn build_without_a_catalog_here_uses_the_built_in_one() {
    let s = Sandbox::new();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let build = |extra: &[&str]| {
        let mut args: Vec<String> = ["build", "--as-of", "2024-03-31"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect();
        for (flag, dir) in [("--data", "data"), ("--target", "out")] {
            args.push(flag.to_string());
            args.push(s.path(dir).display().to_string());
        }
        s.vitals(&args)
    };
    let run = build(&[]);
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    assert!(
        run.stderr.contains("using the built-in catalog"),
        "{}",
        run.snapshot()
    );
    let manifest = std::fs::read_to_string(s.path("out/_manifest.json")).unwrap();
    assert!(manifest.contains("\"saas_kpis_monthly\""), "{manifest}");
    // --quiet prints no progress and no note about the catalog: only the
    // line saying what was published.
    let quiet = build(&["--quiet"]);
    assert_eq!(quiet.code, Some(0), "{}", quiet.snapshot());
    let lines: Vec<&str> = quiet.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("published build "),
        "{}",
        quiet.snapshot()
    );
}

/// An absent optional table is one line naming it and what it skipped; the
/// build succeeds and publishes the rest.
#[test]
fn build_names_each_absent_table_and_what_it_skipped() {
    let s = Sandbox::new().shipped();
    s.parquet("subscriptions", "part-0.parquet", &valid_subscriptions());
    let run = s.build(&["--as-of", "2024-03-31"]);
    assert_eq!(run.code, Some(0), "{}", run.snapshot());
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("input table"))
        .collect();
    assert_eq!(
        lines,
        [
            "input table `acquisition_spend` is absent: null columns unit_economics.spend, unit_economics.cac, unit_economics.cac_payback_months, unit_economics.ltv_to_cac, unit_economics.net_ltv",
            "input table `surveys` is absent: skipped tables at_risk_customers, customer_health, health_bands_monthly, survey_scores_monthly",
            "input table `tickets` is absent: skipped tables at_risk_customers, customer_health, health_bands_monthly, support_monthly",
            "input table `usage` is absent: skipped tables at_risk_customers, customer_health, health_bands_monthly",
        ],
        "{}",
        run.snapshot()
    );
    assert!(run.stderr.contains("published build"), "{}", run.snapshot());
}
