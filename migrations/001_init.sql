-- offlineq initial schema: the operation queue, its counters, settings and the outbox function.

CREATE TABLE offlineq_operation_types (
    name text PRIMARY KEY
);
INSERT INTO offlineq_operation_types (name)
VALUES ('api_call'), ('file_upload'), ('metric_log'), ('model_push'), ('experiment_sync');

-- Shared settings: default max_attempts, auto_sync, sync_interval_s, conflict_strategy,
-- last_sync. Changes are announced on the offlineq_settings channel.
CREATE TABLE offlineq_settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Files for file_upload / model_push, kept in the database so any instance can deliver them.
CREATE TABLE offlineq_files (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content_type text NOT NULL,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE offline_operations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    operation_type   text NOT NULL,
    payload          jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    priority         integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'conflict')),
    retry_count      integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
    error_message    text,
    dedup_key        text,
    group_key        text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    result           jsonb,
    depends_on       uuid[],
    expires_at       timestamptz,
    max_retry_duration_s integer CHECK (max_retry_duration_s > 0),
    first_attempt_at timestamptz,
    file_id          uuid REFERENCES offlineq_files (id) ON DELETE SET NULL,
    conflict_strategy text CHECK (conflict_strategy IN
                     ('local_wins', 'remote_wins', 'last_write_wins', 'merge', 'manual')),
    resolution       jsonb -- an operator's choice for a conflict, applied by the next attempt
);

-- At most one live operation per dedup_key: the database enforces it under concurrency.
CREATE UNIQUE INDEX offline_operations_dedup ON offline_operations (dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'in_progress', 'conflict');
-- Execution order inside one status (highest priority first, then enqueue order), as one
-- ascending key so that keyset pages are index ranges: (-priority, seq) > (cursor).
CREATE INDEX offline_operations_order ON offline_operations (status, (-priority), seq);
-- Group ordering: is there an earlier live operation of this group?
CREATE INDEX offline_operations_group ON offline_operations (group_key, seq)
    WHERE group_key IS NOT NULL AND status IN ('pending', 'in_progress', 'conflict');
-- The reaper: leases that ran out.
CREATE INDEX offline_operations_lease ON offline_operations (lease_expires_at)
    WHERE status = 'in_progress';
-- Files still needed by an operation.
CREATE INDEX offline_operations_file ON offline_operations (file_id) WHERE file_id IS NOT NULL;
-- oldest_pending_age_s without a scan.
CREATE INDEX offline_operations_pending_age ON offline_operations (created_at)
    WHERE status = 'pending';

-- Counters per (type, status), kept transactionally as deltas written once per statement,
-- so concurrent writers never contend on one hot row; offlineq_compact_counts() folds them.
CREATE TABLE offlineq_op_counts (
    operation_type text NOT NULL,
    status         text NOT NULL,
    n              bigint NOT NULL
);

CREATE FUNCTION offlineq_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, count(*) FROM new_rows GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION offlineq_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT t, s, sum(d) FROM (
        SELECT operation_type AS t, status AS s, -1 AS d FROM old_rows
        UNION ALL
        SELECT operation_type, status, 1 FROM new_rows
    ) x GROUP BY 1, 2 HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION offlineq_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, -count(*) FROM old_rows GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE TRIGGER offline_operations_count_insert AFTER INSERT ON offline_operations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_count_insert();
CREATE TRIGGER offline_operations_count_update AFTER UPDATE ON offline_operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offlineq_count_update();
CREATE TRIGGER offline_operations_count_delete AFTER DELETE ON offline_operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_count_delete();

-- A stored file goes when no operation that still needs it is left (completed or deleted).
CREATE FUNCTION offlineq_drop_unused_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM offlineq_files f
    WHERE f.id IN (SELECT file_id FROM old_rows WHERE file_id IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM offline_operations o
                      WHERE o.file_id = f.id AND o.status <> 'completed');
    RETURN NULL;
