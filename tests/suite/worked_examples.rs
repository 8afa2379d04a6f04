//! The worked examples of ../shared/spec/metrics.md, each on a tiny
//! Parquet fixture whose numbers a person can check by hand.

use super::common::{Col, Data, Sub, build, close, many_ids, sub};

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

/// Example 3: a customer worth $2,000 a year who stays 15 years (monthly
/// churn 1/180), acquired for $1,500: ltv 30,000, net_ltv 28,500. 180
/// customers at 2000/12; from February 2024 one leaves and one joins each
/// month (so 180 start every month and one churns), and each newcomer
/// costs 1,500 of shared spend.
#[tokio::test]
async fn example_3_lifetime_value_and_cac() {
    let monthly = 2000.0 / 12.0;
    let base = many_ids("c", 180, 3);
    let newcomers = many_ids("n", 14, 2);
    let months: Vec<String> = (1..=14)
        .map(|m| {
            let d = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Months::new(m);
            d.to_string()
        })
        .collect();
    let months: Vec<&'static str> = months
        .into_iter()
        .map(|m| &*Box::leak(m.into_boxed_str()))
        .collect();
    let mut rows: Vec<Sub> = base
        .iter()
        .enumerate()
        .map(|(i, id)| sub(id, id, "2024-01-01", months.get(i).copied(), monthly))
        .collect();
    for (n, start) in newcomers.iter().zip(&months) {
        rows.push(sub(n, n, start, None, monthly));
    }
    let data = Data::new();
    data.subscriptions(&rows);
    data.table(
        "acquisition_spend",
        vec![
            (
                "month",
                Col::Date(months.iter().map(|m| Some(*m)).collect()),
            ),
            ("segment", Col::Text(vec![None; months.len()])),
            ("amount", Col::Num(vec![Some(1500.0); months.len()])),
        ],
    );
    let built = build(&data, "2025-02-28").await;
    let row = |t: &str, p: &str| {
        format!(
            "SELECT spend, new_customers, cac, arpa_new, cac_payback_months, ltv, ltv_to_cac, net_ltv \
             FROM unit_economics WHERE period_type = '{t}' AND period = DATE '{p}' AND segment IS NULL"
        )
    };
    let month = built.rows(&row("month", "2025-02-01")).await;
    let v: Vec<f64> = month[0].iter().map(|x| x.parse().unwrap()).collect();
    assert_eq!(&v[..3], &[1500.0, 1.0, 1500.0], "{month:?}");
    assert!(close(v[3], monthly), "arpa_new {}", v[3]);
    assert!(close(v[4], 9.0), "cac_payback_months {}", v[4]);
    assert!(close(v[5], 30_000.0), "ltv {}", v[5]);
    assert!(close(v[6], 20.0), "ltv_to_cac {}", v[6]);
    assert!(close(v[7], 28_500.0), "net_ltv {}", v[7]);
    // The quarter so far (January and February) and the trailing year:
    // sums of spend and new customers, the ltv of the last month.
    let quarter = built.rows(&row("quarter", "2025-01-01")).await;
    assert_eq!(&quarter[0][..3], &["3000.0", "2", "1500.0"], "{quarter:?}");
    assert!(close(quarter[0][5].parse().unwrap(), 30_000.0));
    let year = built.rows(&row("trailing_12m", "2025-02-01")).await;
    assert_eq!(&year[0][..3], &["18000.0", "12", "1500.0"], "{year:?}");
    assert!(close(year[0][7].parse().unwrap(), 28_500.0));
    // The unknown segment won every new customer: all shared spend is its.
    let unknown = built
        .value("SELECT spend FROM unit_economics WHERE period_type = 'month' AND period = DATE '2025-02-01' AND segment = 'unknown'")
        .await;
    assert_eq!(unknown, Some(1500.0));
}

