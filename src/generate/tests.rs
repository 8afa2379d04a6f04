//! Tests of the generator: determinism, schemas, every bad-row class and
//! the tricky cases of the input contract, read back from the Parquet files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use chrono::Datelike;
use datafusion::arrow::array::{
    Array, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::calendar::from_days;
use super::writer::Limits;
use super::*;

const TABLES: [&str; 7] = [
    "customers",
    "subscriptions",
    "usage",
    "tickets",
    "surveys",
    "acquisition_spend",
    "fx_rates",
];

fn part_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// All rows of a table as one batch.
fn read_table(out: &Path, table: &str) -> RecordBatch {
    let mut batches = Vec::new();
    let mut schema = None;
    for path in part_files(&out.join(table)) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        schema = Some(builder.schema().clone());
        for batch in builder.build().unwrap() {
            batches.push(batch.unwrap());
        }
    }
    concat_batches(&schema.expect("at least one part file"), &batches).unwrap()
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("type of column {name}"))
}

fn strs<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    col::<StringArray>(b, name)
}
fn dates<'a>(b: &'a RecordBatch, name: &str) -> &'a Date32Array {
    col::<Date32Array>(b, name)
}
fn f64s<'a>(b: &'a RecordBatch, name: &str) -> &'a Float64Array {
    col::<Float64Array>(b, name)
}
fn i64s<'a>(b: &'a RecordBatch, name: &str) -> &'a Int64Array {
    col::<Int64Array>(b, name)
}
fn ts<'a>(b: &'a RecordBatch, name: &str) -> &'a TimestampMicrosecondArray {
    col::<TimestampMicrosecondArray>(b, name)
}

fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}
fn opt<T: Array + 'static, V>(a: &T, i: usize, get: impl Fn(&T, usize) -> V) -> Option<V> {
    a.is_valid(i).then(|| get(a, i))
}

fn month_key(day: i32) -> (i32, u32) {
    let d = from_days(day);
    (d.year(), d.month())
}

