-- One row per valid ticket: the days it was created and resolved (in the
-- catalog's time zone), its resolution time in hours from the full
-- timestamps, and the customer's segment (metrics.md, "Support").
SELECT t.ticket_id,
       t.customer_id,
       CAST(t.created_at AS DATE) AS created_day,
       CAST(t.resolved_at AS DATE) AS resolved_day,
       lower(t.priority) AS priority,
       (date_part('epoch', t.resolved_at) - date_part('epoch', t.created_at)) / 3600.0
           AS resolution_hours,
       coalesce(s.segment, 'unknown') AS segment
FROM tickets t
LEFT JOIN customer_segments s ON s.customer_id = t.customer_id
