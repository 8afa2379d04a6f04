//! The dbt mrr-playbook sample (../shared/fixtures/mrr-playbook): movement
//! totals as its README states them.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use super::common::{Data, build, date};

fn playbook_csv() -> String {
    let path =
        super::common::repo().join("../shared/fixtures/mrr-playbook/subscription_periods.csv");
    let path = if path.exists() {
        path
    } else {
        super::common::repo().join("tests/fixtures/mrr-playbook/subscription_periods.csv")
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The CSV as our `subscriptions` table: mrr = monthly_amount, ids as strings.
fn playbook_data() -> Data {
    let epoch = date("1970-01-01");
    let (mut ids, mut customers, mut starts, mut ends, mut mrrs) =
        (vec![], vec![], vec![], vec![], vec![]);
    for line in playbook_csv()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split(',').collect();
        ids.push(f[0].to_string());
        customers.push(f[1].to_string());
        starts.push((date(f[2]) - epoch).num_days() as i32);
        ends.push((!f[3].is_empty()).then(|| (date(f[3]) - epoch).num_days() as i32));
        mrrs.push(f[4].parse::<f64>().unwrap());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("subscription_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("start_date", DataType::Date32, false),
        Field::new("end_date", DataType::Date32, true),
        Field::new("mrr", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(customers)),
        Arc::new(Date32Array::from(starts)),
        Arc::new(Date32Array::from(ends)),
        Arc::new(Float64Array::from(mrrs)),
    ];
    let data = Data::new();
    data.write(
        "subscriptions",
        &RecordBatch::try_new(schema, columns).unwrap(),
    );
    data
}

#[tokio::test]
async fn movement_totals_match_the_readme() {
    let built = build(&playbook_data(), "2020-03-31").await;
    let rows = built
        .rows(
            "SELECT movement, count(*), CAST(sum(movement_mrr) AS BIGINT) FROM customer_mrr_monthly \
             WHERE movement IS NOT NULL GROUP BY movement ORDER BY movement",
        )
        .await;
    let expected = [
        ["churn", "58", "-2550"],
        ["contraction", "27", "-555"],
        ["expansion", "30", "660"],
        ["new", "55", "2295"],
        ["reactivation", "3", "150"],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}

#[tokio::test]
async fn customer_1_follows_the_readme_path() {
    let built = build(&playbook_data(), "2020-03-31").await;
    let rows = built
        .rows(
            "SELECT CAST(month AS VARCHAR) AS m, movement, CAST(mrr AS BIGINT) AS v FROM customer_mrr_monthly \
             WHERE customer_id = '1' AND movement IS NOT NULL ORDER BY month",
        )
        .await;
    let expected = [
        ["2018-11-01", "new", "50"],
        ["2019-02-01", "churn", "0"],
        ["2019-04-01", "reactivation", "50"],
        ["2019-06-01", "expansion", "75"],
        ["2019-08-01", "churn", "0"],
    ];
    assert_eq!(
        rows,
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
}

#[tokio::test]
async fn movements_table_agrees_with_customer_rows() {
    let built = build(&playbook_data(), "2020-03-31").await;
    let rows = built
        .rows(
            "SELECT sum(new_customers), CAST(sum(new_mrr) AS BIGINT), sum(churned_customers), CAST(sum(churned_mrr) AS BIGINT), \
             count(*), min(month), max(month) \
             FROM mrr_movements_monthly WHERE segment IS NULL",
        )
        .await;
    // 2017-09 .. 2020-03 is 31 months; no customers table: one `unknown` segment.
    assert_eq!(
        rows[0],
        ["55", "2295", "58", "2550", "31", "2017-09-01", "2020-03-01"]
    );
    let segments = built
        .rows("SELECT DISTINCT segment FROM mrr_movements_monthly ORDER BY 1")
        .await;
    assert_eq!(
        segments,
        vec![vec!["unknown".to_string()], vec![String::new()]]
    );
}
