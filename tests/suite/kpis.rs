//! Segments, the full grid, 12-month retention and start_month, on a
//! fixture small enough to follow by hand.

use super::common::{Data, build, build_with, catalog_variant, sub};

/// A (SMB) pays 100 from Jan 2023 and 150 from Jan 2024; B (Enterprise)
/// pays 200 from Jan 2023 until July 2023; C has no customers row and pays
/// 50 from June 2023.
fn three_customers() -> Data {
    let data = Data::new();
    data.subscriptions(&[
        sub("a1", "A", "2023-01-01", Some("2024-01-01"), 100.0),
        sub("a2", "A", "2024-01-01", None, 150.0),
        sub("b1", "B", "2023-01-01", Some("2023-07-01"), 200.0),
        sub("c1", "C", "2023-06-10", None, 50.0),
    ]);
    data.customers(&[("A", Some("SMB")), ("B", Some("Enterprise"))]);
    data
}

#[tokio::test]
async fn every_month_has_a_row_per_segment_and_a_total() {
    let built = build(&three_customers(), "2024-01-31").await;
    let grid = built
        .rows("SELECT coalesce(segment, 'TOTAL') AS s, count(*) AS n FROM mrr_movements_monthly GROUP BY 1 ORDER BY 1")
        .await;
    let expected = [
        ["Enterprise", "13"],
        ["SMB", "13"],
        ["TOTAL", "13"],
        ["unknown", "13"],
    ];
    assert_eq!(
        grid,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
    // After B churned, Enterprise rows are zeros and null rates, not missing.
    let enterprise = built
        .rows(
            "SELECT m.mrr_end, m.customers_end, k.customer_churn_rate, k.arpa FROM mrr_movements_monthly m \
             JOIN saas_kpis_monthly k ON k.month = m.month AND k.segment = m.segment \
             WHERE m.segment = 'Enterprise' AND m.month = DATE '2023-09-01'",
        )
        .await;
    assert_eq!(enterprise, [["0.0", "0", "", ""]]);
}

#[tokio::test]
async fn nrr_12m_and_grr_12m_follow_the_customers_of_a_year_ago() {
    let built = build(&three_customers(), "2024-01-31").await;
    let rows = built
        .rows(
            "SELECT coalesce(segment, 'TOTAL') AS s, nrr_12m, round(grr_12m, 6) AS grr FROM saas_kpis_monthly \
             WHERE month = DATE '2024-01-01' ORDER BY 1",
        )
        .await;
    // Base: A 100 + B 200 = 300. Now: A 150, B 0; C was not paying a year ago.
    let expected = [
        ["Enterprise", "0.0", "0.0"],
        ["SMB", "1.5", "1.0"],
        ["TOTAL", "0.5", "0.333333"],
        ["unknown", "", ""],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
    let before = built
        .rows("SELECT count(*) FROM saas_kpis_monthly WHERE month < DATE '2024-01-01' AND nrr_12m IS NOT NULL")
        .await;
    assert_eq!(before, [["0"]]);
}

#[tokio::test]
async fn start_month_cuts_the_report_not_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_variant(dir.path(), |t| {
        t.replace("# start_month = \"2024-01\"", "start_month = \"2023-06\"")
    });
    let built = build_with(&catalog, &three_customers(), "2024-01-31").await;
    let first = built
        .rows(
            "SELECT CAST(month AS VARCHAR) AS m, mrr_start, new_mrr, mrr_end FROM mrr_movements_monthly \
             WHERE segment IS NULL ORDER BY month LIMIT 1",
        )
        .await;
    // June 2023 starts from the real May snapshot (A + B); only C is new.
    assert_eq!(first, [["2023-06-01", "300.0", "50.0", "350.0"]]);
    let customer_rows = built
        .rows("SELECT min(month) FROM customer_mrr_monthly")
        .await;
    assert_eq!(customer_rows, [["2023-06-01"]]);
}

/// Analysts' own tables at other grains and without dimensions: the same
/// metrics, summed by quarter, with a single row per period.
#[tokio::test]
async fn a_custom_table_at_quarter_grain_without_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_variant(dir.path(), |t| {
        t + r#"
[metrics.new_mrr_per_customer]
kind = "ratio"
numerator = "new_mrr"
denominator = "new_customers"

[tables.quarterly]
grain = "quarter"
metrics = ["new_mrr", "new_customers", "new_mrr_per_customer"]
"#
    });
    let built = build_with(&catalog, &three_customers(), "2024-01-31").await;
    let rows = built
        .rows("SELECT CAST(quarter AS VARCHAR) AS q, new_mrr, new_customers, new_mrr_per_customer FROM quarterly ORDER BY quarter")
        .await;
    let expected = [
        ["2023-01-01", "300.0", "2", "150.0"],
        ["2023-04-01", "50.0", "1", "50.0"],
        ["2023-07-01", "0.0", "0", ""],
        ["2023-10-01", "0.0", "0", ""],
        ["2024-01-01", "0.0", "0", ""],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}

/// Hive-style partition folders are read as one table.
#[tokio::test]
async fn hive_partitioned_sources() {
    let data = Data::new();
    for (region, rows) in [
        ("eu", vec![sub("a1", "A", "2024-01-01", None, 100.0)]),
        ("us", vec![sub("b1", "B", "2024-01-01", None, 50.0)]),
    ] {
        let dir = data.path().join(format!("subscriptions/region={region}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
        let batch = super::common::subscriptions_batch(&rows);
        let mut w =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let built = build(&data, "2024-01-31").await;
    let rows = built
        .rows("SELECT mrr_end, customers_end FROM mrr_movements_monthly WHERE segment IS NULL")
        .await;
    assert_eq!(rows, [["150.0", "2"]]);
}

/// No valid subscription at all: one month (the as_of month) of zeros and
/// null rates, not an error.
#[tokio::test]
async fn an_empty_subscriptions_table_gives_an_empty_month() {
    let data = Data::new();
    data.subscriptions(&[]);
    let built = build(&data, "2024-05-20").await;
    let rows = built
        .rows("SELECT CAST(month AS VARCHAR) AS m, segment, mrr_end, customers_end FROM mrr_movements_monthly ORDER BY 2 NULLS LAST")
        .await;
    assert_eq!(rows, [["2024-05-01", "", "0.0", "0"]]);
    assert_eq!(
        built
            .rows("SELECT count(*) FROM customer_mrr_monthly")
            .await,
        [["0"]]
    );
}

/// An as_of before the first subscription: the tables are empty, with
/// their schemas.
#[tokio::test]
async fn as_of_before_the_data_gives_empty_tables() {
    let built = build(&three_customers(), "2022-06-30").await;
    assert_eq!(
        built
            .rows("SELECT count(*) FROM mrr_movements_monthly")
            .await,
        [["0"]]
    );
    assert_eq!(built.manifest.tables["saas_kpis_monthly"].rows, 0);
    assert_eq!(built.manifest.tables["saas_kpis_monthly"].schema.len(), 13);
}
