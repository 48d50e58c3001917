#include "core/pending.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

void pending_init(struct pending *p)
{
    *p = (struct pending){0};
    pthread_mutex_init(&p->mu, NULL);
}

void pending_close(struct pending *p)
{
    free(p->notes);
    free(p->xip);
    pthread_mutex_destroy(&p->mu);
}

bool pending_reserve(struct pending *p, long long n, long long limit, long long *total)
{
    pthread_mutex_lock(&p->mu);
    *total = p->counted + p->noted + p->reserved;
    bool fits = *total + n <= limit;
    if (fits)
        p->reserved += n;
    pthread_mutex_unlock(&p->mu);
    return fits;
}

static int cmp_xid(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* Was transaction xid committed when the last fold's snapshot was taken? (Ours only ever
 * commit, so "not in progress and older than xmax" is enough.) */
static bool visible(const struct pending *p, unsigned long long xid)
{
    if (!p->has_snapshot || xid >= p->xmax)
        return false;
    return xid < p->xmin || bsearch(&xid, p->xip, p->n_xip, sizeof(*p->xip), cmp_xid) == NULL;
}

void pending_settle(struct pending *p, long long reserved, long long stored, unsigned long long xid)
{
    pthread_mutex_lock(&p->mu);
    p->reserved -= reserved;
    if (stored > 0 && !visible(p, xid)) {
        struct pending_note *last = p->n_notes ? &p->notes[p->n_notes - 1] : NULL;
        if (last != NULL && last->xid == xid) { /* a grouped statement: one note */
            last->n += stored;
        } else {
            if (p->n_notes == p->cap_notes) {
                p->cap_notes = p->cap_notes ? 2 * p->cap_notes : 64;
                p->notes = realloc(p->notes, p->cap_notes * sizeof(*p->notes));
                OQ_ASSERT(p->notes != NULL);
            }
            p->notes[p->n_notes++] = (struct pending_note){xid, stored};
        }
        p->noted += stored;
    }
    pthread_mutex_unlock(&p->mu);
}

/* "xmin:xmax:xip,xip,..." into *xmin, *xmax and a new ascending array. */
static int parse_snapshot(const char *s, unsigned long long *xmin, unsigned long long *xmax,
                          unsigned long long **xip, size_t *n_xip)
{
    char *end = NULL;
    *xip = NULL;
    *n_xip = 0;
    *xmin = strtoull(s, &end, 10);
    if (end == s || *end != ':')
        return -1;
    s = end + 1;
    *xmax = strtoull(s, &end, 10);
    if (end == s || *end != ':')
        return -1;
    s = end + 1;
    size_t cap = 1;
    for (const char *c = s; *c; c++)
        cap += *c == ',';
    *xip = oq_calloc(cap, sizeof(**xip));
    while (*s != '\0') {
        unsigned long long x = strtoull(s, &end, 10);
        if (end == s || (*end != ',' && *end != '\0') || *n_xip == cap)
            return -1;
        (*xip)[(*n_xip)++] = x;
        s = *end == ',' ? end + 1 : end;
    }
    qsort(*xip, *n_xip, sizeof(**xip), cmp_xid);
    return 0;
}

int pending_fold(struct pending *p, long long count, const char *snapshot)
{
    unsigned long long xmin, xmax, *xip;
    size_t n_xip;
    if (parse_snapshot(snapshot, &xmin, &xmax, &xip, &n_xip) != 0) {
        free(xip);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    free(p->xip);
    p->xip = xip;
    p->n_xip = n_xip;
    p->xmin = xmin;
    p->xmax = xmax;
    p->has_snapshot = true;
    p->counted = count;
    size_t kept = 0;
    p->noted = 0;
    for (size_t i = 0; i < p->n_notes; i++) {
        if (visible(p, p->notes[i].xid))
            continue; /* the count holds them now */
        p->noted += p->notes[i].n;
        p->notes[kept++] = p->notes[i];
    }
    p->n_notes = kept;
    pthread_mutex_unlock(&p->mu);
    return 0;
}
