"""An independent DuckDB implementation of the 11 output tables of the
shipped catalog, written from ../shared/spec/*.md and docs/metrics.md (the
readings where the spec leaves a choice). It serves both to cross-check a
vitals build cell by cell (scripts/crosscheck_catalog.py) and as the DuckDB
side of the benchmark (benches/vs_duckdb.py). Needs `pip install duckdb`.

As a module:
    con = duckdb.connect()
    built, skipped = build(con, data_dir, as_of)
    # built:   table -> (DuckDB table name, key columns, columns compared exactly)
    # skipped: table -> the absent input tables it needs
As a program (computes every table and writes OUT/<table>/part-00000.parquet
plus OUT/_reference.json, which lists the files, keys and skipped tables):
    python3 scripts/duckdb_reference.py DATA_DIR OUT_DIR AS_OF [--exact-mrr]

DATA_DIR holds table T as DATA_DIR/T/ (Parquet files, Hive partitions
allowed) or DATA_DIR/T.parquet. Assumes the shipped catalog: reporting
currency USD, gross margin 1, time zone UTC, the health components and
bands of the spec. mrr(c, M) is rounded to 9 decimals, the reading of
docs/metrics.md; exact_mrr=True keeps the unrounded sum (then mrr and
mrr_trend_raw of customer_health can differ from vitals in the last bit)."""
import glob
import json
import os
import sys

TABLES = ["customer_mrr_monthly", "mrr_movements_monthly", "saas_kpis_monthly", "rejected_rows",
          "cohort_retention", "survey_scores_monthly", "support_monthly", "customer_health",
          "health_bands_monthly", "at_risk_customers", "unit_economics"]

