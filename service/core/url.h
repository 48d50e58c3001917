/* The one URL reader: libcurl's CURLU parser, the same code that later sends the request, so
 * what is checked is what is sent. Pure parsing (no I/O, no DNS). */
#ifndef OQ_URL_H
#define OQ_URL_H

#include <stddef.h>

/* Reads an http(s) URL. Writes its origin, lowercase "scheme://host[:port]" with the port left
 * out when it is the scheme's default, into origin (len bytes) and, when path is not NULL, sets
 * *path to a new string holding the URL's path as written (no dot segments removed, "/" when
 * empty). Refuses (-1) any other scheme, userinfo ("http://up@evil"), an empty host, and a
 * host written another way than libcurl reads it ("127.1", "2130706433", "0x7f000001").
 * Returns 0 or -1. Thread-safe. */
int url_parse(const char *url, char *origin, size_t len, char **path);

/* url_parse without the path. */
int url_origin(const char *url, char *origin, size_t len);

#endif
