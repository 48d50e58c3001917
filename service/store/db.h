/* libpq connection pool and prepared statements. A PGconn belongs to one thread at a time. */
#ifndef OQ_DB_H
#define OQ_DB_H

#include <libpq-fe.h>
#include <pthread.h>

#include "core/err.h"

/* A statement is a static object; each connection prepares it on first use. */
struct db_stmt {
    const char *name;
    const char *sql;
};

/* Room for every statement of the service on one connection (83 today), with headroom: past
 * it db_prepare asserts. */
#define DB_MAX_PREPARED 128

struct secretbox;

struct db_conn {
    PGconn *pg;
    const struct secretbox *box; /* borrowed from the pool: how this database's rows are sealed */
    const struct db_stmt *prepared[DB_MAX_PREPARED];
    int n_prepared;
    bool in_use;
    bool reconnect;     /* the server will not take writes (a standby): closed at db_release */
    double released_ms; /* oq_now_ms() when last checked in (under the pool's mu) */
    bool grown;         /* carried a message past DB_GROWN_BYTES: libpq's buffers grew */
};

/* A message this large grows libpq's buffers (16 KiB at first) for the life of the connection. */
#define DB_GROWN_BYTES (128 * 1024)

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *conninfo;
    char *schema;                /* every connection's search_path (OFFLINEQ_DB_SCHEMA) */
    const struct secretbox *box; /* borrowed; lent to every connection */
    struct db_conn *conns;
    int size;
    bool is_refused;   /* db_pool_refuse: db_acquire hands out nothing (under mu) */
    char refusal[256]; /* why, as db_acquire's ERR_NOT_READY says it */
};

/* Sets up a pool of size lazily opened connections to conninfo, each with search_path schema.
 * Nothing connects yet. box (borrowed, may not be NULL) is what the store's functions seal and
 * open rows with. */
void db_pool_init(struct db_pool *p, const char *conninfo, const char *schema, int size,
                  const struct secretbox *box);
void db_pool_close(struct db_pool *p);

/* Checks a connection out (waiting up to 5 s for one), connecting or reconnecting it as
 * needed. Returns NULL with ERR_DB_UNAVAILABLE when the database cannot be reached, or with
 * ERR_NOT_READY and the refusal's message while the pool is refused. */
struct db_conn *db_acquire(struct db_pool *p, struct err *e) OQ_MUSTCHECK;

/* db_acquire past a refusal: for the check that decides it (store/migrate.c: migrate_guard). */
struct db_conn *db_acquire_unguarded(struct db_pool *p, struct err *e) OQ_MUSTCHECK;

/* Refuses p to db_acquire (the database holds a schema this binary cannot use): every user of
 * the pool, the API, the workers and the engine's threads alike, gets ERR_NOT_READY with
 * message (copied) until db_pool_admit. Connections already out are not taken back. Returns
 * whether p was open. Thread-safe. */
bool db_pool_refuse(struct db_pool *p, const char *message);
/* Opens p again; returns whether it was refused. Thread-safe. */
bool db_pool_admit(struct db_pool *p);
void db_release(struct db_pool *p, struct db_conn *c);

/* Closes every connection of p that is checked in and either has sat so for idle_ms or longer
 * (but the first, the one db_acquire hands out first, so the one any load keeps warm) or has
 * grown; the next db_acquire of one connects it again. libpq grows a connection's buffers to
 * the largest message it carried (a 1,000-operation batch answer, a 1 MiB file chunk) and never
 * shrinks them: this is how a burst's memory goes back. Returns how many it closed.
 * Thread-safe. */
int db_pool_trim(struct db_pool *p, double idle_ms);

/* Marks c grown when a statement sent sent bytes of parameters or got r (may be NULL) of
 * DB_GROWN_BYTES or more; db_exec does for its own statements. */
void db_note_sizes(struct db_conn *c, size_t sent, const PGresult *r);

/* Runs a prepared statement with text parameters (NULL = SQL NULL). Returns a PGresult the
 * caller PQclears, or NULL with *e set from the SQLSTATE. */
PGresult *db_exec(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
                  struct err *e) OQ_MUSTCHECK;

/* Runs s for its effect only: 0, or -1 with *e. */
int db_run(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
           struct err *e) OQ_MUSTCHECK;

/* Runs s, a statement whose one parameter is an id, and returns its result when it has rows;
 * NULL with ERR_NOT_FOUND ("no <what> with id <id>") when it has none, or with the database's
 * error. The caller PQclears the result. */
PGresult *db_exec_by_id(struct db_conn *c, const struct db_stmt *s, const char *what,
                        const char *id, struct err *e) OQ_MUSTCHECK;

/* Prepares s on c if it is not yet (for callers that need PQexecPrepared's binary options). */
int db_prepare(struct db_conn *c, const struct db_stmt *s, int n, struct err *e) OQ_MUSTCHECK;

/* 0 when c's server takes writes; else -1 with ERR_DB_UNAVAILABLE, and c is closed at
 * db_release, so that the next use connects again and libpq picks a writable host of a
 * multi-host URL (target_session_attrs=read-write). */
int db_check_writable(struct db_conn *c, struct err *e) OQ_MUSTCHECK;

/* Runs a parameterless command (BEGIN, COMMIT, ROLLBACK, LISTEN ...). */
int db_command(struct db_conn *c, const char *sql, struct err *e) OQ_MUSTCHECK;

/* Maps a failed result (or NULL) to *e. Returns -1. */
int db_error(struct db_conn *c, PGresult *res, struct err *e);

/* Opens a dedicated connection outside the pool (for migrations, LISTEN), with the
 * operator's own startup options (conninfo's options, else PGOPTIONS) and then, once
 * connected, search_path schema (a checked identifier) and jit off (unless those options set
 * it) as session settings, so that it works through PgBouncer, which refuses the options
 * startup parameter. */
PGconn *db_connect(const char *conninfo, const char *schema, struct err *e);

/* 0 when pg (a db_connect connection) keeps one server session across its transactions, as
 * offlineq needs (prepared statements, LISTEN, advisory locks, session settings); -1 with
 * ERR_NOT_READY naming pool_mode when a pooler runs its transactions on whichever server is
 * free (PgBouncer in transaction or statement mode). The symptom asked for: pg's server
 * process, a second session's (opened on conninfo and closed here), then pg's again. Two live
 * sessions never share one, and a session never changes it; a transaction pooler hands the
 * server pg just freed to the next client first (PgBouncer's default, server_round_robin = 0).
 * -1 with ERR_DB_UNAVAILABLE when the database cannot be asked. */
int db_check_session_pooling(PGconn *pg, const char *conninfo, const char *schema,
                             struct err *e) OQ_MUSTCHECK;

#endif
