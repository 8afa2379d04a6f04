-- mrr(c, M) / mrr(c, M-3) for each customer paying in both months: the raw
-- value of the health score's `mrr_trend` (metrics.md, "Customer health").
-- A customer not paying in M-3 has no row: the component is left out.
SELECT cur.customer_id, cur.month, cur.mrr / base.mrr AS mrr_trend
FROM customer_mrr_snapshot cur
JOIN customer_mrr_snapshot base
  ON base.customer_id = cur.customer_id
 AND base.month = CAST(cur.month - INTERVAL '3 months' AS DATE)
