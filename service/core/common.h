/* Project-wide helpers: attributes, assertions, small string utilities. */
#ifndef OQ_COMMON_H
#define OQ_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#define OQ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define OQ_MUSTCHECK __attribute__((warn_unused_result))
#define OQ_NORETURN __attribute__((noreturn))
#define OQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define OQ_DAY_S 86400 /* seconds in a day */
#define OQ_STR_(x) #x
#define OQ_STR(x) OQ_STR_(x) /* a macro's value as a string literal: "LIMIT " OQ_STR(N) */

/* Logs file:line and the failed condition, then aborts: for invariants, never for input. */
#define OQ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            oq_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)

OQ_NORETURN void oq_assert_fail(const char *cond, const char *file, int line);

/* Allocators that abort on exhaustion: a queue that cannot allocate 100 bytes cannot go on. */
void *oq_malloc(size_t n);
void *oq_calloc(size_t n, size_t size);
char *oq_strdup(const char *s);
char *oq_strndup(const char *s, size_t n);

/* Writes a formatted one-line message into out (len bytes) and returns -1, so a parser that
 * reports into a caller's buffer can write `return oq_fail_msg(out, len, ...)`. */
int oq_fail_msg(char *out, size_t len, const char *fmt, ...) OQ_PRINTF(3, 4);

/* Returns true when s is a canonical lowercase or uppercase 8-4-4-4-12 UUID. */
bool oq_is_uuid(const char *s);

#define OQ_UUID_LEN 36 /* characters of a UUID in text: 8-4-4-4-12 */

/* Writes a new time-ordered UUID (v7: milliseconds, then random bits; OQ_UUID_LEN chars +
 * NUL) into out. Thread-safe. */
void oq_uuid(char out[OQ_UUID_LEN + 1]);

/* n new time-ordered UUIDs as oq_uuid makes them, into out[0..n-1], from one draw of random
 * bytes (a batch pays one system call, not one per id). Thread-safe. */
void oq_uuids(char (*out)[OQ_UUID_LEN + 1], size_t n);

/* Monotonic clock in milliseconds. */
double oq_now_ms(void);

struct timespec;
/* The CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
void oq_deadline_ms(struct timespec *t, double ms);

/* Now as RFC 3339 UTC with `digits` (3 or 6) fractional digits: "2026-11-22T03:49:25.839Z". */
void oq_utc_now(char *out, size_t len, int digits);

/* A growing byte buffer, always NUL-terminated. */
struct oq_buf {
    char *data;
    size_t len, cap;
};
void oq_buf_add(struct oq_buf *b, const void *p, size_t n);
void oq_buf_str(struct oq_buf *b, const char *s);
/* Grows b once so that n more bytes fit without another reallocation. */
void oq_buf_reserve(struct oq_buf *b, size_t n);

#endif
