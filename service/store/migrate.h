/* Applies the embedded migrations/NNN_name.sql files in order. */
#ifndef OQ_MIGRATE_H
#define OQ_MIGRATE_H

#include <libpq-fe.h>

#include "core/err.h"
#include "store/db.h"

/* The highest migration version compiled into this binary. */
int migrate_latest_version(void);

/* Applies every missing migration in one transaction under an advisory lock, so instances
 * starting together are safe. First creates schema (a checked identifier; pg's search_path
 * must name it, as db_connect sets it) and moves the migrations table of an installation made
 * before 006 (everything in public) into it; 006 moves the rest. On a schema newer than this
 * binary knows it applies nothing and succeeds when every newer migration declares itself
 * compatible with this binary ("-- compatible-from: N", N <= migrate_latest_version()), else
 * fails with ERR_NOT_READY naming both versions. Thread-compatible: pg is the caller's. */
int migrate_up(PGconn *pg, const char *schema, struct err *e) OQ_MUSTCHECK;

/* Reads the applied version (0 when none); -1 with *e on failure. */
int migrate_current_version(PGconn *pg, struct err *e);

/* On a pooled connection: 0 when this binary can use the database's schema (its own version,
 * or a newer one compatible with it); -1 with ERR_NOT_READY naming both versions when it
 * cannot (an older one, or a newer one with a migration that is not compatible), or with the
 * database's error. */
int migrate_check(struct db_conn *c, struct err *e) OQ_MUSTCHECK;

/* migrate_check on a connection of p taken past any refusal, then opens p to db_acquire when
 * the schema is usable and refuses it (db_pool_refuse, ERR_NOT_READY with the check's message)
 * when it is not, logging each change once; a database error leaves p as it is. Returns what
 * the check returned. Thread-safe (the janitor's cadence and /readyz call it). */
int migrate_guard(struct db_pool *p, struct err *e);

#endif
