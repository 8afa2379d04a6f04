"""Cross-check: an independent DuckDB implementation of the catalog tables
beyond MRR (cohort_retention, survey_scores_monthly, support_monthly,
customer_health, health_bands_monthly, at_risk_customers, unit_economics),
written from ../shared/spec/*.md and docs/metrics.md alone, compared cell by
cell with a vitals build of the same files. Needs `pip install duckdb`.
Usage:
    python3 scripts/crosscheck_catalog.py DATA_DIR TARGET_DIR AS_OF [--exact-mrr]
DATA_DIR holds one folder (Parquet files, Hive partitions allowed) per input
table; TARGET_DIR is a vitals build (its _manifest.json names the files).
Assumes the shipped catalog (reporting currency USD, gross margin 1, UTC,
health components and bands of the spec). Exit 1 when anything differs.
mrr(c, M) is rounded to 9 decimals, the reading of docs/metrics.md;
--exact-mrr keeps the unrounded sum of crosscheck_duckdb.py (then mrr and
mrr_trend_raw of customer_health, compared exactly, can differ in the last
bit; those cells are flagged "within 1e-9")."""
import sys, os, glob, json, math, datetime, decimal, duckdb

args = [a for a in sys.argv[1:] if a != "--exact-mrr"]
round_mrr = len(args) == len(sys.argv) - 1
if len(args) != 3:
    sys.exit(__doc__)
data, out, as_of = args
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ -> DATE gives the UTC day


# ---------------------------------------------------------------- inputs
def files(name):
    p = os.path.join(data, name)
    if os.path.isfile(p):
        return [p]
    if os.path.isfile(p + ".parquet"):
        return [p + ".parquet"]
    return sorted(glob.glob(os.path.join(p, "**", "*.parquet"), recursive=True))


present = {n for n in ["subscriptions", "customers", "usage", "tickets", "surveys", "acquisition_spend", "fx_rates"] if files(n)}
if "subscriptions" not in present:
    sys.exit(f"no subscriptions under {data}")


def src(name):
    return f"read_parquet({files(name)!r}, union_by_name=true)"


def cols(name):
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src(name)}").fetchall()}


def col(name, c, typ):
    """the column cast to typ, or a typed NULL when the source lacks it"""
    return f"CAST({c} AS {typ})" if c in cols(name) else f"CAST(NULL AS {typ})"


def day(expr):  # the UTC calendar day of a DATE, TIMESTAMP[TZ] or ISO string
    return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS DATE)"


# fx_rates and subscriptions: the cleaning of crosscheck_duckdb.py
if "fx_rates" in present:
    con.execute(f"CREATE TABLE fx AS SELECT upper(currency) cur, date_trunc('month', {day('month')})::DATE m, max(rate::DOUBLE) rate FROM {src('fx_rates')} GROUP BY 1,2")
else:
    con.execute("CREATE TABLE fx (cur VARCHAR, m DATE, rate DOUBLE)")
S = "subscriptions"
con.execute(f"""CREATE VIEW sub_raw AS SELECT {col(S,'subscription_id','VARCHAR')} subscription_id, {col(S,'customer_id','VARCHAR')} customer_id,
  {day(col(S,'start_date','VARCHAR'))} start_date, {day(col(S,'end_date','VARCHAR'))} end_date, {col(S,'mrr','DOUBLE')} mrr, {col(S,'amount','DOUBLE')} amount,
  {col(S,'billing_period','VARCHAR')} billing_period, {col(S,'quantity','DOUBLE')} quantity, {col(S,'currency','VARCHAR')} currency FROM {src(S)}""")
