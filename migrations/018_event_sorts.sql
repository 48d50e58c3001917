-- compatible-from: 16
-- The event rows of a statement in one sort (issue 13, batch enqueue): the insert and update
-- triggers built each event row's six arrays with six array_agg(... ORDER BY seq), and
-- PostgreSQL 15 sorts the input once for every ordered aggregate. They now aggregate one input
-- sorted by seq (by event type, then seq, for the update trigger's GROUP BY), which keeps the
-- arrays in seq order: the aggregates read their input in the order the subquery returns it.
-- The insert trigger per 1,000-row statement, minimum of 8 runs in psql: 2.75 -> 2.18 ms.
-- Nothing else changes (the same rows, the same order): compatible from 16, as 017.
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
    FROM (SELECT CASE n.status
                   WHEN 'in_progress' THEN 'operation.started'
                   WHEN 'completed' THEN 'operation.completed'
                   WHEN 'failed' THEN 'operation.failed'
                   WHEN 'conflict' THEN 'operation.conflict'
                   ELSE 'operation.retried' END AS type,
                 n.seq, n.id, n.operation_type, n.status, n.priority, n.retry_count,
                 n.error_message
          FROM new_rows n JOIN old_rows o ON o.id = n.id
          WHERE (n.status <> o.status AND n.status <> 'pending')
             OR (n.status = 'pending' AND (n.retry_count > o.retry_count
                                           OR n.lease_expiries > o.lease_expiries
                                           OR o.status IN ('failed', 'conflict')))
          ORDER BY 1, n.seq) e
    GROUP BY e.type;
    SELECT array_agg(DISTINCT file_id) INTO files FROM old_rows WHERE file_id IS NOT NULL;
    IF files IS NOT NULL THEN
        PERFORM offlineq_drop_files_of(files);
    END IF;
    -- the groups whose live operation left the live set
    IF EXISTS (SELECT 1 FROM old_rows WHERE group_key IS NOT NULL) THEN
        SELECT array_agg(DISTINCT o.group_key) INTO groups
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.group_key IS NOT NULL AND o.status IN ('pending', 'in_progress', 'conflict')
          AND n.status NOT IN ('pending', 'in_progress', 'conflict');
        IF groups IS NOT NULL THEN
            PERFORM offlineq_release_groups(groups);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION offlineq_after_insert() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, count(*) FROM new_rows GROUP BY 1, 2;
    INSERT INTO offlineq_events (type, op_ids, op_types, statuses, priorities, retry_counts, errors)
    SELECT 'operation.enqueued', array_agg(n.id), array_agg(n.operation_type),
           array_agg(n.status), array_agg(n.priority), array_agg(n.retry_count),
           array_agg(n.error_message)
    FROM (SELECT * FROM new_rows ORDER BY seq) n HAVING count(*) > 0;
    -- new operations of a group that has an earlier live one wait behind it, where the insert
    -- did not say so itself (ops_enqueue_many does); one statement (a row trigger cost 32 us a
    -- row)
    IF EXISTS (SELECT 1 FROM new_rows WHERE group_key IS NOT NULL) THEN
        UPDATE offline_operations o SET group_held = true
        FROM new_rows n
        WHERE o.id = n.id AND n.group_key IS NOT NULL AND NOT n.group_held
          AND EXISTS (SELECT 1 FROM offline_operations g
                      WHERE g.group_key = n.group_key AND g.seq < n.seq
                        AND g.status IN ('pending', 'in_progress', 'conflict'));
    END IF;
    RETURN NULL;
END $$;
