//! Lenient input types, column mapping, rejected rows and unreadable input:
//! the input contract of ../shared/spec/inputs.md.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::common::{Data, build, build_with, date, shipped_catalog, sub};

fn millis(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

/// The same three subscriptions as integers, timestamps, strings and
/// decimals, in columns with other names mapped in the catalog.
fn lenient_data() -> Data {
    let schema = Arc::new(Schema::new(vec![
        Field::new("sub", DataType::Int64, true),
        Field::new("account", DataType::Int32, true),
        Field::new(
            "starts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            true,
        ),
        Field::new("end_date", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("billing_period", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Int32Array::from(vec![10, 10, 20])),
        Arc::new(
            TimestampMillisecondArray::from(vec![
                millis("2024-01-01T00:00:00Z"),
                // 23:30 in New York on Jan 31 is Feb 1 in UTC.
                millis("2024-01-31T23:30:00-05:00"),
                millis("2024-01-15T12:00:00Z"),
            ])
            .with_timezone("+00:00"),
        ),
        Arc::new(StringArray::from(vec![
            Some("2024-02-01"),
            None,
            Some("2024-03-10T08:00:00Z"),
        ])),
        Arc::new(
            Decimal128Array::from(vec![12000, 36000, 120000])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec!["month", "Quarter", "YEAR"])),
    ];
    let data = Data::new();
    data.write(
        "subscriptions",
        &RecordBatch::try_new(schema, columns).unwrap(),
    );
    data
}

fn mapped_catalog(dir: &std::path::Path) -> std::path::PathBuf {
    super::common::catalog_variant(dir, |text| {
        let edited = text.replace(
            "[sources.subscriptions]\nlocation = \"data/subscriptions\"\n",
            "[sources.subscriptions]\nlocation = \"data/subscriptions\"\n\
             columns = { subscription_id = \"sub\", customer_id = \"account\", start_date = \"starts\", amount = \"price\" }\n",
        );
        assert!(
            edited.contains("account"),
            "the catalog's subscriptions section moved"
        );
        edited
    })
}

#[tokio::test]
async fn lenient_types_and_mapped_columns_give_the_same_numbers() {
    let catalog_dir = tempfile::tempdir().unwrap();
    let built = build_with(
        &mapped_catalog(catalog_dir.path()),
        &lenient_data(),
        "2024-03-31",
    )
    .await;
    let rows = built
        .rows(
            "SELECT customer_id, CAST(month AS VARCHAR) AS m, mrr, movement FROM customer_mrr_monthly \
             ORDER BY customer_id, month",
        )
        .await;
    // 10: 120/month in January; 360/quarter (120/month) from Feb 1 (UTC day
    // of the timestamp). 20: 1200/year = 100/month from Jan 15 to Mar 10.
    let expected = [
        ["10", "2024-01-01", "120.0", "new"],
        ["10", "2024-02-01", "120.0", ""],
        ["10", "2024-03-01", "120.0", ""],
        ["20", "2024-01-01", "100.0", "new"],
        ["20", "2024-02-01", "100.0", ""],
        ["20", "2024-03-01", "0.0", "churn"],
    ];
    assert_eq!(
        built.rows("SELECT count(*) FROM rejected_rows").await,
        [["0"]]
    );
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}

#[tokio::test]
async fn bad_subscription_rows_are_rejected_with_their_reason_and_never_counted() {
    let data = Data::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscription_id", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("start_date", DataType::Utf8, true),
        Field::new("end_date", DataType::Utf8, true),
        Field::new("mrr", DataType::Float64, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("billing_period", DataType::Utf8, true),
        Field::new("currency", DataType::Utf8, true),
    ]));
    type Row = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<f64>,
        Option<f64>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let rows: Vec<Row> = vec![
        (
            Some("ok"),
            Some("c1"),
            Some("2024-01-01"),
            None,
            Some(100.0),
            None,
            None,
            Some("usd"),
        ),
        (
            None,
            Some("c2"),
            Some("2024-01-01"),
            None,
            Some(1.0),
            None,
            None,
            None,
        ),
        (
            Some("s3"),
            Some("c3"),
            None,
            None,
            Some(1.0),
            None,
            None,
            None,
        ),
        (
            Some("s4"),
            Some("c4"),
            Some("2024-01-05"),
            Some("2024-01-04"),
            Some(1.0),
            None,
            None,
            None,
        ),
        (
            Some("s5"),
            Some("c5"),
            Some("2024-01-01"),
            None,
            None,
            Some(10.0),
            None,
            None,
        ),
        (
            Some("s6"),
            Some("c6"),
            Some("2024-01-01"),
            None,
            None,
            Some(10.0),
            Some("fortnight"),
            None,
        ),
        (
            Some("s7"),
            Some("c7"),
            Some("2024-01-01"),
            None,
            Some(-5.0),
            None,
            None,
            None,
        ),
        (
            Some("s8"),
            Some("c8"),
            Some("2024-01-01"),
            None,
            Some(5.0),
            None,
            None,
            Some("CHF"),
        ),
        // end = start is valid and never active
        (
            Some("s9"),
            Some("c9"),
            Some("2024-01-10"),
            Some("2024-01-10"),
            Some(7.0),
            None,
            None,
            None,
        ),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.1).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.2).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.3).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.4).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.5).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.6).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.7).collect::<StringArray>()),
    ];
    data.write(
        "subscriptions",
        &RecordBatch::try_new(schema, columns).unwrap(),
    );
    data.customers(&[("c1", Some("SMB")), ("c1", Some("SMB"))]);
    let built = build(&data, "2024-01-31").await;
    let rejected = built
        .rows("SELECT source_table, reason, coalesce(row_key, '-') FROM rejected_rows ORDER BY reason")
        .await;
    let expected = [
        ["subscriptions", "currency_without_rate", "s8"],
        ["subscriptions", "end_before_start", "s4"],
        ["subscriptions", "missing_mrr", "s5"],
        ["subscriptions", "negative_mrr", "s7"],
        ["subscriptions", "null_key", "-"],
        ["subscriptions", "null_start_date", "s3"],
        ["subscriptions", "unknown_billing_period", "s6"],
    ];
    assert_eq!(
        rejected,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
    let json = built
        .rows("SELECT row_json FROM rejected_rows WHERE reason = 'negative_mrr'")
        .await;
    assert_eq!(
        json[0][0],
        r#"{"subscription_id":"s7","customer_id":"c7","plan":null,"start_date":"2024-01-01","end_date":null,"mrr":-5.0,"amount":null,"billing_period":null,"quantity":null,"currency":null}"#
    );
    // Only c1 pays; the duplicated customers row does not double it.
    let totals = built
        .rows("SELECT mrr_end, customers_end FROM mrr_movements_monthly WHERE segment IS NULL")
        .await;
    assert_eq!(totals, [["100.0", "1"]]);
}

