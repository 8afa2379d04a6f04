//! The optional input tables: their bad rows (inputs.md, "Bad rows") are
//! rejected with their reason and never counted, and an absent table skips
//! what needs it while the rest is published.

use super::common::{Col, Data, build, sub};

fn subscriptions(data: &Data) {
    data.subscriptions(&[
        sub("s1", "c1", "2024-01-01", None, 100.0),
        sub("s2", "c2", "2024-01-01", None, 50.0),
    ]);
    data.customers(&[("c1", Some("SMB")), ("c2", Some("Enterprise"))]);
}

/// response_id, customer_id, responded_at, survey, score
type SurveyRow = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<f64>,
);

/// One good row and one row of every bad class, per table.
fn data_with_bad_rows() -> Data {
    let data = Data::new();
    subscriptions(&data);
    data.table(
        "usage",
        vec![
            ("customer_id", Col::Text(vec![Some("c1"), None, Some("c1")])),
            (
                "occurred_at",
                Col::Ts(vec![
                    Some("2024-02-10T10:00:00"),
                    Some("2024-02-10T10:00:00"),
                    None,
                ]),
            ),
            (
                "user_id",
                Col::Text(vec![Some("u1"), Some("u2"), Some("u3")]),
            ),
            ("feature", Col::Text(vec![Some("a"), Some("b"), Some("c")])),
        ],
    );
    data.table(
        "tickets",
        vec![
            (
                "ticket_id",
                Col::Text(vec![
                    Some("t-ok"),
                    None,
                    Some("t-nokey"),
                    Some("t-nodate"),
                    Some("t-back"),
                ]),
            ),
            (
                "customer_id",
                Col::Text(vec![Some("c1"), Some("c1"), None, Some("c1"), Some("c1")]),
            ),
            (
                "created_at",
                Col::Ts(vec![
                    Some("2024-02-01T10:00:00"),
                    Some("2024-02-01T10:00:00"),
                    Some("2024-02-01T10:00:00"),
                    None,
                    Some("2024-02-05T10:00:00"),
                ]),
            ),
            (
                "resolved_at",
                Col::Ts(vec![
                    Some("2024-02-01T12:00:00"),
                    None,
                    None,
                    None,
                    Some("2024-02-04T10:00:00"),
                ]),
            ),
            ("priority", Col::Text(vec![Some("high"); 5])),
        ],
    );
    let surveys: Vec<SurveyRow> = vec![
        (
            Some("ok"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("nps"),
            Some(10.0),
        ),
        (
            None,
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("nps"),
            Some(0.0),
        ),
        (Some("no-date"), Some("c1"), None, Some("nps"), Some(0.0)),
        (
            Some("pmf"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("pmf"),
            Some(0.0),
        ),
        (
            Some("no-kind"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            None,
            Some(0.0),
        ),
        (
            Some("no-score"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("nps"),
            None,
        ),
        (
            Some("nps-11"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("nps"),
            Some(11.0),
        ),
        (
            Some("csat-0"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("csat"),
            Some(0.0),
        ),
        (
            Some("ces-8"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("ces"),
            Some(8.0),
        ),
        (
            Some("ces-7"),
            Some("c1"),
            Some("2024-02-01T00:00:00"),
            Some("ces"),
            Some(7.0),
        ),
    ];
    data.table(
        "surveys",
        vec![
            (
                "response_id",
                Col::Text(surveys.iter().map(|s| s.0).collect()),
            ),
            (
                "customer_id",
                Col::Text(surveys.iter().map(|s| s.1).collect()),
            ),
            (
                "responded_at",
                Col::Ts(surveys.iter().map(|s| s.2).collect()),
            ),
            ("survey", Col::Text(surveys.iter().map(|s| s.3).collect())),
            ("score", Col::Num(surveys.iter().map(|s| s.4).collect())),
        ],
    );
    data.table(
        "acquisition_spend",
        vec![
            (
                "month",
                Col::Date(vec![
                    Some("2024-02-01"),
                    None,
                    Some("2024-02-01"),
                    Some("2024-02-15"),
                ]),
            ),
            (
                "segment",
                Col::Text(vec![Some("SMB"), Some("SMB"), Some("SMB"), Some("SMB")]),
            ),
            (
                "amount",
                Col::Num(vec![Some(1000.0), Some(5.0), None, Some(-200.0)]),
            ),
        ],
    );
    data
}

#[tokio::test]
async fn bad_rows_of_every_optional_table_are_rejected_and_never_counted() {
    let built = build(&data_with_bad_rows(), "2024-02-29").await;
    let rejected = built
        .rows(
            "SELECT source_table, reason, coalesce(row_key, '-') FROM rejected_rows \
             WHERE source_table <> 'subscriptions' ORDER BY source_table, reason, 3",
        )
        .await;
    let expected: Vec<[&str; 3]> = vec![
        ["acquisition_spend", "null_amount", "2024-02-01|SMB"],
        ["acquisition_spend", "null_month", "-"],
        ["surveys", "null_key", "-"],
        ["surveys", "null_responded_at", "no-date"],
        ["surveys", "null_score", "no-score"],
        ["surveys", "score_out_of_range", "ces-8"],
        ["surveys", "score_out_of_range", "csat-0"],
        ["surveys", "score_out_of_range", "nps-11"],
        ["surveys", "unknown_survey_kind", "no-kind"],
        ["surveys", "unknown_survey_kind", "pmf"],
        ["tickets", "null_created_at", "t-nodate"],
        ["tickets", "null_key", "-"],
        ["tickets", "null_key", "t-nokey"],
        ["tickets", "resolved_before_created", "t-back"],
        ["usage", "null_key", "-"],
        ["usage", "null_occurred_at", "c1"],
    ];
    let got: Vec<Vec<&str>> = rejected
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    // Keys of several columns are joined; compare the first column of
    // those loosely (their formatting is the rejected_rows contract's).
    assert_eq!(got.len(), expected.len(), "{rejected:?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(&g[..2], &e[..2], "{rejected:?}");
        assert!(
            g[2].starts_with(e[2].split('|').next().unwrap()) || e[2] == "-",
            "{g:?} vs {e:?}"
        );
    }

    // Only the good rows count.
    let feb = |sql: &str| sql.replace("{feb}", "month = DATE '2024-02-01' AND segment IS NULL");
    let surveys = built
        .rows(&feb(
            "SELECT nps_responses, nps, csat_responses, ces_responses, ces FROM survey_scores_monthly WHERE {feb}",
        ))
        .await;
    assert_eq!(surveys, [["1", "100.0", "0", "1", "7.0"]]);
    let support = built
        .rows(&feb(
            "SELECT tickets_opened, urgent_tickets, median_resolution_hours FROM support_monthly WHERE {feb}",
        ))
        .await;
    assert_eq!(support, [["1", "1", "2.0"]]);
    // A refund (negative spend) is spend; the rows without month or amount
    // are not.
    let spend = built
        .rows(
            "SELECT segment, spend FROM unit_economics WHERE period_type = 'month' \
             AND period = DATE '2024-02-01' ORDER BY segment NULLS LAST",
        )
        .await;
    assert_eq!(
        spend,
        [["Enterprise", "0.0"], ["SMB", "800.0"], ["", "800.0"]]
    );
    let usage_days = built
        .value("SELECT usage_days_raw FROM customer_health WHERE customer_id = 'c1' AND month = DATE '2024-02-01'")
        .await;
    assert_eq!(usage_days, Some(1.0));
}

#[tokio::test]
async fn an_absent_optional_table_skips_what_needs_it_and_the_rest_is_published() {
    let data = Data::new();
    subscriptions(&data);
    let built = build(&data, "2024-02-29").await;
    assert_eq!(
        built.tables(),
        [
            "cohort_retention",
            "customer_mrr_monthly",
            "mrr_movements_monthly",
            "rejected_rows",
            "saas_kpis_monthly",
            "unit_economics",
        ]
    );
    let skipped: Vec<(String, Vec<String>, Vec<String>)> = built
        .manifest
        .skipped
        .iter()
        .map(|s| (s.table.clone(), s.columns.clone(), s.needs.clone()))
        .collect();
    let s = |x: &[&str]| x.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    assert_eq!(
        skipped,
        [
            (
                "at_risk_customers".into(),
                vec![],
                s(&["surveys", "tickets", "usage"])
            ),
            (
                "customer_health".into(),
                vec![],
                s(&["surveys", "tickets", "usage"])
            ),
            (
                "health_bands_monthly".into(),
                vec![],
                s(&["surveys", "tickets", "usage"])
            ),
            ("support_monthly".into(), vec![], s(&["tickets"])),
            ("survey_scores_monthly".into(), vec![], s(&["surveys"])),
            (
                "unit_economics".into(),
                s(&[
                    "spend",
                    "cac",
                    "cac_payback_months",
                    "ltv_to_cac",
                    "net_ltv"
                ]),
                s(&["acquisition_spend"]),
            ),
        ]
    );
    // Without spend, unit_economics keeps its columns: the spend-based ones
    // null, new customers and ARPA of new customers as usual.
    let rows = built
        .rows(
            "SELECT spend, new_customers, cac, arpa_new, net_ltv FROM unit_economics \
             WHERE period_type = 'month' AND period = DATE '2024-01-01' AND segment IS NULL",
        )
        .await;
    assert_eq!(rows, [["", "2", "", "75.0", ""]]);
    let schema = &built.manifest.tables["unit_economics"].schema;
    let spend = schema.iter().find(|c| c.name == "spend").unwrap();
    assert_eq!(spend.data_type, "DOUBLE");
}
