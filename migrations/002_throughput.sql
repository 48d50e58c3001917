-- Throughput (issue 6): cheaper event rows, and housekeeping that reads indexes, not the queue.

-- The sweep looks for expired pending operations and ones waiting on dependencies: with a
-- deep queue, scanning every pending row for those every second cost more than the work.
CREATE INDEX offline_operations_expiry ON offline_operations (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX offline_operations_waiting ON offline_operations (id)
    WHERE status = 'pending' AND depends_on IS NOT NULL;

-- Event rows with their data built inline (no per-row call of a SQL function on a whole row).
CREATE OR REPLACE FUNCTION offlineq_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_events (type, op_id, operation_type, data)
    SELECT 'operation.enqueued', n.id, n.operation_type,
           jsonb_build_object('id', n.id, 'operation_type', n.operation_type, 'status', n.status,
                              'priority', n.priority, 'retry_count', n.retry_count,
                              'error_message', n.error_message)
    FROM new_rows n ORDER BY n.seq;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION offlineq_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_events (type, op_id, operation_type, data)
    SELECT CASE n.status
             WHEN 'in_progress' THEN 'operation.started'
             WHEN 'completed' THEN 'operation.completed'
             WHEN 'failed' THEN 'operation.failed'
             WHEN 'conflict' THEN 'operation.conflict'
             ELSE 'operation.retried' END,
           n.id, n.operation_type,
           jsonb_build_object('id', n.id, 'operation_type', n.operation_type, 'status', n.status,
                              'priority', n.priority, 'retry_count', n.retry_count,
                              'error_message', n.error_message)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.status <> o.status AND n.status <> 'pending')
       OR (n.status = 'pending' AND (n.retry_count > o.retry_count OR o.status IN ('failed', 'conflict')))
    ORDER BY n.seq;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    RETURN NULL;
END $$;

-- The event log is a 15-minute window for live views, not a record: it is written without
-- WAL (a crash of the database empties it; subscribers then start from "now"). It is
-- trimmed by id, so the index on created_at goes.
ALTER TABLE offlineq_events SET UNLOGGED;
DROP INDEX offlineq_events_created;
