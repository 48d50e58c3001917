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
 * before 006 (everything in public) into it; 006 moves the rest. Fails (ERR_NOT_READY) when the
 * database holds a schema newer than this binary knows. Thread-compatible: pg is the caller's. */
int migrate_up(PGconn *pg, const char *schema, struct err *e) OQ_MUSTCHECK;

/* Reads the applied version (0 when none); -1 with *e on failure. */
int migrate_current_version(PGconn *pg, struct err *e);

/* The same on a pooled connection (a prepared statement; errors mapped by db.c). */
int migrate_pooled_version(struct db_conn *c, struct err *e);

#endif
