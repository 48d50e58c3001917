#include "api/etag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/reply.h"

void etag_init(struct etag_cache *c)
{
    *c = (struct etag_cache){.body = NULL};
    pthread_mutex_init(&c->mu, NULL);
}

void etag_close(struct etag_cache *c)
{
    free(c->body);
    c->body = NULL;
    pthread_mutex_destroy(&c->mu);
}

static bool matches(const char *if_none_match, const char *etag)
{
    return if_none_match != NULL &&
           (strcmp(if_none_match, "*") == 0 || strstr(if_none_match, etag) != NULL);
}

int etag_reply(struct request *r, struct etag_cache *c, const char *key,
               char *(*make)(struct request *r, struct err *e), struct err *e)
{
    char etag[160];
    snprintf(etag, sizeof(etag), "\"%s\"", key);
    reply_header(r, "ETag", etag);
    const char *inm = http_header(r, "If-None-Match");
    if (matches(inm, etag))
        return reply_empty(r, 304);
    /* Pollers (they send If-None-Match) share one body per state. A plain GET always reads
     * fresh: the state key follows other instances' changes only as fast as events arrive. */
    char *body = NULL;
    if (inm != NULL) {
        pthread_mutex_lock(&c->mu);
        body = c->body && strcmp(c->key, key) == 0 ? oq_strdup(c->body) : NULL;
        pthread_mutex_unlock(&c->mu);
    }
    if (body == NULL) {
        body = make(r, e);
        if (body == NULL)
            return -1;
        pthread_mutex_lock(&c->mu);
        free(c->body);
        c->body = oq_strdup(body);
        snprintf(c->key, sizeof(c->key), "%s", key);
        pthread_mutex_unlock(&c->mu);
    }
    return reply_json_text(r, 200, body);
}
