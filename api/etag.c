#include "api/etag.h"

#include <stdint.h>
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

/* The tag for key, quoted, into etag. */
static const char *quoted(const char *key, char etag[ETAG_KEY_MAX + 3])
{
    snprintf(etag, ETAG_KEY_MAX + 3, "\"%s\"", key);
    return etag;
}

/* The body cached for key (a copy), or NULL. */
static char *cached(struct etag_cache *c, const char *key)
{
    pthread_mutex_lock(&c->mu);
    char *body = c->body && strcmp(c->key, key) == 0 ? oq_strdup(c->body) : NULL;
    pthread_mutex_unlock(&c->mu);
    return body;
}

static void keep(struct etag_cache *c, const char *key, const char *body)
{
    pthread_mutex_lock(&c->mu);
    free(c->body);
    c->body = oq_strdup(body);
    snprintf(c->key, sizeof(c->key), "%s", key);
    pthread_mutex_unlock(&c->mu);
}

int etag_reply(struct request *r, struct etag_cache *c, const struct etag_source *src,
               struct err *e)
{
    char key[ETAG_KEY_MAX], etag[ETAG_KEY_MAX + 3];
    const char *inm = http_header(r, "If-None-Match");
    char *body = NULL;
    if (inm != NULL) {
        if (src->key(r, key, e) != 0)
            return -1;
        if (matches(inm, quoted(key, etag))) {
            reply_header(r, "ETag", etag);
            return reply_empty(r, 304);
        }
        body = cached(c, key);
    }
    if (body == NULL) {
        body = src->make(r, key, e);
        if (body == NULL)
            return -1;
        keep(c, key, body);
    }
    reply_header(r, "ETag", quoted(key, etag));
    return reply_json_text(r, 200, body);
}

/* FNV-1a, 64 bits: a digest to tell states apart, not a secret. */
static uint64_t digest(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void digest_key(const char *text, char key[32])
{
    snprintf(key, 32, "d%016llx", (unsigned long long)digest(text));
}

void etag_remember(struct etag_cache *c, const char *part, const char *body)
{
    char part_key[32], key[32], etag[ETAG_KEY_MAX + 3];
    digest_key(part, part_key);
    digest_key(body, key);
    keep(c, part_key, quoted(key, etag));
}

int etag_reply_last(struct request *r, struct etag_cache *c, const char *part)
{
    char part_key[32];
    digest_key(part, part_key);
    char *etag = cached(c, part_key);
    int rc = -1;
    if (etag != NULL && matches(http_header(r, "If-None-Match"), etag)) {
        reply_header(r, "ETag", etag);
        rc = reply_empty(r, 304);
    }
    free(etag);
    return rc;
}

int etag_reply_digest(struct request *r, char *body)
{
    if (body == NULL)
        return -1;
    char key[32], etag[ETAG_KEY_MAX + 3];
    digest_key(body, key);
    reply_header(r, "ETag", quoted(key, etag));
    if (matches(http_header(r, "If-None-Match"), etag)) {
        free(body);
        return reply_empty(r, 304);
    }
    return reply_json_text(r, 200, body);
}
