-- offlineq in a schema of its own (OFFLINEQ_DB_SCHEMA, default offlineq), nothing in public,
-- as pg-boss (pgboss) and graphile-worker (graphile_worker) do: a database whose
-- public.schema_migrations belongs to Rails, dbmate or golang-migrate is one offlineq can share.
--
-- The service runs every migration with search_path = that schema (a startup option of its
-- connection; service/store/migrate.c creates the schema first and checks that
-- current_schema() names it), so current_schema() is the schema here and unqualified CREATEs
-- land in it. On a fresh database 001-005 created everything in it already. An installation
-- made before 006 has everything in public: the bootstrap moved its schema_migrations (ours,
-- told by its columns and its 001 row) into the schema, and here the rest follows, with its
-- data (ALTER ... SET SCHEMA moves a table's rows, indexes, constraints, triggers, row type and
-- identity sequences). A public.offline_operations is only touched in that case: on a fresh
-- install one in public belongs to someone else.
DO $$
DECLARE
    s text := current_schema();
    t text;
    f regprocedure;
    moved integer := 0;
    legacy boolean;
BEGIN
    IF s IS NULL OR s = 'public' THEN
        RAISE EXCEPTION 'offlineq migrates with search_path set to its own schema, not %',
            coalesce(s, 'nothing');
    END IF;
    legacy := to_regclass(format('%I.offline_operations', s)) IS NULL;
    -- The outbox function's new name: called as offlineq.enqueue(...) from any search_path.
    IF NOT legacy THEN
        ALTER FUNCTION offlineq_enqueue(text, jsonb, integer, text, text) RENAME TO enqueue;
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['offline_operations', 'offlineq_operation_types',
                             'offlineq_settings', 'offlineq_files', 'offlineq_op_counts',
                             'offlineq_events', 'offlineq_unsealed'] LOOP
        EXECUTE format('ALTER TABLE public.%I SET SCHEMA %I', t, s);
    END LOOP;
    EXECUTE format('ALTER TYPE public.offlineq_op_doc SET SCHEMA %I', s);
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND p.proname = ANY (ARRAY[
              'offlineq_auto_sync', 'offlineq_check_endpoint', 'offlineq_check_headers',
              'offlineq_check_payload', 'offlineq_check_type_fields', 'offlineq_compact_counts',
              'offlineq_count_delete', 'offlineq_count_insert', 'offlineq_count_update',
              'offlineq_drop_unused_files', 'offlineq_emit', 'offlineq_enqueue',
              'offlineq_enqueue_ex', 'offlineq_events_delete', 'offlineq_events_insert',
              'offlineq_events_update', 'offlineq_has_dot_segment', 'offlineq_op_event',
              'offlineq_op_json', 'offlineq_refuse', 'offlineq_settings_changed',
              'offlineq_stats', 'offlineq_take_sealed_id', 'offlineq_ts'])
    LOOP
        EXECUTE format('ALTER ROUTINE %s SET SCHEMA %I', f, s);
        moved := moved + 1;
    END LOOP;
    IF moved <> 24 THEN
        RAISE EXCEPTION 'the installation in public lacks functions of offlineq (found % of 24)',
            moved;
    END IF;
    ALTER FUNCTION offlineq_enqueue(text, jsonb, integer, text, text) RENAME TO enqueue;
    -- Everyone could reach these objects in public (USAGE on public is granted to PUBLIC); their
    -- own privileges moved with them, so the schema keeps them reachable as before.
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO PUBLIC', s);
    -- Callers' SQL (their triggers, their transactions) still says offlineq_enqueue(...): it
    -- keeps working for one release, through a wrapper that a later migration drops.
    EXECUTE format($f$
        CREATE FUNCTION public.offlineq_enqueue(operation_type text, payload jsonb,
                                                priority integer DEFAULT 0,
                                                dedup_key text DEFAULT NULL,
                                                group_key text DEFAULT NULL)
        RETURNS uuid LANGUAGE sql AS 'SELECT %I.enqueue($1, $2, $3, $4, $5)'$f$, s);
    EXECUTE format($f$COMMENT ON FUNCTION public.offlineq_enqueue(text, jsonb, integer, text, text)
        IS 'deprecated: call %I.enqueue(); this wrapper is dropped in the next release'$f$, s);
END $$;

-- What a caller outside the service reaches first (the outbox function, offlineq_emit, and the
-- trigger functions, which run in the search_path of whoever wrote the row) resolves our names
-- in the schema, whatever the caller's search_path; what they call inherits it. The small SQL
-- functions of the service's hot queries (offlineq_op_json, offlineq_ts, offlineq_op_event,
-- offlineq_auto_sync) get no SET clause: it would stop their inlining; the service's own
-- connections carry the search_path. offlineq_settings_changed and offlineq_take_sealed_id name
-- nothing of ours.
ALTER FUNCTION enqueue(text, jsonb, integer, text, text) SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_emit(text, jsonb) SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_count_insert() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_count_update() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_count_delete() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_drop_unused_files() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_events_insert() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_events_update() SET search_path FROM CURRENT;
ALTER FUNCTION offlineq_events_delete() SET search_path FROM CURRENT;
