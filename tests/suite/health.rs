//! The customer health score of the shipped catalog, computed by hand for
//! a few customers, with rows on both sides of every window edge (the 30-day
//! window of April is April 1-30, of February January 30 - February 28; the
//! 180-day window of April starts on November 2).

use super::common::{Built, Col, Data, build, build_with, catalog_variant, close, sub};

/// h1 pays 100 from March 2025 (not paying in January: no mrr_trend) and
/// has no NPS in the 180 days before April 30; h2 pays 200 since December
/// 2024 and has NPS responses on the window's first day; h3 pays 50 since
/// December 2024 and uses the product at the edges of February.
/// customer_id, occurred_at, user_id, feature, quantity
type UsageRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    f64,
);

fn health_data() -> Data {
    let data = Data::new();
    data.subscriptions(&[
        sub("s1", "h1", "2025-03-01", None, 100.0),
        sub("s2", "h2", "2024-12-01", None, 200.0),
        sub("s3", "h3", "2024-12-01", None, 50.0),
    ]);
    let usage: Vec<UsageRow> = vec![
        ("h1", "2025-03-31T23:59:59", Some("u9"), Some("z"), 1.0), // March only
        ("h1", "2025-04-01T00:00:00", Some("u1"), Some("a"), 1.0),
        ("h1", "2025-04-15T12:00:00", Some("u2"), Some("b"), 0.0), // any quantity counts
        ("h1", "2025-04-15T13:00:00", None, None, 1.0),            // a day, no user or feature
        ("h1", "2025-04-30T23:59:59", Some("u1"), Some("a"), 1.0),
        ("h1", "2025-05-01T00:00:00", Some("u3"), Some("c"), 1.0), // after April
        ("h3", "2025-01-29T12:00:00", Some("u1"), Some("a"), 1.0), // before Feb's window
        ("h3", "2025-01-30T00:00:00", Some("u1"), Some("a"), 1.0),
        ("h3", "2025-02-28T23:59:59", Some("u2"), Some("b"), 1.0),
    ];
    data.table(
        "usage",
        vec![
            (
                "customer_id",
                Col::Text(usage.iter().map(|u| Some(u.0)).collect()),
            ),
            (
                "occurred_at",
                Col::Ts(usage.iter().map(|u| Some(u.1)).collect()),
            ),
            ("user_id", Col::Text(usage.iter().map(|u| u.2).collect())),
            ("feature", Col::Text(usage.iter().map(|u| u.3).collect())),
            (
                "quantity",
                Col::Num(usage.iter().map(|u| Some(u.4)).collect()),
            ),
        ],
    );
    data.table(
        "tickets",
        vec![
            ("ticket_id", Col::Text(vec![Some("t1"), Some("t2")])),
            ("customer_id", Col::Text(vec![Some("h1"), Some("h1")])),
            (
                "created_at",
                Col::Ts(vec![
                    Some("2025-03-31T23:59:59"),
                    Some("2025-04-01T00:00:00"),
                ]),
            ),
            (
                "resolved_at",
                Col::Ts(vec![Some("2025-04-01T05:59:59"), None]),
            ),
            ("priority", Col::Text(vec![Some("low"), Some("Urgent")])),
        ],
    );
    let surveys: Vec<(&str, &str, &str, &str, f64)> = vec![
        ("r1", "h1", "2024-11-01T12:00:00", "nps", 9.0), // 180 days before Mar 31, not Apr 30
        ("r2", "h1", "2025-04-10T00:00:00", "csat", 5.0), // not an NPS
        ("h2-1", "h2", "2024-11-01T23:59:59", "nps", 3.0), // the day before April's window
        ("h2-2", "h2", "2024-11-02T00:00:00", "nps", 10.0),
        ("h2-3", "h2", "2024-11-02T00:00:00", "nps", 8.0), // same moment: greatest id wins
    ];
    data.table(
        "surveys",
        vec![
            (
                "response_id",
                Col::Text(surveys.iter().map(|s| Some(s.0)).collect()),
            ),
            (
                "customer_id",
                Col::Text(surveys.iter().map(|s| Some(s.1)).collect()),
            ),
            (
                "responded_at",
                Col::Ts(surveys.iter().map(|s| Some(s.2)).collect()),
            ),
            (
                "survey",
                Col::Text(surveys.iter().map(|s| Some(s.3)).collect()),
            ),
            (
                "score",
                Col::Num(surveys.iter().map(|s| Some(s.4)).collect()),
            ),
        ],
    );
    data
}

