-- One row per customer and month in which it pays (mrr > 0), over the whole
-- history, with its segment: the rows of cohorts (a customer's cohort is its
-- first paying month, even before start_month) and the population of the
-- health score.
SELECT p.customer_id, p.month, s.segment, p.mrr
FROM customer_mrr_snapshot p
LEFT JOIN customer_segments s ON s.customer_id = p.customer_id