con.execute("""CREATE TABLE subs AS
WITH n AS (SELECT *, coalesce(mrr, amount*coalesce(quantity,1)/CASE lower(billing_period) WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 WHEN 'year' THEN 12 WHEN 'week' THEN 12.0/52 END) AS mrr_n FROM sub_raw)
SELECT n.customer_id, n.start_date::DATE s, n.end_date::DATE e,
  n.mrr_n * CASE WHEN n.currency IS NULL OR upper(n.currency)='USD' THEN 1 ELSE fx.rate END AS mrr
FROM n LEFT JOIN fx ON fx.cur = upper(n.currency) AND fx.m = date_trunc('month', n.start_date)
WHERE subscription_id IS NOT NULL AND customer_id IS NOT NULL AND start_date IS NOT NULL
  AND NOT coalesce(end_date < start_date, false)
  AND NOT (n.mrr IS NULL AND (amount IS NULL OR billing_period IS NULL))
  AND NOT (billing_period IS NOT NULL AND lower(billing_period) NOT IN ('month','quarter','year','week'))
  AND NOT coalesce(mrr_n < 0, false)
  AND NOT (currency IS NOT NULL AND upper(currency) <> 'USD' AND fx.rate IS NULL)""")
if "customers" in present:
    C = "customers"
    con.execute(f"CREATE TABLE cust AS SELECT {col(C,'customer_id','VARCHAR')} customer_id, max({col(C,'segment','VARCHAR')}) segment FROM {src(C)} WHERE customer_id IS NOT NULL GROUP BY 1")
else:
    con.execute("CREATE TABLE cust (customer_id VARCHAR, segment VARCHAR)")

# the other inputs, without their bad rows (inputs.md "Bad rows")
if "usage" in present:
    U = "usage"
    con.execute(f"""CREATE TABLE usage AS SELECT DISTINCT customer_id::VARCHAR customer_id, {day('occurred_at')} d,
      {col(U,'user_id','VARCHAR')} user_id, {col(U,'feature','VARCHAR')} feature
      FROM {src(U)} WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL""")
if "tickets" in present:
    T = "tickets"
    con.execute(f"""CREATE TABLE tickets AS SELECT ticket_id::VARCHAR ticket_id, customer_id::VARCHAR customer_id,
      CAST(created_at AS TIMESTAMPTZ) c_ts, {col(T,'resolved_at','TIMESTAMPTZ')} r_ts, {col(T,'priority','VARCHAR')} priority
      FROM {src(T)} WHERE ticket_id IS NOT NULL AND customer_id IS NOT NULL AND created_at IS NOT NULL
        AND NOT coalesce({col(T,'resolved_at','TIMESTAMPTZ')} < CAST(created_at AS TIMESTAMPTZ), false)""")
if "surveys" in present:
    V = "surveys"
    con.execute(f"""CREATE TABLE surveys AS SELECT response_id::VARCHAR response_id, customer_id::VARCHAR customer_id,
      CAST(responded_at AS TIMESTAMPTZ) ts, lower(survey::VARCHAR) kind, score::DOUBLE score
      FROM {src(V)} WHERE response_id IS NOT NULL AND customer_id IS NOT NULL AND responded_at IS NOT NULL
        AND lower(survey::VARCHAR) IN ('nps','csat','ces') AND score IS NOT NULL
        AND CASE lower(survey::VARCHAR) WHEN 'nps' THEN score::DOUBLE BETWEEN 0 AND 10 WHEN 'csat' THEN score::DOUBLE BETWEEN 1 AND 5
                                         ELSE score::DOUBLE BETWEEN 1 AND 7 END""")
if "acquisition_spend" in present:
    A = "acquisition_spend"
    con.execute(f"""CREATE TABLE spend AS SELECT date_trunc('month', {day('month')})::DATE m, {col(A,'segment','VARCHAR')} segment, amount::DOUBLE amount
      FROM {src(A)} WHERE month IS NOT NULL AND amount IS NOT NULL""")

