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
-- Each paying month counts as this month's MRR of its own month and as
-- the previous month's MRR of the month after (churn, or no movement).
-- A (customer, month) is in `paid` at most once, so the sums below are
-- that month's and the previous month's MRR, or 0: one aggregate instead
-- of a UNION and two self-joins of the snapshot.
movements AS (
    SELECT customer_id, month, mrr, 0.0 AS prev_mrr FROM paid
    UNION ALL
    SELECT customer_id, CAST(month + INTERVAL '1 month' AS DATE) AS month, 0.0 AS mrr, mrr AS prev_mrr
    FROM paid
    WHERE month < ${range_end}
),
flows AS (
    SELECT m.customer_id,
           m.month,
           sum(m.mrr) AS mrr,
           sum(m.prev_mrr) AS prev_mrr
    FROM movements m
    GROUP BY m.customer_id, m.month
)
SELECT f.customer_id,
       f.month,
       s.segment,
       f.mrr,
       f.prev_mrr,
       CASE
           WHEN f.prev_mrr = 0 AND f.mrr > 0 AND f.month = p.first_month THEN 'new'
           WHEN f.prev_mrr = 0 AND f.mrr > 0 THEN 'reactivation'
           WHEN f.prev_mrr > 0 AND f.mrr > f.prev_mrr THEN 'expansion'
           WHEN f.prev_mrr > 0 AND f.mrr > 0 AND f.mrr < f.prev_mrr THEN 'contraction'
           WHEN f.prev_mrr > 0 AND f.mrr = 0 THEN 'churn'
       END AS movement,
       f.mrr - f.prev_mrr AS movement_mrr
FROM flows f
JOIN first_paid p ON p.customer_id = f.customer_id
LEFT JOIN customer_segments s ON s.customer_id = f.customer_id
WHERE f.month >= ${range_start}
