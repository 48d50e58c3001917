-- One deployment, many instances (issue 15). Each delivering instance beats in
-- offlineq_instances every half second and divides every upstream's rate_per_s and
-- max_concurrency (and its recovery ramp) by the number of live instances, taking its part by
-- its rank among them; an instance not seen for p_ttl_ms is dead and its part goes to the
-- others. Every live instance counts from its first beat on, but uses its own part only once it
-- is p_settle_ms old (settled), so the others have divided for it first; alone, it need not
-- wait.
-- The circuit breakers of the deployment are one settings row, upstream_breakers =
-- {"name": {"until": epoch ms (half-open from then), "by": instance, "probe": instance,
-- "probe_until": epoch ms}}: every instance reads it on the settings NOTIFY (and the janitor's
-- reload), so one instance opening a breaker stops the others within one reload; the one
-- half-open probe is taken here, under the row's lock.
CREATE TABLE offlineq_instances (
    id text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    rates jsonb NOT NULL DEFAULT '{}' -- {"upstream": operations delivered per second, last minute}
);

-- Beats for p_id and says where it stands: its rank among the live instances (0-based, by id),
-- how many there are, and whether it is settled (its part is its own to use).
CREATE FUNCTION offlineq_instance_beat(p_id text, p_ttl_ms integer, p_settle_ms integer,
                                       p_rates jsonb,
                                       OUT rank integer, OUT live integer, OUT settled boolean)
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ttl interval := make_interval(secs => p_ttl_ms / 1000.0);
    settle interval := make_interval(secs => p_settle_ms / 1000.0);
BEGIN
    IF p_id IS NULL OR length(p_id) NOT BETWEEN 1 AND 255 OR p_ttl_ms IS NULL OR p_ttl_ms < 1
       OR p_settle_ms IS NULL OR p_settle_ms < 0 OR jsonb_typeof(p_rates) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'an instance id of 1 to 255 characters, a ttl, a settle time and an object of rates are required'
            USING ERRCODE = 'OQ400';
    END IF;
    INSERT INTO offlineq_instances (id, rates) VALUES (p_id, p_rates)
        ON CONFLICT (id) DO UPDATE SET seen_at = now(), rates = excluded.rates;
    DELETE FROM offlineq_instances WHERE seen_at < now() - ttl AND id <> p_id;
    SELECT count(*) FILTER (WHERE m.id < p_id), count(*),
           bool_or(m.id = p_id AND m.started_at <= now() - settle)
      INTO rank, live, settled
      FROM offlineq_instances m;
END $$;

-- The deployment's delivery rate per upstream: the sum of the live instances' rates.
CREATE FUNCTION offlineq_fleet_rates(p_ttl_ms integer) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT coalesce(jsonb_object_agg(k, total), '{}')
      FROM (SELECT e.k, sum(e.v::numeric) AS total
              FROM offlineq_instances i, jsonb_each_text(i.rates) AS e(k, v)
             WHERE i.seen_at >= now() - make_interval(secs => p_ttl_ms / 1000.0)
               AND jsonb_typeof(i.rates -> e.k) = 'number'
             GROUP BY e.k) x
$$;

-- A stopping instance leaves at once, so the others take its part without waiting for the ttl.
CREATE FUNCTION offlineq_instance_leave(p_id text) RETURNS void
    LANGUAGE sql SET search_path FROM CURRENT AS $$
    DELETE FROM offlineq_instances WHERE id = p_id
$$;

CREATE FUNCTION offlineq_epoch_ms() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT (extract(epoch FROM now()) * 1000)::bigint
$$;

-- The breakers object, locked for the caller's change ({} when not stored yet).
CREATE FUNCTION offlineq_breakers_locked() RETURNS jsonb
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
BEGIN
    INSERT INTO offlineq_settings (key, value) VALUES ('upstream_breakers', '{}')
        ON CONFLICT (key) DO NOTHING;
    SELECT value INTO cur FROM offlineq_settings WHERE key = 'upstream_breakers' FOR UPDATE;
    RETURN CASE WHEN jsonb_typeof(cur) = 'object' THEN cur ELSE '{}' END;
END $$;

CREATE FUNCTION offlineq_breakers_store(v jsonb) RETURNS void
    LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE offlineq_settings SET value = v, updated_at = now() WHERE key = 'upstream_breakers'
$$;

