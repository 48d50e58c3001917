-- The event log's id sequence is written to the WAL again; the table itself stays unlogged.
-- PostgreSQL 15 made the identity sequence of the unlogged table unlogged as well (002, SET
-- UNLOGGED), and a standby promoted to primary reads an unlogged sequence as a page of zeros:
-- after a failover every statement that writes an event (an enqueue, a claim, an outcome)
-- failed with XX000 "bad magic number in sequence offlineq_events_id_seq", answered 500,
-- until someone recreated the sequence (found by e2e_test_failover; a bare unlogged table
-- with an identity column shows it on 15.18 too). Logged, the sequence also keeps the event
-- ids rising over a crash of the database, which empties the table.
ALTER SEQUENCE offlineq_events_id_seq SET LOGGED;
-- The rewrite keeps the count of values the unlogged sequence had fetched ahead, so the next
-- ones would reach the WAL (and the standby) only after it runs out: log the position now.
SELECT setval('offlineq_events_id_seq', last_value, is_called) FROM offlineq_events_id_seq;
