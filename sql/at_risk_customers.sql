-- The red customers of the as-of month, the highest MRR first (ties by
-- customer_id): the list a customer-success team works through.
SELECT customer_id,
       CAST(row_number() OVER (ORDER BY mrr DESC, customer_id) AS BIGINT) AS rank,
       segment,
       mrr,
       health_score,
       band,
       month
FROM customer_health
WHERE band = 'red' AND month = ${range_end}
