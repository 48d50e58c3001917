-- Secrets at rest (issue 7): files stored sealed with OFFLINEQ_ENCRYPTION_KEY say so; files
-- written before a key was set stay plaintext and readable. Payloads mark themselves ("$enc").
ALTER TABLE offlineq_files ADD COLUMN encrypted boolean NOT NULL DEFAULT false;
