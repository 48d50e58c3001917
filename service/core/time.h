/* Times as text. No I/O. */
#ifndef OQ_TIME_H
#define OQ_TIME_H

/* Parses an RFC 3339 section 5.6 date-time ("2026-11-22T03:49:25.839970Z", "...+02:00") to
 * seconds since the epoch in *out. Strict: the exact shape, a date that exists, second 60 only
 * as a leap second; never reads past the string's NUL. Returns 0, or -1 (and leaves *out) when
 * s is NULL or not such a date-time. Thread-safe. */
int time_parse_rfc3339(const char *s, double *out);

#endif