const COLUMNS: &str = "health_score, band, usage_days_raw, usage_days_score, \
    feature_breadth_raw, feature_breadth_score, active_users_raw, active_users_score, \
    support_load_raw, support_load_score, sentiment_raw, sentiment_score, \
    mrr_trend_raw, mrr_trend_score";

async fn health_row(built: &Built, customer: &str, month: &str) -> Vec<String> {
    let rows = built
        .rows(&format!(
            "SELECT {COLUMNS} FROM customer_health WHERE customer_id = '{customer}' AND month = DATE '{month}'"
        ))
        .await;
    assert_eq!(rows.len(), 1, "{customer} {month}: {rows:?}");
    rows.into_iter().next().unwrap()
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

#[tokio::test]
async fn health_score_by_hand_with_a_missing_component_and_no_nps() {
    let built = build(&health_data(), "2025-04-30").await;
    // h1 in April: 3 usage days (Apr 1, 15, 30) -> 15; features a, b -> 40;
    // users u1, u2 -> 20; one ticket (Apr 1 00:00) -> 80; no NPS since
    // Nov 2 -> missing = 5 -> 50; not paying in January -> mrr_trend left
    // out. (0.30*15 + 0.15*40 + 0.15*20 + 0.15*80 + 0.15*50) / 0.90.
    let h1 = health_row(&built, "h1", "2025-04-01").await;
    assert!(close(num(&h1[0]), 36.666667), "{h1:?}");
    assert_eq!(h1[1], "red");
    assert_eq!(&h1[2..4], ["3", "15.0"]);
    assert_eq!(&h1[4..6], ["2", "40.0"]);
    assert_eq!(&h1[6..8], ["2", "20.0"]);
    assert_eq!(&h1[8..10], ["1", "80.0"]);
    assert_eq!(&h1[10..12], ["5.0", "50.0"]);
    assert_eq!(&h1[12..14], ["", ""]);

    // h1 in March: the window is March 2-31: one usage day, the ticket of
    // March 31, and the NPS of November 1 (within 180 days of March 31).
    let march = health_row(&built, "h1", "2025-03-01").await;
    assert_eq!(&march[2..3], ["1"]);
    assert_eq!(&march[8..9], ["1"]);
    assert_eq!(&march[10..12], ["9.0", "90.0"]);

    // h2 in April: no usage (0, not missing), no tickets -> 100, latest NPS
    // of the window 8 (ids h2-2 and h2-3 share the moment; h2-1 is a day
    // too early), mrr 200 now and in January -> trend 1.0 -> 50.
    // (0.15*100 + 0.15*80 + 0.10*50) / 1.00 = 32.
    let h2 = health_row(&built, "h2", "2025-04-01").await;
    assert!(close(num(&h2[0]), 32.0), "{h2:?}");
    assert_eq!(&h2[2..3], ["0"]);
    assert_eq!(&h2[8..10], ["0", "100.0"]);
    assert_eq!(&h2[10..12], ["8.0", "80.0"]);
    assert!(
        close(num(&h2[12]), 1.0) && close(num(&h2[13]), 50.0),
        "{h2:?}"
    );
}

#[tokio::test]
async fn health_windows_end_on_the_last_day_of_the_month() {
    let built = build(&health_data(), "2025-04-30").await;
    // February's 30 days are January 30 - February 28: the use of January
    // 29 is out, January 30 00:00 and February 28 23:59:59 are in.
    let feb = health_row(&built, "h3", "2025-02-01").await;
    assert_eq!(
        &feb[2..8],
        ["2", "10.0", "2", "40.0", "2", "20.0"],
        "{feb:?}"
    );
    // January's window (Jan 2-31) holds January 29 and 30.
    let jan = health_row(&built, "h3", "2025-01-01").await;
    assert_eq!(&jan[2..3], ["2"]);
    // March's (March 2-31) holds none of them.
    let mar = health_row(&built, "h3", "2025-03-01").await;
    assert_eq!(&mar[2..3], ["0"]);
}

#[tokio::test]
async fn bands_and_the_at_risk_list() {
    let built = build(&health_data(), "2025-04-30").await;
    // h3 in April: support 100, sentiment missing 50, trend 1.0 -> 50:
    // (15 + 7.5 + 5) / 1.0 = 27.5.
    let h3 = health_row(&built, "h3", "2025-04-01").await;
    assert!(close(num(&h3[0]), 27.5), "{h3:?}");
    let at_risk = built
        .rows("SELECT rank, customer_id, segment, mrr, band, month FROM at_risk_customers ORDER BY rank")
        .await;
    assert_eq!(
        at_risk,
        [
            ["1", "h2", "unknown", "200.0", "red", "2025-04-01"],
            ["2", "h1", "unknown", "100.0", "red", "2025-04-01"],
            ["3", "h3", "unknown", "50.0", "red", "2025-04-01"],
        ]
    );
    let bands = built
        .rows(
            "SELECT segment, band, customers, mrr FROM health_bands_monthly \
             WHERE month = DATE '2025-04-01' ORDER BY segment NULLS LAST, band",
        )
        .await;
    assert_eq!(
        bands,
        [
            ["unknown", "green", "0", "0.0"],
            ["unknown", "red", "3", "350.0"],
            ["unknown", "yellow", "0", "0.0"],
            ["", "green", "0", "0.0"],
            ["", "red", "3", "350.0"],
            ["", "yellow", "0", "0.0"],
        ]
    );
}

#[tokio::test]
async fn support_counts_tickets_by_creation_and_resolution_month() {
    let built = build(&health_data(), "2025-04-30").await;
    let rows = built
        .rows(
            "SELECT month, tickets_opened, urgent_tickets, tickets_per_customer, median_resolution_hours \
             FROM support_monthly WHERE segment IS NULL AND month >= DATE '2025-03-01' ORDER BY month",
        )
        .await;
    // t1 opened March 31 23:59:59, resolved April 1 05:59:59: 6 hours, in
    // April's median; t2 (urgent, any case) opened in April, still open.
    assert_eq!(
        rows,
        [
            ["2025-03-01", "1", "0", "0.3333333333333333", ""],
            ["2025-04-01", "1", "1", "0.3333333333333333", "6.0"],
        ]
    );
}

/// In a catalog whose time zone is New York, a window's days are New York
/// days: 2025-05-01 02:00 UTC is April 30 there (in April's window), and
/// 2025-04-01 03:59:59 UTC is still March 31 (out of it).
#[tokio::test]
async fn health_windows_use_the_days_of_the_catalog_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_variant(dir.path(), |t| {
        t.replace("timezone = \"UTC\"", "timezone = \"America/New_York\"")
    });
    let data = Data::new();
    data.subscriptions(&[sub("s1", "ny", "2025-03-01", None, 100.0)]);
    let at = [
        "2025-04-01T03:59:59", // March 31, 23:59:59 in New York
        "2025-04-01T04:00:00", // April 1, 00:00
        "2025-05-01T02:00:00", // April 30, 22:00
        "2025-05-01T04:00:00", // May 1, 00:00
    ];
    data.table(
        "usage",
        vec![
            ("customer_id", Col::Text(vec![Some("ny"); at.len()])),
            (
                "occurred_at",
                Col::Ts(at.iter().map(|t| Some(*t)).collect()),
            ),
        ],
    );
    data.table(
        "tickets",
        vec![
            ("ticket_id", Col::Text(vec![Some("t1")])),
            ("customer_id", Col::Text(vec![Some("ny")])),
            ("created_at", Col::Ts(vec![Some("2025-04-01T03:00:00")])),
        ],
    );
    data.table(
        "surveys",
        vec![
            ("response_id", Col::Text(vec![Some("r1")])),
            ("customer_id", Col::Text(vec![Some("ny")])),
            ("responded_at", Col::Ts(vec![Some("2025-05-01T01:00:00")])),
            ("survey", Col::Text(vec![Some("nps")])),
            ("score", Col::Num(vec![Some(10.0)])),
        ],
    );
    let built = build_with(&catalog, &data, "2025-04-30").await;
    let april = built
        .rows(
            "SELECT usage_days_raw, support_load_raw, sentiment_raw FROM customer_health \
             WHERE customer_id = 'ny' AND month = DATE '2025-04-01'",
        )
        .await;
    assert_eq!(april, [["2", "0", "10.0"]]);
    let march = built
        .rows(
            "SELECT usage_days_raw, support_load_raw, sentiment_raw FROM customer_health \
             WHERE customer_id = 'ny' AND month = DATE '2025-03-01'",
        )
        .await;
    assert_eq!(march, [["1", "1", "5.0"]]);
}
