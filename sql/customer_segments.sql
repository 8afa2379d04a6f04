-- One row per customer seen in subscriptions or customers, with its segment.
-- A customer with no row in customers, or a null segment, is `unknown`
-- (inputs.md). Duplicate customer rows: the greatest segment wins, so that
-- a customer is never counted twice.
WITH ids AS (
    SELECT customer_id FROM subscriptions
    UNION
    SELECT customer_id FROM customers
),
segment_of AS (
    SELECT customer_id, max(segment) AS segment
    FROM customers
    GROUP BY customer_id
)
SELECT ids.customer_id, coalesce(segment_of.segment, 'unknown') AS segment
FROM ids
LEFT JOIN segment_of ON segment_of.customer_id = ids.customer_id
