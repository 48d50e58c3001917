-- Claims, completions and retries no longer NOTIFY offlineq_events (storage v2, issue 13).
-- PostgreSQL serialises every committing transaction that notified, through its WAL flush (the
-- notify queue's lock is held until the commit record is on disk), so the four workers' claim
-- and outcome commits, each of which notified, could never share a flush with each other or with
-- the enqueue flusher. The event rows are still written in the same statement; every instance's
-- event hub reads them every 100 ms anyway (events settle when older transactions end, which no
-- NOTIFY announces), so a stream sees a claim or an outcome within ~100 ms instead of at once.
-- Inserts (the enqueue group, which notifies offlineq_wakeup in the same commit) and deletes
-- keep their NOTIFY.
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
    SELECT e.type, array_agg(e.id ORDER BY e.seq), array_agg(e.operation_type ORDER BY e.seq),
           array_agg(e.status ORDER BY e.seq), array_agg(e.priority ORDER BY e.seq),
           array_agg(e.retry_count ORDER BY e.seq), array_agg(e.error_message ORDER BY e.seq)
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
                                           OR o.status IN ('failed', 'conflict')))) e
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
