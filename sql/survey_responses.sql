-- One row per valid survey response, with the day it was given (in the
-- catalog's time zone) and the customer's segment (`unknown` for customers
-- with none, also those missing from customers). Every response counts,
-- also several by one customer (metrics.md, "Surveys").
SELECT r.response_id,
       r.customer_id,
       CAST(r.responded_at AS DATE) AS responded_day,
       lower(r.survey) AS survey,
       r.score,
       coalesce(s.segment, 'unknown') AS segment
FROM surveys r
LEFT JOIN customer_segments s ON s.customer_id = r.customer_id
