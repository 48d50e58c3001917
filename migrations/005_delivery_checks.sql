-- Delivery checks (issue 11): the outbox function refuses what it can judge on its own. It
-- does not know the service's upstreams, so a target's origin and base path are judged by the
-- service, which checks every operation again before it sends it (a row that fails there
-- ends failed, and nothing is sent).

-- True when the path part of an endpoint (before ? and #) has a "." or ".." segment, also
-- spelled with percent-encoded dots, slashes or backslashes. The service's
-- target_has_dot_segment() (service/target.c) reads paths the same way.
CREATE FUNCTION offlineq_has_dot_segment(p_endpoint text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM regexp_split_to_table(
                 replace(replace(replace(
                     lower(split_part(split_part(p_endpoint, '#', 1), '?', 1)),
                     '%2e', '.'), '%2f', '/'), '%5c', '\'),
                 '[/\\]') AS seg
        WHERE seg IN ('.', '..'))
$$;

CREATE FUNCTION offlineq_refuse(p_field text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_message USING ERRCODE = 'OQ400', COLUMN = p_field;
END $$;

-- payload.endpoint: a path of the upstream ("/x", not "//host") or an absolute http(s) URL,
-- no spaces or control characters, no dot segments.
CREATE FUNCTION offlineq_check_endpoint(p_operation_type text, p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ep text;
BEGIN
    IF NOT p_payload ? 'endpoint' THEN
        -- metric_log has a default endpoint; every other built-in type needs one
        IF p_operation_type IN ('api_call', 'experiment_sync', 'file_upload', 'model_push') THEN
            PERFORM offlineq_refuse('payload.endpoint', 'payload.endpoint is required');
        END IF;
        RETURN;
    END IF;
    IF jsonb_typeof(p_payload -> 'endpoint') IS DISTINCT FROM 'string' THEN
        PERFORM offlineq_refuse('payload.endpoint', 'payload.endpoint must be a string');
    END IF;
    ep := p_payload ->> 'endpoint';
    IF length(ep) NOT BETWEEN 1 AND 2048 THEN
        PERFORM offlineq_refuse('payload.endpoint',
                                'payload.endpoint must be a string of 1 to 2048 characters');
    END IF;
    IF ep ~ '[[:cntrl:] ]' THEN
        PERFORM offlineq_refuse('payload.endpoint',
                                'payload.endpoint must not contain spaces or control characters');
    END IF;
    IF ep !~ '^/([^/]|$)' AND ep !~* '^https?://' THEN
        PERFORM offlineq_refuse('payload.endpoint',
                                'payload.endpoint must be a path starting with / or an absolute http(s) URL');
    END IF;
    IF offlineq_has_dot_segment(regexp_replace(ep, '^https?://[^/?#]*', '', 'i')) THEN
        PERFORM offlineq_refuse('payload.endpoint',
            'payload.endpoint must not contain dot segments (. or .., also percent-encoded)');
    END IF;
END $$;

-- payload.headers of api_call and experiment_sync: token names, none of the transport's or
-- the service's own (the list of target.c's forbidden[] table), one-line string values.
CREATE FUNCTION offlineq_check_headers(p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    h record;
BEGIN
    IF NOT p_payload ? 'headers' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_payload -> 'headers') IS DISTINCT FROM 'object' THEN
        PERFORM offlineq_refuse('payload.headers', 'payload.headers must be an object');
    END IF;
    FOR h IN SELECT key, value FROM jsonb_each(p_payload -> 'headers') LOOP
        IF h.key !~ '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$' THEN
            PERFORM offlineq_refuse('payload.headers', 'payload.headers has an invalid header name');
        END IF;
        IF lower(h.key) IN ('host', 'content-length', 'transfer-encoding', 'connection',
                            'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'idempotency-key',
                            'webhook-id', 'webhook-timestamp', 'webhook-signature')
           OR lower(h.key) LIKE 'proxy-%' THEN
            PERFORM offlineq_refuse('payload.headers.' || h.key, format(
                'payload.headers.%s: header %s belongs to the transport or is set by the service',
                h.key, h.key));
        END IF;
        IF jsonb_typeof(h.value) <> 'string' OR (h.value #>> '{}') ~ '[[:cntrl:]]' THEN
            PERFORM offlineq_refuse('payload.headers.' || h.key, format(
                'payload.headers.%s must be a string without control characters', h.key));
        END IF;
    END LOOP;
END $$;

-- The required fields of each built-in type (the handlers' rule tables in service/handler_*.c).
CREATE FUNCTION offlineq_check_type_fields(p_operation_type text, p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
    step_ok boolean;
BEGIN
    IF p_operation_type = 'experiment_sync' AND jsonb_typeof(p_payload -> 'data') IS DISTINCT FROM 'object' THEN
        PERFORM offlineq_refuse('payload.data', 'payload.data is required and must be an object');
    END IF;
    IF p_operation_type IN ('file_upload', 'model_push') AND NOT p_payload ? 'file_id' THEN
        PERFORM offlineq_refuse('payload.file_id', 'payload.file_id is required');
    END IF;
    IF p_operation_type = 'model_push' AND (jsonb_typeof(p_payload -> 'model_name') IS DISTINCT FROM 'string'
                                            OR length(p_payload ->> 'model_name') NOT BETWEEN 1 AND 200) THEN
        PERFORM offlineq_refuse('payload.model_name',
                                'payload.model_name must be a string of 1 to 200 characters');
    END IF;
    IF p_operation_type <> 'metric_log' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_payload -> 'run_id') IS DISTINCT FROM 'string'
       OR length(p_payload ->> 'run_id') NOT BETWEEN 1 AND 200 THEN
        PERFORM offlineq_refuse('payload.run_id', 'payload.run_id must be a string of 1 to 200 characters');
    END IF;
    IF jsonb_typeof(p_payload -> 'metrics') IS DISTINCT FROM 'object' OR p_payload -> 'metrics' = '{}' THEN
        PERFORM offlineq_refuse('payload.metrics', 'payload.metrics must be a non-empty object');
    END IF;
    SELECT key INTO bad FROM jsonb_each(p_payload -> 'metrics') WHERE jsonb_typeof(value) <> 'number' LIMIT 1;
    IF FOUND THEN
        PERFORM offlineq_refuse('payload.metrics.' || bad, format('payload.metrics.%s must be a number', bad));
    END IF;
    -- a CASE, not OR: the cast must not run on a step that is no number
    step_ok := CASE WHEN jsonb_typeof(p_payload -> 'step') = 'number'
                    THEN (p_payload ->> 'step')::numeric BETWEEN 0 AND 9007199254740991
                         AND (p_payload ->> 'step')::numeric = trunc((p_payload ->> 'step')::numeric)
                    ELSE false END;
    IF p_payload ? 'step' AND NOT step_ok THEN
        PERFORM offlineq_refuse('payload.step', 'payload.step must be an integer from 0 to 9007199254740991');
    END IF;
END $$;

-- The payload rules the database can check without the service's configuration. The service
-- applies all of its rules (the same function as POST /api/offline/queue) before delivery.
CREATE FUNCTION offlineq_check_payload(p_operation_type text, p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- an unknown type or a payload that is no object: offlineq_enqueue_ex() says so
    IF jsonb_typeof(p_payload) IS DISTINCT FROM 'object' OR NOT EXISTS (
            SELECT 1 FROM offlineq_operation_types WHERE name = p_operation_type) THEN
        RETURN;
    END IF;
    PERFORM offlineq_check_endpoint(p_operation_type, p_payload);
    IF p_payload ? 'upstream' AND (jsonb_typeof(p_payload -> 'upstream') IS DISTINCT FROM 'string'
                                   OR length(p_payload ->> 'upstream') NOT BETWEEN 1 AND 100) THEN
        PERFORM offlineq_refuse('payload.upstream',
                                'payload.upstream must be a string of 1 to 100 characters');
    END IF;
    IF p_operation_type IN ('api_call', 'experiment_sync') THEN
        IF p_payload ? 'method' AND (jsonb_typeof(p_payload -> 'method') IS DISTINCT FROM 'string'
                OR (p_payload ->> 'method') NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')) THEN
            PERFORM offlineq_refuse('payload.method',
                                    'payload.method must be one of GET, POST, PUT, PATCH, DELETE');
        END IF;
        PERFORM offlineq_check_headers(p_payload);
    END IF;
    PERFORM offlineq_check_type_fields(p_operation_type, p_payload);
END $$;

-- The outbox entry point, now checking the payload first (same signature as before).
CREATE OR REPLACE FUNCTION offlineq_enqueue(operation_type text, payload jsonb,
                                            priority integer DEFAULT 0,
                                            dedup_key text DEFAULT NULL,
                                            group_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    new_id uuid;
BEGIN
    PERFORM offlineq_check_payload(operation_type, payload);
    IF jsonb_typeof(payload) = 'object' AND payload ?| ARRAY['$id', '$enc', '$enc2'] THEN
        PERFORM offlineq_refuse('payload', 'payload keys "$id", "$enc" and "$enc2" are the '
                                           'service''s own (sealed payloads)');
    END IF;
    SELECT (r.op).id INTO new_id
    FROM offlineq_enqueue_ex(operation_type, payload, coalesce(priority, 0), dedup_key,
                             group_key, NULL, NULL, NULL, NULL, NULL, NULL) r;
    -- with OFFLINEQ_ENCRYPTION_KEY set, the service seals this row as soon as it sees it
    IF EXISTS (SELECT 1 FROM offlineq_settings WHERE key = 'encryption_check') THEN
        INSERT INTO offlineq_unsealed (id) VALUES (new_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN new_id;
END $$;
