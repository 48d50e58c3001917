#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embed.h"
#include "core/log.h"

#define MIGRATION_LOCK_KEY "7046271150311"

static int version_of(const struct embedded_file *f)
{
    return atoi(f->name);
}

int migrate_latest_version(void)
{
    int v = 0;
    for (const struct embedded_file *f = embedded_migrations; f->name; f++) {
        if (version_of(f) > v)
            v = version_of(f);
    }
    return v;
}

static int run(PGconn *pg, const char *sql, const char *what, struct err *e)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        log_error("migration step %s failed: %s", what, PQresultErrorMessage(r));
        rc = err_set(e, PQstatus(pg) == CONNECTION_OK ? ERR_INTERNAL : ERR_DB_UNAVAILABLE,
                     "migration %s failed", what);
    }
    PQclear(r);
    return rc;
}

int migrate_current_version(PGconn *pg, struct err *e)
{
    PGresult *r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        v = atoi(PQgetvalue(r, 0, 0));
    else if (PQstatus(pg) != CONNECTION_OK)
        err_set(e, ERR_DB_UNAVAILABLE, "the database is unavailable");
    else
        err_set(e, ERR_NOT_READY, "schema_migrations is missing");
    PQclear(r);
    return v;
}

static const struct db_stmt version_stmt = {
    "schema_version", "SELECT coalesce(max(version), 0) FROM schema_migrations"};

int migrate_pooled_version(struct db_conn *c, struct err *e)
{
    PGresult *r = db_exec(c, &version_stmt, 0, NULL, e);
    if (r == NULL)
        return -1;
    int v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static int apply(PGconn *pg, const struct embedded_file *f, struct err *e)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", version_of(f));
    if (run(pg, f->data, f->name, e) != 0)
        return -1;
    const char *params[] = {version, f->name};
    PGresult *r = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK
                 ? 0
                 : err_set(e, ERR_INTERNAL, "recording %s failed", f->name);
    PQclear(r);
    if (rc == 0)
        log_info("applied migration %s", f->name);
    return rc;
}

static int apply_missing(PGconn *pg, struct err *e)
{
    int current = migrate_current_version(pg, e);
    if (current < 0)
        return -1;
    int latest = migrate_latest_version();
    if (current > latest)
        return err_set(e, ERR_NOT_READY,
                       "database schema version %d is newer than this binary knows (%d)", current,
                       latest);
    for (const struct embedded_file *f = embedded_migrations; f->name; f++) {
        if (version_of(f) > current && apply(pg, f, e) != 0)
            return -1;
    }
    return 0;
}

int migrate_up(PGconn *pg, struct err *e)
{
    if (run(pg, "BEGIN", "begin", e) != 0)
        return -1;
    int rc = -1;
    if (run(pg, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", "lock", e) == 0 &&
        run(pg,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            "bookkeeping", e) == 0)
        rc = apply_missing(pg, e);
    if (rc == 0)
        rc = run(pg, "COMMIT", "commit", e);
    else
        PQclear(PQexec(pg, "ROLLBACK"));
    return rc;
}
