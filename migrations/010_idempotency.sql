-- Idempotency-Key (issue 14): the first answer to an enqueue that carried the header, kept for
-- OFFLINEQ_IDEMPOTENCY_TTL_S so that the same key with the same body replays it, on any
-- instance and after a restart. scope is the route and the caller (the API key that
-- authenticated, as a digest; "-" without keys), so two clients' keys never meet. The row is
-- written in the enqueue's own transaction, under a transaction-level advisory lock on
-- (scope, key): a request that finds the lock taken is still being processed (409). Only
-- successful answers are stored; body is the answer's JSON text, sealed like payloads when
-- OFFLINEQ_ENCRYPTION_KEY is set (it holds them). The janitor deletes rows past the TTL; a
-- lookup also ignores them, so the janitor's pace never lengthens a key's life.
CREATE TABLE offlineq_idempotency (
    scope text NOT NULL CONSTRAINT offlineq_idempotency_scope_check
        CHECK (length(scope) BETWEEN 1 AND 64),
    key text NOT NULL CONSTRAINT offlineq_idempotency_key_check
        CHECK (length(key) BETWEEN 1 AND 255 AND key !~ '[^\x20-\x7e]'),
    request_sha256 bytea NOT NULL CONSTRAINT offlineq_idempotency_request_sha256_check
        CHECK (length(request_sha256) = 32),
    status smallint NOT NULL CONSTRAINT offlineq_idempotency_status_check
        CHECK (status BETWEEN 200 AND 299),
    body text NOT NULL,
    location text,
    preference_applied text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- The janitor's expiry takes the oldest rows first.
CREATE INDEX offlineq_idempotency_created_at_idx ON offlineq_idempotency (created_at);
