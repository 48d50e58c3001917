/* Cheap polling: GET endpoints that thousands of frontends poll answer 304 when the state
 * they saw is unchanged. An ETag names exactly the state its body shows and changes in the
 * same moment as that state (issue 13): it is never taken from something that follows the
 * state later (the event ring, a fold). Two shapes:
 * - etag_reply: a key read from the state itself (cheap: no body) decides the 304; the body is
 *   made at most once per state, whoever asks, and comes with the key of the state it shows.
 * - etag_reply_digest: for bodies that are cheap to build, the tag is a digest of the body. */
#ifndef OQ_ETAG_H
#define OQ_ETAG_H

#include <pthread.h>

#include "api/http.h"

#define ETAG_KEY_MAX 128

/* The last body an endpoint made, and the state it was made for (for etag_remember: the
 * digest of the known part, and the tag sent). Thread-safe. */
struct etag_cache {
    pthread_mutex_t mu;
    char key[ETAG_KEY_MAX];
    char *body; /* owned, or NULL */
};

/* How an endpoint names its state and shows it. */
struct etag_source {
    /* Writes the current state's key into key (ETAG_KEY_MAX bytes); -1 with *e. */
    int (*key)(struct request *r, char *key, struct err *e);
    /* Returns the body (malloc'd JSON text) and writes into key the key of exactly the state
     * it shows (read in the same snapshot); NULL with *e. */
    char *(*make)(struct request *r, char *key, struct err *e);
};

/* In the caller's memory (struct api holds one per endpoint). */
void etag_init(struct etag_cache *c);
/* Frees the cached body. */
void etag_close(struct etag_cache *c);

/* Replies 200 with the body and its ETag, or 304 when If-None-Match names the current state.
 * A plain GET makes the body (one read: the body and its key); a conditional one reads the
 * key first, then answers 304, the body cached for that key, or a new body. */
int etag_reply(struct request *r, struct etag_cache *c, const struct etag_source *src,
               struct err *e);

/* Replies with body (stolen) tagged by its digest: 304 when If-None-Match names it. */
int etag_reply_digest(struct request *r, char *body);

/* For a body of two parts, one always known (part, a text) and one that may be out of reach
 * (the database): remembers body's digest tag as the last sent while part was so. */
void etag_remember(struct etag_cache *c, const char *part, const char *body);
/* When the other part is out of reach: replies 304 and returns 0 if If-None-Match names the
 * last tag sent and part is as it was then; else -1 (nothing sent). */
int etag_reply_last(struct request *r, struct etag_cache *c, const char *part);

#endif
