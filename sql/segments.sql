-- The members of the `segment` dimension: the segments of the valid
-- customers rows, plus `unknown` when some customer has none (metrics.md,
-- "Segments"). Every monthly table has a row per month and member.
SELECT DISTINCT coalesce(segment, 'unknown') AS segment FROM customers
UNION
SELECT segment FROM customer_segments
