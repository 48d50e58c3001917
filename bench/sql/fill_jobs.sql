TRUNCATE bench_jobs;
INSERT INTO bench_jobs (operation_type, payload)
SELECT 'api_call', jsonb_build_object('endpoint', '/sink', 'data', jsonb_build_object('i', g))
FROM generate_series(1, :n) g;
VACUUM ANALYZE bench_jobs;
