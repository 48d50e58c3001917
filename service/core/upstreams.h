/* Upstreams: where operations may be delivered, and each one's delivery policy. Read from the
 * short form OFFLINEQ_UPSTREAMS="name=url,..." and the policy file OFFLINEQ_UPSTREAMS_FILE
 * ({"name": {"base_url", "headers", "timeout_ms", ...}}). */
#ifndef OQ_UPSTREAMS_H
#define OQ_UPSTREAMS_H

#include <stddef.h>

struct config;

struct upstream {
    char *name;
    char *base_url;  /* without trailing slash */
    char *origin;    /* scheme://host[:port], lowercase scheme and host */
    char *base_path; /* the path of base_url: "" or "/a/b"; endpoints stay below it */
    char **headers;  /* "Name: value" lines sent on every request, n_headers of them */
    size_t n_headers;
    int connect_timeout_ms;
    int timeout_ms;
    int max_concurrency; /* 0: unlimited */
    double rate_per_s;   /* 0: unlimited */
    unsigned char *signing_key; /* decoded at load, signing_key_len bytes; NULL: not signed */
    size_t signing_key_len;
    int breaker_failures;
    int breaker_cooldown_s;
};

/* Fills c->upstreams from c->upstreams_raw and c->upstreams_file (each upstream starts from
 * the defaults in upstreams.c's table). On failure writes a one-line message naming the
 * variable into out and returns -1. Free with upstreams_free (also after a failure). */
int upstreams_parse(struct config *c, char *out, size_t len);
void upstreams_free(struct config *c);

/* The HMAC key of a signing secret (len bytes): "whsec_" and strict base64 (standard
 * alphabet, padded, canonical, not empty), or else the text itself. Returns a new buffer of
 * *key_len bytes (free with upstreams_free_key, which wipes it), or NULL when the secret is
 * malformed. */
unsigned char *upstreams_signing_key(const char *secret, size_t len, size_t *key_len);
void upstreams_free_key(unsigned char *key, size_t key_len);

#endif