/// Bad-row counts by (table, reason), classified from the files with the
/// contract's rules (first failing rule wins).
fn classify(out: &Path) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut bad = BTreeMap::new();
    let mut count = |table, reason: Option<&'static str>| {
        if let Some(r) = reason {
            *bad.entry((table, r)).or_insert(0) += 1;
        }
    };

    let fx = read_table(out, "fx_rates");
    let mut rates = HashSet::new();
    for i in 0..fx.num_rows() {
        rates.insert((
            strs(&fx, "currency").value(i).to_string(),
            month_key(dates(&fx, "month").value(i)),
        ));
    }

    let s = read_table(out, "subscriptions");
    let (sid, cid) = (strs(&s, "subscription_id"), strs(&s, "customer_id"));
    let (start, end) = (dates(&s, "start_date"), dates(&s, "end_date"));
    let (mrr, amount, qty) = (f64s(&s, "mrr"), f64s(&s, "amount"), i64s(&s, "quantity"));
    let (period, currency) = (strs(&s, "billing_period"), strs(&s, "currency"));
    for i in 0..s.num_rows() {
        let months = opt_str(period, i).map(|p| match p.to_lowercase().as_str() {
            "month" => Some(1.0),
            "quarter" => Some(3.0),
            "year" => Some(12.0),
            "week" => Some(12.0 / 52.0),
            _ => None,
        });
        let m = opt(mrr, i, Float64Array::value);
        let a = opt(amount, i, Float64Array::value);
        let reason = if sid.is_null(i) || cid.is_null(i) {
            Some("null_key")
        } else if start.is_null(i) {
            Some("null_start_date")
        } else if end.is_valid(i) && end.value(i) < start.value(i) {
            Some("end_before_start")
        } else if m.is_none() && (a.is_none() || months.is_none()) {
            Some("missing_mrr")
        } else if months == Some(None) {
            Some("unknown_billing_period")
        } else if m.unwrap_or_else(|| {
            a.unwrap() * opt(qty, i, Int64Array::value).unwrap_or(1) as f64
                / months.flatten().unwrap()
        }) < 0.0
        {
            Some("negative_mrr")
        } else if let Some(c) = opt_str(currency, i)
            && c != "USD"
            && !rates.contains(&(c.to_string(), month_key(start.value(i))))
        {
            Some("currency_without_rate")
        } else {
            None
        };
        count("subscriptions", reason);
    }

    let c = read_table(out, "customers");
    for i in 0..c.num_rows() {
        count(
            "customers",
            strs(&c, "customer_id").is_null(i).then_some("null_key"),
        );
    }

    let u = read_table(out, "usage");
    for i in 0..u.num_rows() {
        let reason = if strs(&u, "customer_id").is_null(i) {
            Some("null_key")
        } else if ts(&u, "occurred_at").is_null(i) {
            Some("null_occurred_at")
        } else {
            None
        };
        count("usage", reason);
    }

    let t = read_table(out, "tickets");
    let (created, resolved) = (ts(&t, "created_at"), ts(&t, "resolved_at"));
    for i in 0..t.num_rows() {
        let reason = if strs(&t, "ticket_id").is_null(i) || strs(&t, "customer_id").is_null(i) {
            Some("null_key")
        } else if created.is_null(i) {
            Some("null_created_at")
        } else if resolved.is_valid(i) && resolved.value(i) < created.value(i) {
            Some("resolved_before_created")
        } else {
            None
        };
        count("tickets", reason);
    }

    let r = read_table(out, "surveys");
    let score = f64s(&r, "score");
    for i in 0..r.num_rows() {
        let range = match opt_str(strs(&r, "survey"), i) {
            Some("nps") => Some((0.0, 10.0)),
            Some("csat") => Some((1.0, 5.0)),
            Some("ces") => Some((1.0, 7.0)),
            _ => None,
        };
        let reason = if strs(&r, "response_id").is_null(i) || strs(&r, "customer_id").is_null(i) {
            Some("null_key")
        } else if ts(&r, "responded_at").is_null(i) {
            Some("null_responded_at")
        } else if range.is_none() {
            Some("unknown_survey_kind")
        } else if score.is_null(i) {
            Some("null_score")
        } else if let Some((lo, hi)) = range
            && !(lo..=hi).contains(&score.value(i))
        {
            Some("score_out_of_range")
        } else {
            None
        };
        count("surveys", reason);
    }

    let a = read_table(out, "acquisition_spend");
    for i in 0..a.num_rows() {
        let reason = if dates(&a, "month").is_null(i) {
            Some("null_month")
        } else if f64s(&a, "amount").is_null(i) {
            Some("null_amount")
        } else {
            None
        };
        count("acquisition_spend", reason);
    }
    bad
}

const BAD_REASONS: [(&str, &[&str]); 6] = [
    (
        "subscriptions",
        &[
            "null_key",
            "null_start_date",
            "end_before_start",
            "missing_mrr",
            "unknown_billing_period",
            "negative_mrr",
            "currency_without_rate",
        ],
    ),
    ("customers", &["null_key"]),
    ("usage", &["null_key", "null_occurred_at"]),
    (
        "tickets",
        &["null_key", "null_created_at", "resolved_before_created"],
    ),
    (
        "surveys",
        &[
            "null_key",
            "null_responded_at",
            "unknown_survey_kind",
            "null_score",
            "score_out_of_range",
        ],
    ),
    ("acquisition_spend", &["null_month", "null_amount"]),
];

