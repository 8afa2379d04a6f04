//! An analyst's own catalog with a metric of every kind (simple, ratio,
//! derived, cohort, score), checked against numbers worked out by hand.

use super::common::{Col, Data, build_with, close, sub};

const CATALOG: &str = r#"
[project]
name = "custom"
range_start = "SELECT min(start_date) FROM subscriptions"

[sources.subscriptions]
location = "data/subscriptions"

[sources.usage]
location = "data/usage"

[models.accounts_monthly]

[metrics.revenue]
kind = "simple"
model = "accounts_monthly"
time = "month"
expr = "sum(mrr)"

[metrics.accounts]
kind = "simple"
model = "accounts_monthly"
time = "month"
expr = "count(*)"

[metrics.peak_mrr]
kind = "simple"
model = "accounts_monthly"
time = "month"
expr = "max(mrr)"

[metrics.distinct_accounts]
kind = "simple"
model = "accounts_monthly"
time = "month"
expr = "count(DISTINCT customer_id)"

[metrics.revenue_per_account]
kind = "ratio"
numerator = "revenue"
denominator = "accounts"

[metrics.revenue_k]
kind = "derived"
expr = "revenue / 1000"

[metrics.retention]
kind = "cohort"
model = "accounts_monthly"
entity = "customer_id"
time = "month"
cohort = "mrr > 0"

[[metrics.retention.measures]]
name = "still_here"
expr = "count(*)"
retention = "kept"

[[metrics.retention.measures]]
name = "revenue_now"
expr = "sum(mrr)"

[metrics.engagement]
kind = "score"
model = "accounts_monthly"
entity = "customer_id"
time = "month"
keep = ["mrr"]
bands = [{ name = "high", min = 50 }, { name = "low" }]

[[metrics.engagement.components]]
name = "events"
from = "usage"
time = "occurred_at"
raw = "count(*)"
scale = [0, 10]
weight = 1

[[metrics.engagement.components]]
name = "size"
from = "accounts_monthly"
time = "month"
raw = "max(mrr)"
scale = [0, 200]
weight = 3

[tables.kpis]
metrics = ["revenue", "accounts", "revenue_per_account", "revenue_k"]

[tables.kpis_windows]
grain = "month"
time_column = "period"
period_types = ["month", "trailing_2m"]
metrics = ["revenue", "accounts", "peak_mrr", "distinct_accounts"]

[tables.retention]
model = "retention"
order_by = ["cohort_month", "months_since"]

[tables.engagement]
model = "engagement"
order_by = ["month", "customer_id"]
"#;

const MODEL: &str = "
SELECT s.customer_id, m.month, sum(s.mrr) AS mrr
FROM subscriptions s
JOIN calendar_months m
  ON s.start_date <= m.month_end AND (s.end_date IS NULL OR s.end_date > m.month_end)
GROUP BY s.customer_id, m.month
";

#[tokio::test]
async fn a_metric_of_every_kind_in_an_analysts_catalog() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("metrics.toml"), CATALOG).unwrap();
    std::fs::write(dir.path().join("sql/accounts_monthly.sql"), MODEL).unwrap();
    let data = Data::new();
    // a: 100 from January; b: 300 in January and February; c: 50 from February.
    data.subscriptions(&[
        sub("s1", "a", "2024-01-01", None, 100.0),
        sub("s2", "b", "2024-01-01", Some("2024-03-01"), 300.0),
        sub("s3", "c", "2024-02-01", None, 50.0),
    ]);
    // Five events of a in March, one of c in February.
    let mut ids = vec![Some("a"); 5];
    ids.push(Some("c"));
    let mut at = vec![Some("2024-03-05T10:00:00"); 5];
    at.push(Some("2024-02-10T10:00:00"));
    data.table(
        "usage",
        vec![
            ("customer_id", Col::Text(ids)),
            ("occurred_at", Col::Ts(at)),
        ],
    );
    let built = build_with(&dir.path().join("metrics.toml"), &data, "2024-03-31").await;

    let kpis = built
        .rows("SELECT month, revenue, accounts, revenue_per_account, revenue_k FROM kpis ORDER BY month")
        .await;
    assert_eq!(
        kpis,
        [
            ["2024-01-01", "400.0", "2", "200.0", "0.4"],
            ["2024-02-01", "450.0", "3", "150.0", "0.45"],
            ["2024-03-01", "150.0", "2", "75.0", "0.15"],
        ]
    );

    // Trailing windows of two months. Sums, counts and maxima are taken
    // per month first and combined over the window; a DISTINCT count
    // cannot be, and is counted over the window's rows: February's window
    // has 5 account-months but 3 accounts.
    let windows = built
        .rows(
            "SELECT period_type, period, revenue, accounts, peak_mrr, distinct_accounts \
             FROM kpis_windows ORDER BY period_type, period",
        )
        .await;
    assert_eq!(
        windows,
        [
            ["month", "2024-01-01", "400.0", "2", "300.0", "2"],
            ["month", "2024-02-01", "450.0", "3", "300.0", "3"],
            ["month", "2024-03-01", "150.0", "2", "100.0", "2"],
            ["trailing_2m", "2024-01-01", "400.0", "2", "300.0", "2"],
            ["trailing_2m", "2024-02-01", "850.0", "5", "300.0", "3"],
            ["trailing_2m", "2024-03-01", "600.0", "5", "300.0", "3"],
        ]
    );

    // Cohorts: January {a, b}, February {c}, March nobody.
    let cohorts = built
        .rows("SELECT cohort_month, months_since, cohort_size, still_here, kept, revenue_now FROM retention")
        .await;
    assert_eq!(
        cohorts,
        [
            ["2024-01-01", "0", "2", "2", "1.0", "400.0"],
            ["2024-01-01", "1", "2", "2", "1.0", "400.0"],
            ["2024-01-01", "2", "2", "1", "0.5", "100.0"],
            ["2024-02-01", "0", "1", "1", "1.0", "50.0"],
            ["2024-02-01", "1", "1", "1", "1.0", "50.0"],
            ["2024-03-01", "0", "0", "0", "", "0.0"],
        ]
    );

    // March: a has 5 events (50) and 100 of MRR (50): (50 + 3*50)/4 = 50,
    // high; c has none (0) and 50 (25): (0 + 3*25)/4 = 18.75, low.
    let march = built
        .rows(
            "SELECT customer_id, mrr, score, band, events_raw, events_score, size_raw, size_score \
             FROM engagement WHERE month = DATE '2024-03-01' ORDER BY customer_id",
        )
        .await;
    assert_eq!(
        march,
        [
            ["a", "100.0", "50.0", "high", "5", "50.0", "100.0", "50.0"],
            ["c", "50.0", "18.75", "low", "0", "0.0", "50.0", "25.0"],
        ]
    );
    let c_feb = built
        .value("SELECT score FROM engagement WHERE customer_id = 'c' AND month = DATE '2024-02-01'")
        .await
        .unwrap();
    // one event (10) and 50 (25): (10 + 75) / 4 = 21.25
    assert!(close(c_feb, 21.25), "{c_feb}");
}