# ---------------------------------------------------------------- MRR base (as crosscheck_duckdb.py)
con.execute(f"""CREATE TABLE months AS SELECT m::DATE AS month, (m + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE AS month_end
  FROM generate_series((SELECT date_trunc('month', min(s)) FROM subs), date_trunc('month', DATE '{as_of}'), INTERVAL 1 MONTH) g(m)""")
msum = "round(sum(s.mrr), 9)" if round_mrr else "sum(s.mrr)"
con.execute(f"""CREATE TABLE snap AS SELECT s.customer_id, m.month, {msum} mrr FROM subs s JOIN months m ON s.s <= m.month_end AND (s.e IS NULL OR s.e > m.month_end) GROUP BY 1,2 HAVING {msum} > 0""")
con.execute("""CREATE TABLE seg AS SELECT c.customer_id, coalesce(cu.segment,'unknown') segment FROM (SELECT customer_id FROM subs UNION SELECT customer_id FROM cust) c LEFT JOIN cust cu USING (customer_id)""")
con.execute("""CREATE TABLE cmm AS
WITH grid AS (SELECT DISTINCT customer_id, month FROM (SELECT customer_id, month FROM snap UNION SELECT customer_id, (month + INTERVAL 1 MONTH)::DATE FROM snap) WHERE month <= (SELECT max(month) FROM months)),
x AS (SELECT g.customer_id, g.month, coalesce(c.mrr,0) cur, coalesce(p.mrr,0) prev,
   EXISTS (SELECT 1 FROM snap q WHERE q.customer_id = g.customer_id AND q.month < g.month - INTERVAL 1 MONTH) AS paid_before
  FROM grid g LEFT JOIN snap c ON c.customer_id=g.customer_id AND c.month=g.month LEFT JOIN snap p ON p.customer_id=g.customer_id AND p.month = (g.month - INTERVAL 1 MONTH)::DATE)
SELECT x.*, seg.segment, CASE WHEN prev=0 AND cur>0 AND NOT paid_before THEN 'new' WHEN prev=0 AND cur>0 THEN 'reactivation'
 WHEN prev>0 AND cur>prev THEN 'expansion' WHEN prev>0 AND cur>0 AND cur<prev THEN 'contraction' WHEN prev>0 AND cur=0 THEN 'churn' END mv
FROM x JOIN seg USING (customer_id)""")
con.execute("CREATE TABLE segs AS SELECT DISTINCT coalesce(segment,'unknown') segment FROM cust UNION SELECT segment FROM seg")
con.execute("CREATE TABLE segrows AS SELECT segment FROM segs UNION ALL SELECT NULL")  # + the total row
con.execute("CREATE TABLE grid AS SELECT m.month, s.segment FROM months m, segrows s")
con.execute("""CREATE TABLE mv AS
WITH agg AS (SELECT month, segment, sum(prev) mrr_start, sum(cur) mrr_end,
  sum(CASE WHEN mv='new' THEN cur-prev ELSE 0 END) new_mrr, sum(CASE WHEN mv='expansion' THEN cur-prev ELSE 0 END) expansion_mrr,
  sum(CASE WHEN mv='reactivation' THEN cur-prev ELSE 0 END) reactivation_mrr, sum(CASE WHEN mv='contraction' THEN prev-cur ELSE 0 END) contraction_mrr,
  sum(CASE WHEN mv='churn' THEN prev ELSE 0 END) churned_mrr, count(*) FILTER (prev>0) customers_start, count(*) FILTER (cur>0) customers_end,
  count(*) FILTER (mv='new') new_customers, count(*) FILTER (mv='churn') churned_customers
  FROM cmm GROUP BY GROUPING SETS ((month, segment), (month)))
SELECT r.month, r.segment, coalesce(mrr_start,0) mrr_start, coalesce(new_mrr,0) new_mrr, coalesce(expansion_mrr,0) expansion_mrr,
 coalesce(contraction_mrr,0) contraction_mrr, coalesce(churned_mrr,0) churned_mrr, coalesce(mrr_end,0) mrr_end, coalesce(customers_start,0) customers_start,
 coalesce(new_customers,0) new_customers, coalesce(churned_customers,0) churned_customers, coalesce(customers_end,0) customers_end
FROM grid r LEFT JOIN agg a ON a.month=r.month AND a.segment IS NOT DISTINCT FROM r.segment""")
con.execute("""CREATE TABLE kpi AS
WITH k AS (SELECT mv.*, churned_customers::DOUBLE / nullif(customers_start,0) churn, mrr_end / nullif(customers_end,0) arpa FROM mv),
w AS (SELECT *, avg(churn) OVER (PARTITION BY segment ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) avg_churn FROM k)
SELECT month, segment, arpa, arpa*1.0/nullif(avg_churn,0) ltv FROM w""")

