-- One row per customer and month in which it paid this month or the month
-- before, with its MRR movement (metrics.md, "MRR movements").
-- Movements are computed over the whole history, so that `new` and
-- `reactivation` are told apart even when start_month cuts the report.
WITH paid AS (
    SELECT customer_id, month, mrr FROM customer_mrr_snapshot
),
first_paid AS (
    SELECT customer_id, min(month) AS first_month FROM paid GROUP BY customer_id
),
months AS (
    SELECT customer_id, month FROM paid
    UNION
    -- the month after a paying month: churn, or no movement
    SELECT customer_id, CAST(month + INTERVAL '1 month' AS DATE) AS month
    FROM paid
    WHERE month < ${range_end}
),
flows AS (
    SELECT k.customer_id,
           k.month,
           coalesce(cur.mrr, 0.0) AS mrr,
           coalesce(prev.mrr, 0.0) AS prev_mrr,
           f.first_month
    FROM months k
    JOIN first_paid f ON f.customer_id = k.customer_id
    LEFT JOIN paid cur ON cur.customer_id = k.customer_id AND cur.month = k.month
    LEFT JOIN paid prev
      ON prev.customer_id = k.customer_id
     AND prev.month = CAST(k.month - INTERVAL '1 month' AS DATE)
)
SELECT f.customer_id,
       f.month,
       s.segment,
       f.mrr,
       f.prev_mrr,
       CASE
           WHEN f.prev_mrr = 0 AND f.mrr > 0 AND f.month = f.first_month THEN 'new'
           WHEN f.prev_mrr = 0 AND f.mrr > 0 THEN 'reactivation'
           WHEN f.prev_mrr > 0 AND f.mrr > f.prev_mrr THEN 'expansion'
           WHEN f.prev_mrr > 0 AND f.mrr > 0 AND f.mrr < f.prev_mrr THEN 'contraction'
           WHEN f.prev_mrr > 0 AND f.mrr = 0 THEN 'churn'
       END AS movement,
       f.mrr - f.prev_mrr AS movement_mrr
FROM flows f
LEFT JOIN customer_segments s ON s.customer_id = f.customer_id
WHERE f.month >= ${range_start}
