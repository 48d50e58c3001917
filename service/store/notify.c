#include "store/notify.h"

#include <poll.h>
#include <string.h>

#include "store/db.h"

static const struct {
    const char *name;
    enum notify_channel bit;
} channels[] = {
    {"offlineq_wakeup", NOTIFY_WAKEUP},
    {"offlineq_settings", NOTIFY_SETTINGS},
    {"offlineq_events", NOTIFY_EVENTS},
};

static const char listen_sql[] = "LISTEN offlineq_wakeup; LISTEN offlineq_settings; "
                                 "LISTEN offlineq_events";

PGconn *notify_connect(const char *conninfo, const char *schema, struct err *e)
{
    PGconn *pg = db_connect(conninfo, schema, e);
    if (pg == NULL)
        return NULL;
    PGresult *r = PQexec(pg, listen_sql);
    bool ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        err_set(e, ERR_DB_UNAVAILABLE, "LISTEN failed: %s", PQerrorMessage(pg));
    PQclear(r);
    if (!ok) {
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static int channel_bit(const char *relname)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(channels); i++) {
        if (strcmp(channels[i].name, relname) == 0)
            return channels[i].bit;
    }
    return 0;
}

int notify_wait(PGconn *pg, int timeout_ms)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return -1;
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    if (!PQconsumeInput(pg))
        return PQstatus(pg) == CONNECTION_OK ? 0 : -1;
    int heard = 0;
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL) {
        heard |= channel_bit(n->relname);
        PQfreemem(n);
    }
    return heard;
}
