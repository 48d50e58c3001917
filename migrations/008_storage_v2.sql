-- Storage v2 (issue 13): fewer writes per delivered operation, every attempt on record, claims
-- that do not slow down with waiting work, a crash that uses up no attempts.

-- Time-ordered ids (UUIDv7, RFC 9562): 48 bits of Unix milliseconds, then random bits, so new
-- rows go to the right edge of the primary key instead of a random leaf.
CREATE FUNCTION offlineq_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
        substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;
ALTER TABLE offline_operations ALTER COLUMN id SET DEFAULT offlineq_uuidv7();

-- Every delivery attempt, oldest first, appended in the statement that records its outcome: one
-- JSON element in the row that is written anyway (no row, no index entry of its own), deleted
-- with the operation. lease_expiries: leases that ran out, which cost no attempt.
ALTER TABLE offline_operations ADD COLUMN attempts jsonb,
                               ADD COLUMN lease_expiries integer NOT NULL DEFAULT 0;

-- An operation queued behind a live one of its group (pending, in progress or in conflict) is
-- group_held: it is in neither claim index until the one before it leaves the live set. The
-- claim's own check of group order stays, so a missed release costs time, never order: the
-- janitor lets go of any group whose first live operation is still held (the race of an
-- enqueue into a group with the completion of its head), every few seconds.
ALTER TABLE offline_operations ADD COLUMN group_held boolean NOT NULL DEFAULT false;
UPDATE offline_operations o SET group_held = true
WHERE o.group_key IS NOT NULL AND o.status = 'pending'
  AND EXISTS (SELECT 1 FROM offline_operations g
              WHERE g.group_key = o.group_key AND g.seq < o.seq
                AND g.status IN ('pending', 'in_progress', 'conflict'));