/// Mistakes in the new kinds are catalog errors at their line: names and
/// scales when the catalog loads, unknown columns when it is planned.
#[tokio::test]
async fn score_and_cohort_mistakes_are_catalog_errors_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/accounts_monthly.sql"), MODEL).unwrap();
    let path = dir.path().join("metrics.toml");
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let broken = CATALOG
        .replace("scale = [0, 200]", "scale = [7, 7]")
        .replace("from = \"usage\"", "from = \"usag\"");
    std::fs::write(&path, &broken).unwrap();
    let text = vitals::catalog::load(&path).unwrap_err().to_string();
    assert!(text.contains("unknown model or source `usag`"), "{text}");
    assert!(text.contains("did you mean `usage`?"), "{text}");
    assert!(
        text.contains("the scale [bad, good] needs two different numbers"),
        "{text}"
    );
    let line = line_of(&broken, "scale = [7, 7]");
    assert!(text.contains(&format!("metrics.toml:{line}:")), "{text}");

    let unplannable = CATALOG.replace("raw = \"max(mrr)\"", "raw = \"max(mmr)\"");
    std::fs::write(&path, &unplannable).unwrap();
    let data = Data::new();
    data.subscriptions(&[sub("s1", "a", "2024-01-01", None, 100.0)]);
    let target = tempfile::tempdir().unwrap();
    let err = vitals::build::run(&vitals::build::BuildOptions {
        catalog: path.clone(),
        locations: vitals::execute::SourceLocations {
            data_dir: Some(data.path().display().to_string()),
            ..Default::default()
        },
        target: target.path().display().to_string(),
        as_of: Some(super::common::date("2024-03-31")),
        select: Vec::new(),
        session: vitals::execute::SessionOptions::default(),
        progress: vitals::progress::ProgressMode::Quiet,
        wait: false,
        keep_builds: 2,
    })
    .await
    .unwrap_err()
    .to_string();
    let line = line_of(&unplannable, "max(mmr)");
    assert!(
        err.contains("model `engagement` cannot be planned"),
        "{err}"
    );
    assert!(err.contains(&format!("metrics.toml:{line}:")), "{err}");
    // Nothing was published.
    assert!(!target.path().join("_manifest.json").exists());
}

/// Components that are a plain `min` or `max` over periods reach the
/// score's pivot as rows (no aggregate of their own): the pivot must take
/// each one's own function. Two subscriptions of `a` start in January, so
/// January has two rows of `a`: the smallest is 100, the largest 300.
#[tokio::test]
async fn plain_min_and_max_components_keep_their_own_function() {
    const SCORE: &str = r#"
[project]
name = "sizes"
range_start = "SELECT min(start_date) FROM subscriptions"

[sources.subscriptions]
location = "data/subscriptions"

[models.accounts_monthly]

[metrics.sizes]
kind = "score"
model = "accounts_monthly"
entity = "customer_id"
time = "month"
bands = [{ name = "big", min = 50 }, { name = "small" }]

[[metrics.sizes.components]]
name = "smallest"
from = "subscriptions"
time = "start_date"
raw = "min(mrr)"
scale = [0, 400]
weight = 1

[[metrics.sizes.components]]
name = "largest"
from = "subscriptions"
time = "start_date"
raw = "MAX(mrr)"
scale = [0, 400]
weight = 1

[tables.sizes]
model = "sizes"
order_by = ["month", "customer_id"]
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("metrics.toml"), SCORE).unwrap();
    std::fs::write(dir.path().join("sql/accounts_monthly.sql"), MODEL).unwrap();
    let data = Data::new();
    data.subscriptions(&[
        sub("s1", "a", "2024-01-01", None, 100.0),
        sub("s2", "a", "2024-01-15", None, 300.0),
        sub("s3", "b", "2024-02-01", None, 200.0),
    ]);
    let built = build_with(&dir.path().join("metrics.toml"), &data, "2024-02-29").await;
    let rows = built
        .rows("SELECT month, customer_id, smallest_raw, largest_raw, score FROM sizes")
        .await;
    // a in January: 100 (25) and 300 (75), score 50; in February no
    // subscription starts: no component, no score. b in February: 200 (50).
    assert_eq!(
        rows,
        [
            ["2024-01-01", "a", "100.0", "300.0", "50.0"],
            ["2024-02-01", "a", "", "", ""],
            ["2024-02-01", "b", "200.0", "200.0", "50.0"],
        ]
    );
}
