#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embed.h"
#include "core/log.h"

#define MIGRATION_LOCK_KEY "7046271150311"
#define COMPAT_HEADER "-- compatible-from:"
#define COMPAT_SINCE 17 /* 017_compat.sql added schema_migrations.compatible_from */

static int version_of(const struct embedded_file *f)
{
    return atoi(f->name);
}

/* What f declares in its leading comment lines ("-- compatible-from: N": the oldest service,
 * by its schema version, that still works on a schema with f applied); its own version when it
 * declares nothing (only the services that know it). */
static int compatible_from_of(const struct embedded_file *f)
{
    const char *line = f->data;
    while (strncmp(line, "--", 2) == 0) {
        if (strncmp(line, COMPAT_HEADER, strlen(COMPAT_HEADER)) == 0)
            return atoi(line + strlen(COMPAT_HEADER));
        const char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        line = end + 1;
    }
    return version_of(f);
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

/* The schema's version, and the largest compatible_from among the migrations past $1 (this
 * binary's latest): the oldest service version that every one of them still works with. */
#define COMPAT_SQL                                                                                 \
    "SELECT coalesce(max(version), 0), "                                                           \
    "coalesce(max(compatible_from) FILTER (WHERE version > $1), 0) FROM schema_migrations"

static const struct db_stmt compat_stmt = {"schema_compat", COMPAT_SQL};

/* Whether this binary (schema latest) may use a database at version whose migrations past
 * latest need a service of version needs or newer: 0, or -1 with ERR_NOT_READY naming both. */
static int verdict(int version, int needs, int latest, struct err *e)
{
    if (version < latest)
        return err_set(e, ERR_NOT_READY,
                       "database schema version %d is older than this binary's (%d)", version,
                       latest);
    if (version > latest && needs > latest)
        return err_set(e, ERR_NOT_READY,
                       "database schema version %d is newer than this binary knows (%d) and not "
                       "compatible with it: its migrations past %d need a service of schema "
                       "version %d or newer",
                       version, latest, latest, needs);
    return 0;
}

/* At start-up, on a schema newer than this binary: serve on it, migrating nothing, when its
 * newer migrations all declare themselves compatible with this binary. */
static int check_newer(PGconn *pg, int latest, struct err *e)
{
    char mine[16];
    snprintf(mine, sizeof(mine), "%d", latest);
    const char *params[] = {mine};
    PGresult *r = PQexecParams(pg, COMPAT_SQL, 1, NULL, params, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int version = atoi(PQgetvalue(r, 0, 0)), needs = atoi(PQgetvalue(r, 0, 1));
        rc = verdict(version, needs, latest, e);
        if (rc == 0)
            log_info("database schema version %d is newer than this binary (%d) and compatible "
                     "with it (from %d): nothing to migrate",
                     version, latest, needs);
    } else {
        log_error("migration step compatibility failed: %s", PQresultErrorMessage(r));
        rc = err_set(e, PQstatus(pg) == CONNECTION_OK ? ERR_INTERNAL : ERR_DB_UNAVAILABLE,
                     "migration compatibility check failed");
    }
    PQclear(r);
    return rc;
}

int migrate_check(struct db_conn *c, struct err *e)
{
    int latest = migrate_latest_version();
    char mine[16];
    snprintf(mine, sizeof(mine), "%d", latest);
    const char *params[] = {mine};
    PGresult *r = db_exec(c, &compat_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    int version = atoi(PQgetvalue(r, 0, 0)), needs = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    return verdict(version, needs, latest, e);
}

int migrate_guard(struct db_pool *p, struct err *e)
{
    struct db_conn *c = db_acquire_unguarded(p, e);
    if (c == NULL)
        return -1;
    struct err why = {0};
    int rc = migrate_check(c, &why);
    db_release(p, c);
    if (rc == 0 && db_pool_admit(p))
        log_json(LOG_INFO, "the database schema is one this binary can use again: serving",
                 json_pack("{s:s}", "event", "schema_compatible"));
    else if (rc != 0 && why.code == ERR_NOT_READY && db_pool_refuse(p, why.message))
        log_json(LOG_ERROR, why.message, json_pack("{s:s}", "event", "schema_incompatible"));
    if (rc != 0)
        *e = why;
    return rc;
}

static int apply(PGconn *pg, const struct embedded_file *f, struct err *e)
{
    char version[16], compat[16];
    snprintf(version, sizeof(version), "%d", version_of(f));
    snprintf(compat, sizeof(compat), "%d", compatible_from_of(f));
    if (run(pg, f->data, f->name, e) != 0)
        return -1;
    const char *params[] = {version, f->name, compat};
    bool has_compat = version_of(f) >= COMPAT_SINCE; /* the column exists from then on */
    PGresult *r = PQexecParams(pg,
                               has_compat ? "INSERT INTO schema_migrations (version, name, "
                                            "compatible_from) VALUES ($1, $2, $3)"
                                          : "INSERT INTO schema_migrations (version, name) "
                                            "VALUES ($1, $2)",
                               has_compat ? 3 : 2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK
                 ? 0
                 : err_set(e, ERR_INTERNAL, "recording %s failed", f->name);
    if (rc != 0)
        log_error("recording %s failed: %s", f->name, PQresultErrorMessage(r));
    PQclear(r);
    if (rc == 0)
        log_info("applied migration %s", f->name);
    return rc;
}

/* Applies the migrations past the database's version, in order; on a newer schema none (an
 * older binary never rolls back or applies again), and it serves only when compatible. */
static int apply_missing(PGconn *pg, struct err *e)
{
    int current = migrate_current_version(pg, e);
    if (current < 0)
        return -1;
    int latest = migrate_latest_version();
    if (current > latest)
        return check_newer(pg, latest, e);
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

/* db_connect sets the search_path once connected; a pooler that hands the session's later
 * transactions to another server would have the migrations create everything in public, so
 * that is refused here (db_check_session_pooling refuses it before, by its symptom). */
static int check_search_path(PGconn *pg, const char *schema, struct err *e)
{
    int ok = ask(pg, "SELECT current_schema() IS NOT DISTINCT FROM $1", schema, "search_path", e);
    if (ok < 0)
        return -1;
    return ok ? 0
              : err_set(e, ERR_NOT_READY,
                        "the connection's search_path does not start with schema %s (does a "
                        "connection pooler reset the session between transactions?)",
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
