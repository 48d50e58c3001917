/* Cheap polling: GET endpoints that thousands of frontends poll answer 304 when the state
 * they saw is unchanged, and recompute their body at most once per state, whoever asks. */
#ifndef OQ_ETAG_H
#define OQ_ETAG_H

#include <pthread.h>

#include "api/http.h"

/* The last body an endpoint made, and the state it was made for. Thread-safe. */
struct etag_cache {
    pthread_mutex_t mu;
    char key[128];
    char *body; /* owned, or NULL */
};

/* In the caller's memory (struct api holds one per endpoint). */
void etag_init(struct etag_cache *c);
/* Frees the cached body. */
void etag_close(struct etag_cache *c);

/* Replies for state key: 304 when If-None-Match names it; for a conditional request the
 * body cached for key when there is one; else make(r, e) (a malloc'd JSON text, or NULL with
 * *e), cached for key. */
int etag_reply(struct request *r, struct etag_cache *c, const char *key,
               char *(*make)(struct request *r, struct err *e), struct err *e);

#endif
