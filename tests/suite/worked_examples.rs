//! The worked examples of ../shared/spec/metrics.md, each on a tiny
//! Parquet fixture whose numbers a person can check by hand.

use super::common::{Data, Sub, build, close, many_ids, sub};

/// Example 1: 16,000 paying customers at the start of a month, 800 churn in
/// it: customer_churn_rate = 0.05.
#[tokio::test]
async fn example_1_churn_rate() {
    let ids = many_ids("c", 16_000, 1);
    let rows: Vec<Sub> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            sub(
                id,
                id,
                "2024-01-01",
                (i < 800).then_some("2024-02-15"),
                10.0,
            )
        })
        .collect();
    let data = Data::new();
    data.subscriptions(&rows);
    let built = build(&data, "2024-02-29").await;
    let rows = built
        .rows(
            "SELECT customers_start, churned_customers FROM mrr_movements_monthly \
             WHERE month = DATE '2024-02-01' AND segment IS NULL",
        )
        .await;
    assert_eq!(rows, [["16000", "800"]]);
    let rate = built
        .value("SELECT customer_churn_rate FROM saas_kpis_monthly WHERE month = DATE '2024-02-01' AND segment IS NULL")
        .await;
    assert_eq!(rate, Some(0.05));
}

/// 100 customers paying 100 from January; `churned` of them leave in February.
fn hundred_customers(churned: usize) -> Data {
    let ids = many_ids("c", 100, 3);
    let rows: Vec<Sub> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            sub(
                id,
                id,
                "2024-01-01",
                (i < churned).then_some("2024-02-10"),
                100.0,
            )
        })
        .collect();
    let data = Data::new();
    data.subscriptions(&rows);
    data
}

/// Example 2: a monthly customer churn of 1 % is an annualized churn of
/// about 11.4 % (1 - 0.99^12 = 0.1136).
#[tokio::test]
async fn example_2_annualized_churn() {
    let built = build(&hundred_customers(1), "2024-02-29").await;
    let rows = built
        .rows(
            "SELECT customer_churn_rate, round(annualized_customer_churn_rate, 4) FROM saas_kpis_monthly \
             WHERE month = DATE '2024-02-01' AND segment IS NULL",
        )
        .await;
    assert_eq!(rows, [["0.01", "0.1136"]]);
    let exact = built
        .value("SELECT annualized_customer_churn_rate FROM saas_kpis_monthly WHERE month = DATE '2024-02-01' AND segment IS NULL")
        .await
        .unwrap();
    assert!(close(exact, 1.0 - 0.99f64.powi(12)), "{exact}");
}

/// Example 4: ltv = arpa / customer_churn_rate: ARPA $100 at 2 % monthly
/// churn gives an LTV of $5,000. January has no churn rate (nobody paid in
/// December), so the trailing mean of February is February's 2 %.
#[tokio::test]
async fn example_4_ltv() {
    let data = Data::new();
    let ids = many_ids("c", 50, 2);
    let rows: Vec<Sub> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            sub(
                id,
                id,
                "2024-01-01",
                (i == 0).then_some("2024-02-10"),
                100.0,
            )
        })
        .collect();
    data.subscriptions(&rows);
    let built = build(&data, "2024-02-29").await;
    let rows = built
        .rows(
            "SELECT CAST(month AS VARCHAR) AS m, customer_churn_rate, arpa, ltv FROM saas_kpis_monthly \
             WHERE segment IS NULL ORDER BY month",
        )
        .await;
    assert_eq!(
        rows,
        [
            ["2024-01-01", "", "100.0", ""],
            ["2024-02-01", "0.02", "100.0", "5000.0"]
        ]
    );
}

/// Three customers: A expands by `expansion`, B churns 800, C contracts 300.
async fn net_negative_churn_with(expansion: f64) -> (Vec<Vec<String>>, Option<f64>) {
    let data = Data::new();
    data.subscriptions(&[
        sub("a1", "A", "2024-01-01", Some("2024-02-01"), 100.0),
        sub("a2", "A", "2024-02-01", None, 100.0 + expansion),
        sub("b1", "B", "2024-01-01", Some("2024-02-01"), 800.0),
        sub("c1", "C", "2024-01-01", Some("2024-02-01"), 500.0),
        sub("c2", "C", "2024-02-01", None, 200.0),
    ]);
    let built = build(&data, "2024-02-29").await;
    let movements = built
        .rows(
            "SELECT expansion_mrr, churned_mrr, contraction_mrr FROM mrr_movements_monthly \
             WHERE month = DATE '2024-02-01' AND segment IS NULL",
        )
        .await;
    let flag = built
        .rows("SELECT net_negative_churn FROM saas_kpis_monthly WHERE month = DATE '2024-02-01' AND segment IS NULL")
        .await;
    (
        movements,
        Some(if flag[0][0] == "true" { 1.0 } else { 0.0 }),
    )
}

/// Example 6: expansion $1,200 against churn $800 and contraction $300 is a
/// month of net negative churn; with expansion $1,000 it is not.
#[tokio::test]
async fn example_6_net_negative_churn() {
    let (movements, flag) = net_negative_churn_with(1200.0).await;
    assert_eq!(movements, [["1200.0", "800.0", "300.0"]]);
    assert_eq!(flag, Some(1.0));
    let (movements, flag) = net_negative_churn_with(1000.0).await;
    assert_eq!(movements, [["1000.0", "800.0", "300.0"]]);
    assert_eq!(flag, Some(0.0));
}

/// Net negative churn is false, not null, in a month without movements.
#[tokio::test]
async fn net_negative_churn_is_false_when_nothing_moves() {
    let built = build(&hundred_customers(0), "2024-02-29").await;
    let rows = built
        .rows("SELECT net_negative_churn FROM saas_kpis_monthly WHERE month = DATE '2024-02-01' AND segment IS NULL")
        .await;
    assert_eq!(rows, [["false"]]);
}
