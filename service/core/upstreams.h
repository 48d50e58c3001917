/* Upstreams: where operations may be delivered, and each one's delivery policy. Read from the
 * short form OFFLINEQ_UPSTREAMS="name=url,..." and the policy file OFFLINEQ_UPSTREAMS_FILE
 * ({"name": {"base_url", "headers", "timeout_ms", ...}}). */
#ifndef OQ_UPSTREAMS_H
#define OQ_UPSTREAMS_H

#include <stddef.h>

struct upstream_state; /* the delivery policy's (delivery/policy.h) */

struct upstream {
    char *name;
    char *base_url;  /* without trailing slash */
    char *origin;    /* scheme://host[:port], lowercase scheme and host */
    char *base_path; /* the path of base_url: "" or "/a/b"; endpoints stay below it */
    char **headers;  /* "Name: value" lines sent on every request, n_headers of them */
    size_t n_headers;
    int connect_timeout_ms;
    int timeout_ms;
    int max_concurrency;        /* 0: unlimited */
    double rate_per_s;          /* 0: unlimited */
    int ramp_start_concurrency; /* in flight when it becomes deliverable again; doubles */
    unsigned char *signing_key; /* decoded at load, signing_key_len bytes; NULL: not signed */
    size_t signing_key_len;
    int breaker_failures;
    int breaker_cooldown_s;
    struct upstream_state *state; /* breaker, slots, window: one per name, kept across reloads
                                   * (set by policy_init/policy_attach) */
};

/* Reads the upstreams of short_form (OFFLINEQ_UPSTREAMS) and of the JSON file named file
 * (OFFLINEQ_UPSTREAMS_FILE; NULL or "": none), each starting from the defaults in
 * upstreams.c's table. Sets *items to a new array of *n upstreams, also on failure (then out
 * holds a one-line message naming the variable, and -1 is returned). Free with
 * upstreams_free. */
int upstreams_parse(const char *short_form, const char *file, struct upstream **items, size_t *n,
                    char *out, size_t len);
void upstreams_free(struct upstream *items, size_t n);

/* The HMAC key of a signing secret (len bytes): "whsec_" and strict base64 (standard
 * alphabet, padded, canonical, not empty), or else the text itself. Returns a new buffer of
 * *key_len bytes (free with upstreams_free_key, which wipes it), or NULL when the secret is
 * malformed. */
unsigned char *upstreams_signing_key(const char *secret, size_t len, size_t *key_len);
void upstreams_free_key(unsigned char *key, size_t key_len);

#endif
