-- Operators pause and resume an upstream for the whole deployment (issue 14): the paused set
-- is one settings row, upstreams_paused = {"name": "paused at"}, so every instance reads it on
-- the settings NOTIFY (and the janitor's reload) and a restart keeps it. One function changes
-- it under the row's lock, so two instances pausing two upstreams at once both win, and it
-- records upstream.paused|resumed in the same transaction only when something changed.
-- Returns whether it did.
CREATE FUNCTION offlineq_upstream_pause(p_name text, p_paused boolean) RETURNS boolean
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
BEGIN
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 255 OR p_paused IS NULL THEN
        RAISE EXCEPTION 'an upstream name of 1 to 255 characters and a pause flag are required'
            USING ERRCODE = 'OQ400';
    END IF;
    INSERT INTO offlineq_settings (key, value) VALUES ('upstreams_paused', '{}')
        ON CONFLICT (key) DO NOTHING;
    SELECT value INTO cur FROM offlineq_settings WHERE key = 'upstreams_paused' FOR UPDATE;
    IF jsonb_typeof(cur) <> 'object' THEN
        cur := '{}';
    END IF;
    IF p_paused = (cur ? p_name) THEN
        RETURN false;
    END IF;
    UPDATE offlineq_settings
    SET value = CASE WHEN p_paused THEN cur || jsonb_build_object(p_name, offlineq_ts(now()))
                     ELSE cur - p_name END,
        updated_at = now()
    WHERE key = 'upstreams_paused';
    PERFORM offlineq_emit(CASE WHEN p_paused THEN 'upstream.paused' ELSE 'upstream.resumed' END,
                          jsonb_build_object('upstream', p_name));
    RETURN true;
END $$;
