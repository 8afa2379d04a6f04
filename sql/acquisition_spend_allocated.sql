-- Acquisition spend per month and segment, shared spend (null segment)
-- spread over the segments by their share of the month's new customers
-- (metrics.md, "Unit economics"). Shared spend of a month without new
-- customers is kept under `(unallocated)`, and spend of a segment no
-- customer has stays under its own name: neither is a member of the
-- segment dimension, so both count in the total row only.
WITH spend AS (
    SELECT CAST(date_trunc('month', month) AS DATE) AS month, segment, amount
    FROM acquisition_spend
),
shared AS (
    SELECT month, sum(amount) AS amount FROM spend WHERE segment IS NULL GROUP BY month
),
new_by_segment AS (
    SELECT month, segment, count(*) AS customers
    FROM customer_mrr_monthly
    WHERE movement = 'new'
    GROUP BY month, segment
),
new_total AS (
    SELECT month, sum(customers) AS customers FROM new_by_segment GROUP BY month
)
SELECT month, segment, amount FROM spend WHERE segment IS NOT NULL
UNION ALL
SELECT s.month, n.segment, s.amount * n.customers / t.customers AS amount
FROM shared s
JOIN new_by_segment n ON n.month = s.month
JOIN new_total t ON t.month = s.month
UNION ALL
SELECT s.month, '(unallocated)' AS segment, s.amount
FROM shared s
LEFT JOIN new_total t ON t.month = s.month
WHERE t.customers IS NULL