-- Claims read two short index ranges: operations that became due when they were enqueued, in
-- execution order, and operations scheduled for later (a delay, a retry's backoff), in due
-- order up to now. Neither walks operations that are not due yet, nor those held by a group.
CREATE INDEX offline_operations_ready ON offline_operations ((-priority), seq)
    WHERE status = 'pending' AND next_attempt_at <= created_at AND NOT group_held;
CREATE INDEX offline_operations_scheduled ON offline_operations (next_attempt_at)
    WHERE status = 'pending' AND next_attempt_at > created_at AND NOT group_held;

-- Lets go of the first live operation of each of the groups.
CREATE FUNCTION offlineq_release_groups(p_keys text[]) RETURNS void LANGUAGE sql
    SET search_path FROM CURRENT AS $$
    UPDATE offline_operations o SET group_held = false
    FROM unnest(p_keys) AS k(key) CROSS JOIN LATERAL (
        SELECT h.id FROM offline_operations h
        WHERE h.group_key = k.key AND h.status IN ('pending', 'in_progress', 'conflict')
        ORDER BY h.seq LIMIT 1) h
    WHERE o.id = h.id AND o.group_held;
$$;

-- The sweep finds expired leases in the (status, -priority, seq) index: the operations in
-- progress are few (workers x claim size), so the index of their own, one entry per claim, goes.
DROP INDEX offline_operations_lease;

-- Event rows per statement and kind, not per operation: the operations' fields as arrays in
-- execution order (building a JSON object per operation cost more than the row it saved); the
-- stream expands them when someone reads (an event's id is xid-id-k, k counting from 1 within
-- the row). lz4 and an 8 KB target keep a claim's row inline and cheap to compress.
ALTER TABLE offlineq_events ALTER COLUMN data DROP NOT NULL,
    ADD COLUMN op_ids uuid[], ADD COLUMN op_types text[], ADD COLUMN statuses text[],
    ADD COLUMN priorities integer[], ADD COLUMN retry_counts integer[], ADD COLUMN errors text[];
ALTER TABLE offlineq_events SET (toast_tuple_target = 8160);
ALTER TABLE offlineq_events ALTER COLUMN op_ids SET COMPRESSION lz4,
    ALTER COLUMN op_types SET COMPRESSION lz4, ALTER COLUMN statuses SET COMPRESSION lz4,
    ALTER COLUMN errors SET COMPRESSION lz4;

-- The stream as subscribers see it: one row per event, in (xid, id, k) order. A row of the
-- table holds one event (data: offlineq_emit, rows older than this migration) or a statement's
-- operations as arrays; the object of each is built here, only when someone reads.
CREATE VIEW offlineq_event_stream AS
SELECT e.xid, e.id, x.k, e.xid::text || '-' || e.id || '-' || x.k AS event_id, e.type,
       x.op_id, x.op_type AS operation_type,
       x.d || jsonb_build_object('type', e.type, 'at', offlineq_ts(e.created_at)) AS data
FROM offlineq_events e CROSS JOIN LATERAL (
    SELECT 1::bigint AS k, e.op_id, e.operation_type AS op_type, e.data AS d
    WHERE e.op_ids IS NULL
    UNION ALL
    SELECT a.k, a.id, a.t, jsonb_build_object('id', a.id, 'operation_type', a.t, 'status', a.s,
                                              'priority', a.p, 'retry_count', a.r,
                                              'error_message', a.m)
    FROM unnest(e.op_ids, e.op_types, e.statuses, e.priorities, e.retry_counts, e.errors)
         WITH ORDINALITY AS a(id, t, s, p, r, m, k)) x;

-- One trigger per kind of statement writes the counter deltas, the events and (on update)
-- drops files no live operation needs. They run with the schema's search_path whoever writes.
CREATE FUNCTION offlineq_drop_files_of(p_ids uuid[]) RETURNS void LANGUAGE sql
    SET search_path FROM CURRENT AS $$
    DELETE FROM offlineq_files f
    WHERE f.id = ANY (p_ids)
      AND NOT EXISTS (SELECT 1 FROM offline_operations o
                      WHERE o.file_id = f.id AND o.status <> 'completed');
$$;

-- The delete trigger keeps its own function (retention and the API delete fire it) with the
-- same rule.
CREATE OR REPLACE FUNCTION offlineq_drop_unused_files() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
DECLARE
    files uuid[];
BEGIN
    SELECT array_agg(DISTINCT file_id) INTO files FROM old_rows WHERE file_id IS NOT NULL;
    IF files IS NOT NULL THEN
        PERFORM offlineq_drop_files_of(files);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION offlineq_after_insert() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, count(*) FROM new_rows GROUP BY 1, 2;
    INSERT INTO offlineq_events (type, op_ids, op_types, statuses, priorities, retry_counts, errors)
    SELECT 'operation.enqueued', array_agg(n.id ORDER BY n.seq),
           array_agg(n.operation_type ORDER BY n.seq), array_agg(n.status ORDER BY n.seq),
           array_agg(n.priority ORDER BY n.seq), array_agg(n.retry_count ORDER BY n.seq),
           array_agg(n.error_message ORDER BY n.seq)
    FROM new_rows n HAVING count(*) > 0;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
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

CREATE FUNCTION offlineq_after_update() RETURNS trigger LANGUAGE plpgsql
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
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
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

CREATE FUNCTION offlineq_after_delete() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
DECLARE
    groups text[];
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, -count(*) FROM old_rows GROUP BY 1, 2;
    INSERT INTO offlineq_events (type, op_ids, op_types, statuses, priorities, retry_counts, errors)
    SELECT 'operation.deleted', array_agg(o.id ORDER BY o.seq),
           array_agg(o.operation_type ORDER BY o.seq), array_agg(o.status ORDER BY o.seq),
           array_agg(o.priority ORDER BY o.seq), array_agg(o.retry_count ORDER BY o.seq),
           array_agg(o.error_message ORDER BY o.seq)
    FROM old_rows o HAVING count(*) > 0;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    SELECT array_agg(DISTINCT group_key) INTO groups FROM old_rows
    WHERE group_key IS NOT NULL AND status IN ('pending', 'in_progress', 'conflict');
    IF groups IS NOT NULL THEN
        PERFORM offlineq_release_groups(groups);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER offline_operations_count_insert ON offline_operations;
DROP TRIGGER offline_operations_events_insert ON offline_operations;
DROP TRIGGER offline_operations_count_update ON offline_operations;
DROP TRIGGER offline_operations_events_update ON offline_operations;
DROP TRIGGER offline_operations_files_update ON offline_operations;
DROP TRIGGER offline_operations_count_delete ON offline_operations;
DROP TRIGGER offline_operations_events_delete ON offline_operations;
DROP FUNCTION offlineq_count_insert(), offlineq_events_insert(), offlineq_count_update(),
              offlineq_events_update(), offlineq_count_delete(), offlineq_events_delete();

CREATE TRIGGER offline_operations_after_insert AFTER INSERT ON offline_operations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_after_insert();
CREATE TRIGGER offline_operations_after_update AFTER UPDATE ON offline_operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offlineq_after_update();
CREATE TRIGGER offline_operations_after_delete AFTER DELETE ON offline_operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_after_delete();
