-- compatible-from: 16
-- The update trigger pairs each operation's old and new row by grouping one input by id,
-- instead of joining old_rows to new_rows (issue 13, burn-down). PL/pgSQL keeps a statement's
-- plan for the whole session, and PostgreSQL planned the join with the transition tables' row
-- counts of that first call: a session whose first update touched one row (a claim of one
-- operation, a reaper sweep) kept a nested loop, and every later claim or completion of 128 made
-- 128 x 128 comparisons: 6.8 ms a statement, ~49 of the ~150 us of statement time per delivered
-- operation in the burn-down. A GROUP BY has no plan that grows with the square of the rows.
-- The same rows, the same order: compatible from 16, as 017 and 018.
CREATE OR REPLACE FUNCTION offlineq_after_update() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
DECLARE
    files uuid[];
    groups text[];
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT t, s, sum(d) FROM (
        SELECT operation_type AS t, status AS s, -1 AS d FROM old_rows
        UNION ALL
        SELECT operation_type, status, 1 FROM new_rows
    ) x GROUP BY 1, 2 HAVING sum(d) <> 0;
    INSERT INTO offlineq_events (type, op_ids, op_types, statuses, priorities, retry_counts, errors)
    SELECT e.type, array_agg(e.id), array_agg(e.operation_type), array_agg(e.status),
           array_agg(e.priority), array_agg(e.retry_count), array_agg(e.error_message)
    FROM (SELECT CASE p.status
                   WHEN 'in_progress' THEN 'operation.started'
                   WHEN 'completed' THEN 'operation.completed'
                   WHEN 'failed' THEN 'operation.failed'
                   WHEN 'conflict' THEN 'operation.conflict'
                   ELSE 'operation.retried' END AS type,
                 p.seq, p.id, p.operation_type, p.status, p.priority, p.retry_count,
                 p.error_message
          FROM (SELECT s.id, min(s.seq) AS seq, min(s.operation_type) AS operation_type,
                       min(s.status) FILTER (WHERE s.new) AS status,
                       min(s.status) FILTER (WHERE NOT s.new) AS old_status,
                       min(s.retry_count) FILTER (WHERE s.new) AS retry_count,
                       min(s.retry_count) FILTER (WHERE NOT s.new) AS old_retry_count,
                       min(s.lease_expiries) FILTER (WHERE s.new) AS lease_expiries,
                       min(s.lease_expiries) FILTER (WHERE NOT s.new) AS old_lease_expiries,
                       min(s.priority) FILTER (WHERE s.new) AS priority,
                       min(s.error_message) FILTER (WHERE s.new) AS error_message
                FROM (SELECT true AS new, id, seq, operation_type, status, retry_count,
                             lease_expiries, priority, error_message FROM new_rows
                      UNION ALL
                      SELECT false, id, seq, operation_type, status, retry_count,
                             lease_expiries, NULL, NULL FROM old_rows) s
                GROUP BY s.id) p
          WHERE (p.status <> p.old_status AND p.status <> 'pending')
             OR (p.status = 'pending' AND (p.retry_count > p.old_retry_count
                                           OR p.lease_expiries > p.old_lease_expiries
                                           OR p.old_status IN ('failed', 'conflict')))
          ORDER BY 1, p.seq) e
    GROUP BY e.type;
    SELECT array_agg(DISTINCT file_id) INTO files FROM old_rows WHERE file_id IS NOT NULL;
    IF files IS NOT NULL THEN
        PERFORM offlineq_drop_files_of(files);
    END IF;
    -- the groups whose live operation left the live set (an update never changes group_key)
    IF EXISTS (SELECT 1 FROM old_rows WHERE group_key IS NOT NULL) THEN
        SELECT array_agg(DISTINCT p.group_key) INTO groups
        FROM (SELECT min(s.group_key) AS group_key
              FROM (SELECT false AS new, id, group_key,
                           status IN ('pending', 'in_progress', 'conflict') AS live
                    FROM old_rows WHERE group_key IS NOT NULL
                    UNION ALL
                    SELECT true, id, group_key, status IN ('pending', 'in_progress', 'conflict')
                    FROM new_rows WHERE group_key IS NOT NULL) s
              GROUP BY s.id
              HAVING bool_or(s.live AND NOT s.new) AND bool_or(s.new)
                 AND NOT bool_or(s.live AND s.new)) p;
        IF groups IS NOT NULL THEN
            PERFORM offlineq_release_groups(groups);
        END IF;
    END IF;
    RETURN NULL;
END $$;
