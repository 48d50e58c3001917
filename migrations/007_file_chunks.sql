-- Files in chunks (issue 13, point 7): a file's bytes are rows of at most 1 MiB (1048576 bytes
-- of the file each; a sealed chunk is 28 bytes longer), so the service streams them in on
-- upload and out on delivery and never holds a whole file. Rows, not large objects: they are
-- replicated, dumped and restored like any table, need no lo_* calls (which PgBouncer's
-- transaction pooling and logical replication do not carry), and are deleted with their file
-- by the foreign key: offlineq_drop_unused_files() deletes the offlineq_files row once no
-- operation needs it, and ON DELETE CASCADE takes its chunks in the same statement.
CREATE TABLE offlineq_file_chunks (
    file_id uuid NOT NULL REFERENCES offlineq_files (id) ON DELETE CASCADE,
    n integer NOT NULL CHECK (n >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (file_id, n)
);

-- Files are mostly compressed already (images, archives, model weights) or sealed (random
-- bytes): no pglz attempt on every chunk, stored out of line as they come.
ALTER TABLE offlineq_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- A file sealed as one blob before this migration: its chunks are consecutive pieces of that
-- blob (nonce | ciphertext | tag), opened together. Files stored from now on are sealed chunk by
-- chunk, each bound to its file and number (AES-GCM associated data
-- "offlineq:file_chunk.<n>:<file id>"), so chunks cannot be swapped between files or reordered.
ALTER TABLE offlineq_files ADD COLUMN sealed_whole boolean NOT NULL DEFAULT false;

-- Today's bytes move into chunks: plaintext files become chunks exactly as the service now
-- writes them; sealed files keep their blob, cut into pieces.
INSERT INTO offlineq_file_chunks (file_id, n, data)
SELECT f.id, c.n, substring(f.data FROM c.n * 1048576 + 1 FOR 1048576)
FROM offlineq_files f,
     generate_series(0, greatest((length(f.data) - 1) / 1048576, 0)) AS c(n);

UPDATE offlineq_files SET sealed_whole = true WHERE encrypted;

ALTER TABLE offlineq_files DROP COLUMN data;
