"""Cross-check: an independent DuckDB implementation of the MRR tables,
written from ../shared/spec/metrics.md alone, compared cell by cell with a
vitals build of the same files. Needs `pip install duckdb`. Usage:
    python3 scripts/crosscheck_duckdb.py DATA_DIR TARGET_DIR AS_OF
Assumes the shipped catalog (reporting currency USD, gross margin 1)."""
import sys, json, math, duckdb
data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
def t(name): return f"read_parquet('{data}/{name}/**/*.parquet', union_by_name=true)"
con.execute(f"CREATE TABLE fx AS SELECT upper(currency) cur, date_trunc('month', month)::DATE m, max(rate) rate FROM {t('fx_rates')} GROUP BY 1,2")
con.execute(f"""CREATE TABLE subs AS
WITH n AS (SELECT *, coalesce(mrr, amount*coalesce(quantity,1)/CASE lower(billing_period) WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 WHEN 'year' THEN 12 WHEN 'week' THEN 12.0/52 END) AS mrr_n FROM {t('subscriptions')})
SELECT n.customer_id, n.start_date::DATE s, n.end_date::DATE e,
  n.mrr_n * CASE WHEN n.currency IS NULL OR upper(n.currency)='USD' THEN 1 ELSE fx.rate END AS mrr
FROM n LEFT JOIN fx ON fx.cur = upper(n.currency) AND fx.m = date_trunc('month', n.start_date)
WHERE subscription_id IS NOT NULL AND customer_id IS NOT NULL AND start_date IS NOT NULL
  AND NOT coalesce(end_date < start_date, false)
  AND NOT (n.mrr IS NULL AND (amount IS NULL OR billing_period IS NULL))
  AND NOT (billing_period IS NOT NULL AND lower(billing_period) NOT IN ('month','quarter','year','week'))
  AND NOT coalesce(mrr_n < 0, false)
  AND NOT (currency IS NOT NULL AND upper(currency) <> 'USD' AND fx.rate IS NULL)""")
con.execute(f"CREATE TABLE cust AS SELECT customer_id, max(segment) segment FROM {t('customers')} WHERE customer_id IS NOT NULL GROUP BY 1")
con.execute(f"""CREATE TABLE months AS SELECT m::DATE AS month, (m + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE AS month_end
  FROM generate_series((SELECT date_trunc('month', min(s)) FROM subs), date_trunc('month', DATE '{as_of}'), INTERVAL 1 MONTH) g(m)""")
