-- The pgbench ceilings' tables, shaped like offline_operations' hot columns and order index.
DROP TABLE IF EXISTS bench_ops, bench_jobs;
CREATE TABLE bench_ops (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    operation_type  text NOT NULL,
    payload         jsonb NOT NULL,
    priority        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'pending',
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_ops_order ON bench_ops (status, (-priority), seq);
CREATE TABLE bench_jobs (LIKE bench_ops INCLUDING ALL);
