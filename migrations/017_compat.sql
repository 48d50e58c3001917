-- compatible-from: 16
-- Rolling upgrades (issue 15): each migration declares the oldest service it stays compatible
-- with, as that service's schema version (its latest migration's number), in a first-lines
-- header "-- compatible-from: N"; a migration without one is compatible only with services
-- that know it (N = its own number). The service records the declaration here when it applies
-- the migration. An older service on a newer schema reads the largest compatible_from among
-- the migrations past its own and serves iff its own version reaches it (store/migrate.c);
-- otherwise /readyz and every request that would use the database answer 503 not_ready, and it
-- migrates nothing. The migrations before this one declared nothing: each counts as compatible
-- only from itself. This one only adds a column no older service reads: compatible from 16.
ALTER TABLE schema_migrations ADD COLUMN compatible_from integer;
UPDATE schema_migrations SET compatible_from = version;
ALTER TABLE schema_migrations ALTER COLUMN compatible_from SET NOT NULL,
    ADD CONSTRAINT schema_migrations_compatible_from_check
        CHECK (compatible_from BETWEEN 0 AND version);