con.execute("""CREATE TABLE snap AS SELECT s.customer_id, m.month, sum(s.mrr) mrr FROM subs s JOIN months m ON s.s <= m.month_end AND (s.e IS NULL OR s.e > m.month_end) GROUP BY 1,2 HAVING sum(s.mrr) > 0""")
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
con.execute("""CREATE TABLE mv AS
WITH rows AS (SELECT m.month, s.segment FROM months m, segs s UNION ALL SELECT month, NULL FROM months),
agg AS (SELECT month, segment, sum(prev) mrr_start, sum(cur) mrr_end,
  sum(CASE WHEN mv='new' THEN cur-prev ELSE 0 END) new_mrr, sum(CASE WHEN mv='expansion' THEN cur-prev ELSE 0 END) expansion_mrr,
  sum(CASE WHEN mv='reactivation' THEN cur-prev ELSE 0 END) reactivation_mrr, sum(CASE WHEN mv='contraction' THEN prev-cur ELSE 0 END) contraction_mrr,
  sum(CASE WHEN mv='churn' THEN prev ELSE 0 END) churned_mrr, count(*) FILTER (prev>0) customers_start, count(*) FILTER (cur>0) customers_end,
  count(*) FILTER (mv='new') new_customers, count(*) FILTER (mv='reactivation') reactivated_customers, count(*) FILTER (mv='churn') churned_customers,
  count(*) FILTER (mv='expansion') expanded_customers, count(*) FILTER (mv='contraction') contracted_customers
  FROM cmm GROUP BY GROUPING SETS ((month, segment), (month)))
SELECT r.month, r.segment, coalesce(mrr_start,0) mrr_start, coalesce(new_mrr,0) new_mrr, coalesce(expansion_mrr,0) expansion_mrr, coalesce(reactivation_mrr,0) reactivation_mrr,
 coalesce(contraction_mrr,0) contraction_mrr, coalesce(churned_mrr,0) churned_mrr, coalesce(new_mrr,0)+coalesce(expansion_mrr,0)+coalesce(reactivation_mrr,0)-coalesce(contraction_mrr,0)-coalesce(churned_mrr,0) net_new_mrr, coalesce(mrr_end,0) mrr_end, coalesce(customers_start,0) customers_start, coalesce(new_customers,0) new_customers,
 coalesce(reactivated_customers,0) reactivated_customers, coalesce(churned_customers,0) churned_customers, coalesce(expanded_customers,0) expanded_customers,
 coalesce(contracted_customers,0) contracted_customers, coalesce(customers_end,0) customers_end
FROM rows r LEFT JOIN agg a ON a.month=r.month AND a.segment IS NOT DISTINCT FROM r.segment""")
con.execute("""CREATE TABLE r12 AS
SELECT m.month, s.segment, sum(b.mrr) base, sum(coalesce(n.mrr,0)) now, sum(least(coalesce(n.mrr,0), b.mrr)) capped
FROM months m JOIN snap b ON b.month = (m.month - INTERVAL 12 MONTH)::DATE LEFT JOIN snap n ON n.customer_id=b.customer_id AND n.month=m.month JOIN seg s ON s.customer_id=b.customer_id
GROUP BY GROUPING SETS ((m.month, s.segment), (m.month))""")
con.execute("""CREATE TABLE kpi AS
WITH k AS (SELECT mv.*, churned_customers::DOUBLE / nullif(customers_start,0) churn, mrr_end / nullif(customers_end,0) arpa,
  (churned_mrr+contraction_mrr)/nullif(mrr_start,0) gross, (churned_mrr+contraction_mrr-expansion_mrr)/nullif(mrr_start,0) net,
  r.now/nullif(r.base,0) nrr_12m, r.capped/nullif(r.base,0) grr_12m
  FROM mv LEFT JOIN r12 r ON r.month=mv.month AND r.segment IS NOT DISTINCT FROM mv.segment),
w AS (SELECT *, avg(churn) OVER (PARTITION BY segment ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) avg_churn FROM k)
SELECT month, segment, churn customer_churn_rate, 1-pow(1-churn,12) annualized_customer_churn_rate, gross gross_mrr_churn_rate, net net_mrr_churn_rate,
 expansion_mrr > churned_mrr + contraction_mrr net_negative_churn, 1-net nrr, 1-gross grr, nrr_12m, grr_12m, arpa, arpa*1.0/nullif(avg_churn,0) ltv FROM w""")
m = json.load(open(f"{out}/_manifest.json"))
def ours(name):
    files = [f"{out}/{f}" for f in m["tables"][name]["files"]]
    return f"read_parquet({files})"
bad = 0
for ref, name, keys in [("mv", "mrr_movements_monthly", ["month", "segment"]), ("kpi", "saas_kpis_monthly", ["month", "segment"])]:
    cols = [c["name"] for c in m["tables"][name]["schema"] if c["name"] not in keys]
    n_ref = con.execute(f"SELECT count(*) FROM {ref}").fetchone()[0]
    n_ours = con.execute(f"SELECT count(*) FROM {ours(name)}").fetchone()[0]
    print(name, "rows ours", n_ours, "ref", n_ref)
    for c in cols:
        rows = con.execute(f"""SELECT r.month, r.segment, r.{c}, o.{c} FROM {ref} r FULL JOIN {ours(name)} o ON o.month=r.month AND o.segment IS NOT DISTINCT FROM r.segment""").fetchall()
        for mo, sg, a, b in rows:
            same = (a is None and b is None) or (a is not None and b is not None and (a == b or (isinstance(a, float) and abs(a-b) <= 1e-6*max(1, abs(a)))))
            if not same:
                bad += 1
                if bad < 20: print("DIFF", name, c, mo, sg, "ref", a, "ours", b)
cm = con.execute(f"""SELECT count(*) FROM cmm r FULL JOIN {ours('customer_mrr_monthly')} o ON o.customer_id=r.customer_id AND o.month=r.month
  WHERE r.customer_id IS NULL OR o.customer_id IS NULL OR abs(r.cur-o.mrr)>1e-6 OR abs(r.prev-o.prev_mrr)>1e-6 OR r.mv IS DISTINCT FROM o.movement OR r.segment <> o.segment""").fetchone()[0]
print("customer_mrr_monthly differing rows:", cm, "of", con.execute("SELECT count(*) FROM cmm").fetchone()[0])
print("cell differences:", bad)
sys.exit(1 if bad or cm else 0)