END $$;

CREATE TRIGGER offline_operations_files_update AFTER UPDATE ON offline_operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_drop_unused_files();
CREATE TRIGGER offline_operations_files_delete AFTER DELETE ON offline_operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_drop_unused_files();

-- Folds the delta rows into one row per (type, status). Safe to run from any instance at
-- any time: rows inserted concurrently are not in the DELETE's snapshot and stay.
CREATE FUNCTION offlineq_compact_counts() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('offlineq_compact_counts')) THEN
        RETURN 0;
    END IF;
    WITH d AS (DELETE FROM offlineq_op_counts RETURNING operation_type, status, n)
    INSERT INTO offlineq_op_counts (operation_type, status, n)
    SELECT operation_type, status, sum(n) FROM d GROUP BY 1, 2 HAVING sum(n) <> 0;
    GET DIAGNOSTICS folded = ROW_COUNT;
    RETURN folded;
END $$;

CREATE FUNCTION offlineq_ts(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The Operation object of the API, in the order the API documents (compact JSON).
CREATE FUNCTION offlineq_op_json(o offline_operations) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(x) FROM (SELECT
        o.id,
        o.operation_type,
        o.payload,
        o.priority,
        o.status,
        o.retry_count,
        o.max_attempts,
        o.error_message,
        o.dedup_key,
        o.group_key,
        offlineq_ts(o.created_at) AS created_at,
        offlineq_ts(o.updated_at) AS updated_at,
        offlineq_ts(o.next_attempt_at) AS next_attempt_at,
        offlineq_ts(o.completed_at) AS completed_at,
        o.result,
        o.depends_on,
        offlineq_ts(o.expires_at) AS expires_at,
        o.max_retry_duration_s,
        o.conflict_strategy) x
$$;

CREATE FUNCTION offlineq_stats() RETURNS json LANGUAGE sql STABLE AS $$
    WITH all_counts AS (
        SELECT operation_type, status, sum(n)::bigint AS n
        FROM offlineq_op_counts GROUP BY 1, 2 HAVING sum(n) <> 0
    ), c AS (
        SELECT * FROM all_counts WHERE status NOT LIKE '#%'
    ), s AS (
        SELECT status, sum(n)::bigint AS n FROM c GROUP BY 1
    ), t AS (
        SELECT operation_type, json_object_agg(status, n ORDER BY status) AS by_status
        FROM c GROUP BY 1
    )
    SELECT json_build_object(
        'pending', coalesce((SELECT n FROM s WHERE status = 'pending'), 0),
        'in_progress', coalesce((SELECT n FROM s WHERE status = 'in_progress'), 0),
        'completed', coalesce((SELECT n FROM s WHERE status = 'completed'), 0),
        'failed', coalesce((SELECT n FROM s WHERE status = 'failed'), 0),
        'conflict', coalesce((SELECT n FROM s WHERE status = 'conflict'), 0),
        'total', coalesce((SELECT sum(n) FROM s), 0)::bigint,
        'conflicts_resolved', coalesce((SELECT sum(n) FROM all_counts WHERE status = '#resolved'), 0)::bigint,
        'by_type', coalesce((SELECT json_object_agg(operation_type, by_status ORDER BY operation_type) FROM t), '{}'::json),
        'oldest_pending_age_s', coalesce(round(extract(epoch FROM now() - (
            SELECT min(created_at) FROM offline_operations WHERE status = 'pending'))::numeric, 3), 0))
$$;

-- Enqueue with every rule of POST /api/offline/queue: known type, object payload, ranges,
-- known file and dependencies, and dedup (an existing live operation with the same dedup_key
-- is returned, created=false).
CREATE FUNCTION offlineq_enqueue_ex(
    p_operation_type text, p_payload jsonb, p_priority integer, p_dedup_key text,
    p_group_key text, p_max_attempts integer, p_delay_s double precision,
    p_depends_on uuid[], p_expires_in_s double precision, p_max_retry_duration_s integer,
    p_conflict_strategy text,
    OUT op offline_operations, OUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    attempts integer := p_max_attempts;
    v_file uuid;
    missing uuid;
BEGIN
    IF p_operation_type IS NULL OR NOT EXISTS (
            SELECT 1 FROM offlineq_operation_types WHERE name = p_operation_type) THEN
        RAISE EXCEPTION 'unknown operation_type "%"', p_operation_type
            USING ERRCODE = 'OQ400', COLUMN = 'operation_type';
    END IF;
    IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'payload must be a JSON object' USING ERRCODE = 'OQ400', COLUMN = 'payload';
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN -1000 AND 1000 THEN
        RAISE EXCEPTION 'priority must be an integer from -1000 to 1000'
            USING ERRCODE = 'OQ400', COLUMN = 'priority';
    END IF;
    IF attempts IS NULL THEN
        SELECT (value #>> '{}')::integer INTO attempts
        FROM offlineq_settings WHERE key = 'default_max_attempts';
        attempts := coalesce(attempts, 5);
    END IF;
    IF attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'max_attempts must be an integer from 1 to 1000'
            USING ERRCODE = 'OQ400', COLUMN = 'max_attempts';
    END IF;
    IF p_delay_s IS NOT NULL AND p_delay_s NOT BETWEEN 0 AND 31536000 THEN
        RAISE EXCEPTION 'delay_s must be a number from 0 to 31536000'
            USING ERRCODE = 'OQ400', COLUMN = 'delay_s';
    END IF;
    IF p_payload ? 'file_id' AND p_operation_type IN ('file_upload', 'model_push') THEN
        BEGIN
            v_file := (p_payload ->> 'file_id')::uuid;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'payload.file_id must be a UUID'
                USING ERRCODE = 'OQ400', COLUMN = 'payload.file_id';
        END;
        -- FOR KEY SHARE: the file cannot vanish before this operation is committed.
        PERFORM 1 FROM offlineq_files WHERE id = v_file FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown file_id %', v_file USING ERRCODE = 'OQ400', COLUMN = 'payload.file_id';
        END IF;
    END IF;
    IF p_depends_on IS NOT NULL THEN
        SELECT d INTO missing FROM unnest(p_depends_on) d
        WHERE NOT EXISTS (SELECT 1 FROM offline_operations x WHERE x.id = d) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'depends_on names an unknown operation %', missing
                USING ERRCODE = 'OQ400', COLUMN = 'depends_on';
        END IF;
    END IF;
    LOOP
        INSERT INTO offline_operations AS o (operation_type, payload, priority, dedup_key,
                                             group_key, max_attempts, next_attempt_at,
                                             depends_on, expires_at, max_retry_duration_s, file_id,
                                             conflict_strategy)
        VALUES (p_operation_type, p_payload, p_priority, p_dedup_key, p_group_key, attempts,
                now() + make_interval(secs => coalesce(p_delay_s, 0)),
                nullif(p_depends_on, '{}'),
                now() + make_interval(secs => p_expires_in_s),
                p_max_retry_duration_s, v_file, p_conflict_strategy)
        ON CONFLICT (dedup_key)
            WHERE dedup_key IS NOT NULL AND status IN ('pending', 'in_progress', 'conflict')
            DO NOTHING
        RETURNING * INTO op;
        IF FOUND THEN
            created := true;
            PERFORM pg_notify('offlineq_wakeup', '');
            RETURN;
        END IF;
        SELECT * INTO op FROM offline_operations
        WHERE dedup_key = p_dedup_key AND status IN ('pending', 'in_progress', 'conflict');
        IF FOUND THEN
            created := false;
            RETURN;
        END IF;
        -- The holder of the key finished between the two statements: try the insert again.
    END LOOP;
END $$;

-- The outbox entry point: enqueue in the same transaction as your own writes.
-- Returns the id of the new operation, or of the live one holding the same dedup_key.
CREATE FUNCTION offlineq_enqueue(operation_type text, payload jsonb, priority integer DEFAULT 0,
                                 dedup_key text DEFAULT NULL, group_key text DEFAULT NULL)
RETURNS uuid LANGUAGE sql AS $$
    SELECT (r.op).id
    FROM offlineq_enqueue_ex(operation_type, payload, coalesce(priority, 0), dedup_key,
                             group_key, NULL, NULL, NULL, NULL, NULL, NULL) r
$$;

-- Workers claim on their own only while this is true (POST /api/offline/sync/stop-auto).
CREATE FUNCTION offlineq_auto_sync() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value = 'true'::jsonb FROM offlineq_settings WHERE key = 'auto_sync'), true)
$$;

CREATE FUNCTION offlineq_settings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offlineq_settings', NEW.key);
    RETURN NULL;
END $$;

CREATE TRIGGER offlineq_settings_notify AFTER INSERT OR UPDATE ON offlineq_settings
    FOR EACH ROW EXECUTE FUNCTION offlineq_settings_changed();

-- The event log behind GET /api/offline/events: written in the same transaction as the change
-- it describes, announced on offlineq_events (one NOTIFY per statement), kept 15 minutes.
-- Readers take events in (xid, id) order once every older transaction has ended (xid below
-- the snapshot's xmin): that order never goes back, so no event is skipped by a reader whose
-- transaction committed later than a newer one.
CREATE TABLE offlineq_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type           text NOT NULL,
    op_id          uuid,
    operation_type text,
    data           jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offlineq_events_order ON offlineq_events (xid, id);
CREATE INDEX offlineq_events_created ON offlineq_events (created_at);

CREATE FUNCTION offlineq_op_event(o offline_operations) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', o.id, 'operation_type', o.operation_type, 'status', o.status,
                              'priority', o.priority, 'retry_count', o.retry_count,
                              'error_message', o.error_message)
$$;

CREATE FUNCTION offlineq_events_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_events (type, op_id, operation_type, data)
    SELECT 'operation.enqueued', n.id, n.operation_type, offlineq_op_event(n) FROM new_rows n ORDER BY n.seq;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION offlineq_events_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_events (type, op_id, operation_type, data)
    SELECT CASE n.status
             WHEN 'in_progress' THEN 'operation.started'
             WHEN 'completed' THEN 'operation.completed'
             WHEN 'failed' THEN 'operation.failed'
             WHEN 'conflict' THEN 'operation.conflict'
             ELSE 'operation.retried' END,
           n.id, n.operation_type, offlineq_op_event(n)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.status <> o.status AND n.status <> 'pending')
       OR (n.status = 'pending' AND (n.retry_count > o.retry_count OR o.status IN ('failed', 'conflict')))
    ORDER BY n.seq;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION offlineq_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offlineq_events (type, op_id, operation_type, data)
    SELECT 'operation.deleted', o.id, o.operation_type, offlineq_op_event(o) FROM old_rows o ORDER BY o.seq;
    IF FOUND THEN
        PERFORM pg_notify('offlineq_events', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER offline_operations_events_insert AFTER INSERT ON offline_operations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_events_insert();
CREATE TRIGGER offline_operations_events_update AFTER UPDATE ON offline_operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION offlineq_events_update();
CREATE TRIGGER offline_operations_events_delete AFTER DELETE ON offline_operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offlineq_events_delete();

-- Events that are not about one operation (network.changed, sync.*, strategy.changed).
CREATE FUNCTION offlineq_emit(p_type text, p_data jsonb) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO offlineq_events (type, data) VALUES (p_type, p_data) RETURNING id INTO new_id;
    PERFORM pg_notify('offlineq_events', '');
    RETURN new_id;
END $$;