# The input contract (inputs.md): columns in order, and how each is read.
CONTRACT = {
    "subscriptions": [("subscription_id", "text"), ("customer_id", "text"), ("plan", "text"),
                      ("start_date", "date"), ("end_date", "date"), ("mrr", "number"),
                      ("amount", "number"), ("billing_period", "text"), ("quantity", "number"),
                      ("currency", "text")],
    "customers": [("customer_id", "text"), ("signup_date", "date"), ("segment", "text")],
    "usage": [("customer_id", "text"), ("occurred_at", "timestamp"), ("user_id", "text"),
              ("feature", "text"), ("quantity", "number")],
    "tickets": [("ticket_id", "text"), ("customer_id", "text"), ("created_at", "timestamp"),
                ("resolved_at", "timestamp"), ("priority", "text"), ("category", "text")],
    "surveys": [("response_id", "text"), ("customer_id", "text"), ("responded_at", "timestamp"),
                ("survey", "text"), ("score", "number")],
    "acquisition_spend": [("month", "date"), ("segment", "text"), ("amount", "number")],
    "fx_rates": [("currency", "text"), ("month", "date"), ("rate", "number")],
}
SQL_TYPE = {"text": "VARCHAR", "number": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMPTZ"}

# Bad rows (inputs.md): the first rule that holds names the reason.
REJECT = {
    "subscriptions": [
        ("null_key", "subscription_id IS NULL OR customer_id IS NULL"),
        ("null_start_date", "start_date IS NULL"),
        ("end_before_start", "end_date < start_date"),
        ("missing_mrr", "mrr IS NULL AND (amount IS NULL OR billing_period IS NULL)"),
        ("unknown_billing_period", "billing_period IS NOT NULL AND lower(billing_period) NOT IN ('month', 'quarter', 'year', 'week')"),
        ("negative_mrr", "mrr_local < 0"),
        ("currency_without_rate", "fx_rate IS NULL"),
    ],
    "customers": [("null_key", "customer_id IS NULL")],
    "usage": [("null_key", "customer_id IS NULL"), ("null_occurred_at", "occurred_at IS NULL")],
    "tickets": [
        ("null_key", "ticket_id IS NULL OR customer_id IS NULL"),
        ("null_created_at", "created_at IS NULL"),
        ("resolved_before_created", "resolved_at < created_at"),
    ],
    "surveys": [
        ("null_key", "response_id IS NULL OR customer_id IS NULL"),
        ("null_responded_at", "responded_at IS NULL"),
        ("unknown_survey_kind", "survey IS NULL OR lower(survey) NOT IN ('nps', 'csat', 'ces')"),
        ("null_score", "score IS NULL"),
        ("score_out_of_range", "CASE lower(survey) WHEN 'nps' THEN score NOT BETWEEN 0 AND 10 "
                               "WHEN 'csat' THEN score NOT BETWEEN 1 AND 5 ELSE score NOT BETWEEN 1 AND 7 END"),
    ],
    "acquisition_spend": [("null_month", "month IS NULL"), ("null_amount", "amount IS NULL")],
}
# row_key of rejected_rows: the id column; tables without one join these with '|'.
ROW_KEY = {"subscriptions": ["subscription_id"], "customers": ["customer_id"],
           "usage": ["customer_id", "occurred_at"], "tickets": ["ticket_id"],
           "surveys": ["response_id"], "acquisition_spend": ["month", "segment"]}

# customer health components of the shipped catalog: (name, bad, good, weight)
COMPONENTS = [("usage_days", 0, 20, 0.30), ("feature_breadth", 0, 5, 0.15), ("active_users", 0, 10, 0.15),
              ("support_load", 5, 0, 0.15), ("sentiment", 0, 10, 0.15), ("mrr_trend", 0.9, 1.1, 0.10)]
REPORTING_CURRENCY = "USD"
GROSS_MARGIN = 1.0


def input_files(data_dir, name):
    """The Parquet files of input table `name`: DIR/name/**.parquet or DIR/name.parquet."""
    p = os.path.join(data_dir, name)
    if os.path.isfile(p + ".parquet"):
        return [p + ".parquet"]
    if os.path.isfile(p):
        return [p]
    return sorted(glob.glob(os.path.join(p, "**", "*.parquet"), recursive=True))


def _stage_sources(con, data_dir):
    """One view stg_<table> per present input: the contract's columns, typed,
    plus `reason` (null for a valid row), `row_key` and `row_json`."""
    con.execute("""CREATE OR REPLACE MACRO iso_ts(t) AS
      strftime(t, '%Y-%m-%dT%H:%M:%S')
      || CASE WHEN epoch_us(t) % 1000000 = 0 THEN ''
              WHEN epoch_us(t) % 1000 = 0 THEN '.' || lpad(CAST(epoch_us(t) % 1000000 // 1000 AS VARCHAR), 3, '0')
              ELSE '.' || lpad(CAST(epoch_us(t) % 1000000 AS VARCHAR), 6, '0') END || 'Z'""")
    present = set()
    for name, contract in CONTRACT.items():
        fs = input_files(data_dir, name)
        if not fs:
            continue
        present.add(name)
        src = f"read_parquet({fs!r}, union_by_name = true)"
        have = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        typed = []
        for c, kind in contract:
            if c not in have:
                typed.append(f"CAST(NULL AS {SQL_TYPE[kind]}) AS {c}")
            elif kind == "date":  # a DATE, a timestamp's UTC day, or an ISO string
                typed.append(f"CAST(TRY_CAST({c} AS TIMESTAMPTZ) AS DATE) AS {c}")
            else:
                typed.append(f"TRY_CAST({c} AS {SQL_TYPE[kind]}) AS {c}")
        if name == "customers":  # other columns are dimensions, kept as read
            typed += [f"\"{c}\"" for c in have if c not in dict(contract)]
        con.execute(f"CREATE OR REPLACE VIEW typed_{name} AS SELECT {', '.join(typed)} FROM {src}")
    if "subscriptions" not in present:
        raise SystemExit(f"no subscriptions under {data_dir}")

    def json_of(name, extra_cols):
        fields = []
        for c, kind in CONTRACT[name]:
            if kind == "timestamp":
                v = f"iso_ts({c})"
            elif kind == "number":  # JSON has no NaN or infinity
                v = f"CASE WHEN isfinite({c}) THEN {c} END"
            else:
                v = c
            fields.append(f"\"{c}\" := {v}")
        fields += [f"\"{c}\" := \"{c}\"" for c in extra_cols]
        return f"to_json(struct_pack({', '.join(fields)}))::VARCHAR"

    def row_key(name):
        parts = [f"iso_ts({k})" if dict(CONTRACT[name])[k] == "timestamp" else f"CAST({k} AS VARCHAR)" for k in ROW_KEY[name]]
        if len(parts) == 1:
            return parts[0]
        return " || '|' || ".join(f"coalesce({p}, '')" for p in parts)

    def reason(name):
        return "CASE " + " ".join(f"WHEN {w} THEN '{r}'" for r, w in REJECT[name]) + " END"

    # fx_rates: the rate of a currency and month (the greatest if several)
    if "fx_rates" in present:
        con.execute("""CREATE OR REPLACE TABLE fx AS SELECT upper(currency) AS currency, date_trunc('month', month)::DATE AS month,
          max(rate) AS rate FROM typed_fx_rates GROUP BY ALL""")
    else:
        con.execute("CREATE OR REPLACE TABLE fx (currency VARCHAR, month DATE, rate DOUBLE)")
    # subscriptions: MRR normalised to a month, converted at the rate of the start month
    con.execute(f"""CREATE OR REPLACE VIEW stg_subscriptions AS
WITH n AS (
  SELECT s.*,
    coalesce(s.mrr, s.amount * coalesce(s.quantity, 1) / CASE lower(s.billing_period)
      WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 WHEN 'year' THEN 12 WHEN 'week' THEN 12 / 52 END) AS mrr_local,
    CASE WHEN s.currency IS NULL OR upper(s.currency) = '{REPORTING_CURRENCY}' THEN 1.0 ELSE fx.rate END AS fx_rate
  FROM typed_subscriptions s
  LEFT JOIN fx ON fx.currency = upper(s.currency) AND fx.month = date_trunc('month', s.start_date))
SELECT *, mrr_local * fx_rate AS mrr_usd, {reason('subscriptions')} AS reason,
  {row_key('subscriptions')} AS row_key, {json_of('subscriptions', [])} AS row_json
FROM n""")
    for name in present - {"subscriptions", "fx_rates"}:
        extra = [c for c in (r[0] for r in con.execute(f"DESCRIBE typed_{name}").fetchall())
                 if c not in dict(CONTRACT[name])]
        con.execute(f"""CREATE OR REPLACE VIEW stg_{name} AS SELECT *, {reason(name)} AS reason,
          {row_key(name)} AS row_key, {json_of(name, extra)} AS row_json FROM typed_{name}""")
    return present


def build(con, data_dir, as_of, exact_mrr=False):
    """Computes every table of the shipped catalog that its inputs allow, as
    DuckDB tables of `con`. Returns (built, skipped): built maps a table to
    (DuckDB table name, key columns, columns compared exactly), skipped maps
    a table to the absent inputs it needs."""
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ -> DATE gives the UTC day
    present = _stage_sources(con, data_dir)
    built, skipped = {}, {}
    mrr_sum = "sum(s.mrr)" if exact_mrr else "round(sum(s.mrr), 9)"
    as_of_month = f"date_trunc('month', DATE '{as_of}')::DATE"

    # ------------------------------------------------ rejected rows
    con.execute("CREATE OR REPLACE TABLE rejected_rows AS " + "\nUNION ALL ".join(
        f"SELECT '{n}' AS source_table, reason, row_key, row_json FROM stg_{n} WHERE reason IS NOT NULL"
        for n in CONTRACT if n in present and n in REJECT))
    built["rejected_rows"] = ("rejected_rows", ["source_table", "row_json"], set())

    # ------------------------------------------------ MRR base
    con.execute("""CREATE OR REPLACE TABLE subs AS SELECT customer_id, start_date, end_date, mrr_usd AS mrr
      FROM stg_subscriptions WHERE reason IS NULL""")
    if "customers" in present:
        con.execute("CREATE OR REPLACE TABLE customers AS SELECT customer_id, segment FROM stg_customers WHERE reason IS NULL")
    else:
        con.execute("CREATE OR REPLACE TABLE customers (customer_id VARCHAR, segment VARCHAR)")
    # a customer's segment (the greatest of duplicated rows); `unknown` without a customers row or segment
    con.execute("""CREATE OR REPLACE TABLE customer_segment AS
WITH c AS (SELECT customer_id, max(segment) AS segment FROM customers GROUP BY customer_id)
SELECT ids.customer_id, coalesce(c.segment, 'unknown') AS segment
FROM (SELECT customer_id FROM subs UNION SELECT customer_id FROM c) ids
LEFT JOIN c USING (customer_id)""")
    con.execute(f"""CREATE OR REPLACE TABLE months AS
SELECT m::DATE AS month, last_day(m)::DATE AS month_end
FROM generate_series((SELECT date_trunc('month', min(start_date)) FROM subs), {as_of_month}, INTERVAL 1 MONTH) g(m)""")
    # the grid of every monthly table: each month x (each segment, and the total as NULL)
    con.execute("""CREATE OR REPLACE TABLE segments AS
SELECT coalesce(segment, 'unknown') AS segment FROM customers UNION SELECT segment FROM customer_segment""")
    con.execute("""CREATE OR REPLACE TABLE grid AS
SELECT m.month, s.segment FROM months m CROSS JOIN (SELECT segment FROM segments UNION ALL SELECT NULL) s""")
    # mrr(c, M): rows active on the last day of M; paying when > 0
    con.execute(f"""CREATE OR REPLACE TABLE mrr_snapshot AS
SELECT s.customer_id, m.month, {mrr_sum} AS mrr
FROM subs s JOIN months m ON s.start_date <= m.month_end AND (s.end_date IS NULL OR s.end_date > m.month_end)
GROUP BY s.customer_id, m.month
HAVING {mrr_sum} > 0""")

    con.execute(f"""CREATE OR REPLACE TABLE customer_mrr_monthly AS
WITH first_paid AS (SELECT customer_id, min(month) AS first_month FROM mrr_snapshot GROUP BY customer_id),
cm AS (SELECT customer_id, month FROM mrr_snapshot
       UNION
       SELECT customer_id, (month + INTERVAL 1 MONTH)::DATE FROM mrr_snapshot WHERE month < {as_of_month}),
x AS (SELECT cm.customer_id, cm.month, coalesce(cur.mrr, 0.0) AS mrr, coalesce(prev.mrr, 0.0) AS prev_mrr, f.first_month
      FROM cm JOIN first_paid f USING (customer_id)
      LEFT JOIN mrr_snapshot cur ON cur.customer_id = cm.customer_id AND cur.month = cm.month
      LEFT JOIN mrr_snapshot prev ON prev.customer_id = cm.customer_id AND prev.month = (cm.month - INTERVAL 1 MONTH)::DATE)
SELECT x.customer_id, x.month, s.segment, x.mrr, x.prev_mrr,
  CASE WHEN prev_mrr = 0 AND mrr > 0 AND month = first_month THEN 'new'
       WHEN prev_mrr = 0 AND mrr > 0 THEN 'reactivation'
       WHEN prev_mrr > 0 AND mrr > prev_mrr THEN 'expansion'
       WHEN prev_mrr > 0 AND mrr > 0 AND mrr < prev_mrr THEN 'contraction'
       WHEN prev_mrr > 0 AND mrr = 0 THEN 'churn' END AS movement,
  x.mrr - x.prev_mrr AS movement_mrr
FROM x JOIN customer_segment s USING (customer_id)""")
    built["customer_mrr_monthly"] = ("customer_mrr_monthly", ["customer_id", "month"], set())

    con.execute("""CREATE OR REPLACE TABLE mrr_movements_monthly AS
WITH a AS (
  SELECT month, segment,
    sum(prev_mrr) AS mrr_start,
    sum(movement_mrr) FILTER (movement = 'new') AS new_mrr,
    sum(movement_mrr) FILTER (movement = 'expansion') AS expansion_mrr,
    sum(movement_mrr) FILTER (movement = 'reactivation') AS reactivation_mrr,
    -sum(movement_mrr) FILTER (movement = 'contraction') AS contraction_mrr,
    -sum(movement_mrr) FILTER (movement = 'churn') AS churned_mrr,
    sum(mrr) AS mrr_end,
    count(*) FILTER (prev_mrr > 0) AS customers_start,
    count(*) FILTER (movement = 'new') AS new_customers,
    count(*) FILTER (movement = 'reactivation') AS reactivated_customers,
    count(*) FILTER (movement = 'churn') AS churned_customers,
    count(*) FILTER (movement = 'expansion') AS expanded_customers,
    count(*) FILTER (movement = 'contraction') AS contracted_customers,
    count(*) FILTER (mrr > 0) AS customers_end
  FROM customer_mrr_monthly
  GROUP BY GROUPING SETS ((month, segment), (month))),
z AS (
  SELECT g.month, g.segment, coalesce(mrr_start, 0.0) AS mrr_start, coalesce(new_mrr, 0.0) AS new_mrr,
    coalesce(expansion_mrr, 0.0) AS expansion_mrr, coalesce(reactivation_mrr, 0.0) AS reactivation_mrr,
    coalesce(contraction_mrr, 0.0) AS contraction_mrr, coalesce(churned_mrr, 0.0) AS churned_mrr,
    coalesce(mrr_end, 0.0) AS mrr_end, coalesce(customers_start, 0) AS customers_start,
    coalesce(new_customers, 0) AS new_customers, coalesce(reactivated_customers, 0) AS reactivated_customers,
    coalesce(churned_customers, 0) AS churned_customers, coalesce(expanded_customers, 0) AS expanded_customers,
    coalesce(contracted_customers, 0) AS contracted_customers, coalesce(customers_end, 0) AS customers_end
  FROM grid g LEFT JOIN a ON a.month = g.month AND a.segment IS NOT DISTINCT FROM g.segment)
SELECT month, segment, mrr_start, new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr,
  new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr AS net_new_mrr, mrr_end,
  customers_start, new_customers, reactivated_customers, churned_customers, expanded_customers,
  contracted_customers, customers_end
FROM z""")
    built["mrr_movements_monthly"] = ("mrr_movements_monthly", ["month", "segment"], set())

    con.execute(f"""CREATE OR REPLACE TABLE saas_kpis_monthly AS
WITH r12 AS (  -- the customers paying 12 months earlier: their MRR then and now
  SELECT m.month, s.segment, sum(base.mrr) AS mrr_base, sum(coalesce(now.mrr, 0.0)) AS mrr_now,
    sum(least(coalesce(now.mrr, 0.0), base.mrr)) AS mrr_capped
  FROM months m
  JOIN mrr_snapshot base ON base.month = (m.month - INTERVAL 12 MONTH)::DATE
  LEFT JOIN mrr_snapshot now ON now.customer_id = base.customer_id AND now.month = m.month
  JOIN customer_segment s ON s.customer_id = base.customer_id
  GROUP BY GROUPING SETS ((m.month, s.segment), (m.month))),
k AS (
  SELECT v.month, v.segment, v.expansion_mrr, v.churned_mrr, v.contraction_mrr,
    v.churned_customers / nullif(v.customers_start, 0) AS customer_churn_rate,
    (v.churned_mrr + v.contraction_mrr) / nullif(v.mrr_start, 0) AS gross_mrr_churn_rate,
    (v.churned_mrr + v.contraction_mrr - v.expansion_mrr) / nullif(v.mrr_start, 0) AS net_mrr_churn_rate,
    r12.mrr_now / nullif(r12.mrr_base, 0) AS nrr_12m,
    r12.mrr_capped / nullif(r12.mrr_base, 0) AS grr_12m,
    v.mrr_end / nullif(v.customers_end, 0) AS arpa
  FROM mrr_movements_monthly v
  LEFT JOIN r12 ON r12.month = v.month AND r12.segment IS NOT DISTINCT FROM v.segment),
w AS (
  SELECT *, avg(customer_churn_rate) OVER (PARTITION BY segment ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) AS avg_churn
  FROM k)
SELECT month, segment, customer_churn_rate,
  1 - pow(1 - customer_churn_rate, 12) AS annualized_customer_churn_rate,
  gross_mrr_churn_rate, net_mrr_churn_rate,
  expansion_mrr > churned_mrr + contraction_mrr AS net_negative_churn,
  1 - net_mrr_churn_rate AS nrr, 1 - gross_mrr_churn_rate AS grr, nrr_12m, grr_12m, arpa,
  arpa * {GROSS_MARGIN} / nullif(avg_churn, 0) AS ltv
FROM w""")
    built["saas_kpis_monthly"] = ("saas_kpis_monthly", ["month", "segment"], set())

    # ------------------------------------------------ cohorts
    con.execute("""CREATE OR REPLACE TABLE cohort_retention AS
WITH cohort AS (SELECT customer_id, min(month) AS cohort_month FROM mrr_snapshot GROUP BY customer_id),
members AS (SELECT c.customer_id, c.cohort_month, s.segment FROM cohort c JOIN customer_segment s USING (customer_id)),
size AS (SELECT cohort_month, segment, count(*) AS n FROM members GROUP BY GROUPING SETS ((cohort_month, segment), (cohort_month))),
active AS (SELECT c.cohort_month, c.segment, p.month, count(*) AS n, sum(p.mrr) AS mrr
           FROM members c JOIN mrr_snapshot p USING (customer_id)
           GROUP BY GROUPING SETS ((c.cohort_month, c.segment, p.month), (c.cohort_month, p.month))),
g AS (SELECT c.month AS cohort_month, s.segment, t.month, datediff('month', c.month, t.month) AS months_since
      FROM months c CROSS JOIN (SELECT segment FROM segments UNION ALL SELECT NULL) s JOIN months t ON t.month >= c.month),
x AS (SELECT g.cohort_month, g.segment, g.months_since, coalesce(size.n, 0) AS cohort_customers,
        coalesce(active.n, 0) AS active_customers, coalesce(active.mrr, 0.0) AS cohort_mrr
      FROM g
      LEFT JOIN size ON size.cohort_month = g.cohort_month AND size.segment IS NOT DISTINCT FROM g.segment
      LEFT JOIN active ON active.cohort_month = g.cohort_month AND active.segment IS NOT DISTINCT FROM g.segment AND active.month = g.month)
SELECT cohort_month, segment, months_since, cohort_customers, active_customers,
  active_customers / nullif(cohort_customers, 0) AS logo_retention, cohort_mrr,
  cohort_mrr / nullif(first_value(cohort_mrr) OVER (PARTITION BY cohort_month, segment ORDER BY months_since), 0) AS revenue_retention
FROM x""")
    built["cohort_retention"] = ("cohort_retention", ["cohort_month", "segment", "months_since"], set())

    # ------------------------------------------------ surveys
    if "surveys" in present:
        con.execute("""CREATE OR REPLACE TABLE survey_scores_monthly AS
WITH r AS (SELECT date_trunc('month', v.responded_at)::DATE AS month, coalesce(s.segment, 'unknown') AS segment,
             lower(v.survey) AS kind, v.score
           FROM stg_surveys v LEFT JOIN customer_segment s USING (customer_id) WHERE v.reason IS NULL),
a AS (SELECT month, segment,
        count(*) FILTER (kind = 'nps') AS nps_n,
        count(*) FILTER (kind = 'nps' AND score >= 9) AS promoters,
        count(*) FILTER (kind = 'nps' AND score <= 6) AS detractors,
        count(*) FILTER (kind = 'csat') AS csat_n,
        count(*) FILTER (kind = 'csat' AND score >= 4) AS satisfied,
        count(*) FILTER (kind = 'ces') AS ces_n,
        avg(score) FILTER (kind = 'ces') AS ces
      FROM r GROUP BY GROUPING SETS ((month, segment), (month)))
SELECT g.month, g.segment,
  coalesce(nps_n, 0) AS nps_responses, 100 * (promoters - detractors) / nullif(nps_n, 0) AS nps,
  coalesce(csat_n, 0) AS csat_responses, 100 * satisfied / nullif(csat_n, 0) AS csat,
  coalesce(ces_n, 0) AS ces_responses, ces
FROM grid g LEFT JOIN a ON a.month = g.month AND a.segment IS NOT DISTINCT FROM g.segment""")
        built["survey_scores_monthly"] = ("survey_scores_monthly", ["month", "segment"], set())
    else:
        skipped["survey_scores_monthly"] = ["surveys"]

    # ------------------------------------------------ support
    if "tickets" in present:
        con.execute("""CREATE OR REPLACE TABLE support_monthly AS
WITH t AS (SELECT v.*, coalesce(s.segment, 'unknown') AS segment
           FROM stg_tickets v LEFT JOIN customer_segment s USING (customer_id) WHERE v.reason IS NULL),
opened AS (SELECT date_trunc('month', created_at)::DATE AS month, segment, count(*) AS n,
             count(*) FILTER (lower(priority) IN ('high', 'urgent')) AS urgent
           FROM t GROUP BY GROUPING SETS ((1, segment), (1))),
resolved AS (SELECT date_trunc('month', resolved_at)::DATE AS month, segment,
               median((epoch_us(resolved_at) - epoch_us(created_at)) / 3.6e9) AS hours
             FROM t WHERE resolved_at IS NOT NULL GROUP BY GROUPING SETS ((1, segment), (1)))
SELECT g.month, g.segment, coalesce(o.n, 0) AS tickets_opened, coalesce(o.urgent, 0) AS urgent_tickets,
  coalesce(o.n, 0) / nullif(v.customers_end, 0) AS tickets_per_customer, r.hours AS median_resolution_hours
FROM grid g
JOIN mrr_movements_monthly v ON v.month = g.month AND v.segment IS NOT DISTINCT FROM g.segment
LEFT JOIN opened o ON o.month = g.month AND o.segment IS NOT DISTINCT FROM g.segment
LEFT JOIN resolved r ON r.month = g.month AND r.segment IS NOT DISTINCT FROM g.segment""")
        built["support_monthly"] = ("support_monthly", ["month", "segment"], set())
    else:
        skipped["support_monthly"] = ["tickets"]

    # ------------------------------------------------ customer health
    health_missing = [n for n in ("surveys", "tickets", "usage") if n not in present]
    if not health_missing:
        def num(x):  # a DOUBLE literal: the arithmetic of the score is floating point
            return f"{float(x)!r}::DOUBLE"

        def score(name, bad, good):
            # greatest and least skip NULLs: a missing raw value keeps a NULL score
            return (f"CASE WHEN {name}_raw IS NOT NULL THEN greatest({num(0)}, least({num(100)}, "
                    f"{num(100)} * ({name}_raw - {num(bad)}) / ({num(good)} - {num(bad)}))) END AS {name}_score")
        weighted = " + ".join(f"coalesce({num(w)} * {n}_score, {num(0)})" for n, _, _, w in COMPONENTS)
        weights = " + ".join(f"CASE WHEN {n}_score IS NULL THEN {num(0)} ELSE {num(w)} END" for n, _, _, w in COMPONENTS)
        con.execute(f"""CREATE OR REPLACE TABLE customer_health AS
WITH paying AS (  -- customers paying in M, as of L, the last day of M
  SELECT p.customer_id, p.month, m.month_end AS l, s.segment, p.mrr
  FROM mrr_snapshot p JOIN months m USING (month) JOIN customer_segment s USING (customer_id)),
usage_days AS (
  SELECT DISTINCT customer_id, occurred_at::DATE AS day, user_id, feature FROM stg_usage WHERE reason IS NULL),
usage_30d AS (
  SELECT p.customer_id, p.month, count(DISTINCT u.day) AS days, count(DISTINCT u.feature) AS features,
    count(DISTINCT u.user_id) AS users
  FROM paying p JOIN usage_days u ON u.customer_id = p.customer_id AND u.day BETWEEN p.l - 29 AND p.l
  GROUP BY p.customer_id, p.month),
tickets_30d AS (
  SELECT p.customer_id, p.month, count(*) AS n
  FROM paying p JOIN stg_tickets t ON t.customer_id = p.customer_id AND t.created_at::DATE BETWEEN p.l - 29 AND p.l
  WHERE t.reason IS NULL
  GROUP BY p.customer_id, p.month),
nps_180d AS (
  SELECT p.customer_id, p.month, max_by(v.score, (v.responded_at, v.response_id)) AS score
  FROM paying p JOIN stg_surveys v ON v.customer_id = p.customer_id AND v.responded_at::DATE BETWEEN p.l - 179 AND p.l
  WHERE v.reason IS NULL AND lower(v.survey) = 'nps'
  GROUP BY p.customer_id, p.month),
raw AS (
  SELECT p.customer_id, p.month, p.segment, p.mrr,
    coalesce(u.days, 0) AS usage_days_raw, coalesce(u.features, 0) AS feature_breadth_raw,
    coalesce(u.users, 0) AS active_users_raw, coalesce(t.n, 0) AS support_load_raw,
    coalesce(n.score, 5.0) AS sentiment_raw, p.mrr / back.mrr AS mrr_trend_raw
  FROM paying p
  LEFT JOIN usage_30d u USING (customer_id, month)
  LEFT JOIN tickets_30d t USING (customer_id, month)
  LEFT JOIN nps_180d n USING (customer_id, month)
  LEFT JOIN mrr_snapshot back ON back.customer_id = p.customer_id AND back.month = (p.month - INTERVAL 3 MONTH)::DATE),
scored AS (SELECT *, {', '.join(score(n, b, g) for n, b, g, _ in COMPONENTS)} FROM raw),
h AS (SELECT *, round(({weighted}) / ({weights}), 6) AS health_score FROM scored)
SELECT customer_id, month, segment, mrr, health_score,
  CASE WHEN health_score >= 70 THEN 'green' WHEN health_score >= 40 THEN 'yellow' ELSE 'red' END AS band,
  {', '.join(f'{n}_raw, {n}_score' for n, _, _, _ in COMPONENTS)}
FROM h""")
        built["customer_health"] = ("customer_health", ["customer_id", "month"],
                                    {"segment", "mrr", "health_score", "band"} | {f"{n}_raw" for n, _, _, _ in COMPONENTS})
        con.execute("""CREATE OR REPLACE TABLE health_bands_monthly AS
WITH a AS (SELECT month, segment, band, count(*) AS n, sum(mrr) AS mrr
           FROM customer_health GROUP BY GROUPING SETS ((month, segment, band), (month, band)))
SELECT g.month, g.segment, b.band, coalesce(a.n, 0) AS customers, coalesce(a.mrr, 0.0) AS mrr
FROM grid g CROSS JOIN (VALUES ('green'), ('yellow'), ('red')) b(band)
LEFT JOIN a ON a.month = g.month AND a.segment IS NOT DISTINCT FROM g.segment AND a.band = b.band""")
        built["health_bands_monthly"] = ("health_bands_monthly", ["month", "segment", "band"], set())
        con.execute(f"""CREATE OR REPLACE TABLE at_risk_customers AS
SELECT customer_id, row_number() OVER (ORDER BY mrr DESC, customer_id) AS rank, segment, mrr, health_score, band, month
FROM customer_health WHERE band = 'red' AND month = {as_of_month}""")
        built["at_risk_customers"] = ("at_risk_customers", ["customer_id"], set())
    else:
        for n in ("customer_health", "health_bands_monthly", "at_risk_customers"):
            skipped[n] = health_missing

    # ------------------------------------------------ unit economics
    # Without acquisition_spend the table is still built, its spend columns null (docs/metrics.md).
    has_spend = "acquisition_spend" in present
    spend_src = ("SELECT date_trunc('month', month)::DATE AS month, segment, amount FROM stg_acquisition_spend WHERE reason IS NULL"
                 if has_spend else "SELECT NULL::DATE AS month, NULL::VARCHAR AS segment, NULL::DOUBLE AS amount WHERE false")
    con.execute(f"""CREATE OR REPLACE TABLE unit_economics AS
WITH spend AS ({spend_src}),
own AS (SELECT month, segment, sum(amount) AS amount FROM spend WHERE segment IS NOT NULL GROUP BY ALL),
shared AS (SELECT month, sum(amount) AS amount FROM spend WHERE segment IS NULL GROUP BY ALL),
total AS (SELECT month, sum(amount) AS amount FROM spend GROUP BY ALL),
monthly AS (  -- spend per month and segment, shared spend spread by the share of new customers
  SELECT v.month, v.segment, v.new_customers, v.new_mrr,
    CASE WHEN v.segment IS NULL THEN coalesce(total.amount, 0.0)
         ELSE coalesce(own.amount, 0.0)
              + CASE WHEN t.new_customers > 0 THEN coalesce(shared.amount, 0.0) * v.new_customers / t.new_customers ELSE 0.0 END
    END AS spend
  FROM mrr_movements_monthly v
  JOIN mrr_movements_monthly t ON t.month = v.month AND t.segment IS NULL
  LEFT JOIN own ON own.month = v.month AND own.segment = v.segment
  LEFT JOIN shared ON shared.month = v.month
  LEFT JOIN total ON total.month = v.month),
windows AS (  -- the months of each period inside the range, and its last one
  SELECT 'month' AS period_type, month AS period, month, month AS last_month FROM months
  UNION ALL
  SELECT 'quarter', date_trunc('quarter', month)::DATE, month, max(month) OVER (PARTITION BY date_trunc('quarter', month)) FROM months
  UNION ALL
  SELECT 'trailing_12m', a.month, b.month, a.month FROM months a JOIN months b ON b.month BETWEEN (a.month - INTERVAL 11 MONTH)::DATE AND a.month),
agg AS (
  SELECT w.period_type, w.period, w.last_month, m.segment, sum(m.spend) AS spend,
    sum(m.new_customers)::BIGINT AS new_customers, sum(m.new_mrr) AS new_mrr
  FROM windows w JOIN monthly m ON m.month = w.month
  GROUP BY ALL),
x AS (
  SELECT agg.*, k.ltv, spend / nullif(new_customers, 0) AS cac, new_mrr / nullif(new_customers, 0) AS arpa_new
  FROM agg LEFT JOIN saas_kpis_monthly k ON k.month = agg.last_month AND k.segment IS NOT DISTINCT FROM agg.segment)
SELECT period_type, period, segment, {'spend' if has_spend else 'NULL::DOUBLE AS spend'}, new_customers,
  {'cac' if has_spend else 'NULL::DOUBLE AS cac'}, arpa_new,
  {'cac / nullif(arpa_new * ' + repr(GROSS_MARGIN) + ', 0)' if has_spend else 'NULL::DOUBLE'} AS cac_payback_months,
  ltv, {'ltv / nullif(cac, 0)' if has_spend else 'NULL::DOUBLE'} AS ltv_to_cac,
  {'ltv - cac' if has_spend else 'NULL::DOUBLE'} AS net_ltv
FROM x""")
    built["unit_economics"] = ("unit_economics", ["period_type", "period", "segment"], set())
    return built, skipped


def write_parquet(con, built, skipped, out_dir):
    """Writes each built table to OUT/<table>/part-00000.parquet, and
    OUT/_reference.json with the files, keys and exactly compared columns."""
    os.makedirs(out_dir, exist_ok=True)
    index = {"tables": {}, "skipped": skipped}
    for name, (table, keys, exact) in built.items():
        rel = os.path.join(name, "part-00000.parquet")
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        con.execute(f"COPY {table} TO '{os.path.join(out_dir, rel)}' (FORMAT parquet)")
        index["tables"][name] = {"files": [rel], "keys": keys, "exact": sorted(exact)}
    with open(os.path.join(out_dir, "_reference.json"), "w") as f:
        json.dump(index, f, indent=1)


def load_parquet(con, out_dir):
    """The inverse of write_parquet: a table ref_<name> per written table;
    returns (built, skipped) as build() does."""
    with open(os.path.join(out_dir, "_reference.json")) as f:
        index = json.load(f)
    built = {}
    for name, t in index["tables"].items():
        files = [os.path.join(out_dir, p) for p in t["files"]]
        con.execute(f"CREATE OR REPLACE TABLE ref_{name} AS SELECT * FROM read_parquet({files!r})")
        built[name] = (f"ref_{name}", t["keys"], set(t["exact"]))
    return built, index["skipped"]


def main(argv):
    args = [a for a in argv if a != "--exact-mrr"]
    if len(args) != 3:
        sys.exit(__doc__)
    import duckdb
    data_dir, out_dir, as_of = args
    con = duckdb.connect()
    built, skipped = build(con, data_dir, as_of, exact_mrr=len(args) != len(argv))
    write_parquet(con, built, skipped, out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
