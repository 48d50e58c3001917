-- The queue's recent history (GET /api/offline/queue/stats/history): enqueued, completed and
-- failed per 10 s come from the event log (offlineq_events, 15 minutes, a row per statement);
-- the queue depth (pending + in_progress) is a sample per 10 s bucket, written by the janitor of
-- every instance (an upsert on the bucket, so the instances share one row and the latest sample
-- of the bucket stays) and trimmed after 15 minutes. At most 91 rows.
CREATE TABLE offlineq_depth_samples (
    bucket timestamptz PRIMARY KEY,
    depth bigint NOT NULL CONSTRAINT offlineq_depth_samples_depth_check CHECK (depth >= 0),
    sampled_at timestamptz NOT NULL DEFAULT now()
);
