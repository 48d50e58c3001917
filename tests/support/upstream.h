/* A real HTTP upstream for tests (libmicrohttpd, a thread per connection, on 127.0.0.1):
 * answers by script (statuses in sequence, delay, Retry-After, body) and records every request
 * with arrival and completion times, tracking the most requests it saw in flight at once. */
#ifndef OQ_TEST_UPSTREAM_H
#define OQ_TEST_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

struct us_req {
    char method[16];
    char path[1024]; /* with the query */
    char *headers;   /* "name: value\n" lines, names lowercase */
    char *body;
    size_t body_len;
    double start_ms; /* monotonic */
    double end_ms;
    int status;
};

struct us_rule {
    char path[256];   /* a request matches when its path starts with this */
    int statuses[64]; /* answered in turn; the last one repeats (0: drop the connection) */
    int n_statuses;
    bool cycle; /* start over after the last status instead of repeating it */
    int delay_ms;
    char retry_after[64];
    char body[2048];    /* default {"ok":true} */
    char location[256]; /* a Location header, for redirects (empty: none) */
};

struct upstream_srv;

struct upstream_srv *us_start(void);
int us_port(const struct upstream_srv *us);
/* "http://127.0.0.1:PORT" */
const char *us_url(const struct upstream_srv *us);
void us_stop(struct upstream_srv *us);

/* Adds a rule (copied); later rules win over earlier ones for the same request. */
void us_rule(struct upstream_srv *us, const struct us_rule *rule);
/* Statuses as text: "503,503,201". */
void us_script(struct upstream_srv *us, const char *path, const char *statuses, int delay_ms);
/* The same, over and over: "201,503,0,201" cycles (0 drops the connection). */
void us_script_cycle(struct upstream_srv *us, const char *path, const char *statuses, int delay_ms);

/* Versioned JSON resources: paths under /res/ answer GET with the document, an ETag "vN" and
 * Last-Modified; PUT stores the body when If-Match is absent or matches, else 412. */
void us_resource(struct upstream_srv *us, const char *path, const char *json, long long modified);
/* The stored document (malloc'd) or NULL; *version its version. */
char *us_resource_get(struct upstream_srv *us, const char *path, int *version);
/* Every GET of path is followed by a change by "someone else" (its version moves on). */
void us_resource_racing(struct upstream_srv *us, const char *path, bool racing);
/* Down: the port refuses connections until us_up (records and rules are kept). */
void us_down(struct upstream_srv *us);
void us_up(struct upstream_srv *us);

/* The number of recorded requests whose path starts with prefix (NULL: all). */
int us_count(struct upstream_srv *us, const char *prefix);
/* Copies of the recorded requests (free with us_free_reqs). */
struct us_req *us_requests(struct upstream_srv *us, int *n);
void us_free_reqs(struct us_req *reqs, int n);
/* A header of a recorded request (lowercase name), static buffer, or NULL. */
const char *us_header(const struct us_req *r, const char *name);
int us_max_in_flight(struct upstream_srv *us);
/* Requests being answered right now. */
int us_in_flight(struct upstream_srv *us);
/* HEAD requests (connectivity probes) seen; they are not recorded as requests. */
int us_probes(struct upstream_srv *us);
void us_reset(struct upstream_srv *us);
/* Waits up to timeout_ms until n requests have arrived (answered or not); returns how many. */
int us_wait_arrivals(struct upstream_srv *us, int n, int timeout_ms);
/* Waits up to timeout_ms until us_count(prefix) >= n; returns the count. */
int us_wait_count(struct upstream_srv *us, const char *prefix, int n, int timeout_ms);

#endif