fn check_schemas(out: &Path) {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let expected: [(&str, Vec<(&str, DataType)>); 7] = [
        (
            "customers",
            vec![
                ("customer_id", DataType::Utf8),
                ("signup_date", DataType::Date32),
                ("segment", DataType::Utf8),
                ("region", DataType::Utf8),
            ],
        ),
        (
            "subscriptions",
            vec![
                ("subscription_id", DataType::Utf8),
                ("customer_id", DataType::Utf8),
                ("plan", DataType::Utf8),
                ("start_date", DataType::Date32),
                ("end_date", DataType::Date32),
                ("mrr", DataType::Float64),
                ("amount", DataType::Float64),
                ("billing_period", DataType::Utf8),
                ("quantity", DataType::Int64),
                ("currency", DataType::Utf8),
            ],
        ),
        (
            "usage",
            vec![
                ("customer_id", DataType::Utf8),
                ("occurred_at", utc.clone()),
                ("user_id", DataType::Utf8),
                ("feature", DataType::Utf8),
                ("quantity", DataType::Int64),
            ],
        ),
        (
            "tickets",
            vec![
                ("ticket_id", DataType::Utf8),
                ("customer_id", DataType::Utf8),
                ("created_at", utc.clone()),
                ("resolved_at", utc.clone()),
                ("priority", DataType::Utf8),
                ("category", DataType::Utf8),
            ],
        ),
        (
            "surveys",
            vec![
                ("response_id", DataType::Utf8),
                ("customer_id", DataType::Utf8),
                ("responded_at", utc),
                ("survey", DataType::Utf8),
                ("score", DataType::Float64),
            ],
        ),
        (
            "acquisition_spend",
            vec![
                ("month", DataType::Date32),
                ("segment", DataType::Utf8),
                ("amount", DataType::Float64),
            ],
        ),
        (
            "fx_rates",
            vec![
                ("currency", DataType::Utf8),
                ("month", DataType::Date32),
                ("rate", DataType::Float64),
            ],
        ),
    ];
    for (table, fields) in expected {
        let path = out.join(table).join("part-00000.parquet");
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let got: Vec<(String, DataType)> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let want: Vec<(String, DataType)> = fields
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
        assert_eq!(got, want, "schema of {table}");
    }
}

