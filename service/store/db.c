#include "store/db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

void db_pool_init(struct db_pool *p, const char *conninfo, const char *schema, int size,
                  const struct secretbox *box)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->conninfo = oq_strdup(conninfo);
    p->schema = oq_strdup(schema);
    p->size = size;
    p->box = box;
    p->conns = oq_calloc((size_t)size, sizeof(*p->conns));
    for (int i = 0; i < size; i++)
        p->conns[i].box = box;
}

void db_pool_close(struct db_pool *p)
{
    for (int i = 0; i < p->size; i++) {
        if (p->conns[i].pg != NULL)
            PQfinish(p->conns[i].pg);
    }
    free(p->conns);
    free(p->conninfo);
    free(p->schema);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void notice_quiet(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* Ours go once connected, as session settings, not as the options startup parameter: PgBouncer
 * refuses a client that sends it ("unsupported startup parameter: options") unless told to
 * ignore it, and then drops it, so it would not hold through the pooler that session pooling
 * allows. JIT off: the queue's statements are short, and a claim among 1,000,000 waiting
 * operations took 480 ms with JIT (the planner's estimate crosses jit_above_cost and every
 * execution compiles), 3.5 ms without; unless the operator's own startup options (the conninfo's
 * options, else PGOPTIONS, which libpq still sends) set jit, as they could before. The
 * search_path is schema (a checked identifier, config.c). A session pooler's server_reset_query
 * (DISCARD ALL) runs only when a client leaves, so they hold for the connection's life. */
static int set_session(PGconn *pg, const char *schema)
{
    const char *params[] = {schema};
    PGresult *r = PQexecParams(pg,
                               "SELECT set_config('search_path', $1, false), "
                               "CASE WHEN source <> 'client' THEN set_config('jit', 'off', false) "
                               "END FROM pg_settings WHERE name = 'jit'",
                               1, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        log_warn("database session settings failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

PGconn *db_connect(const char *conninfo, const char *schema, struct err *e)
{
    /* Defaults first, the operator's URI or conninfo last (its values win): a database that
     * vanished from the network must cost seconds, never a hung thread. */
    static const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *values[] = {"5", "1", "30", "10", "3", "offlineq", conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[400]; /* a multi-host URL has lines for every host: all on one line */
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
        for (char *p = msg; *p != '\0'; p++)
            *p = *p == '\n' || *p == '\t' ? ' ' : *p;
        for (size_t n = strlen(msg); n > 0 && msg[n - 1] == ' ';)
            msg[--n] = '\0';
        log_warn("database connection failed: %s", msg);
        PQfinish(pg);
        err_set(e, ERR_DB_UNAVAILABLE, "the database is unavailable");
        return NULL;
    }
    PQsetNoticeReceiver(pg, notice_quiet, NULL);
    if (set_session(pg, schema) != 0) {
        PQfinish(pg);
        err_set(e, ERR_DB_UNAVAILABLE, "the database is unavailable");
        return NULL;
    }
    return pg;
}

/* An idle connection has nothing to read: a readable socket means the server spoke unasked,
 * most often its last words (a shutdown, a crash, a failover: a notice, then the end of the
 * stream, which the read after the notice's finds). Reading them tells, without a round trip,
 * whether the connection can still be used; else the first statement after a failover would
 * meet the old server's closed connection and answer 503. A connection still talking after a
 * few reads is not trusted either. */
static bool is_alive(PGconn *pg)
{
    for (int i = 0; i < 4 && PQstatus(pg) == CONNECTION_OK; i++) {
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            return true;
        if (PQconsumeInput(pg) != 1)
            return false;
    }
    return false;
}

/* The server process behind pg's next transaction; 0 when the query fails. */
static int backend_pid(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT pg_backend_pid()");
    int pid = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return pid;
}

int db_check_session_pooling(PGconn *pg, const char *conninfo, const char *schema, struct err *e)
{
    PGconn *other = db_connect(conninfo, schema, e);
    if (other == NULL)
        return -1;
    int first = backend_pid(pg), theirs = backend_pid(other), again = backend_pid(pg);
    PQfinish(other);
    if (first == 0 || theirs == 0 || again == 0)
        return err_set(e, ERR_DB_UNAVAILABLE, "the database is unavailable");
    if (first != theirs && first == again)
        return 0;
    return err_set(e, ERR_NOT_READY,
                   "connections to the database are pooled per transaction (two sessions ran "
                   "on one server process): use PgBouncer's pool_mode = session, or connect "
                   "directly; offlineq keeps prepared statements, LISTEN and settings per "
                   "session");
}

static int ensure_connected(struct db_pool *p, struct db_conn *c, struct err *e)
{
    if (c->pg != NULL && is_alive(c->pg))
        return 0;
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->n_prepared = 0;
    c->grown = false;
    c->pg = db_connect(p->conninfo, p->schema, e);
    return c->pg != NULL ? 0 : -1;
}

/* A free connection of p (waiting up to 5 s), connected; NULL with *e. Unless past_refusal,
 * a refused pool (db_pool_refuse) hands out none. */
static struct db_conn *acquire(struct db_pool *p, bool past_refusal, struct err *e)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    struct db_conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->is_refused && !past_refusal) {
        err_set(e, ERR_NOT_READY, "%s", p->refusal);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    while (c == NULL) {
        for (int i = 0; i < p->size && c == NULL; i++) {
            if (!p->conns[i].in_use)
                c = &p->conns[i];
        }
        if (c == NULL && pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT)
            break;
    }
    if (c != NULL)
        c->in_use = true;
    pthread_mutex_unlock(&p->mu);
    if (c == NULL) {
        err_set(e, ERR_DB_UNAVAILABLE, "no database connection became free in time");
        return NULL;
    }
    if (ensure_connected(p, c, e) != 0) {
        db_release(p, c);
        return NULL;
    }
    return c;
}

struct db_conn *db_acquire(struct db_pool *p, struct err *e)
{
    return acquire(p, false, e);
}

struct db_conn *db_acquire_unguarded(struct db_pool *p, struct err *e)
{
    return acquire(p, true, e);
}

bool db_pool_refuse(struct db_pool *p, const char *message)
{
    pthread_mutex_lock(&p->mu);
    bool was_open = !p->is_refused;
    p->is_refused = true;
    snprintf(p->refusal, sizeof(p->refusal), "%s", message);
    pthread_mutex_unlock(&p->mu);
    return was_open;
}

bool db_pool_admit(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool was_refused = p->is_refused;
    p->is_refused = false;
    pthread_mutex_unlock(&p->mu);
    return was_refused;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
    /* A connection left inside a transaction (an error path) must not leak into the next user. */
    if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
    }
    if (c->reconnect && c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->n_prepared = 0;
    }
    c->reconnect = false;
    pthread_mutex_lock(&p->mu);
    c->in_use = false;
    c->released_ms = oq_now_ms();
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int db_pool_trim(struct db_pool *p, double idle_ms)
{
    double now = oq_now_ms();
    int closed = 0;
    for (int i = 0; i < p->size; i++) {
        struct db_conn *c = &p->conns[i];
        pthread_mutex_lock(&p->mu);
        bool is_idle =
            !c->in_use && c->pg != NULL && (c->grown || (i > 0 && now - c->released_ms >= idle_ms));
        if (is_idle)
            c->in_use = true; /* checked out to this function while it closes it */
        pthread_mutex_unlock(&p->mu);
        if (!is_idle)
            continue;
        PQfinish(c->pg);
        c->pg = NULL;
        c->n_prepared = 0;
        closed++;
        pthread_mutex_lock(&p->mu);
        c->in_use = false;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return closed;
}

struct sqlstate_map {
    const char *prefix;
    enum err_code code;
    const char *message; /* what the client reads; NULL: the text our own SQL raised */
};

/* Longest-prefix-first. OQ codes are raised by offlineq's own SQL with texts written for the
 * client; every other refusal gets a fixed message here, and PostgreSQL's own text (which can
 * quote stored data or schema names) goes only to the log, with the request id (reply_err).
 * Class 08 and the shutdown codes mean the database is gone. */
static const struct sqlstate_map sqlstates[] = {
    {"OQ400", ERR_INVALID_REQUEST, NULL},
    {"OQ404", ERR_NOT_FOUND, NULL},
    {"OQ409", ERR_CONFLICT, NULL},
    {"OQ429", ERR_QUEUE_FULL, NULL},
    {"23505", ERR_CONFLICT, "the request conflicts with a value already stored"},
    {"23503", ERR_INVALID_REQUEST, "the request refers to something that does not exist"},
    {"23502", ERR_INVALID_REQUEST, "the request leaves out a value that is required"},
    {"23514", ERR_INVALID_REQUEST, "a value in the request is outside what can be stored"},
    {"23", ERR_INVALID_REQUEST, "the request breaks a rule of the stored data"},
    {"22021", ERR_INVALID_REQUEST, "a value in the request is not valid UTF-8"},
    {"22P05", ERR_INVALID_REQUEST,
     "a value in the request holds a character that cannot be "
     "stored (such as \\u0000)"},
    {"22001", ERR_INVALID_REQUEST, "a value in the request is too long"},
    {"22003", ERR_INVALID_REQUEST, "a number in the request is out of range"},
    {"22", ERR_INVALID_REQUEST, "a value in the request cannot be stored or compared"},
    {"25006", ERR_DB_UNAVAILABLE,
     "the database is read-only (a standby, or a primary being demoted)"},
    {"08", ERR_DB_UNAVAILABLE, "the database is unavailable"},
    {"57P", ERR_DB_UNAVAILABLE, "the database is unavailable"},
    {"53", ERR_DB_UNAVAILABLE, "the database is unavailable"},
    {"40", ERR_DB_UNAVAILABLE, "the database is unavailable"},
};

/* PostgreSQL's own words, for the log. */
static void pg_detail(PGresult *res, const char *state, struct err *e)
{
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    err_detail(e, "SQLSTATE %s: %s%s%s", state, msg ? msg : "(no message)", detail ? "; " : "",
               detail ? detail : "");
}

int db_error(struct db_conn *c, PGresult *res, struct err *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "25006") == 0) /* read_only_sql_transaction */
        c->reconnect = true;
    if (state == NULL || (c->pg != NULL && PQstatus(c->pg) != CONNECTION_OK)) {
        log_warn("database error: %s", c->pg ? PQerrorMessage(c->pg) : "no connection");
        return err_set(e, ERR_DB_UNAVAILABLE, "the database is unavailable");
    }
    for (size_t i = 0; i < OQ_ARRAY_LEN(sqlstates); i++) {
        const struct sqlstate_map *m = &sqlstates[i];
        if (strncmp(state, m->prefix, strlen(m->prefix)) != 0)
            continue;
        if (m->message != NULL) {
            err_set(e, m->code, "%s", m->message);
            pg_detail(res, state, e);
            return -1;
        }
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
        if (col != NULL)
            return err_field(e, m->code, col, "%s", msg ? msg : "invalid request");
        return err_set(e, m->code, "%s", msg ? msg : "invalid request");
    }
    log_error("unexpected database error %s: %s", state,
              PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    err_set(e, ERR_INTERNAL, "internal error");
    pg_detail(res, state, e);
    return -1;
}

int db_prepare(struct db_conn *c, const struct db_stmt *s, int n, struct err *e)
{
    for (int i = 0; i < c->n_prepared; i++) {
        if (c->prepared[i] == s)
            return 0;
    }
    OQ_ASSERT(c->n_prepared < DB_MAX_PREPARED);
    PGresult *r = PQprepare(c->pg, s->name, s->sql, n, NULL);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = db_error(c, r, e);
    else
        c->prepared[c->n_prepared++] = s;
    PQclear(r);
    return rc;
}

void db_note_sizes(struct db_conn *c, size_t sent, const PGresult *r)
{
    if (sent >= DB_GROWN_BYTES || (r != NULL && PQresultMemorySize(r) >= DB_GROWN_BYTES))
        c->grown = true;
}

PGresult *db_exec(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
                  struct err *e)
{
    if (db_prepare(c, s, n, e) != 0)
        return NULL;
    size_t out = 0;
    for (int i = 0; i < n; i++)
        out += params[i] ? strlen(params[i]) : 0;
    PGresult *r = PQexecPrepared(c->pg, s->name, n, params, NULL, NULL, 0);
    db_note_sizes(c, out, r);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    db_error(c, r, e);
    PQclear(r);
    return NULL;
}

int db_run(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
           struct err *e)
{
    PGresult *r = db_exec(c, s, n, params, e);
    PQclear(r);
    return r ? 0 : -1;
}

PGresult *db_exec_by_id(struct db_conn *c, const struct db_stmt *s, const char *what,
                        const char *id, struct err *e)
{
    const char *params[] = {id};
    PGresult *r = db_exec(c, s, 1, params, e);
    if (r != NULL && PQntuples(r) == 0) {
        PQclear(r);
        err_set(e, ERR_NOT_FOUND, "no %s with id %s", what, id);
        return NULL;
    }
    return r;
}

static const struct db_stmt read_only_stmt = {"db_read_only",
                                              "SELECT current_setting('transaction_read_only')"};

int db_check_writable(struct db_conn *c, struct err *e)
{
    PGresult *r = db_exec(c, &read_only_stmt, 0, NULL, e);
    if (r == NULL)
        return -1;
    bool read_only = strcmp(PQgetvalue(r, 0, 0), "on") == 0;
    PQclear(r);
    if (!read_only)
        return 0;
    c->reconnect = true;
    return err_set(e, ERR_DB_UNAVAILABLE,
                   "the database is read-only (a standby, or a primary being demoted)");
}

int db_command(struct db_conn *c, const char *sql, struct err *e)
{
    PGresult *r = PQexec(c->pg, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = db_error(c, r, e);
    PQclear(r);
    return rc;
}
