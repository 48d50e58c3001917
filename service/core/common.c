#include "core/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <uuid/uuid.h>

void oq_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr,
            "{\"level\":\"fatal\",\"msg\":\"assertion failed\",\"cond\":\"%s\",\"at\":\"%s:%d\"}\n",
            cond, file, line);
    abort();
}

int oq_fail_msg(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return -1;
}

void *oq_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    OQ_ASSERT(p != NULL);
    return p;
}

void *oq_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    OQ_ASSERT(p != NULL);
    return p;
}

char *oq_strdup(const char *s)
{
    return oq_strndup(s, strlen(s));
}

char *oq_strndup(const char *s, size_t n)
{
    char *p = oq_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool oq_is_uuid(const char *s)
{
    uuid_t u;
    return s != NULL && strlen(s) == OQ_UUID_LEN && uuid_parse(s, u) == 0;
}

/* UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, then random bits; ids made
 * later sort later, so rows keyed by them go to the right edge of an index. rnd: 10 random
 * bytes (the 74 random bits and what the version and variant overwrite). */
static void uuid_v7(char out[OQ_UUID_LEN + 1], unsigned long long ms, const unsigned char *rnd)
{
    uuid_t u;
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (8 * (5 - i)));
    memcpy(u + 6, rnd, 10);
    u[6] = (unsigned char)((u[6] & 0x0F) | 0x70); /* version 7 */
    u[8] = (unsigned char)((u[8] & 0x3F) | 0x80); /* the RFC variant */
    uuid_unparse_lower(u, out);
}

static unsigned long long unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)(ts.tv_nsec / 1000000);
}

void oq_uuid(char out[OQ_UUID_LEN + 1])
{
    unsigned char rnd[10];
    arc4random_buf(rnd, sizeof(rnd));
    uuid_v7(out, unix_ms(), rnd);
}

void oq_uuids(char (*out)[OQ_UUID_LEN + 1], size_t n)
{
    unsigned char *rnd = oq_malloc(n * 10 + 1);
    arc4random_buf(rnd, n * 10);
    unsigned long long ms = unix_ms();
    for (size_t i = 0; i < n; i++)
        uuid_v7(out[i], ms, rnd + 10 * i);
    free(rnd);
}

double oq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void oq_deadline_ms(struct timespec *t, double ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    long long ns = t->tv_nsec + (long long)(ms * 1e6);
    t->tv_sec += (time_t)(ns / 1000000000LL);
    t->tv_nsec = (long)(ns % 1000000000LL);
}

void oq_utc_now(char *out, size_t len, int digits)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(out + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
    else
        snprintf(out + n, len - n, ".%06ldZ", (long)tv.tv_usec);
}

void oq_buf_add(struct oq_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        OQ_ASSERT(grown != NULL);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void oq_buf_str(struct oq_buf *b, const char *s)
{
    oq_buf_add(b, s, strlen(s));
}

void oq_buf_reserve(struct oq_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    char *grown = realloc(b->data, b->len + n + 1);
    OQ_ASSERT(grown != NULL);
    b->data = grown;
    b->cap = b->len + n + 1;
    b->data[b->len] = '\0';
}