/// The awkward cases of real sources all occur.
fn check_tricky_cases(out: &Path, opts: &GenerateOptions) {
    let cal = Calendar::new(opts.last_month, opts.months).unwrap();
    let s = read_table(out, "subscriptions");
    let c = read_table(out, "customers");
    let (sid, cid) = (strs(&s, "subscription_id"), strs(&s, "customer_id"));
    let (start, end) = (dates(&s, "start_date"), dates(&s, "end_date"));
    let (mrr, amount, qty) = (f64s(&s, "mrr"), f64s(&s, "amount"), i64s(&s, "quantity"));
    let (period, plan, currency) = (
        strs(&s, "billing_period"),
        strs(&s, "plan"),
        strs(&s, "currency"),
    );

    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    let mut see = |what: &'static str, yes: bool| {
        *seen.entry(what).or_insert(0) += yes as u64;
    };
    // Rows of each customer (good rows only), in file order.
    let mut by_customer: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..s.num_rows() {
        if sid.is_null(i) || cid.is_null(i) || sid.value(i).contains("-x") {
            continue;
        }
        by_customer.entry(cid.value(i)).or_default().push(i);
        let st = start.value(i);
        let en = opt(end, i, Date32Array::value);
        let day = from_days(st).day();
        see("mrr_month_aligned_start", mrr.is_valid(i) && day == 1);
        see("mrr_mid_month_start", mrr.is_valid(i) && day != 1);
        see(
            "amount_period_quantity_without_mrr",
            mrr.is_null(i) && amount.is_valid(i) && period.is_valid(i) && qty.is_valid(i),
        );
        see(
            "mixed_case_period",
            opt_str(period, i).is_some_and(|p| p != p.to_lowercase()),
        );
        see(
            "week_period",
            opt_str(period, i).is_some_and(|p| p.eq_ignore_ascii_case("week")),
        );
        see(
            "quarter_period",
            opt_str(period, i).is_some_and(|p| p.eq_ignore_ascii_case("quarter")),
        );
        see(
            "annual",
            opt_str(period, i).is_some_and(|p| p.eq_ignore_ascii_case("year")),
        );
        see("mrr_and_amount", mrr.is_valid(i) && amount.is_valid(i));
        see("trial_zero_mrr", mrr.is_valid(i) && mrr.value(i) == 0.0);
        see(
            "start_and_end_in_one_month",
            en.is_some_and(|e| e > st && month_key(e - 1) == month_key(st)),
        );
        see("end_equals_start", en == Some(st));
        see("still_active", en.is_none());
        see("starts_before_range", st < cal.range_start);
        see("currency_null", currency.is_null(i));
        see("currency_eur", opt_str(currency, i) == Some("EUR"));
        see("currency_gbp", opt_str(currency, i) == Some("GBP"));
        see("add_on", opt_str(plan, i) == Some("Analytics Add-on"));
    }
    for rows in by_customer.values() {
        // Main line: everything but add-ons and same-day cancellations.
        let main: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&i| {
                plan.value(i) != "Analytics Add-on"
                    && !(end.is_valid(i) && end.value(i) == start.value(i))
            })
            .collect();
        let mut plan_change = false;
        let mut reactivation = false;
        let mut trial_then_paid = false;
        for w in main.windows(2) {
            let (a, b) = (w[0], w[1]);
            if end.is_valid(a) && end.value(a) == start.value(b) {
                if mrr.is_valid(a) && mrr.value(a) == 0.0 {
                    trial_then_paid = true;
                } else {
                    plan_change = true;
                }
            }
            if end.is_valid(a) && end.value(a) < start.value(b) {
                reactivation = true;
            }
        }
        see("plan_change", plan_change);
        see("churn_then_reactivation", reactivation);
        see("trial_then_paid", trial_then_paid);
        see(
            "concurrent_subscriptions",
            rows.iter().any(|&i| plan.value(i) == "Analytics Add-on"),
        );
        see("churned", main.last().is_some_and(|&i| end.is_valid(i)));
    }
    let customer_ids: HashSet<&str> = (0..c.num_rows())
        .filter_map(|i| opt_str(strs(&c, "customer_id"), i))
        .collect();
    see(
        "subscriber_not_in_customers",
        by_customer.keys().any(|k| !customer_ids.contains(k)),
    );
    let seg = strs(&c, "segment");
    see(
        "customer_null_segment",
        (0..c.num_rows()).any(|i| seg.is_null(i) && strs(&c, "customer_id").is_valid(i)),
    );
    let mut segments: HashMap<&str, u64> = HashMap::new();
    for i in 0..c.num_rows() {
        if let Some(v) = opt_str(seg, i) {
            *segments.entry(v).or_default() += 1;
        }
    }
    let n = c.num_rows() as f64;
    assert!(
        (0.5..0.7).contains(&(segments["SMB"] as f64 / n)),
        "{segments:?}"
    );
    assert!(
        (0.22..0.38).contains(&(segments["Mid-Market"] as f64 / n)),
        "{segments:?}"
    );
    assert!(
        (0.05..0.15).contains(&(segments["Enterprise"] as f64 / n)),
        "{segments:?}"
    );

    let u = read_table(out, "usage");
    see("usage_null_user", strs(&u, "user_id").null_count() > 0);
    see("usage_null_feature", strs(&u, "feature").null_count() > 0);
    let t = read_table(out, "tickets");
    let (created, resolved) = (ts(&t, "created_at"), ts(&t, "resolved_at"));
    see("ticket_open", resolved.null_count() > created.null_count());
    let mut hours: Vec<i64> = (0..t.num_rows())
        .filter(|&i| created.is_valid(i) && resolved.is_valid(i))
        .map(|i| (resolved.value(i) - created.value(i)) / 3_600_000_000)
        .filter(|h| *h >= 0)
        .collect();
    hours.sort();
    see("resolution_hours_vary", hours.first() != hours.last());
    let priorities: HashSet<&str> = (0..t.num_rows())
        .filter_map(|i| opt_str(strs(&t, "priority"), i))
        .collect();
    see("all_priorities", priorities.len() == 4);
    let r = read_table(out, "surveys");
    let kinds: HashSet<&str> = (0..r.num_rows())
        .filter_map(|i| opt_str(strs(&r, "survey"), i))
        .collect();
    see(
        "all_survey_kinds",
        ["nps", "csat", "ces"].iter().all(|k| kinds.contains(k)),
    );
    let a = read_table(out, "acquisition_spend");
    let (aseg, aamt) = (strs(&a, "segment"), f64s(&a, "amount"));
    see("spend_shared_row", aseg.null_count() > 0);
    see(
        "spend_refund",
        (0..a.num_rows()).any(|i| aamt.is_valid(i) && aamt.value(i) < 0.0),
    );
    see(
        "spend_unknown_segment",
        (0..a.num_rows()).any(|i| opt_str(aseg, i) == Some("Public Sector")),
    );
    let fx = read_table(out, "fx_rates");
    for currency in ["EUR", "GBP"] {
        let months: HashSet<(i32, u32)> = (0..fx.num_rows())
            .filter(|&i| strs(&fx, "currency").value(i) == currency)
            .map(|i| month_key(dates(&fx, "month").value(i)))
            .collect();
        for &m in &cal.month_starts {
            assert!(months.contains(&month_key(m)), "{currency} rate of {m}");
        }
    }
    let missing: Vec<_> = seen.iter().filter(|(_, n)| **n == 0).collect();
    assert!(
        missing.is_empty(),
        "cases that never occur: {missing:?}\nall: {seen:?}"
    );
}