/// Spend of a segment no customer has, and shared spend of a month without
/// new customers, are in the total row only (metrics.md, "Unit
/// economics"): a total counts every row, also those whose member is not
/// in the grid, in every period type.
#[tokio::test]
async fn totals_hold_spend_outside_the_segments() {
    let data = Data::new();
    data.subscriptions(&[
        sub("s1", "c1", "2025-01-01", None, 100.0),
        sub("s2", "c2", "2025-01-01", None, 50.0),
    ]);
    data.customers(&[("c1", Some("SMB")), ("c2", Some("Enterprise"))]);
    data.table(
        "acquisition_spend",
        vec![
            (
                "month",
                Col::Date(vec![
                    Some("2025-01-01"),
                    Some("2025-01-15"),
                    Some("2025-01-20"),
                    Some("2025-02-01"),
                ]),
            ),
            (
                "segment",
                Col::Text(vec![
                    Some("SMB"),
                    Some("Partners"),
                    Some("Enterprise"),
                    None,
                ]),
            ),
            (
                "amount",
                Col::Num(vec![Some(100.0), Some(40.0), Some(60.0), Some(7.0)]),
            ),
        ],
    );
    let built = build(&data, "2025-02-28").await;
    let rows = |t: &str, p: &str| {
        format!(
            "SELECT coalesce(segment, '<total>'), spend, new_customers FROM unit_economics \
             WHERE period_type = '{t}' AND period = DATE '{p}' ORDER BY segment NULLS LAST"
        )
    };
    assert_eq!(
        built.rows(&rows("month", "2025-01-01")).await,
        [
            ["Enterprise", "60.0", "1"],
            ["SMB", "100.0", "1"],
            ["<total>", "200.0", "2"]
        ]
    );
    // February has no new customer: its shared spend is unallocated.
    assert_eq!(
        built.rows(&rows("month", "2025-02-01")).await,
        [
            ["Enterprise", "0.0", "0"],
            ["SMB", "0.0", "0"],
            ["<total>", "7.0", "0"]
        ]
    );
    for (t, p) in [("quarter", "2025-01-01"), ("trailing_12m", "2025-02-01")] {
        assert_eq!(
            built.rows(&rows(t, p)).await,
            [
                ["Enterprise", "60.0", "1"],
                ["SMB", "100.0", "1"],
                ["<total>", "207.0", "2"]
            ],
            "{t}"
        );
    }
}

/// Example 5: NPS from 10 responses 10, 9, 9, 8, 7, 6, 5, 10, 3, 9: 5
/// promoters, 2 passives, 3 detractors, NPS = 20.
#[tokio::test]
async fn example_5_nps() {
    let data = Data::new();
    data.subscriptions(&[sub("s1", "c1", "2024-01-01", None, 10.0)]);
    let scores = [10.0, 9.0, 9.0, 8.0, 7.0, 6.0, 5.0, 10.0, 3.0, 9.0];
    let ids = many_ids("r", 13, 2);
    let mut kinds = vec![Some("nps"); 10];
    kinds.extend([Some("CSAT"), Some("csat"), Some("ces")]);
    let mut values: Vec<Option<f64>> = scores.iter().map(|s| Some(*s)).collect();
    values.extend([Some(5.0), Some(3.0), Some(2.0)]);
    data.table(
        "surveys",
        vec![
            (
                "response_id",
                Col::Text(ids.iter().map(|i| Some(*i)).collect()),
            ),
            ("customer_id", Col::Text(vec![Some("c1"); 13])),
            (
                "responded_at",
                Col::Ts(vec![Some("2024-03-31T23:59:59"); 13]),
            ),
            ("survey", Col::Text(kinds)),
            ("score", Col::Num(values)),
        ],
    );
    let built = build(&data, "2024-04-30").await;
    let rows = built
        .rows(
            "SELECT month, nps_responses, nps, csat_responses, csat, ces_responses, ces \
             FROM survey_scores_monthly WHERE segment IS NULL ORDER BY month",
        )
        .await;
    assert_eq!(
        rows,
        [
            ["2024-01-01", "0", "", "0", "", "0", ""],
            ["2024-02-01", "0", "", "0", "", "0", ""],
            ["2024-03-01", "10", "20.0", "2", "50.0", "1", "2.0"],
            ["2024-04-01", "0", "", "0", "", "0", ""],
        ]
    );
}
