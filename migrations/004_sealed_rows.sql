-- Sealed values bound to their row (issue 11): the service seals a new operation's payload for
-- an id it chose (AES-GCM associated data = row id and column), and the envelope carries that
-- id as "$id"; the row takes it on insert. Rows from offlineq_enqueue() have no "$id" and keep
-- the generated id (the service seals them when it sees them).
CREATE FUNCTION offlineq_take_sealed_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := (NEW.payload ->> '$id')::uuid;
    NEW.payload := NEW.payload - '$id';
    RETURN NEW;
END $$;

CREATE TRIGGER offline_operations_sealed_id BEFORE INSERT ON offline_operations
    FOR EACH ROW WHEN (NEW.payload ? '$id') EXECUTE FUNCTION offlineq_take_sealed_id();

-- A stored file sealed for its id (the service chooses the id before it seals); older sealed
-- files (bound = false) open without associated data.
ALTER TABLE offlineq_files ADD COLUMN bound boolean NOT NULL DEFAULT false;

-- Rows the service must still seal: written by offlineq_enqueue() while a key is set, or before
-- the key was set (listed by the first start with a key, and below for an installation that
-- already had one). The janitor's sealing pass reads this list, never the whole table.
CREATE TABLE offlineq_unsealed (id uuid PRIMARY KEY);

INSERT INTO offlineq_unsealed (id)
SELECT o.id FROM offline_operations o
WHERE EXISTS (SELECT 1 FROM offlineq_settings WHERE key = 'encryption_check')
  AND (NOT o.payload ? '$enc2'
       OR (jsonb_typeof(o.result) = 'object' AND NOT o.result ? '$enc2')
       OR (jsonb_typeof(o.resolution) = 'object' AND NOT o.resolution ? '$enc2'));
