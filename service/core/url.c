#include "core/url.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/common.h"

/* Copies a URL part libcurl returned, lowercased, into origin at *o; -1 when it does not fit. */
static int put_lower(char *origin, size_t len, size_t *o, const char *part)
{
    for (; *part; part++) {
        if (*o + 1 >= len)
            return -1;
        origin[(*o)++] = (char)tolower((unsigned char)*part);
    }
    origin[*o] = '\0';
    return 0;
}

/* scheme://host[:port] of a parsed URL, the port left out when it is the scheme's default. */
static int origin_of(CURLU *h, char *origin, size_t len)
{
    char *scheme = NULL, *host = NULL, *port = NULL;
    size_t o = 0;
    int rc = -1;
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
        goto out;
    CURLUcode pc = curl_url_get(h, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT)
        goto out;
    if (put_lower(origin, len, &o, scheme) == 0 && put_lower(origin, len, &o, "://") == 0 &&
        put_lower(origin, len, &o, host) == 0 &&
        (port == NULL ||
         (put_lower(origin, len, &o, ":") == 0 && put_lower(origin, len, &o, port) == 0)))
        rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    return rc;
}

/* The authority as written must be what libcurl reads: no userinfo ("http://up@evil"), and no
 * host spelled another way that it would normalise ("127.1", "2130706433", "0x7f000001"). */
static bool is_written_as_read(const char *authority, size_t n, CURLU *h)
{
    char *host = NULL, *port = NULL;
    bool same = false;
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        CURLUcode pc = curl_url_get(h, CURLUPART_PORT, &port, 0); /* only a port written */
        size_t hl = strlen(host);
        same = pc == CURLUE_OK
                   ? hl + 1 + strlen(port) == n && strncasecmp(authority, host, hl) == 0 &&
                         authority[hl] == ':' && strncmp(authority + hl + 1, port, n - hl - 1) == 0
                   : pc == CURLUE_NO_PORT && hl == n && strncasecmp(authority, host, n) == 0;
    }
    curl_free(host);
    curl_free(port);
    return same;
}

/* The length of "http://" or "https://" (any case) at the start of url, else 0. */
static size_t scheme_prefix_len(const char *url)
{
    static const struct {
        const char *prefix;
        size_t len;
    } schemes[] = {{"http://", sizeof("http://") - 1}, {"https://", sizeof("https://") - 1}};
    for (size_t i = 0; i < OQ_ARRAY_LEN(schemes); i++) {
        if (strncasecmp(url, schemes[i].prefix, schemes[i].len) == 0)
            return schemes[i].len;
    }
    return 0;
}

int url_parse(const char *url, char *origin, size_t len, char **path)
{
    size_t scheme_len = scheme_prefix_len(url);
    if (scheme_len == 0)
        return -1;
    CURLU *h = curl_url();
    OQ_ASSERT(h != NULL);
    char *p = NULL;
    int rc = -1;
    /* PATH_AS_IS: keep "." and ".." segments, so target.c sees (and refuses) them. */
    if (curl_url_set(h, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK ||
        !is_written_as_read(url + scheme_len, strcspn(url + scheme_len, "/?#"), h) ||
        origin_of(h, origin, len) != 0)
        goto out;
    if (path != NULL) {
        if (curl_url_get(h, CURLUPART_PATH, &p, 0) != CURLUE_OK)
            goto out;
        *path = oq_strdup(p[0] ? p : "/");
    }
    rc = 0;
out:
    curl_free(p);
    curl_url_cleanup(h);
    return rc;
}

int url_origin(const char *url, char *origin, size_t len)
{
    return url_parse(url, origin, len, NULL);
}
