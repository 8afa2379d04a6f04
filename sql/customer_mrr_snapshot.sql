-- mrr(c, M): the summed MRR of customer c's rows active on the last day of
-- month M (start_date <= day < end_date), for every month in which c pays
-- (mrr > 0). Trials (mrr = 0) make nobody a paying customer.
-- Rounded to 9 decimals so that sums of normalised prices (100/3 + 200/3)
-- compare equal to the single price they add up to: floating-point noise
-- must not create expansion or contraction movements.
SELECT s.customer_id, m.month, round(sum(s.mrr), 9) AS mrr
FROM subscriptions s
JOIN calendar_months m
  ON s.start_date <= m.month_end
 AND (s.end_date IS NULL OR s.end_date > m.month_end)
GROUP BY s.customer_id, m.month
HAVING round(sum(s.mrr), 9) > 0
