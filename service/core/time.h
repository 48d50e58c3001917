/* Times as text. No I/O. */
#ifndef OQ_TIME_H
#define OQ_TIME_H

#include <stddef.h>

/* Parses an RFC 3339 section 5.6 date-time ("2026-11-22T03:49:25.839970Z", "...+02:00") to
 * seconds since the epoch in *out. Strict: the exact shape, a date that exists, second 60 only
 * as a leap second; never reads past the string's NUL. Returns 0, or -1 (and leaves *out) when
 * s is NULL or not such a date-time. Thread-safe. */
int time_parse_rfc3339(const char *s, double *out);

/* The wall clock (CLOCK_REALTIME) in milliseconds since the epoch. */
double time_wall_ms(void);

/* Writes wall_ms (milliseconds since the epoch) as "2026-11-22T03:49:25.839970Z" (the API's form)
 * into out (at least TIME_RFC3339_LEN bytes). */
#define TIME_RFC3339_LEN 32
void time_format_rfc3339(double wall_ms, char *out, size_t len);

#endif