# ---------------------------------------------------------------- reference tables
built = {}  # name -> (reference table, key columns, columns compared exactly)
skipped = {}  # name -> missing inputs

con.execute("""CREATE TABLE ref_cohort_retention AS
WITH coh AS (SELECT customer_id, min(month) cohort FROM snap GROUP BY 1),
size AS (SELECT cohort, segment, count(*) n FROM coh JOIN seg USING (customer_id) GROUP BY GROUPING SETS ((cohort, segment), (cohort))),
act AS (SELECT cohort, segment, sn.month, count(*) n, sum(sn.mrr) mrr FROM coh JOIN seg USING (customer_id) JOIN snap sn USING (customer_id)
        GROUP BY GROUPING SETS ((cohort, segment, sn.month), (cohort, sn.month))),
g AS (SELECT c.month AS cohort_month, s.segment, t.month target, datediff('month', c.month, t.month) months_since
      FROM months c, segrows s, months t WHERE t.month >= c.month),
x AS (SELECT g.*, coalesce(size.n, 0) cohort_customers, coalesce(act.n, 0) active_customers, coalesce(act.mrr, 0) cohort_mrr
      FROM g LEFT JOIN size ON size.cohort = g.cohort_month AND size.segment IS NOT DISTINCT FROM g.segment
      LEFT JOIN act ON act.cohort = g.cohort_month AND act.segment IS NOT DISTINCT FROM g.segment AND act.month = g.target)
SELECT x.cohort_month, x.segment, x.months_since, x.cohort_customers, x.active_customers,
  x.active_customers::DOUBLE / nullif(x.cohort_customers, 0) logo_retention, x.cohort_mrr,
  x.cohort_mrr / nullif(x0.cohort_mrr, 0) revenue_retention
FROM x JOIN x x0 ON x0.cohort_month = x.cohort_month AND x0.segment IS NOT DISTINCT FROM x.segment AND x0.months_since = 0""")
built["cohort_retention"] = ("ref_cohort_retention", ["cohort_month", "segment", "months_since"], set())

if "surveys" in present:
    con.execute("""CREATE TABLE ref_survey_scores_monthly AS
WITH r AS (SELECT date_trunc('month', v.ts::DATE)::DATE AS month, coalesce(s.segment, 'unknown') segment, kind, score
           FROM surveys v LEFT JOIN seg s USING (customer_id)),
a AS (SELECT month, segment,
   count(*) FILTER (kind='nps') nps_n, count(*) FILTER (kind='nps' AND score >= 9) prom, count(*) FILTER (kind='nps' AND score <= 6) detr,
   count(*) FILTER (kind='csat') csat_n, count(*) FILTER (kind='csat' AND score >= 4) csat_ok,
   count(*) FILTER (kind='ces') ces_n, avg(score) FILTER (kind='ces') ces
   FROM r GROUP BY GROUPING SETS ((month, segment), (month)))
SELECT g.month, g.segment, coalesce(nps_n, 0) nps_responses, 100.0::DOUBLE * (prom - detr) / nullif(nps_n, 0) nps,
  coalesce(csat_n, 0) csat_responses, 100.0::DOUBLE * csat_ok / nullif(csat_n, 0) csat, coalesce(ces_n, 0) ces_responses, ces
FROM grid g LEFT JOIN a ON a.month = g.month AND a.segment IS NOT DISTINCT FROM g.segment""")
    built["survey_scores_monthly"] = ("ref_survey_scores_monthly", ["month", "segment"], set())
