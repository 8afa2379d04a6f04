-- For each month M: the customers paying in M-12, their MRR then and now.
-- The base of nrr_12m and grr_12m (metrics.md, "Rates").
SELECT m.month,
       s.segment,
       base.customer_id,
       base.mrr AS mrr_base,
       coalesce(now.mrr, 0.0) AS mrr_now
FROM calendar_months m
JOIN customer_mrr_snapshot base
  ON base.month = CAST(m.month - INTERVAL '12 months' AS DATE)
LEFT JOIN customer_mrr_snapshot now
  ON now.customer_id = base.customer_id AND now.month = m.month
LEFT JOIN customer_segments s ON s.customer_id = base.customer_id
WHERE m.month >= ${range_start}
