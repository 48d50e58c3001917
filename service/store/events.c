#include "store/events.h"

#include <stdio.h>
#include <stdlib.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* One row per event (offlineq_event_stream expands the table's rows, which hold one event or
 * a statement's worth), in stream order. */
#define EVENTS_COLUMNS                                                                             \
    "SELECT e.xid::text AS xid_text, e.id, e.k, e.type, coalesce(e.op_id::text, ''), "             \
    "  coalesce(e.operation_type, ''), e.data::text FROM offlineq_event_stream e "

#define AFTER_1_2_3                                                                                \
    "WHERE (e.xid, e.id) >= ($1::xid8, $2::bigint) "                                               \
    "  AND (e.xid, e.id, e.k) > ($1::xid8, $2::bigint, $3::bigint) "

/* Settled events after ($1, $2, $3), in stream order: a literal limit, as the planner sees it. */
static const struct db_stmt pull_stmt = {"events_pull", EVENTS_COLUMNS AFTER_1_2_3
                                         "  AND e.xid < pg_snapshot_xmin(pg_current_snapshot()) "
                                         "ORDER BY e.xid, e.id, e.k LIMIT " STR(EVENTS_PULL_MAX)};

/* One page of a stream's reading from the table: after ($1, $2, $3) up to and with ($4, $5,
 * $6). */
static const struct db_stmt page_stmt = {
    "events_page",
    EVENTS_COLUMNS AFTER_1_2_3 "  AND (e.xid, e.id) <= ($4::xid8, $5::bigint) "
                               "  AND (e.xid, e.id, e.k) <= ($4::xid8, $5::bigint, $6::bigint) "
                               "ORDER BY e.xid, e.id, e.k LIMIT $7::int"};

/* Where "now" is: the newest settled event. */
static const struct db_stmt max_stmt = {
    "events_max", "SELECT coalesce(max(xid)::text, '0'), coalesce(max(id), 0) FROM offlineq_events "
                  "WHERE xid = (SELECT max(xid) FROM offlineq_events WHERE xid < "
                  "pg_snapshot_xmin(pg_current_snapshot()))"};

static const struct db_stmt emit_stmt = {"events_emit", "SELECT offlineq_emit($1, $2::jsonb)"};

/* Ids grow with time: everything below the first event of the last 15 minutes goes (found by
 * walking the primary key from the oldest, so the walk costs what is deleted). */
static const struct db_stmt trim_stmt = {
    "trim_events",
    "DELETE FROM offlineq_events WHERE id < coalesce("
    "  (SELECT min(id) FROM offlineq_events WHERE created_at >= now() - interval '15 minutes'),"
    "  (SELECT max(id) + 1 FROM offlineq_events))"};

static void pos_params(const struct event_pos *p, char xid[32], char id[32], char k[32])
{
    snprintf(xid, 32, "%llu", p->xid);
    snprintf(id, 32, "%lld", p->id);
    snprintf(k, 32, "%lld", p->k);
}

/* Copies the rows of r (EVENTS_COLUMNS) into a new array. */
static int copy_rows(PGresult *r, struct event_row **rows)
{
    int n = PQntuples(r);
    *rows = oq_calloc((size_t)n + 1, sizeof(**rows));
    for (int i = 0; i < n; i++) {
        struct event_row *row = &(*rows)[i];
        row->pos.xid = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        row->pos.id = atoll(PQgetvalue(r, i, 1));
        row->pos.k = atoll(PQgetvalue(r, i, 2));
        snprintf(row->type, sizeof(row->type), "%s", PQgetvalue(r, i, 3));
        snprintf(row->op_id, sizeof(row->op_id), "%s", PQgetvalue(r, i, 4));
        snprintf(row->op_type, sizeof(row->op_type), "%s", PQgetvalue(r, i, 5));
        row->data = oq_strdup(PQgetvalue(r, i, 6));
    }
    PQclear(r);
    return n;
}

int events_fetch_settled(struct db_conn *c, const struct event_pos *after, struct event_row **rows,
                         struct err *e)
{
    char xid[32], id[32], k[32];
    pos_params(after, xid, id, k);
    const char *params[] = {xid, id, k};
    PGresult *r = db_exec(c, &pull_stmt, 3, params, e);
    return r ? copy_rows(r, rows) : -1;
}

int events_fetch_range(struct db_conn *c, const struct event_pos *after,
                       const struct event_pos *upto, int limit, struct event_row **rows,
                       struct err *e)
{
    char ax[32], ai[32], ak[32], bx[32], bi[32], bk[32], lim[16];
    pos_params(after, ax, ai, ak);
    pos_params(upto, bx, bi, bk);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {ax, ai, ak, bx, bi, bk, lim};
    PGresult *r = db_exec(c, &page_stmt, 7, params, e);
    return r ? copy_rows(r, rows) : -1;
}

void events_rows_free(struct event_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        free(rows[i].data);
    free(rows);
}

int events_newest(struct db_conn *c, struct event_pos *out, struct err *e)
{
    PGresult *r = db_exec(c, &max_stmt, 0, NULL, e);
    if (r == NULL || PQntuples(r) != 1) {
        PQclear(r);
        return -1;
    }
    out->xid = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    out->id = atoll(PQgetvalue(r, 0, 1));
    out->k = EVENT_ROW_END;
    PQclear(r);
    return 0;
}

int events_record(struct db_conn *c, const char *type, const char *data, struct err *e)
{
    const char *params[] = {type, data};
    return db_run(c, &emit_stmt, 2, params, e);
}

int events_trim(struct db_conn *c, struct err *e)
{
    return db_run(c, &trim_stmt, 0, NULL, e);
}