CREATE FUNCTION offlineq_check_breaker_args(p_name text, p_ms integer, p_by text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 255 OR p_ms IS NULL OR p_ms < 0
       OR p_ms > 86400000 OR p_by IS NULL OR length(p_by) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'an upstream name and an instance id of 1 to 255 characters and a time of 0 to 86400000 ms are required'
            USING ERRCODE = 'OQ400';
    END IF;
END $$;

-- Opens (or opens again, after a failed probe) the breaker of p_name for p_cooldown_ms.
-- Records upstream.breaker_opened only when it was closed; returns whether it was.
CREATE FUNCTION offlineq_breaker_open(p_name text, p_cooldown_ms integer, p_by text)
    RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
    was_open boolean;
BEGIN
    PERFORM offlineq_check_breaker_args(p_name, p_cooldown_ms, p_by);
    cur := offlineq_breakers_locked();
    was_open := cur ? p_name;
    PERFORM offlineq_breakers_store(cur || jsonb_build_object(p_name, jsonb_build_object(
        'until', offlineq_epoch_ms() + p_cooldown_ms, 'by', p_by)));
    IF NOT was_open THEN
        PERFORM offlineq_emit('upstream.breaker_opened', jsonb_build_object('upstream', p_name));
    END IF;
    RETURN NOT was_open;
END $$;

-- May p_by send the half-open probe of p_name now? True when the breaker is closed, or its
-- cool-down is over and no other instance's probe is under way (then the probe is p_by's for
-- p_probe_ms); false otherwise.
CREATE FUNCTION offlineq_breaker_probe(p_name text, p_probe_ms integer, p_by text)
    RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
    b jsonb;
    now_ms bigint := offlineq_epoch_ms();
BEGIN
    PERFORM offlineq_check_breaker_args(p_name, p_probe_ms, p_by);
    cur := offlineq_breakers_locked();
    b := cur -> p_name;
    IF b IS NULL THEN
        RETURN true;
    END IF;
    IF (b ->> 'until')::bigint > now_ms OR (b ->> 'probe' IS NOT NULL AND b ->> 'probe' <> p_by
                                            AND (b ->> 'probe_until')::bigint > now_ms) THEN
        RETURN false;
    END IF;
    PERFORM offlineq_breakers_store(jsonb_set(cur, ARRAY[p_name], b || jsonb_build_object(
        'probe', p_by, 'probe_until', now_ms + p_probe_ms)));
    RETURN true;
END $$;

-- Closes the breaker of p_name (its probe succeeded). Records upstream.breaker_closed only
-- when it was open; returns whether it was.
CREATE FUNCTION offlineq_breaker_close(p_name text) RETURNS boolean
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
BEGIN
    PERFORM offlineq_check_breaker_args(p_name, 0, 'x');
    cur := offlineq_breakers_locked();
    IF NOT cur ? p_name THEN
        RETURN false;
    END IF;
    PERFORM offlineq_breakers_store(cur - p_name);
    PERFORM offlineq_emit('upstream.breaker_closed', jsonb_build_object('upstream', p_name));
    RETURN true;
END $$;

-- A Retry-After on a 429 or 503 holds the upstream for the deployment: upstream_holds =
-- {"name": epoch ms}, read by every instance like the breakers. Extends a hold only (by more
-- than 100 ms, so a burst of answers writes once) and drops the holds that are over; returns
-- whether it stored something.
CREATE FUNCTION offlineq_upstream_hold(p_name text, p_hold_ms integer, p_by text)
    RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    cur jsonb;
    now_ms bigint := offlineq_epoch_ms();
    until bigint;
BEGIN
    PERFORM offlineq_check_breaker_args(p_name, p_hold_ms, p_by);
    until := now_ms + p_hold_ms;
    INSERT INTO offlineq_settings (key, value) VALUES ('upstream_holds', '{}')
        ON CONFLICT (key) DO NOTHING;
    SELECT value INTO cur FROM offlineq_settings WHERE key = 'upstream_holds' FOR UPDATE;
    IF jsonb_typeof(cur) <> 'object' THEN
        cur := '{}';
    END IF;
    IF jsonb_typeof(cur -> p_name) = 'number' AND (cur ->> p_name)::numeric >= until - 100 THEN
        RETURN false;
    END IF;
    SELECT coalesce(jsonb_object_agg(k, v), '{}') INTO cur
      FROM jsonb_each(cur) AS e(k, v)
     WHERE jsonb_typeof(v) = 'number' AND (v #>> '{}')::numeric > now_ms AND k <> p_name;
    UPDATE offlineq_settings SET value = cur || jsonb_build_object(p_name, until), updated_at = now()
     WHERE key = 'upstream_holds';
    RETURN true;
END $$;