#[test]
fn dataset_of_1000_customers_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions::new(dir.path().to_path_buf());
    let summary = generate(&opts).unwrap();
    let names: Vec<&str> = summary.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, TABLES);

    check_schemas(dir.path());

    let bad = classify(dir.path());
    for (table, reasons) in BAD_REASONS {
        for reason in reasons {
            assert!(
                bad.get(&(table, *reason)).copied().unwrap_or(0) > 0,
                "no bad row {table}/{reason}: {bad:?}"
            );
        }
    }
    for t in &summary.tables {
        let counted: u64 = bad
            .iter()
            .filter(|((table, _), _)| *table == t.table)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, t.bad_rows, "bad rows of {}: {bad:?}", t.table);
        let share = t.bad_rows as f64 / t.rows as f64;
        match t.table.as_str() {
            "fx_rates" => assert_eq!(t.bad_rows, 0),
            "acquisition_spend" => assert!(share < 0.03, "{t:?}"),
            _ => assert!((0.002..0.012).contains(&share), "{t:?}"),
        }
        assert_eq!(t.files, 1);
    }
    let rows = |name: &str| {
        summary
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .rows
    };
    let per_customer = rows("usage") as f64 / 1000.0;
    assert!(
        (80.0..=120.0).contains(&per_customer),
        "usage rows per customer {per_customer}"
    );

    check_tricky_cases(dir.path(), &opts);
}

#[test]
fn same_options_give_same_bytes_and_reruns_replace_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let opts = |out: &Path| GenerateOptions {
        customers: 300,
        months: 12,
        seed: 7,
        ..GenerateOptions::new(out.to_path_buf())
    };
    // A stale part file of an earlier, bigger run must disappear.
    std::fs::create_dir_all(b.path().join("usage")).unwrap();
    std::fs::write(b.path().join("usage").join("part-00007.parquet"), b"stale").unwrap();
    std::fs::write(b.path().join("usage").join("README"), b"kept").unwrap();

    let first = generate(&opts(a.path())).unwrap();
    let second = generate(&opts(b.path())).unwrap();
    assert_eq!(first, second);
    // ~100 usage rows per customer in 36 months, in proportion to months.
    let per_customer_month = first.tables[2].rows as f64 / 300.0 / 12.0;
    assert!(
        (2.2..3.8).contains(&per_customer_month),
        "{per_customer_month}"
    );
    let again = generate(&opts(a.path())).unwrap();
    assert_eq!(first, again);
    assert!(!b.path().join("usage").join("part-00007.parquet").exists());
    assert!(b.path().join("usage").join("README").exists());
    for table in TABLES {
        let files_a = part_files(&a.path().join(table));
        assert_eq!(files_a.len(), 1, "{table}");
        let x = std::fs::read(&files_a[0]).unwrap();
        let y = std::fs::read(b.path().join(table).join("part-00000.parquet")).unwrap();
        assert!(x == y, "{table} differs between runs");
    }
    // Another seed gives other data.
    let c = tempfile::tempdir().unwrap();
    generate(&GenerateOptions {
        seed: 8,
        ..opts(c.path())
    })
    .unwrap();
    let x = std::fs::read(a.path().join("usage/part-00000.parquet")).unwrap();
    let y = std::fs::read(c.path().join("usage/part-00000.parquet")).unwrap();
    assert_ne!(x, y);
}