else:
    skipped["survey_scores_monthly"] = ["surveys"]

if "tickets" in present:
    con.execute("""CREATE TABLE ref_support_monthly AS
WITH o AS (SELECT date_trunc('month', t.c_ts::DATE)::DATE AS month, coalesce(s.segment, 'unknown') segment,
             coalesce(lower(priority) IN ('high', 'urgent'), false) urgent FROM tickets t LEFT JOIN seg s USING (customer_id)),
oa AS (SELECT month, segment, count(*) n, count(*) FILTER (urgent) u FROM o GROUP BY GROUPING SETS ((month, segment), (month))),
r AS (SELECT date_trunc('month', t.r_ts::DATE)::DATE AS month, coalesce(s.segment, 'unknown') segment,
             (epoch_us(t.r_ts) - epoch_us(t.c_ts)) / 1e6 / 3600.0 h FROM tickets t LEFT JOIN seg s USING (customer_id) WHERE t.r_ts IS NOT NULL),
ra AS (SELECT month, segment, median(h) med FROM r GROUP BY GROUPING SETS ((month, segment), (month)))
SELECT g.month, g.segment, coalesce(oa.n, 0) tickets_opened, coalesce(oa.u, 0) urgent_tickets,
  coalesce(oa.n, 0)::DOUBLE / nullif(mv.customers_end, 0) tickets_per_customer, ra.med median_resolution_hours
FROM grid g LEFT JOIN oa ON oa.month = g.month AND oa.segment IS NOT DISTINCT FROM g.segment
  LEFT JOIN ra ON ra.month = g.month AND ra.segment IS NOT DISTINCT FROM g.segment
  JOIN mv ON mv.month = g.month AND mv.segment IS NOT DISTINCT FROM g.segment""")
    built["support_monthly"] = ("ref_support_monthly", ["month", "segment"], set())
else:
    skipped["support_monthly"] = ["tickets"]

# customer health: components (name, scale bad, good, weight) of the shipped catalog
COMPONENTS = [("usage_days", 0, 20, 0.30), ("feature_breadth", 0, 5, 0.15), ("active_users", 0, 10, 0.15),
              ("support_load", 5, 0, 0.15), ("sentiment", 0, 10, 0.15), ("mrr_trend", 0.9, 1.1, 0.10)]
