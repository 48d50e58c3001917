#include "core/time.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The fixed part of an RFC 3339 date-time, "dddd-dd-ddTdd:dd:dd" (t allowed): checked byte by
 * byte, so nothing is read past the first mismatch (a terminating NUL is one). */
static bool rfc3339_fixed_part(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; shape[i]; i++) {
        bool ok = shape[i] == 'd'   ? s[i] >= '0' && s[i] <= '9'
                  : shape[i] == 'T' ? s[i] == 'T' || s[i] == 't'
                                    : s[i] == shape[i];
        if (!ok)
            return false;
    }
    return true;
}

/* time-secfrac: "." 1*DIGIT at *p (advanced past it); 0 when there is none, -1 when bad. */
static double rfc3339_fraction(const char **p)
{
    if (**p != '.')
        return 0;
    char buf[24] = "0.";
    size_t n = 0;
    for ((*p)++; **p >= '0' && **p <= '9'; (*p)++) {
        if (n < sizeof(buf) - 3)
            buf[2 + n] = **p;
        n++;
    }
    return n == 0 ? -1 : strtod(buf, NULL);
}

/* time-offset: "Z" / ("+" / "-") HH ":" MM, then the end of the text. Seconds east of UTC. */
static int rfc3339_offset(const char *p, long *east)
{
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        *east = 0;
        return 0;
    }
    if (p[0] != '+' && p[0] != '-')
        return -1;
    for (int i = 1; i <= 5; i++) {
        if (i == 3 ? p[i] != ':' : !(p[i] >= '0' && p[i] <= '9'))
            return -1; /* stops at the NUL of a short offset */
    }
    int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
    if (p[6] != '\0' || hh > 23 || mm > 59)
        return -1;
    *east = (p[0] == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
    return 0;
}

/* RFC 3339 section 5.6 date-time. The fields are read by strptime(3) once the shape is known
 * to be exact; the date must exist (timegm round trip); second 60 only as a leap second (the
 * last minute of a UTC day), read as the next second as PostgreSQL does. */
int time_parse_rfc3339(const char *s, double *out)
{
    if (s == NULL || !rfc3339_fixed_part(s))
        return -1;
    char fixed[20];
    memcpy(fixed, s, 19);
    fixed[19] = '\0';
    fixed[10] = 'T';
    struct tm tm = {0};
    const char *end = strptime(fixed, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *p = s + 19;
    double frac = rfc3339_fraction(&p);
    long east;
    if (end != fixed + 19 || frac < 0 || tm.tm_sec > 60 || rfc3339_offset(p, &east) != 0)
        return -1;
    bool leap = tm.tm_sec == 60;
    tm.tm_sec -= leap;
    struct tm want = tm, back;
    time_t t = timegm(&tm);
    if (gmtime_r(&t, &back) == NULL || back.tm_year != want.tm_year || back.tm_mon != want.tm_mon ||
        back.tm_mday != want.tm_mday || back.tm_hour != want.tm_hour || back.tm_min != want.tm_min)
        return -1; /* no such date (Feb 30) */
    time_t utc = t - east;
    if (leap && (gmtime_r(&utc, &back) == NULL || back.tm_hour != 23 || back.tm_min != 59))
        return -1;
    *out = (double)utc + leap + frac;
    return 0;
}

double time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void time_format_rfc3339(double wall_ms, char *out, size_t len)
{
    long long us = (long long)(wall_ms * 1000.0);
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%06dZ", (int)(us % 1000000));
}
