-- Trace context (issue 14): each operation keeps the W3C trace context of the request that
-- enqueued it (trace id, the caller's span id and flags, tracestate) and that request's
-- X-Request-Id, so every delivery attempt joins the client's trace (same trace id, a new parent
-- id per attempt) and an operation can be traced back to its enqueue. Stored as uuid, bigint
-- and smallint rather than the header's text: 26 bytes instead of 55, and the types alone keep
-- any writer (the SQL function, a plain INSERT) from storing something that is not a valid
-- header, with no regular expression per insert (the text form with regex checks cost a
-- quarter of single-enqueue throughput). The tracestate is sent again, so its check refuses
-- control characters; it runs only for the rows that have one.
ALTER TABLE offline_operations
    ADD COLUMN trace_id uuid CONSTRAINT offline_operations_trace_id_check
        CHECK (trace_id <> '00000000-0000-0000-0000-000000000000'),
    ADD COLUMN trace_span bigint CONSTRAINT offline_operations_trace_span_check
        CHECK (trace_span <> 0),
    ADD COLUMN trace_flags smallint CONSTRAINT offline_operations_trace_flags_check
        CHECK (trace_flags BETWEEN 0 AND 255),
    ADD COLUMN tracestate text CONSTRAINT offline_operations_tracestate_check
        CHECK (length(tracestate) <= 512 AND tracestate !~ '[^\x20-\x7e]'),
    ADD COLUMN request_id text CONSTRAINT offline_operations_request_id_check
        CHECK (length(request_id) BETWEEN 1 AND 128),
    ADD CONSTRAINT offline_operations_trace_whole_check
        CHECK ((trace_id IS NULL) = (trace_span IS NULL)
               AND (trace_id IS NULL) = (trace_flags IS NULL));

-- A new trace for a row stored without one (offlineq.enqueue(), a plain INSERT). Set after the
-- columns were added, so rows that exist keep NULL and the table is not rewritten: those are
-- delivered in the trace whose id is their operation id.
ALTER TABLE offline_operations ALTER COLUMN trace_id SET DEFAULT gen_random_uuid(),
    ALTER COLUMN trace_span SET DEFAULT (floor(random() * 9223372036854775806))::bigint + 1,
    ALTER COLUMN trace_flags SET DEFAULT 1;

-- The service's enqueue gives the request's trace and id (NULL: the column's default).
DROP FUNCTION offlineq_enqueue_ex(text, jsonb, integer, text, text, integer, double precision,
                                  uuid[], double precision, integer, text);
CREATE FUNCTION offlineq_enqueue_ex(
    p_operation_type text, p_payload jsonb, p_priority integer, p_dedup_key text,
    p_group_key text, p_max_attempts integer, p_delay_s double precision, p_depends_on uuid[],
    p_expires_in_s double precision, p_max_retry_duration_s integer, p_conflict_strategy text,
    p_trace_id uuid DEFAULT NULL, p_trace_span bigint DEFAULT NULL,
    p_trace_flags smallint DEFAULT NULL, p_tracestate text DEFAULT NULL,
    p_request_id text DEFAULT NULL,
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
                                             conflict_strategy, trace_id, trace_span,
                                             trace_flags, tracestate, request_id)
        VALUES (p_operation_type, p_payload, p_priority, p_dedup_key, p_group_key, attempts,
                now() + make_interval(secs => coalesce(p_delay_s, 0)),
                nullif(p_depends_on, '{}'),
                now() + make_interval(secs => p_expires_in_s),
                p_max_retry_duration_s, v_file, p_conflict_strategy,
                coalesce(p_trace_id, gen_random_uuid()),
                coalesce(p_trace_span, (floor(random() * 9223372036854775806))::bigint + 1),
                coalesce(p_trace_flags, 1), p_tracestate, p_request_id)
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

-- The Operation document shows the trace id (for a row stored before this migration: its
-- operation id, the trace its deliveries are sent in) and the enqueue's request id.
ALTER TYPE offlineq_op_doc ADD ATTRIBUTE trace_id text, ADD ATTRIBUTE request_id text;
CREATE OR REPLACE FUNCTION offlineq_op_json(o offline_operations) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT row_to_json(ROW(o.id, o.operation_type, o.payload, o.priority, o.status, o.retry_count,
        o.max_attempts, o.error_message, o.dedup_key, o.group_key, offlineq_ts(o.created_at),
        offlineq_ts(o.updated_at), offlineq_ts(o.next_attempt_at), offlineq_ts(o.completed_at),
        o.result, o.depends_on, offlineq_ts(o.expires_at), o.max_retry_duration_s,
        o.conflict_strategy,
        replace(coalesce(o.trace_id, o.id)::text, '-', ''),
        o.request_id)::offlineq_op_doc)
$$;