#[tokio::test]
async fn other_currencies_convert_at_the_rate_of_their_start_month() {
    let data = Data::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscription_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("start_date", DataType::Utf8, false),
        Field::new("mrr", DataType::Float64, false),
        Field::new("currency", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["s1", "s2"])),
        Arc::new(StringArray::from(vec!["c1", "c2"])),
        Arc::new(StringArray::from(vec!["2024-01-20", "2024-02-03"])),
        Arc::new(Float64Array::from(vec![100.0, 100.0])),
        Arc::new(StringArray::from(vec![Some("EUR"), Some("eur")])),
    ];
    data.write(
        "subscriptions",
        &RecordBatch::try_new(schema, columns).unwrap(),
    );
    let fx_schema = Arc::new(Schema::new(vec![
        Field::new("currency", DataType::Utf8, false),
        Field::new("month", DataType::Utf8, false),
        Field::new("rate", DataType::Float64, false),
    ]));
    let fx: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["EUR", "EUR", "EUR"])),
        Arc::new(StringArray::from(vec![
            "2024-01-01",
            "2024-02-15",
            "2024-03-01",
        ])),
        Arc::new(Float64Array::from(vec![1.1, 1.2, 1.5])),
    ];
    data.write("fx_rates", &RecordBatch::try_new(fx_schema, fx).unwrap());
    let built = build(&data, "2024-03-31").await;
    let rows = built
        .rows("SELECT CAST(month AS VARCHAR) AS m, round(mrr_end, 6) AS mrr FROM mrr_movements_monthly WHERE segment IS NULL ORDER BY month")
        .await;
    // The March rate changes nothing: each row keeps its start month's rate.
    let expected = [
        ["2024-01-01", "110.0"],
        ["2024-02-01", "230.0"],
        ["2024-03-01", "230.0"],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}

#[tokio::test]
async fn an_unreadable_file_fails_the_build_naming_table_and_file() {
    let data = Data::new();
    data.subscriptions(&[sub("s1", "c1", "2024-01-01", None, 10.0)]);
    std::fs::write(
        data.path().join("subscriptions/part-1.parquet"),
        b"not parquet",
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let err = vitals::build::run(&vitals::build::BuildOptions {
        catalog: shipped_catalog(),
        locations: vitals::execute::SourceLocations {
            data_dir: Some(data.path().display().to_string()),
            ..Default::default()
        },
        target: target.path().display().to_string(),
        as_of: Some(date("2024-01-31")),
        select: Vec::new(),
        session: Default::default(),
        progress: vitals::progress::ProgressMode::Quiet,
        wait: false,
        keep_builds: 2,
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert_eq!(err.exit_code(), 1, "{message}");
    assert!(
        message.contains("table subscriptions") && message.contains("part-1.parquet"),
        "{message}"
    );
    assert!(
        !target.path().join("_manifest.json").exists(),
        "nothing may be published"
    );
}

/// A timestamp's day is its day in the catalog's time zone: midnight UTC on
/// Jan 1 is Dec 31 in New York, 23:30 in New York on Jan 31 is Jan 31 there;
/// a date string stays its date.
#[tokio::test]
async fn timestamps_are_cut_to_the_day_of_the_catalog_time_zone() {
    let catalog_dir = tempfile::tempdir().unwrap();
    let catalog = mapped_catalog(catalog_dir.path());
    let text = std::fs::read_to_string(&catalog)
        .unwrap()
        .replace("timezone = \"UTC\"", "timezone = \"America/New_York\"");
    std::fs::write(&catalog, text).unwrap();
    let built = build_with(&catalog, &lenient_data(), "2024-03-31").await;
    let rows = built
        .rows("SELECT CAST(month AS VARCHAR) AS m, mrr, movement FROM customer_mrr_monthly WHERE customer_id = '10' ORDER BY month")
        .await;
    let expected = [
        ["2023-12-01", "120.0", "new"],
        ["2024-01-01", "240.0", "expansion"],
        ["2024-02-01", "120.0", "contraction"],
        ["2024-03-01", "120.0", ""],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}