health_missing = [n for n in ("usage", "tickets", "surveys") if n not in present]
if not health_missing:
    def score(name, bad, good):
        raw = f"{name}_raw"
        return (f"CASE WHEN {raw} IS NULL THEN NULL ELSE greatest(0.0::DOUBLE, least(100.0::DOUBLE, "
                f"100.0::DOUBLE * ({raw} - {float(bad)!r}::DOUBLE) / ({float(good)!r}::DOUBLE - {float(bad)!r}::DOUBLE))) END {name}_score")
    num = " + ".join(f"coalesce({w!r}::DOUBLE * {n}_score, 0.0::DOUBLE)" for n, _, _, w in COMPONENTS)
    den = " + ".join(f"CASE WHEN {n}_score IS NULL THEN 0.0::DOUBLE ELSE {w!r}::DOUBLE END" for n, _, _, w in COMPONENTS)
    con.execute("""CREATE TABLE hb AS SELECT sn.customer_id, sn.month, m.month_end l, seg.segment, sn.mrr
      FROM snap sn JOIN months m USING (month) JOIN seg USING (customer_id)""")
    con.execute(f"""CREATE TABLE ref_customer_health AS
WITH ua AS (SELECT b.customer_id, b.month, count(DISTINCT u.d) AS days, count(DISTINCT u.feature) feats, count(DISTINCT u.user_id) users
            FROM hb b JOIN usage u ON u.customer_id = b.customer_id AND u.d BETWEEN b.l - 29 AND b.l GROUP BY 1, 2),
ta AS (SELECT b.customer_id, b.month, count(*) n FROM hb b JOIN tickets t ON t.customer_id = b.customer_id AND t.c_ts::DATE BETWEEN b.l - 29 AND b.l GROUP BY 1, 2),
sa AS (SELECT customer_id, month, score FROM (
         SELECT b.customer_id, b.month, v.score, row_number() OVER (PARTITION BY b.customer_id, b.month ORDER BY v.ts DESC, v.response_id DESC) rn
         FROM hb b JOIN surveys v ON v.customer_id = b.customer_id AND v.kind = 'nps' AND v.ts::DATE BETWEEN b.l - 179 AND b.l) WHERE rn = 1),
r AS (SELECT b.customer_id, b.month, b.segment, b.mrr,
        coalesce(ua.days, 0)::DOUBLE usage_days_raw, coalesce(ua.feats, 0)::DOUBLE feature_breadth_raw, coalesce(ua.users, 0)::DOUBLE active_users_raw,
        coalesce(ta.n, 0)::DOUBLE support_load_raw, coalesce(sa.score, 5.0)::DOUBLE sentiment_raw, b.mrr / p.mrr mrr_trend_raw
      FROM hb b LEFT JOIN ua USING (customer_id, month) LEFT JOIN ta USING (customer_id, month) LEFT JOIN sa USING (customer_id, month)
        LEFT JOIN snap p ON p.customer_id = b.customer_id AND p.month = (b.month - INTERVAL 3 MONTH)::DATE),
s AS (SELECT *, {', '.join(score(n, b, g) for n, b, g, _ in COMPONENTS)} FROM r),
h AS (SELECT *, round(({num}) / ({den}), 6) health_score FROM s)
SELECT customer_id, month, segment, mrr, health_score,
  CASE WHEN health_score >= 70 THEN 'green' WHEN health_score >= 40 THEN 'yellow' ELSE 'red' END band,
  {', '.join(f'{n}_raw, {n}_score' for n, _, _, _ in COMPONENTS)}
FROM h""")
    built["customer_health"] = ("ref_customer_health", ["customer_id", "month"],
                                {"segment", "mrr", "health_score", "band"} | {f"{n}_raw" for n, _, _, _ in COMPONENTS})
    con.execute("""CREATE TABLE ref_health_bands_monthly AS
WITH b AS (SELECT * FROM (VALUES ('green'), ('yellow'), ('red')) t(band)),
a AS (SELECT month, segment, band, count(*) n, sum(mrr) mrr FROM ref_customer_health GROUP BY GROUPING SETS ((month, segment, band), (month, band)))
SELECT g.month, g.segment, b.band, coalesce(a.n, 0) customers, coalesce(a.mrr, 0) mrr
FROM grid g CROSS JOIN b LEFT JOIN a ON a.month = g.month AND a.segment IS NOT DISTINCT FROM g.segment AND a.band = b.band""")
    built["health_bands_monthly"] = ("ref_health_bands_monthly", ["month", "segment", "band"], set())
    con.execute(f"""CREATE TABLE ref_at_risk_customers AS
SELECT customer_id, row_number() OVER (ORDER BY mrr DESC, customer_id ASC) rank, segment, mrr, health_score, band, month
FROM ref_customer_health WHERE band = 'red' AND month = date_trunc('month', DATE '{as_of}')::DATE""")
    built["at_risk_customers"] = ("ref_at_risk_customers", ["customer_id"], set())
else:
    for n in ("customer_health", "health_bands_monthly", "at_risk_customers"):
        skipped[n] = health_missing