#[test]
fn small_limits_roll_row_groups_and_files_without_changing_rows() {
    let small = tempfile::tempdir().unwrap();
    let normal = tempfile::tempdir().unwrap();
    let opts = |out: &Path| GenerateOptions {
        customers: 150,
        months: 12,
        ..GenerateOptions::new(out.to_path_buf())
    };
    let limits = Limits {
        row_group_rows: 1000,
        file_rows: 3500,
    };
    let rolled = generate_with(&opts(small.path()), limits).unwrap();
    let plain = generate(&opts(normal.path())).unwrap();
    for (r, p) in rolled.tables.iter().zip(&plain.tables) {
        assert_eq!(
            (&r.table, r.rows, r.bad_rows),
            (&p.table, p.rows, p.bad_rows)
        );
        let files = part_files(&small.path().join(&r.table));
        assert_eq!(files.len(), r.files, "{}", r.table);
        // 4 row groups of 1000 rows fill a file (>= 3500 rows).
        assert_eq!(r.files as u64, r.rows.div_ceil(4000).max(1), "{}", r.table);
        for (k, path) in files.iter().enumerate() {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
            let groups: Vec<i64> = builder
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.num_rows())
                .collect();
            if k + 1 < files.len() {
                assert_eq!(groups, vec![1000; 4], "{}", path.display());
            } else {
                assert!(groups.iter().all(|&n| n <= 1000), "{}", path.display());
            }
        }
        assert_eq!(
            read_table(small.path(), &r.table),
            read_table(normal.path(), &r.table),
            "{}",
            r.table
        );
    }
    assert!(rolled.tables[2].files > 1);
}

#[test]
fn empty_runs_write_empty_tables_and_bad_options_fail() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&GenerateOptions {
        customers: 0,
        months: 3,
        ..GenerateOptions::new(dir.path().to_path_buf())
    })
    .unwrap();
    for t in &summary.tables {
        assert_eq!(t.files, 1);
        match t.table.as_str() {
            "customers" | "subscriptions" | "usage" | "tickets" | "surveys" => {
                assert_eq!(t.rows, 0, "{t:?}")
            }
            _ => assert!(t.rows > 0, "{t:?}"),
        }
    }
    check_schemas(dir.path());

    let err = generate(&GenerateOptions {
        months: 0,
        ..GenerateOptions::new(dir.path().to_path_buf())
    })
    .unwrap_err();
    assert!(err.to_string().contains("months"), "{err}");
}

/// Not a test: measures a big run. `VITALS_GEN_CUSTOMERS=100000
/// [VITALS_GEN_MONTHS=36 VITALS_GEN_OUT=dir] cargo test --lib
/// generate::tests::big_run -- --ignored --nocapture`.
#[test]
#[ignore]
fn big_run() {
    let customers = std::env::var("VITALS_GEN_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let out = std::env::var("VITALS_GEN_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("vitals-generate-big-run"));
    let months = std::env::var("VITALS_GEN_MONTHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(36);
    let started = std::time::Instant::now();
    let summary = generate(&GenerateOptions {
        customers,
        months,
        ..GenerateOptions::new(out.clone())
    })
    .unwrap();
    eprintln!(
        "{customers} customers in {:?} into {}",
        started.elapsed(),
        out.display()
    );
    for t in summary.tables {
        eprintln!(
            "{:>18} rows {:>11} bad {:>7} files {}",
            t.table, t.rows, t.bad_rows, t.files
        );
    }
}
