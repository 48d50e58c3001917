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

/* Runs sql with the one text parameter param; the first column of its one row is "t" or "f".
 * Returns 1, 0, or -1 with *e. */
static int ask(PGconn *pg, const char *sql, const char *param, const char *what, struct err *e)
{
    PGresult *r = PQexecParams(pg, sql, param != NULL ? 1 : 0, NULL, &param, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        rc = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    else {
        log_error("migration step %s failed: %s", what, PQresultErrorMessage(r));
        rc = err_set(e, PQstatus(pg) == CONNECTION_OK ? ERR_INTERNAL : ERR_DB_UNAVAILABLE,
                     "migration %s failed", what);
    }
    PQclear(r);
    return rc;
}

/* Creates the schema unless it exists (a DBA may have made it and given it to us without
 * granting CREATE on the database, which CREATE SCHEMA IF NOT EXISTS would still demand). */
static int ensure_schema(PGconn *pg, const char *schema, struct err *e)
{
    int has = ask(pg, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema,
                  "schema lookup", e);
    if (has != 0)
        return has < 0 ? -1 : 0;
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA \"%s\"", schema); /* checked: [a-z_][a-z0-9_]* */
    if (run(pg, sql, "create schema", e) != 0)
        return -1;
    log_info("created schema %s", schema);
    return 0;
}

/* db_connect gives the search_path as a startup option; a pooler that drops it would have the
 * migrations create everything in public, so that is refused here. */
static int check_search_path(PGconn *pg, const char *schema, struct err *e)
{
    int ok = ask(pg, "SELECT current_schema() IS NOT DISTINCT FROM $1", schema, "search_path", e);
    if (ok < 0)
        return -1;
    return ok ? 0
              : err_set(e, ERR_NOT_READY,
                        "the connection's search_path does not start with schema %s (does a "
                        "connection pooler drop the options startup parameter?)",
                        schema);
}

/* An installation made before 006 kept everything in public, its migrations table
 * public.schema_migrations (version integer, name text, applied_at timestamptz) with 001 named
 * 001_init.sql. That table moves into the schema, so the migrations it records count and 006
 * moves the rest. Any other public.schema_migrations (golang-migrate's version bigint + dirty,
 * Rails' version varchar, dbmate's ...) is someone else's and stays where it is; so does
 * everything when the schema already has a migrations table of its own. */
static int adopt_legacy(PGconn *pg, const char *schema, struct err *e)
{
    int ours = ask(
        pg,
        "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NULL "
        "  AND to_regclass('public.offline_operations') IS NOT NULL "
        "  AND ARRAY(SELECT attname || ' ' || format_type(atttypid, atttypmod) "
        "            FROM pg_attribute WHERE attrelid = to_regclass('public.schema_migrations') "
        "              AND attnum > 0 AND NOT attisdropped ORDER BY attnum) "
        "    = ARRAY['version integer', 'name text', 'applied_at timestamp with time zone']",
        schema, "legacy lookup", e);
    if (ours == 1)
        ours = ask(pg,
                   "SELECT EXISTS (SELECT 1 FROM public.schema_migrations "
                   "               WHERE version = 1 AND name = '001_init.sql')",
                   NULL, "legacy rows", e);
    if (ours != 1)
        return ours < 0 ? -1 : 0;
    char sql[128];
    snprintf(sql, sizeof(sql), "ALTER TABLE public.schema_migrations SET SCHEMA \"%s\"", schema);
    if (run(pg, sql, "adopt legacy", e) != 0)
        return -1;
    log_info("moving the installation in schema public into schema %s", schema);
    return 0;
}

/* Before any migration: the schema, a legacy installation's migrations table moved into it,
 * and the migrations table. */
static int bootstrap(PGconn *pg, const char *schema, struct err *e)
{
    if (ensure_schema(pg, schema, e) != 0 || check_search_path(pg, schema, e) != 0 ||
        adopt_legacy(pg, schema, e) != 0)
        return -1;
    return run(pg,
               "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
               "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
               "bookkeeping", e);
}

int migrate_up(PGconn *pg, const char *schema, struct err *e)
{
    if (run(pg, "BEGIN", "begin", e) != 0)
        return -1;
    int rc = -1;
    /* One lock for the whole database (whatever the schema): instances starting together
     * migrate one after the other, and the later ones find nothing left to do. */
    if (run(pg, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", "lock", e) == 0 &&
        bootstrap(pg, schema, e) == 0)
        rc = apply_missing(pg, e);
    if (rc == 0)
        rc = run(pg, "COMMIT", "commit", e);
    else
        PQclear(PQexec(pg, "ROLLBACK"));
    return rc;
}