if "acquisition_spend" in present:
    con.execute("""CREATE TABLE ue_m AS
WITH d AS (SELECT m, segment, sum(amount) amt FROM spend WHERE segment IS NOT NULL GROUP BY 1, 2),
sh AS (SELECT m, sum(amount) amt FROM spend WHERE segment IS NULL GROUP BY 1),
tot AS (SELECT m, sum(amount) amt FROM spend GROUP BY 1)
SELECT x.month, x.segment, x.new_customers, x.new_mrr, k.ltv,
  CASE WHEN x.segment IS NULL THEN coalesce(tot.amt, 0.0)
       ELSE coalesce(d.amt, 0.0) + CASE WHEN t.new_customers > 0 THEN coalesce(sh.amt, 0.0) * x.new_customers / t.new_customers ELSE 0.0 END END spend
FROM mv x JOIN mv t ON t.month = x.month AND t.segment IS NULL
  LEFT JOIN d ON d.m = x.month AND d.segment = x.segment LEFT JOIN sh ON sh.m = x.month LEFT JOIN tot ON tot.m = x.month
  LEFT JOIN kpi k ON k.month = x.month AND k.segment IS NOT DISTINCT FROM x.segment""")
    con.execute("""CREATE TABLE win AS
SELECT 'month' pt, month period, month, month lm FROM months
UNION ALL SELECT 'quarter', date_trunc('quarter', month)::DATE, month, max(month) OVER (PARTITION BY date_trunc('quarter', month)) FROM months
UNION ALL SELECT 'trailing_12m', a.month, b.month, a.month FROM months a JOIN months b ON b.month BETWEEN (a.month - INTERVAL 11 MONTH)::DATE AND a.month""")
    con.execute("""CREATE TABLE ref_unit_economics AS
WITH agg AS (SELECT w.pt, w.period, w.lm, u.segment, sum(u.spend) spend, sum(u.new_customers) nc, sum(u.new_mrr) nm
             FROM win w JOIN ue_m u ON u.month = w.month GROUP BY 1, 2, 3, 4),
x AS (SELECT agg.*, k.ltv, spend / nullif(nc, 0) cac, nm / nullif(nc, 0) arpa_new
      FROM agg LEFT JOIN kpi k ON k.month = agg.lm AND k.segment IS NOT DISTINCT FROM agg.segment)
SELECT pt period_type, period, segment, spend, nc::BIGINT new_customers, cac, arpa_new, cac / nullif(arpa_new * 1.0, 0) cac_payback_months,
  ltv, ltv / nullif(cac, 0) ltv_to_cac, ltv - cac net_ltv FROM x""")
    built["unit_economics"] = ("ref_unit_economics", ["period_type", "period", "segment"], set())
else:
    skipped["unit_economics"] = ["acquisition_spend"]

# ---------------------------------------------------------------- comparison
manifest = json.load(open(os.path.join(out, "_manifest.json")))
published = manifest.get("tables", {})


def norm(v):
    if isinstance(v, datetime.datetime) and v.tzinfo is None and v.time() == datetime.time(0):
        return v.date()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def same(a, b, tol):
    a, b = norm(a), norm(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) if tol else a == b
    return a == b


def show(row):
    return ", ".join(f"{k}={norm(v)}" for k, v in row.items())


failed = False
ORDER = ["cohort_retention", "survey_scores_monthly", "support_monthly", "customer_health",
         "health_bands_monthly", "at_risk_customers", "unit_economics"]
for name in ORDER:
    print(f"== {name}")
    if name in skipped:
        note = " (vitals published it anyway)" if name in published else ""
        print(f"   skipped: input {', '.join(skipped[name])} absent{note}")
        continue
    ref, keys, exact = built[name]
    n_ref = con.execute(f"SELECT count(*) FROM {ref}").fetchall()[0][0]
    if name not in published:
        print(f"   MISSING from the vitals build ({n_ref} reference rows)")
        failed = True
        continue
    fs = [os.path.join(out, f) for f in published[name]["files"]]
    if fs:
        con.execute(f"CREATE OR REPLACE TABLE vit AS SELECT * FROM read_parquet({fs!r}, union_by_name=true)")
    else:  # an empty table: no files
        con.execute(f"CREATE OR REPLACE TABLE vit AS SELECT * FROM {ref} LIMIT 0")
    vcols = [r[0] for r in con.execute("DESCRIBE vit").fetchall()]
    rcols = [r[0] for r in con.execute(f"DESCRIBE {ref}").fetchall()]
    if any(k not in vcols for k in keys):
        print(f"   key columns missing in vitals: {[k for k in keys if k not in vcols]} (has {vcols})")
        failed = True
        continue
    n_vit = con.execute("SELECT count(*) FROM vit").fetchall()[0][0]
    klist = ", ".join(keys)
    dups = con.execute(f"SELECT {klist}, count(*) FROM vit GROUP BY ALL HAVING count(*) > 1 LIMIT 5").fetchall()
    ndup = con.execute(f"SELECT count(*) FROM (SELECT {klist} FROM vit GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
    value_cols = [c for c in rcols if c not in keys]
    missing_cols = [c for c in value_cols if c not in vcols]
    cmp_cols = [c for c in value_cols if c in vcols]
    on = " AND ".join(f"r.{k} IS NOT DISTINCT FROM v.{k}" for k in keys)
    sel = ", ".join([f"coalesce(r.{k}, v.{k}) AS {k}" for k in keys] + [f"r.{c} AS r_{c}, v.{c} AS v_{c}" for c in cmp_cols])
    cur = con.execute(f"""SELECT r.__p IS NOT NULL AS in_ref, v.__p IS NOT NULL AS in_vit, {sel}
        FROM (SELECT *, true __p FROM {ref}) r FULL JOIN (SELECT *, true __p FROM vit) v ON {on} ORDER BY ALL""")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    only_ref = [r for r in rows if r["in_ref"] and not r["in_vit"]]
    only_vit = [r for r in rows if r["in_vit"] and not r["in_ref"]]
    both = [r for r in rows if r["in_ref"] and r["in_vit"]]
    diffs, per_col, near = [], {}, 0
    for r in both:
        for c in cmp_cols:
            a, b = r[f"r_{c}"], r[f"v_{c}"]
            if not same(a, b, c not in exact):
                diffs.append((r, c, a, b))
                per_col[c] = per_col.get(c, 0) + 1
                if c in exact and same(a, b, True):
                    near += 1
    print(f"   rows: reference {n_ref}, vitals {n_vit}, compared {len(both)}, missing in vitals {len(only_ref)}, extra in vitals {len(only_vit)}")
    if missing_cols:
        print(f"   columns missing in vitals: {missing_cols}")
    if ndup:
        print(f"   duplicate keys in vitals: {ndup}, e.g. {dups}")
    print(f"   differing cells: {len(diffs)}" + (f" by column {per_col}" if per_col else "")
          + (f" ({near} of them within 1e-9 on a column compared exactly)" if near else ""))
    for r, c, a, b in diffs[:10]:
        print(f"     {c} at ({', '.join(f'{k}={norm(r[k])}' for k in keys)}): reference {norm(a)!r} vitals {norm(b)!r}")
    for label, lst in (("missing in vitals", only_ref), ("extra in vitals", only_vit)):
        for r in lst[:10]:
            side = "r_" if r["in_ref"] else "v_"
            vals = {k: r[k] for k in keys} | {c: r[side + c] for c in cmp_cols}
            print(f"     {label}: {show(vals)}")
    if only_ref or only_vit or diffs or missing_cols or ndup:
        failed = True
print("RESULT:", "differences found" if failed else "all compared tables agree")
sys.exit(1 if failed else 0)
